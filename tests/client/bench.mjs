// Client benchmarks through the package in Node, against the local host; each beside a
// baseline measured in the same run:
//   cold start   Sandbox.create → first exec output byte   vs  a bare namespaced spawn (unshare)
//   exec         exec(["true"]) in a warm sandbox          vs  a raw WebSocket echo round trip, and that
//                                                              plus the command run alone (no sandbox)
//   throughput   200 MB of stdout through exec (two producers) vs  200 MB over a raw WebSocket
//   readFile     a 256 MiB random file                     vs  the same exec stream, plain JS + Buffer base64
// Run by scripts/bench with FLANKBOX_TEST_URL/TOKEN/HELPER set.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, URL_, TOKEN, HELPER, project } from "./env.mjs";

const { Northflank, Sandbox } = await import(`${ROOT}/pkg/node.js`);
const runs = Number(process.env.BENCH_RUNS ?? 1);
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.round((xs.length - 1) * p)];
const row = (name, xs, base, unit = "ms") => {
  const [p50, p99, b50, b99] = [pct(xs, 0.5), pct(xs, 0.99), pct(base, 0.5), pct(base, 0.99)];
  console.log(`${name.padEnd(40)} p50 ${p50.toFixed(2).padStart(8)} ${unit}  p99 ${p99.toFixed(2).padStart(8)} ${unit}   baseline p50 ${b50.toFixed(2).padStart(7)} p99 ${b99.toFixed(2).padStart(7)}   ratio ${(p50 / b50).toFixed(1)}x`);
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const nf = new Northflank({ token: TOKEN, projectId: project("bench"), baseUrl: URL_ });

function bareSpawn() {
  const t = performance.now();
  const r = spawnSync("unshare", ["--user", "--pid", "--fork", "--mount", "--net", "--ipc", "--uts", "/bin/echo", "x"]);
  if (r.status !== 0) throw new Error(`unshare failed: ${r.stderr}`);
  return performance.now() - t;
}

// What running a command costs with no sandbox and no network: fork, exec and wait of
// /usr/bin/true in a shell loop on this machine, per run (ms). An exec round trip cannot take
// less than a socket round trip plus this.
function commandAlone(n = 200) {
  const loop = `s=$(date +%s%N); for i in $(seq ${n}); do /usr/bin/true; done; echo $(( $(date +%s%N) - s ))`;
  const r = spawnSync("bash", ["-c", loop]);
  if (r.status !== 0) throw new Error(`the shell loop failed: ${r.stderr}`);
  return Number(r.stdout) / n / 1e6;
}

function wsRoundTrip(url) {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const ws = new WebSocket(url);
    ws.onopen = () => ws.send("ping");
    ws.onmessage = () => ws.close(1000);
    ws.onclose = () => resolve(performance.now() - t);
    ws.onerror = reject;
  });
}

function wsStream(url, bytes) {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    let got = 0;
    const ws = new WebSocket(`${url}?bytes=${bytes}`);
    ws.onmessage = (m) => (got += m.data.length);
    ws.onclose = () => (got === bytes ? resolve(performance.now() - t) : reject(new Error(`got ${got}`)));
    ws.onerror = reject;
  });
}

const wasm = gzipSync(readFileSync(join(ROOT, "pkg/flankbox_bg.wasm")), { level: 9 }).length;
const glue = gzipSync(readFileSync(join(ROOT, "pkg/flankbox.js")), { level: 9 }).length;
console.log(`flankbox client bench (Node ${process.version}); package: wasm ${wasm} + glue ${glue} = ${wasm + glue} bytes gzipped`);

// Cold start.
await (await Sandbox.create(nf)).destroy(); // warm-up
const cold = [];
const spawnBase = [];
for (let i = 0; i < 20 * runs; i++) {
  await sleep(150);
  spawnBase.push(bareSpawn());
  await sleep(150);
  const t = performance.now();
  const sb = await Sandbox.create(nf);
  let first;
  await sb.exec(["echo", "x"], { onStdout: () => (first ??= performance.now() - t) });
  cold.push(first);
  await sb.destroy();
}
row("cold start: create -> 1st exec byte", cold, spawnBase);

// Exec round trip.
const echo = HELPER.replace(/^http/, "ws") + "/echo";
const warm = await Sandbox.create(nf);
const rtt = [];
const wsBase = [];
const alone = [];
// Where an exec's round trip goes, without the client: the same exec by plain JS, timed at the
// socket's open, the host's `init` answer (the command started) and the completion. It runs in
// the same loop as the client's exec (before it and after it in turn) and the echo, so that the
// VM's drift cannot come between.
const phases = { open: [], started: [], completed: [] };
const rawExec = () =>
  new Promise((resolve, reject) => {
    const t = performance.now();
    const ws = new WebSocket(`${URL_.replace(/^http/, "ws")}/v1/command-exec/projects/${nf.projectId}/services/${warm.id}`);
    ws.onopen = () => {
      phases.open.push(performance.now() - t);
      ws.send(JSON.stringify({ type: "init", data: { auth: { type: "apiToken", apiToken: TOKEN }, context: { command: ["true"], shell: "none" } } }));
      ws.send(JSON.stringify({ type: "stdInEnd" }));
    };
    ws.onmessage = (m) => {
      const f = JSON.parse(m.data);
      if (f.type === "init") phases.started.push(performance.now() - t);
      if (f.type !== "completion") return;
      phases.completed.push(performance.now() - t);
      ws.close(1000);
      resolve();
    };
    ws.onerror = reject;
  });
for (let i = 0; i < 200 * runs; i++) {
  if (i % 20 === 0) alone.push(commandAlone());
  wsBase.push(await wsRoundTrip(echo));
  if (i % 2) await rawExec();
  const t = performance.now();
  await warm.exec(["true"]);
  rtt.push(performance.now() - t);
  if (!(i % 2)) await rawExec();
}
row("exec round trip: true", rtt, wsBase);
const floor = pct(wsBase, 0.5) + pct(alone, 0.5);
console.log(`  the command alone (fork, exec, wait of /usr/bin/true in a shell loop, no sandbox) p50 ${pct(alone, 0.5).toFixed(2)} ms; echo + command ${floor.toFixed(2)} ms, ${(floor / pct(wsBase, 0.5)).toFixed(2)}x the echo; the exec is ${(pct(rtt, 0.5) / floor).toFixed(2)}x that`);
console.log(`  the same exec by plain JS, p50 since the socket was asked for: open ${pct(phases.open, 0.5).toFixed(2)} ms, init answered ${pct(phases.started, 0.5).toFixed(2)} ms, completion ${pct(phases.completed, 0.5).toFixed(2)} ms`);
await warm.destroy();

// Throughput: 200 MB of stdout, on a 2-vCPU plan so the producer is not the limit. Two
// baselines: the same exec stream read by a plain JS WebSocket client (no wasm), and a raw
// WebSocket stream from a Node server (no sandbox, no host). Two producers: `head | tr`, two
// processes that copy and transform every byte, and one that writes a buffer from memory as the
// raw stream does, which leaves the two cores to the path being measured.
const big = await Sandbox.create(nf, { plan: "nf-compute-200" });
const bytes = 200_000_000;
const producers = {
  "head | tr": `head -c ${bytes} /dev/zero | tr '\\0' x`,
  "from memory": `python3 -c 'import os; b = b"x" * 65536; [os.write(1, b) for _ in range(${bytes} // 65536)]; os.write(1, b[:${bytes} % 65536])'`,
};
const mbps = (ms) => bytes / 1e6 / (ms / 1000);
const execUrl = `${URL_.replace(/^http/, "ws")}/v1/command-exec/projects/${nf.projectId}/services/${big.id}`;
const plainExec = (command) =>
  new Promise((resolve, reject) => {
    const t = performance.now();
    let got = 0;
    const ws = new WebSocket(execUrl);
    ws.onopen = () => ws.send(JSON.stringify({ type: "init", data: { auth: { type: "apiToken", apiToken: TOKEN }, context: { command: ["bash", "-c", command], shell: "none" } } }));
    ws.onmessage = (m) => {
      const f = JSON.parse(m.data);
      if (f.type === "stdOut") got += f.data.length;
      if (f.type === "completion") ws.close();
    };
    ws.onclose = () => (got === bytes ? resolve(performance.now() - t) : reject(new Error(`got ${got}`)));
    ws.onerror = reject;
  });
for (const [producer, command] of Object.entries(producers)) {
  const ours = [];
  const plain = [];
  const raw = [];
  for (let i = 0; i < 3; i++) {
    raw.push(mbps(await wsStream(HELPER.replace(/^http/, "ws") + "/stream", bytes)));
    plain.push(mbps(await plainExec(command)));
    let seen = 0;
    const t = performance.now();
    const r = await big.exec(command, { onStdout: (c) => (seen += c.length), outputLimitBytes: 1 << 20 });
    const ms = performance.now() - t;
    if (seen !== bytes || r.exitCode !== 0) throw new Error(`streamed ${seen} bytes, exit ${r.exitCode}: ${r.stderr}`);
    ours.push(mbps(ms));
  }
  const [o, p, b] = [pct(ours, 0.5), pct(plain, 0.5), pct(raw, 0.5)];
  console.log(`${`stdout throughput: 200 MB, ${producer}`.padEnd(40)} p50 ${o.toFixed(0).padStart(6)} MB/s   same stream, plain JS WebSocket p50 ${p.toFixed(0)} MB/s (${((o / p) * 100).toFixed(0)}%)   raw WebSocket, no host p50 ${b.toFixed(0)} MB/s (${((o / b) * 100).toFixed(0)}%)`);
}
await big.destroy();

// readFile of a 256 MiB random file (base64 frames of `cat`), on a 2-vCPU plan; the baseline is
// the same exec stream read by a plain JS WebSocket client decoding with Buffer's base64. Each
// result is checked against the sandbox's sha256.
const file = await Sandbox.create(nf, { plan: "nf-compute-200" });
const fileBytes = 256 << 20;
const made = await file.exec(`head -c ${fileBytes} /dev/urandom > /tmp/big && sha256sum /tmp/big`);
if (made.exitCode !== 0) throw new Error(`writing /tmp/big: ${made.stderr}`);
const fileSha = made.stdout.split(" ")[0];
const sha256 = (b) => createHash("sha256").update(b).digest("hex");
const fileMbps = (ms) => fileBytes / 1e6 / (ms / 1000);
const fileUrl = `${URL_.replace(/^http/, "ws")}/v1/command-exec/projects/${nf.projectId}/services/${file.id}`;
const plainRead = () =>
  new Promise((resolve, reject) => {
    const t = performance.now();
    const out = Buffer.allocUnsafe(fileBytes);
    let got = 0;
    const ws = new WebSocket(fileUrl);
    ws.onopen = () => ws.send(JSON.stringify({ type: "init", data: { auth: { type: "apiToken", apiToken: TOKEN }, context: { command: ["cat", "/tmp/big"], shell: "none", encoding: "base64" } } }));
    ws.onmessage = (m) => {
      const f = JSON.parse(m.data);
      if (f.type === "stdOut") got += out.write(f.data, got, "base64");
      if (f.type === "completion") ws.close();
    };
    ws.onclose = () => {
      const ms = performance.now() - t;
      got === fileBytes && sha256(out) === fileSha ? resolve(ms) : reject(new Error(`plain read ${got} bytes, not the file`));
    };
    ws.onerror = reject;
  });
const reads = [];
const plainReads = [];
for (let i = 0; i < 3; i++) {
  plainReads.push(fileMbps(await plainRead()));
  const t = performance.now();
  const data = await file.readFile("/tmp/big");
  reads.push(fileMbps(performance.now() - t));
  if (data.length !== fileBytes || sha256(data) !== fileSha) throw new Error(`readFile gave ${data.length} bytes, not the file`);
}
const [r, pr] = [pct(reads, 0.5), pct(plainReads, 0.5)];
console.log(`${"readFile: 256 MiB random file".padEnd(40)} p50 ${r.toFixed(0).padStart(6)} MB/s (${reads.map((x) => x.toFixed(0))})   same stream, plain JS WebSocket + Buffer base64 p50 ${pr.toFixed(0)} MB/s (${plainReads.map((x) => x.toFixed(0))}) (${((r / pr) * 100).toFixed(0)}%)`);
await file.destroy();
