// Detached processes from a Cloudflare Worker in real workerd (Miniflare) against the local
// host. Each request is a Worker invocation of its own, so nothing is shared between them but
// the sandbox id and the process id: one request spawns and returns at once (its handle is
// left behind, as a Worker's is), later ones list the process and attach to it, live and after
// its end, from 0 and from a byte offset. And one request that follows its process while a
// relay cuts its sockets, then stays down a while: the handle resumes inside workerd.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { relay } from "./relay.mjs";
import { ROOT, URL_, TOKEN, project, workerdFromBundle } from "./env.mjs";

const { Northflank, Sandbox } = await import(`${ROOT}/pkg/node.js`);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const lines = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => `line ${from + i}\n`).join("");

/** The Worker: `/spawn` starts a detached process and answers with its id without waiting for
 * it; `/attach` lists the processes and attaches (from `from`, if given), reading to the end;
 * `/run` spawns and follows to the end in one request. `base` overrides the host's URL. */
const WORKER = `import { Northflank, Sandbox } from "${ROOT}/pkg/workerd.js";
async function readAll(stream) {
  let text = "";
  const reader = stream.getReader();
  for (let r = await reader.read(); !r.done; r = await reader.read()) text += r.value;
  return text;
}
async function toEnd(proc) {
  const [stdout, stderr, exit] = await Promise.all([readAll(proc.stdout), readAll(proc.stderr), proc.wait()]);
  return { stdout, stderr, exitCode: exit.exitCode };
}
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const q = url.searchParams;
    const nf = new Northflank({ token: env.NF_TOKEN, projectId: env.PROJECT, baseUrl: q.get("base") ?? env.NF_URL });
    const sandbox = Sandbox.forService(nf, q.get("sandbox"));
    try {
      if (url.pathname === "/spawn") {
        const proc = await sandbox.spawn(q.get("script"), { detached: true, encoding: "utf8" });
        return Response.json({ id: proc.id });
      }
      if (url.pathname === "/attach") {
        const listed = (await sandbox.processes()).find((p) => p.id === q.get("id")) ?? null;
        const options = { encoding: "utf8" };
        if (q.has("from")) options.from = Number(q.get("from"));
        const proc = await sandbox.attach(q.get("id"), options);
        return Response.json({ listed, ...(await toEnd(proc)) });
      }
      if (url.pathname === "/run") {
        const proc = await sandbox.spawn(q.get("script"), { detached: true, id: q.get("id"), encoding: "utf8" });
        return Response.json(await toEnd(proc));
      }
      return new Response("no such route", { status: 404 });
    } catch (e) {
      return Response.json({ error: { code: e.code, message: e.message } }, { status: 500 });
    }
  },
};
`;

let scratch, mf, cut, projectId, direct, sandboxId;

/** One Worker invocation; throws with what the Worker caught if it failed. */
async function call(path, params) {
  const res = await mf.dispatchFetch(`http://worker${path}?${new URLSearchParams({ sandbox: sandboxId, ...params })}`);
  const body = await res.json();
  if (!res.ok) throw new Error(`${path} failed in the Worker: ${JSON.stringify(body.error)}`);
  return body;
}

async function listedBy(client, id) {
  return (await Sandbox.forService(client, sandboxId).processes()).find((p) => p.id === id);
}

before(async () => {
  scratch = mkdtempSync(join(tmpdir(), "flankbox-workerd-detached-"));
  writeFileSync(join(scratch, "worker.mjs"), WORKER);
  const out = join(scratch, "dist");
  execFileSync(
    join(ROOT, "node_modules/.bin/esbuild"),
    ["worker.mjs", "--bundle", "--format=esm", "--platform=neutral", "--conditions=workerd,worker,browser", "--main-fields=module,main", "--loader:.wasm=copy", `--outdir=${out}`],
    { cwd: scratch, stdio: "inherit" },
  );
  projectId = project("workerd-detached");
  mf = await workerdFromBundle(out, { NF_TOKEN: TOKEN, NF_URL: URL_, PROJECT: projectId });
  cut = await relay(URL_);
  direct = new Northflank({ token: TOKEN, projectId, baseUrl: URL_ });
  sandboxId = (await Sandbox.create(direct)).id;
});

after(async () => {
  if (sandboxId) await Sandbox.forService(direct, sandboxId).destroy();
  await mf?.dispose();
  cut?.close();
  rmSync(scratch, { recursive: true, force: true });
});

test("a Worker spawns; later invocations list it and attach live, from 0 and from a byte offset, then after its end", async () => {
  const script = "for i in $(seq 1 30); do echo line $i; sleep 0.05; done; echo bye >&2; exit 5";
  const { id } = await call("/spawn", { script });
  assert.match(id, /^[a-z0-9-]+$/);

  // Two invocations at once, while it runs: one replays from 0 and goes on live, the other
  // starts at byte 63, after "line 1\n" … "line 9\n" (7 bytes each).
  const offset = lines(1, 9).length;
  assert.equal(offset, 63);
  const [whole, suffix] = await Promise.all([call("/attach", { id, from: "0" }), call("/attach", { id, from: String(offset) })]);
  for (const seen of [whole, suffix]) {
    assert.deepEqual(
      { command: seen.listed.command, running: seen.listed.running },
      { command: script, running: true },
      "listed while it still ran, so the attach went on live",
    );
  }
  assert.deepEqual({ stdout: whole.stdout, stderr: whole.stderr, exitCode: whole.exitCode }, { stdout: lines(1, 30), stderr: "bye\n", exitCode: 5 });
  // The offset counts per stream: stderr's 4 bytes are all before it.
  assert.deepEqual({ stdout: suffix.stdout, stderr: suffix.stderr, exitCode: suffix.exitCode }, { stdout: lines(10, 30), stderr: "", exitCode: 5 });

  // After its end: the whole replay, an offset's suffix, and the real exit code.
  const [ended, endedSuffix] = await Promise.all([call("/attach", { id }), call("/attach", { id, from: String(offset) })]);
  assert.deepEqual(ended.listed.running, false);
  assert.equal(ended.listed.exitCode, 5);
  assert.deepEqual({ stdout: ended.stdout, stderr: ended.stderr, exitCode: ended.exitCode }, { stdout: lines(1, 30), stderr: "bye\n", exitCode: 5 });
  assert.deepEqual({ stdout: endedSuffix.stdout, exitCode: endedSuffix.exitCode }, { stdout: lines(10, 30), exitCode: 5 });
});

test("a Worker's handle resumes by itself inside workerd: a cut, then an outage its reconnects wait out", async () => {
  const id = `cut-${Math.random().toString(36).slice(2, 10)}`;
  const script = "for i in $(seq 1 60); do echo line $i; sleep 0.05; done; echo bye >&2; exit 7";
  const running = call("/run", { id, script, base: cut.url });
  running.catch(() => {}); // awaited below; a failure meanwhile is reported there
  // Straight to the host, not through the relay: cut once the process runs, then again.
  for (let i = 0; i < 400 && !(await listedBy(direct, id)); i++) await sleep(25);
  assert.equal((await listedBy(direct, id))?.running, true, "the Worker started the process");
  await sleep(600);
  assert.ok(cut.cut() > 0, "the first cut found the Worker's open sockets");
  await sleep(600);
  // Down for 700 ms: the reconnects (at once, then 100 ms doubling) are refused, and workerd's
  // timers bring the next one.
  assert.ok(cut.outage(700) > 0, "the outage cut the resumed socket");
  await sleep(700);
  assert.ok(cut.refused() >= 2, `${cut.refused()} reconnects refused: it tried again after waiting`);
  assert.equal((await listedBy(direct, id)).running, true, "both cuts came while it ran");
  const seen = await running;
  assert.deepEqual(seen, { stdout: lines(1, 60), stderr: "bye\n", exitCode: 7 });
});
