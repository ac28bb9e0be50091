// The package's TypeScript types, as a strict TypeScript project gets them: the packed tarball
// installed (offline) into a scratch project, then type-checked with the workspace's TypeScript
// under four configurations (moduleResolution bundler and node16, each with lib ES2022 and
// ESNext, plus DOM; strict, skipLibCheck false). The sources checked:
//   - every ```js block of the package README and of the repository README that imports
//     flankbox, extracted here so that the check follows the docs (free variables such as
//     `token` get a `declare`; a `catch (e)` becomes `catch (e: any)`, which is what a JS catch
//     variable is);
//   - tests/guide/guide.mjs, the guide's code, through the compat layer: the SDK it is handed
//     is typed as flankbox's, and its parameters and empty arrays get the annotations that
//     JavaScript has no place for; nothing else changes;
//   - api.ts: the optional options, the tight spots (`@ts-expect-error` where the types must
//     refuse), and the hand-declared classes of index.d.ts against wasm-bindgen's, member for
//     member.
// Any error fails, with tsc's output.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const TSC = join(ROOT, "node_modules", ".bin", "tsc");

const CONFIGS = {
  "bundler-es2022": { module: "esnext", moduleResolution: "bundler", lib: ["ES2022", "DOM"] },
  "bundler-esnext": { module: "esnext", moduleResolution: "bundler", lib: ["ESNext", "DOM"] },
  "node16-es2022": { module: "node16", moduleResolution: "node16", lib: ["ES2022", "DOM"] },
  "node16-esnext": { module: "node16", moduleResolution: "node16", lib: ["ESNext", "DOM"] },
};

/** Ambient declarations for the free variables examples use (Node's `process`, a Worker's `env`). */
const FREE = {
  token: "declare const token: string;",
  env: "declare const env: Record<string, string>;",
  process: "declare const process: { env: Record<string, string | undefined>; stdout: { write(chunk: string | Uint8Array): boolean } };",
};

/** A README block as a TypeScript module. */
function asTypeScript(code) {
  const declared = (name) => new RegExp(`(?:const|let|var|function|class)\\s+${name}\\b|import[^;]*\\b${name}\\b[^;]*from`).test(code);
  const free = Object.entries(FREE).filter(([name]) => new RegExp(`\\b${name}\\b`).test(code) && !declared(name));
  const body = code.replace(/catch \((\w+)\)/g, "catch ($1: any)");
  return `${free.map(([, d]) => d).join("\n")}\n${body}\nexport {};\n`;
}

/** tests/guide/guide.mjs as TypeScript against the compat layer: annotations only. */
function guideAsTypeScript(code) {
  const edits = [
    ["function makeClient({ ApiClient, ApiClientInMemoryContextProvider }, { token, host })", "function makeClient({ ApiClient, ApiClientInMemoryContextProvider }: SDK, { token, host }: { token: string; host?: string })"],
    ["function ephemeral(apiClient, projectId, log = () => {})", "function ephemeral(apiClient: Client, projectId: string, log: (...args: unknown[]) => void = () => {})"],
    ["function exposePort(apiClient, projectId, sandboxId)", "function exposePort(apiClient: Client, projectId: string, sandboxId: string)"],
    ["function withVolume(apiClient, projectId)", "function withVolume(apiClient: Client, projectId: string)"],
    ["function runGuide(sdk, { token, host, projectId })", "function runGuide(sdk: SDK, { token, host, projectId }: { token: string; host?: string; projectId: string })"],
    ["async (command) =>", "async (command: string) =>"],
    ["(ok, what) =>", "(ok: boolean, what: string) =>"],
    ["const stdoutChunks = [];", "const stdoutChunks: string[] = [];"],
    ["const stderrChunks = [];", "const stderrChunks: string[] = [];"],
    ["const out = [];", "const out: string[] = [];"],
    ["let refused;", "let refused: any;"],
  ];
  for (const [from, to] of edits) {
    assert.ok(code.includes(from), `tests/guide/guide.mjs no longer has \`${from}\`: update the annotations in tests/types/types.test.mjs`);
    code = code.replaceAll(from, to);
  }
  // The SDK the guide is handed: flankbox's compat layer, where the guide imports the official one.
  return `import * as flankbox from "flankbox";\ntype SDK = typeof flankbox;\ntype Client = flankbox.ApiClient;\n${code}`;
}

const API_CHECKS = `
import { Northflank, Sandbox, SandboxProcess, ApiClient, ApiClientInMemoryContextProvider, init } from "flankbox";
import type { ExecResult, SandboxStatus, ExitInfo, Progress } from "flankbox";
import { createEdgeProxy } from "flankbox/edge";
import { FlankboxPlayground } from "flankbox/widget";
// wasm-bindgen's declarations, which index.d.ts's classes stand in for.
import type * as generated from "../node_modules/flankbox/flankbox.js";

declare const nf: Northflank;
declare const sandbox: Sandbox;

// Every options object may be left out.
new Northflank();
await nf.call("GET", "/v1/projects/p/services");
const made: Sandbox = await Sandbox.create(nf);
await Sandbox.connect(nf, made.id);
const result: ExecResult = await sandbox.exec("echo hi");
await sandbox.exec(["true"]);
const status: SandboxStatus = await sandbox.status();
await sandbox.pause();
await sandbox.resume();
await sandbox.ports();
await sandbox.exposePort(8080);
await sandbox.writeFile("/tmp/a", "text");
await sandbox.writeFile("/tmp/b", new Uint8Array([1]).buffer);
const bytes: Uint8Array = await sandbox.readFile("/tmp/a");
await sandbox.uploadDir("/tmp/d", { "a.txt": "a", "b.bin": new Uint8Array([2]) });
await sandbox.uploadDir("/tmp/d", [{ path: "a.txt", data: "a" }, { path: "empty" }]);
await sandbox.downloadDir("/tmp/d");
await sandbox.destroy();
// A page's last request: no connect to wait for, sent with fetch keepalive.
await Sandbox.forService(nf, "s", { capability: "c" }).destroy({ keepalive: true, deleteVolume: true });
await nf.call("DELETE", "/v1/projects/p/services/s", undefined, { keepalive: true });

// spawn: no command is a login shell; the streams follow the encoding.
const shell = await sandbox.spawn();
const raw: ReadableStream<Uint8Array> = shell.stdout;
const text: ReadableStream<string> = (await sandbox.spawn("cat", { encoding: "utf8" })).stdout;
const either: SandboxProcess = await sandbox.spawn(null, { encoding: Math.random() < 0.5 ? "utf8" : "bytes" });
const exit: ExitInfo = await either.wait();
await shell.write(new ArrayBuffer(1));

// Detached: the handle has its id; attach's streams follow the encoding; offsets per stream.
const job = await sandbox.spawn("make", { detached: true, keepBytes: 1 << 20, resumeWithinMs: 5000 });
const jobId: string = job.id;
const jobText: ReadableStream<string> = (await sandbox.attach(jobId, { from: { stdout: 3 }, encoding: "utf8" })).stdout;
const listedProcesses: { id: string; running: boolean; exitCode?: number; startedAt: number }[] = await sandbox.processes();
await (await sandbox.attach(jobId, { from: 0 })).kill();
// @ts-expect-error: a plain process's id may be undefined
const notDetachedId: string = shell.id;

// stdin: a string, bytes, an ArrayBuffer, or a stream of any of them.
await sandbox.exec("cat", { stdin: "text" });
await sandbox.exec("cat", { stdin: new Uint8Array([1]) });
await sandbox.exec("cat", { stdin: new ArrayBuffer(1) });
await sandbox.exec("cat", { stdin: new ReadableStream<Uint8Array>() });
await sandbox.exec("cat", { stdin: new ReadableStream<string>() });
await sandbox.exec("cat", { stdin: new ReadableStream<ArrayBuffer>() });
await Sandbox.create(nf, { onProgress: (p: Progress) => console.log(p.step, p.elapsedMs) });

// Where the types must refuse.
// @ts-expect-error: a command is required
await sandbox.exec();
// @ts-expect-error: no such field: the status has no reason
status.reason;
// @ts-expect-error: a number is not input
await sandbox.exec("cat", { stdin: 42 });
// @ts-expect-error: a byte stream has no strings
const notText: ReadableStream<string> = shell.stdout;

// The compat layer: the result's status is the SDK's union.
const provider = new ApiClientInMemoryContextProvider();
await provider.addContext({ name: "local", token: "t", host: "http://127.0.0.1:7420" });
const api = new ApiClient(provider, { throwErrorOnHttpErrorCode: true });
const { commandResult } = await api.exec.execServiceCommand({ projectId: "p", serviceId: "s" }, { command: "true" });
const outcome: "Success" | "Failure" | "Unknown" = commandResult.status;
// @ts-expect-error: not a status the layer produces
const wrong: typeof commandResult.status = "Done";

// The rest of the public surface loads.
createEdgeProxy({ token: "t", projectId: "p", secret: "s".repeat(32) });
customElements.get("flankbox-playground") satisfies CustomElementConstructor | undefined;
let element: FlankboxPlayground | undefined;
init satisfies (...args: any[]) => Promise<unknown>;

// index.d.ts's classes against wasm-bindgen's: the same members, and each call the generated
// types allow is allowed (ours only accept more).
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Members<T> = Exclude<keyof T, "prototype">;
const members: [
  Same<Members<Northflank>, Members<generated.Northflank>>,
  Same<Members<Sandbox>, Members<generated.Sandbox>>,
  Same<Members<SandboxProcess>, Members<generated.SandboxProcess>>,
  Same<Members<typeof Sandbox>, Members<typeof generated.Sandbox>>,
] = [true, true, true, true];
const wider = {
  connect: Sandbox.connect satisfies typeof generated.Sandbox.connect,
  create: Sandbox.create satisfies typeof generated.Sandbox.create,
  exec: sandbox.exec satisfies generated.Sandbox["exec"],
  spawn: sandbox.spawn satisfies generated.Sandbox["spawn"],
};
declare const sandboxMethods: { [K in keyof generated.Sandbox]: Sandbox[K] };
sandboxMethods satisfies { [K in keyof generated.Sandbox]: generated.Sandbox[K] };

// [Symbol.dispose] frees a handle: with lib ESNext as the lib declares it, with ES2022 as the package does.
Sandbox.forService(nf, "s")[Symbol.dispose]() satisfies void;

export { result, made, bytes, raw, text, exit, outcome, wrong, element, members, wider, notText, jobText, listedProcesses, notDetachedId };
`;

let scratch;

before(() => {
  scratch = mkdtempSync(join(tmpdir(), "flankbox-types-"));
  const packed = JSON.parse(execFileSync("npm", ["pack", "--json", "--pack-destination", scratch, join(ROOT, "pkg")], { encoding: "utf8" }));
  writeFileSync(join(scratch, "package.json"), JSON.stringify({ name: "scratch-types", private: true, type: "module" }));
  // Offline: the package's one dependency, ws, comes from the workspace.
  execFileSync(
    "npm",
    ["install", "--offline", "--no-audit", "--no-fund", "--loglevel=error", join(scratch, packed[0].filename), join(ROOT, "node_modules", "ws")],
    { cwd: scratch, stdio: "inherit" },
  );
  const src = join(scratch, "src");
  mkdirSync(src);
  const readmes = [
    ["pkg", readFileSync(join(scratch, "node_modules", "flankbox", "README.md"), "utf8")],
    ["repo", readFileSync(join(ROOT, "README.md"), "utf8")],
  ];
  let count = 0;
  for (const [from, readme] of readmes) {
    const blocks = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]).filter((code) => /from "flankbox(\/[\w.]+)?"/.test(code));
    assert.ok(blocks.length >= (from === "pkg" ? 6 : 2), `${from} README: found ${blocks.length} flankbox examples`);
    blocks.forEach((code, i) => {
      writeFileSync(join(src, `readme-${from}-${i + 1}.ts`), asTypeScript(code));
      count++;
    });
  }
  console.log(`${count} README examples`);
  writeFileSync(join(src, "guide.ts"), guideAsTypeScript(readFileSync(join(ROOT, "tests", "guide", "guide.mjs"), "utf8")));
  writeFileSync(join(src, "api.ts"), API_CHECKS);
  for (const [name, options] of Object.entries(CONFIGS)) {
    const compilerOptions = { ...options, target: "ES2022", strict: true, skipLibCheck: false, noEmit: true, types: [] };
    writeFileSync(join(scratch, `tsconfig.${name}.json`), JSON.stringify({ compilerOptions, include: ["src/**/*.ts"] }, null, 2));
  }
});

after(() => rmSync(scratch, { recursive: true, force: true }));

for (const name of Object.keys(CONFIGS)) {
  test(`strict TypeScript accepts the docs' code: ${name}`, () => {
    try {
      execFileSync(TSC, ["--noEmit", "-p", `tsconfig.${name}.json`], { cwd: scratch, encoding: "utf8", stdio: "pipe" });
    } catch (e) {
      assert.fail(`tsc -p tsconfig.${name}.json failed:\n${e.stdout}${e.stderr}`);
    }
  });
}
