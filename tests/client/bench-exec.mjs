// Exec round trips (`exec(["true"])` in a warm sandbox on a 1-vCPU plan, so that the CPU quota
// never throttles the loop) through each package given, in turn with the same exec by plain JS
// (the frames by hand over the same `ws`), each round in the other order: an A/B of two builds
// of the client, and the client's share beside plain JS, which a VM's drift cannot bias.
// `scripts/test-env start release`, then `node tests/client/bench-exec.mjs pkg other-pkg` (RUNS=600).
import { resolve } from "node:path";
import { URL_, TOKEN, project } from "./env.mjs";
const pkgs = process.argv.slice(2);
if (pkgs.length === 0) throw new Error("usage: node tests/client/bench-exec.mjs pkg [other-pkg…]");
const libs = await Promise.all(pkgs.map((p) => import(`${resolve(p)}/node.js`)));
const runs = Number(process.env.RUNS ?? 600);
const projectId = project("bench-exec");
const sandboxes = await Promise.all(
  libs.map((lib) => lib.Sandbox.create(new lib.Northflank({ token: TOKEN, projectId, baseUrl: URL_ }), { plan: "nf-compute-100-1" })),
);
const plainExec = (id) =>
  new Promise((done, fail) => {
    const ws = new WebSocket(`${URL_.replace(/^http/, "ws")}/v1/command-exec/projects/${projectId}/services/${id}`);
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: "init", data: { auth: { type: "apiToken", apiToken: TOKEN }, context: { command: ["true"], shell: "none" } } }));
      ws.send(JSON.stringify({ type: "stdInEnd" }));
    };
    ws.onmessage = (m) => {
      if (JSON.parse(m.data).type !== "completion") return;
      ws.close(1000);
      done();
    };
    ws.onerror = fail;
  });
const rounds = [...sandboxes.map((sb) => () => sb.exec(["true"])), () => plainExec(sandboxes[0].id)];
const times = rounds.map(() => []);
for (let i = 0; i < runs; i++) {
  const order = rounds.map((_, k) => k);
  if (i % 2) order.reverse();
  for (const k of order) {
    const t = performance.now();
    await rounds[k]();
    times[k].push(performance.now() - t);
  }
}
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.round((xs.length - 1) * p)].toFixed(3);
[...pkgs, "plain JS"].forEach((name, k) => console.log(`${name}: exec round trip p50 ${pct(times[k], 0.5)} ms, p25 ${pct(times[k], 0.25)} ms`));
await Promise.all(sandboxes.map((sb) => sb.destroy()));
