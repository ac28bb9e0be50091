// Cold starts of each package given, taken in turn against the test host (each round in the
// other order): Sandbox.create, then the first byte of an exec's output, after the same 300 ms
// pause. For an A/B of two builds of the client, which a VM's drift cannot bias. DETAIL=1 adds
// where the time goes: each request of the create (timed around `fetch`), and the exec.
// `scripts/test-env start release`, then `node tests/client/bench-cold.mjs pkg other-pkg` (RUNS=30).
import { resolve } from "node:path";
import { URL_, TOKEN, project } from "./env.mjs";
const pkgs = process.argv.slice(2);
if (pkgs.length === 0) throw new Error("usage: node tests/client/bench-cold.mjs pkg [other-pkg…]");
const libs = await Promise.all(pkgs.map((p) => import(`${resolve(p)}/node.js`)));
const runs = Number(process.env.RUNS ?? 30);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let requests = [];
if (process.env.DETAIL) {
  const fetch = globalThis.fetch;
  globalThis.fetch = async (input, init) => {
    const t = performance.now();
    const answer = await fetch(input, init);
    const method = init?.method ?? input.method ?? "GET";
    const path = new URL(typeof input === "string" ? input : input.url).pathname;
    const step = method === "GET" ? "poll" : path.endsWith("/scale") ? "scale" : method === "POST" ? "create" : method.toLowerCase();
    requests.push([step, performance.now() - t]);
    return answer;
  };
}
const coldStart = async (lib, detail) => {
  const nf = new lib.Northflank({ token: TOKEN, projectId: project("bench-cold"), baseUrl: URL_ });
  requests = [];
  const t = performance.now();
  const sandbox = await lib.Sandbox.create(nf);
  const created = performance.now() - t;
  let first;
  await sandbox.exec(["echo", "x"], { onStdout: () => (first ??= performance.now() - t) });
  for (const [step, ms] of requests) (detail[step] ??= []).push(ms);
  (detail.polls ??= []).push(requests.filter(([step]) => step === "poll").length);
  (detail["exec to first byte"] ??= []).push(first - created);
  await sandbox.destroy();
  return first;
};
for (const lib of libs) await coldStart(lib, {}); // warm-up
const times = libs.map(() => []);
const details = libs.map(() => ({}));
for (let i = 0; i < runs; i++) {
  const order = libs.map((_, k) => k);
  if (i % 2) order.reverse();
  for (const k of order) {
    await sleep(300);
    times[k].push(await coldStart(libs[k], details[k]));
  }
}
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.round((xs.length - 1) * p)];
pkgs.forEach((p, k) => {
  console.log(`${p}: cold start p50 ${pct(times[k], 0.5).toFixed(2)} ms, p90 ${pct(times[k], 0.9).toFixed(2)} ms`);
  if (process.env.DETAIL) {
    const parts = Object.entries(details[k]).map(([step, xs]) => `${step} ${step === "polls" ? pct(xs, 0.5) : pct(xs, 0.5).toFixed(2) + " ms"}`);
    console.log(`  p50 of each: ${parts.join(", ")}`);
  }
});
