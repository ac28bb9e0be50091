// The npm package as users get it: `npm pack`, installed from the tarball into a scratch
// project, then used from Node 20, from an esbuild browser bundle in Chromium, and from workerd.
// The README's examples run here too, against the installed package.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { writeFileSync, readFileSync, copyFileSync, mkdirSync, rmSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join } from "node:path";
import { ROOT, URL_, TOKEN, project, installPackedPackage, launchChromium, BROWSER_ENTRY, runBundleInChromium, workerdFromBundle } from "./env.mjs";

/** Past this, the package has grown by accident: wasm + JS glue, gzipped with Node's gzip. The
 * size reached in issue 13 with issue 11's detached processes (174,660 bytes; README "The
 * client") plus 5 %. */
const SIZE_GUARD = 183_400;

let scratch;
const env = { ...process.env, NF_URL: URL_, NF_TOKEN: TOKEN };

before(() => {
  scratch = installPackedPackage("flankbox-pkg-");
});

after(() => rmSync(scratch, { recursive: true, force: true }));

test("the package is small, and ships only what it needs", () => {
  const gz = (f) => gzipSync(readFileSync(join(ROOT, "pkg", f)), { level: 9 }).length;
  const total = gz("flankbox_bg.wasm") + gz("flankbox.js");
  console.log(`# size: wasm ${gz("flankbox_bg.wasm")} + glue ${gz("flankbox.js")} = ${total} bytes gzipped`);
  assert.ok(total <= SIZE_GUARD, `${total} bytes gzipped is past the ${SIZE_GUARD}-byte guard`);
  const installed = join(scratch, "node_modules", "flankbox");
  const manifest = JSON.parse(readFileSync(join(installed, "package.json"), "utf8"));
  assert.equal(manifest.exports["."].types, "./index.d.ts");
  assert.deepEqual(Object.keys(manifest.exports["."]), ["types", "workerd", "worker", "node", "browser", "default"]);
  for (const f of ["browser.js", "node.js", "workerd.js", "compat.js", "flankbox_bg.wasm", "index.d.ts", "flankbox.d.ts", "edge.js", "edge.d.ts", "edge/flankbox_edge_bg.wasm"]) {
    readFileSync(join(installed, f));
  }
  const types = readFileSync(join(installed, "flankbox.d.ts"), "utf8");
  for (const t of ["static create(nf: Northflank, options: SandboxOptions): Promise<Sandbox>", "exec(cmd: string | string[], options: ExecOptions): Promise<ExecResult>", "export interface ExecResult"]) {
    assert.ok(types.includes(t), `types lack ${t}`);
  }
});

test("Node 20 uses the installed package (its own WebSocket from ws)", () => {
  writeFileSync(
    join(scratch, "node-use.mjs"),
    `import { Northflank, Sandbox } from "flankbox";
     const nf = new Northflank({ token: process.env.NF_TOKEN, projectId: "${project("pkg-node")}", baseUrl: process.env.NF_URL });
     const sb = await Sandbox.create(nf);
     const r = await sb.exec(["uname", "-s"]);
     await sb.destroy();
     console.log(JSON.stringify({ ws: typeof WebSocket, out: r.stdout, code: r.exitCode }));`,
  );
  const out = JSON.parse(execFileSync(process.execPath, ["node-use.mjs"], { cwd: scratch, env, encoding: "utf8" }));
  assert.deepEqual(out, { ws: "function", out: "Linux\n", code: 0 });
});

test("the README's examples run as written", () => {
  const readme = readFileSync(join(scratch, "node_modules", "flankbox", "README.md"), "utf8");
  const examples = [...readme.matchAll(/<!-- example: (\S+) -->\n```js\n([\s\S]*?)```/g)];
  assert.ok(examples.length >= 4, `found ${examples.length} examples`);
  const expected = { quickstart: /^0 hello from sandbox-/m, process: /^apple\npear\n/m, lifecycle: /^kept$/m, errors: /^BAD_REQUEST 400 Invalid request: billing\.deploymentPlan/m, edge: /^fbx1 through the edge$/m, detached: /^true for i in 1 2 3;[^\n]*\nstep 1\nstep 2\nstep 3\n\n3 3$/m };
  for (const [, name, code] of examples) {
    const file = join(scratch, `readme-${name}.mjs`);
    writeFileSync(file, code.replaceAll('projectId: "my-project"', `projectId: "${project("readme")}"`));
    const out = execFileSync(process.execPath, [file], { cwd: scratch, env, encoding: "utf8" });
    assert.match(out, expected[name] ?? /./, `example ${name} printed:\n${out}`);
  }
});

test("an esbuild browser bundle runs in Chromium", async () => {
  const dist = join(scratch, "dist");
  mkdirSync(dist, { recursive: true });
  writeFileSync(join(scratch, "browser-entry.mjs"), BROWSER_ENTRY);
  execFileSync(join(ROOT, "node_modules/.bin/esbuild"), ["browser-entry.mjs", "--bundle", "--format=esm", "--platform=browser", "--target=es2022", `--outdir=${dist}`], { cwd: scratch, stdio: "inherit" });
  // esbuild leaves `new URL("./flankbox_bg.wasm", import.meta.url)` alone: the wasm goes next to the bundle.
  copyFileSync(join(scratch, "node_modules/flankbox/flankbox_bg.wasm"), join(dist, "flankbox_bg.wasm"));
  writeFileSync(join(dist, "index.html"), `<!doctype html><script type="module" src="./browser-entry.js"></script>`);
  const browser = await launchChromium();
  try {
    const result = await runBundleInChromium(browser, dist, "index.html", project("pkg-browser"));
    assert.equal(result.stdout, "line 1\nline 2\nline 3\n");
    assert.equal(result.code, 0);
    assert.ok(result.chunks >= 2, "output arrived live, in pieces");
  } finally {
    await browser.close();
  }
});

test("workerd runs the package inside a Worker, the guide's code included", async () => {
  writeFileSync(
    join(scratch, "worker.mjs"),
    `import * as sdk from "flankbox";
     import { runGuide } from "${join(ROOT, "tests/guide/guide.mjs")}";
     const { Northflank, Sandbox, ApiClient } = sdk;
     export default {
       async fetch(request, env) {
         if (new URL(request.url).pathname === "/guide") {
           // The guide's code, with only its import changed, inside a Worker.
           return Response.json(await runGuide(sdk, { token: env.NF_TOKEN, host: env.NF_URL, projectId: env.PROJECT + "-guide" }));
         }
         const nf = new Northflank({ token: env.NF_TOKEN, projectId: env.PROJECT, baseUrl: env.NF_URL });
         const sb = await Sandbox.create(nf);
         const r = await sb.exec("echo hello from $(hostname) inside workerd; cat", { stdin: "and stdin\\n" });
         await sb.destroy();
         return Response.json({ stdout: r.stdout, code: r.exitCode, compat: typeof ApiClient });
       },
     };`,
  );
  const out = join(scratch, "worker-dist");
  execFileSync(
    join(ROOT, "node_modules/.bin/esbuild"),
    ["worker.mjs", "--bundle", "--format=esm", "--platform=neutral", "--conditions=workerd,worker,browser", "--main-fields=module,main", "--loader:.wasm=copy", `--outdir=${out}`],
    { cwd: scratch, stdio: "inherit" },
  );
  const mf = await workerdFromBundle(out, { NF_TOKEN: TOKEN, NF_URL: URL_, PROJECT: project("pkg-workerd") });
  try {
    const res = await mf.dispatchFetch("http://worker/");
    const body = await res.json();
    assert.match(body.stdout, /^hello from sandbox-\S+ inside workerd\nand stdin\n$/);
    assert.equal(body.code, 0);
    assert.equal(body.compat, "function");
    const guide = await (await mf.dispatchFetch("http://worker/guide")).json();
    assert.equal(guide.ephemeral.stdout, "Hello from the sandbox!\nhello-world\n");
    assert.equal(guide.volume.kept, "survives\n");
  } finally {
    await mf.dispose();
  }
});
