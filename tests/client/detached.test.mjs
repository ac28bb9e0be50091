// Detached processes in Node against the local host, through the exec channel alone: a relay
// between the client and the host cuts every socket (as a network drop does) while the
// process runs, and the client resumes with no gap and no repeat; a second client lists the
// process, attaches from 0 and kills it; an attach after the end, one inside a character, one
// from output no longer kept; stdin after a resume; a terminal refused. And in Chromium: a
// page's detached process through two cuts, and a second client's replay.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { relay } from "./relay.mjs";
import { ROOT, URL_, TOKEN, project, withBlankPage } from "./env.mjs";

const pkg = await import(`${ROOT}/pkg/node.js`);
const { Northflank, Sandbox } = pkg;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const lines = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => `line ${from + i}\n`).join("");

/** Reads a stream of strings to its end, keeping what came in `got.text`. */
function collect(stream) {
  const got = { text: "" };
  got.done = (async () => {
    for await (const chunk of stream) got.text += chunk;
    return got.text;
  })();
  return got;
}

async function until(what, check) {
  for (let i = 0; i < 400; i++) {
    if (check()) return;
    await sleep(25);
  }
  throw new Error(`timed out waiting for ${what}`);
}

let projectId, cut, direct, viaRelay, sandboxId;

before(async () => {
  projectId = project("detached");
  cut = await relay(URL_);
  direct = new Northflank({ token: TOKEN, projectId, baseUrl: URL_ });
  viaRelay = new Northflank({ token: TOKEN, projectId, baseUrl: cut.url });
  sandboxId = (await Sandbox.create(direct)).id;
});

after(async () => {
  await Sandbox.forService(direct, sandboxId).destroy();
  cut.close();
});

test("cut twice mid-run: every line once, in order, and the exit code; then a second client replays it all", async () => {
  const sandbox = Sandbox.forService(viaRelay, sandboxId);
  const script = "for i in $(seq 1 40); do echo line $i; sleep 0.05; done; echo bye >&2; exit 7";
  const proc = await sandbox.spawn(script, { detached: true, encoding: "utf8" });
  assert.match(proc.id, /^[a-z0-9-]+$/);
  const out = collect(proc.stdout);
  const err = collect(proc.stderr);
  await until("line 10", () => out.text.includes("line 10\n"));
  assert.ok(cut.cut() > 0, "the first cut found open sockets");
  await until("line 25", () => out.text.includes("line 25\n"));
  assert.ok(cut.cut() > 0, "the second cut found open sockets");
  const exit = await proc.wait();
  assert.equal(exit.exitCode, 7);
  assert.equal(await out.done, lines(1, 40));
  assert.equal(await err.done, "bye\n");

  // Another client, straight to the host: it lists the process and replays everything.
  const other = Sandbox.forService(direct, sandboxId);
  const listed = (await other.processes()).find((p) => p.id === proc.id);
  assert.deepEqual(
    { command: listed.command, running: listed.running, exitCode: listed.exitCode },
    { command: script, running: false, exitCode: 7 },
  );
  assert.ok(Math.abs(listed.startedAt - Date.now()) < 120_000, `startedAt ${listed.startedAt}`);
  const again = await other.attach(proc.id, { encoding: "utf8" });
  const replay = collect(again.stdout);
  assert.equal((await again.wait()).exitCode, 7, "the real exit code of a process that ended before the attach");
  assert.equal(await replay.done, lines(1, 40));
});

test("a second client lists a running process, attaches from 0, and kills it", async () => {
  const first = Sandbox.forService(direct, sandboxId);
  const proc = await first.spawn(["sh", "-c", "echo started; exec sleep 600"], { detached: true, encoding: "utf8" });
  const firstOut = collect(proc.stdout);
  const second = Sandbox.forService(new Northflank({ token: TOKEN, projectId, baseUrl: URL_ }), sandboxId);
  const listed = (await second.processes()).find((p) => p.id === proc.id);
  assert.deepEqual({ command: listed.command, running: listed.running }, { command: ["sh", "-c", "echo started; exec sleep 600"], running: true });
  assert.equal("exitCode" in listed, false);
  const attached = await second.attach(proc.id, { from: 0, encoding: "utf8" });
  const secondOut = collect(attached.stdout);
  await until("the replay", () => secondOut.text === "started\n");
  await attached.kill();
  const [a, b] = await Promise.all([proc.wait(), attached.wait()]);
  assert.equal(a.exitCode, 137, "SIGKILL, as the first client sees it");
  assert.equal(b.exitCode, 137);
  assert.equal(await firstOut.done, "started\n");
});

test("stdin written after a resume reaches the process, and closeStdin ends its input", async () => {
  const sandbox = Sandbox.forService(viaRelay, sandboxId);
  const proc = await sandbox.spawn('while read -r l; do echo "got $l"; done; echo eof', { detached: true, encoding: "utf8" });
  const out = collect(proc.stdout);
  await proc.write("one\n");
  await until("got one", () => out.text.includes("got one\n"));
  assert.ok(cut.cut() > 0);
  await sleep(300);
  await proc.write("two\n");
  await until("got two", () => out.text.includes("got two\n"));
  proc.closeStdin();
  assert.equal((await proc.wait()).exitCode, 0);
  assert.equal(await out.done, "got one\ngot two\neof\n");
});

test("a network that stays gone past the resume window rejects wait() with STREAM_LOST; the process runs on", async () => {
  const gone = await relay(URL_);
  try {
    const sandbox = Sandbox.forService(new Northflank({ token: TOKEN, projectId, baseUrl: gone.url }), sandboxId);
    const script = "for i in $(seq 1 30); do echo line $i; sleep 0.05; done; exit 4";
    const proc = await sandbox.spawn(script, { detached: true, encoding: "utf8", resumeWithinMs: 1500 });
    const out = collect(proc.stdout);
    await until("line 3", () => out.text.includes("line 3\n"));
    const started = performance.now();
    assert.ok(gone.outage(60_000) > 0);
    await assert.rejects(proc.wait(), (e) => e.code === "STREAM_LOST" && /resume window of 1500 ms/.test(e.message));
    const waited = performance.now() - started;
    assert.ok(waited >= 1400 && waited < 10_000, `gave up after ${waited} ms`);
    // What it delivered was whole lines from the start; the process itself went on.
    assert.match(await out.done, /^(line \d+\n)+$/);
    const elsewhere = Sandbox.forService(direct, sandboxId);
    const again = await elsewhere.attach(proc.id, { encoding: "utf8" });
    const all = collect(again.stdout);
    assert.equal((await again.wait()).exitCode, 4);
    assert.equal(await all.done, Array.from({ length: 30 }, (_, i) => `line ${i + 1}\n`).join(""));
  } finally {
    gone.close();
  }
});

test("offsets: inside a character with utf8, per stream, and past what is kept", async () => {
  const sandbox = Sandbox.forService(direct, sandboxId);
  const proc = await sandbox.spawn("printf 'é-done'; printf 'ab' >&2", { detached: true });
  await proc.wait();
  const mid = await sandbox.attach(proc.id, { from: { stdout: 1, stderr: 1 }, encoding: "utf8" });
  const [out, err] = [collect(mid.stdout), collect(mid.stderr)];
  assert.equal((await mid.wait()).exitCode, 0);
  assert.deepEqual([await out.done, await err.done], ["-done", "b"]);
  const bytes = await sandbox.attach(proc.id, { from: 1 });
  const chunks = [];
  for await (const c of bytes.stdout) chunks.push(...c);
  assert.deepEqual(chunks, [...new TextEncoder().encode("é-done")].slice(1));

  // 3 MiB through a window of 1 MiB (kept in whole segments: 2 MiB): byte 1 is gone.
  const big = await sandbox.spawn("head -c 3145728 /dev/zero", { detached: true, keepBytes: 1 << 20 });
  await big.wait().catch(() => {});
  const late = await sandbox.attach(big.id, { from: 1 });
  await assert.rejects(late.wait(), (e) => e.code === "STREAM_LOST" && /no longer kept/.test(e.message));

  await assert.rejects(sandbox.attach("no-such-process"), (e) => e.code === "NOT_FOUND");
  await assert.rejects(sandbox.spawn("true", { detached: true, tty: true }), (e) => e.code === "INVALID_ARGUMENT" && /terminal/.test(e.message));
});

test("Chromium: a page's detached process survives two cuts, and a second client replays it", async () => {
  const result = await withBlankPage(async (page) => {
    const running = page.evaluate(
      async ({ relayUrl, baseUrl, token, projectId, sandboxId }) => {
        const { Northflank, Sandbox } = await import("/pkg/browser.js");
        const sandbox = Sandbox.forService(new Northflank({ token, projectId, baseUrl: relayUrl }), sandboxId);
        const proc = await sandbox.spawn("for i in $(seq 1 30); do echo line $i; sleep 0.05; done; exit 4", { detached: true, encoding: "utf8" });
        window.progress = "";
        const reader = proc.stdout.getReader();
        for (let r = await reader.read(); !r.done; r = await reader.read()) window.progress += r.value;
        const exit = await proc.wait();
        const other = Sandbox.forService(new Northflank({ token, projectId, baseUrl }), sandboxId);
        const again = await other.attach(proc.id, { encoding: "utf8" });
        let replay = "";
        const r2 = again.stdout.getReader();
        for (let r = await r2.read(); !r.done; r = await r2.read()) replay += r.value;
        return { text: window.progress, exitCode: exit.exitCode, replay, again: (await again.wait()).exitCode };
      },
      { relayUrl: cut.url, baseUrl: URL_, token: TOKEN, projectId, sandboxId },
    );
    const seen = async (line) => {
      for (let i = 0; i < 400 && !(await page.evaluate(() => window.progress ?? "")).includes(line); i++) await sleep(25);
    };
    await seen("line 8\n");
    assert.ok(cut.cut() > 0, "the first cut found open sockets");
    await seen("line 18\n");
    assert.ok(cut.cut() > 0, "the second cut found open sockets");
    return running;
  });
  assert.deepEqual(result, { text: lines(1, 30), exitCode: 4, replay: lines(1, 30), again: 4 });
});
