// readFile's client side alone, without a host: a Node exec server (a child process, so that its
// work is not counted) sends a 256 MiB random file as the host does (base64 stdOut frames of
// 64 KiB reads), to readFile of each package given, interleaved, beside a plain JS client
// decoding the same frames with Buffer's base64. Every result is checked byte for byte (sha256).
// `node tests/client/bench-readfile.mjs pkg [other-pkg…]` (RUNS=3).
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createInterface } from "node:readline";
import { serveFrames, sandboxesOf, median as pct, cpuMs } from "./fake-exec.mjs";
const bytes = 256 << 20, read = 64 << 10;
const sha = (b) => createHash("sha256").update(b).digest("hex");
if (process.argv[2] === "--serve") {
  const file = randomBytes(bytes);
  // Frames made once, so the server costs a send each.
  const frames = [];
  for (let at = 0; at < bytes; at += read) frames.push(JSON.stringify({ type: "stdOut", data: file.subarray(at, at + read).toString("base64") }));
  const wss = await serveFrames(frames);
  console.log(`${wss.address().port} ${sha(file)}`);
} else {
const server = spawn(process.execPath, [new URL(import.meta.url).pathname, "--serve"], { stdio: ["ignore", "pipe", "inherit"] });
const [port, want] = (await createInterface({ input: server.stdout })[Symbol.asyncIterator]().next()).value.split(" ");
const base = `http://127.0.0.1:${port}`;
const mbps = (ms) => bytes / 1e6 / (ms / 1000);
const pkgs = process.argv.slice(2);
const sbs = await sandboxesOf(pkgs, base);
const plain = () => new Promise((resolve, reject) => {
  const t = performance.now();
  const out = Buffer.allocUnsafe(bytes);
  let got = 0;
  const ws = new WebSocket(`${base.replace("http", "ws")}/x`);
  ws.onopen = () => ws.send("{}");
  ws.onmessage = (m) => {
    const f = JSON.parse(m.data);
    if (f.type === "stdOut") got += out.write(f.data, got, "base64");
  };
  ws.onclose = () => {
    const ms = performance.now() - t;
    got === bytes && sha(out) === want ? resolve(ms) : reject(new Error(`plain got ${got}`));
  };
});
const res = pkgs.map(() => []), plainRes = [], cpu = pkgs.map(() => []), plainCpu = [];
for (let i = 0; i < Number(process.env.RUNS ?? 3); i++) {
  const c = cpuMs();
  plainRes.push(mbps(await plain()));
  plainCpu.push(mbps(cpuMs() - c));
  for (let k = 0; k < sbs.length; k++) {
    const t = performance.now();
    const c = cpuMs();
    const data = await sbs[k].readFile("/big");
    res[k].push(mbps(performance.now() - t));
    cpu[k].push(mbps(cpuMs() - c));
    if (data.length !== bytes || sha(data) !== want) throw new Error(`${pkgs[k]}: ${data.length} bytes, not the file`);
  }
}
console.log(`plain JS (Buffer base64): p50 ${pct(plainRes).toFixed(0)} MB/s (${plainRes.map((x) => x.toFixed(0))})`);
pkgs.forEach((p, k) => console.log(`${p}: readFile p50 ${pct(res[k]).toFixed(0)} MB/s (${res[k].map((x) => x.toFixed(0))}), ${((pct(res[k]) / pct(plainRes)) * 100).toFixed(0)}% of plain JS`));
console.log(`per CPU second: plain JS ${pct(plainCpu).toFixed(0)} MB; ${pkgs.map((p, k) => `${p.split("/").pop()} ${pct(cpu[k]).toFixed(0)} MB`).join("; ")}`);
server.kill();
process.exit(0);
}
