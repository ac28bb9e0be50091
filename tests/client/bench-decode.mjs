// The client's frame reading alone, without a host: a Node exec server sends 200 MB of stdOut
// text frames (32 KiB each, CHUNK=bytes for another size) to the exec of each package given,
// interleaved, beside a plain JS client reading the same. The text is all `x`, or with LINES=1
// 80-byte lines, whose newlines the frames escape as a host's would.
// `node tests/client/bench-decode.mjs pkg [other-pkg…]` (RUNS=5).
import { serveFrames, sandboxesOf, median as pct, cpuMs } from "./fake-exec.mjs";
const bytes = 200_000_000, chunk = Number(process.env.CHUNK ?? 32 * 1024);
const text = process.env.LINES ? ("x".repeat(79) + "\n").repeat(Math.ceil(chunk / 80)).slice(0, chunk) : "x".repeat(chunk);
const payload = JSON.stringify({ type: "stdOut", data: text });
const wss = await serveFrames(Array(Math.ceil(bytes / chunk)).fill(payload));
const base = `http://127.0.0.1:${wss.address().port}`;
const total = Math.ceil(bytes / chunk) * chunk;
const mbps = (ms) => total / 1e6 / (ms / 1000);
const pkgs = process.argv.slice(2);
const sbs = await sandboxesOf(pkgs, base);
const plain = () => new Promise((resolve) => {
  const t = performance.now(); let got = 0; const ws = new WebSocket(`${base.replace("http", "ws")}/x`);
  ws.onopen = () => ws.send("{}");
  ws.onmessage = (m) => { const f = JSON.parse(m.data); if (f.type === "stdOut") got += f.data.length; };
  ws.onclose = () => resolve(performance.now() - t);
});
// CPU time counts this process: the server and the client alike.
const res = pkgs.map(() => []), base_ = [], cpu = pkgs.map(() => []), cpuBase = [];
for (let i = 0; i < Number(process.env.RUNS ?? 5); i++) {
  let c = cpuMs();
  base_.push(mbps(await plain()));
  cpuBase.push(mbps(cpuMs() - c));
  for (let k = 0; k < sbs.length; k++) {
    let seen = 0; const t = performance.now(); const c = cpuMs();
    const r = await sbs[k].exec(["x"], { onStdout: (c) => (seen += c.length), outputLimitBytes: 1 << 20 });
    if (seen !== total || r.exitCode !== 0) throw new Error(`seen ${seen}`);
    res[k].push(mbps(performance.now() - t));
    cpu[k].push(mbps(cpuMs() - c));
  }
}
console.log(`plain JS: p50 ${pct(base_).toFixed(0)} MB/s (${base_.map((x) => x.toFixed(0))})`);
pkgs.forEach((p, k) => console.log(`${p}: p50 ${pct(res[k]).toFixed(0)} MB/s (${res[k].map((x) => x.toFixed(0))}), ${((pct(res[k]) / pct(base_)) * 100).toFixed(0)}% of plain JS`));
console.log(`per CPU second: plain JS ${pct(cpuBase).toFixed(0)} MB; ${pkgs.map((p, k) => `${p.split("/").pop()} ${pct(cpu[k]).toFixed(0)} MB`).join("; ")}`);
wss.close(); process.exit(0);
