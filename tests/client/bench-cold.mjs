// Cold starts of each package given, taken in turn against the test host (each round in the
// other order): Sandbox.create, then the first byte of an exec's output, after the same 300 ms
// pause. For an A/B of two builds of the client, which a VM's drift cannot bias.
// `scripts/test-env start release`, then `node tests/client/bench-cold.mjs pkg other-pkg` (RUNS=30).
import { resolve } from "node:path";
import { URL_, TOKEN, project } from "./env.mjs";
const pkgs = process.argv.slice(2);
if (pkgs.length === 0) throw new Error("usage: node tests/client/bench-cold.mjs pkg [other-pkg…]");
const libs = await Promise.all(pkgs.map((p) => import(`${resolve(p)}/node.js`)));
const runs = Number(process.env.RUNS ?? 30);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const coldStart = async (lib) => {
  const nf = new lib.Northflank({ token: TOKEN, projectId: project("bench-cold"), baseUrl: URL_ });
  const t = performance.now();
  const sandbox = await lib.Sandbox.create(nf);
  let first;
  await sandbox.exec(["echo", "x"], { onStdout: () => (first ??= performance.now() - t) });
  await sandbox.destroy();
  return first;
};
for (const lib of libs) await coldStart(lib); // warm-up
const times = libs.map(() => []);
for (let i = 0; i < runs; i++) {
  const order = libs.map((_, k) => k);
  if (i % 2) order.reverse();
  for (const k of order) {
    await sleep(300);
    times[k].push(await coldStart(libs[k]));
  }
}
const pct = (xs, p) => xs.sort((a, b) => a - b)[Math.round((xs.length - 1) * p)].toFixed(2);
pkgs.forEach((p, k) => console.log(`${p}: cold start p50 ${pct(times[k], 0.5)} ms, p90 ${pct(times[k], 0.9)} ms`));
