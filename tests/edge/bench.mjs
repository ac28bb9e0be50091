// Edge proxy overhead: a REST call (GET the sandbox) and an exec round trip (`true`), through
// the example Worker in workerd (Miniflare, without wrangler's dev proxy) and through the host's
// native /edge mount, each against the same call made directly to the host, interleaved in the
// same run. Run by scripts/bench.
import { writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startHost, TOKEN } from "../sdk-compat/host.mjs";
import { startWorkerDirect, ROOT } from "./worker.mjs";

const { Northflank, Sandbox } = await import(`${ROOT}/pkg/node.js`);
const runs = Number(process.env.BENCH_RUNS ?? 1);
const n = 200 * runs;
const SECRET = "edge-bench-secret-0123456789abcdef0123456789";
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.round((xs.length - 1) * p)];

const policyFile = join(mkdtempSync(join(tmpdir(), "flankbox-edge-bench-")), "policy.json");
writeFileSync(policyFile, JSON.stringify({ maxSandboxesPerClient: 4 }));
const host = await startHost({ args: ["--edge-secret", SECRET, "--edge-policy", policyFile] });
// The floor: a Worker that only forwards (no capability, no policy, no wasm), in the same
// workerd, so that what the edge logic itself adds can be told from what the extra hop costs.
const { Miniflare } = await import("miniflare");
const bare = new Miniflare({
  modules: true,
  compatibilityDate: "2026-04-01",
  host: "127.0.0.1",
  port: 0,
  bindings: { UP: host.base },
  script: `export default { async fetch(req, env) {
    const u = new URL(req.url);
    if (req.headers.get("Upgrade") === "websocket") {
      const up = (await fetch(env.UP + u.pathname, { headers: { Upgrade: "websocket" } })).webSocket;
      up.accept();
      const [client, server] = Object.values(new WebSocketPair());
      server.accept();
      server.addEventListener("message", (e) => up.send(e.data));
      up.addEventListener("message", (e) => server.send(e.data));
      up.addEventListener("close", (e) => server.close(e.code === 1005 ? 1000 : e.code, e.reason));
      server.addEventListener("close", () => { try { up.close(1000); } catch {} });
      return new Response(null, { status: 101, webSocket: client });
    }
    return fetch(env.UP + u.pathname + u.search, { method: req.method, headers: req.headers, body: req.body });
  } };`,
});
const bareUrl = (await bare.ready).toString().replace(/\/$/, "");
const worker = await startWorkerDirect({ NF_TOKEN: TOKEN, NF_UPSTREAM: host.base, NF_PROJECT: "playground", EDGE_SECRET: SECRET, EDGE_POLICY: "{}" });
try {
  // One sandbox, made through the proxy; the capability drives it through either proxy.
  const sandbox = await Sandbox.create(new Northflank({ baseUrl: worker.url }));
  const direct = await Sandbox.connect(new Northflank({ token: TOKEN, projectId: "playground", baseUrl: host.base }), sandbox.id);
  const viaWorker = await Sandbox.connect(new Northflank({ baseUrl: worker.url }), sandbox.id, { capability: sandbox.capability });
  const viaNative = await Sandbox.connect(new Northflank({ baseUrl: `${host.base}/edge` }), sandbox.id, { capability: sandbox.capability });
  const viaBare = await Sandbox.connect(new Northflank({ token: TOKEN, projectId: "playground", baseUrl: bareUrl }), sandbox.id);
  const paths = [
    ["direct to the host", direct],
    ["a bare forwarding Worker", viaBare],
    ["through the edge Worker (workerd)", viaWorker],
    ["through the native /edge mount", viaNative],
  ];
  const time = async (f) => {
    const t = performance.now();
    await f();
    return performance.now() - t;
  };
  for (const [what, op] of [
    ["REST: status()", (s) => s.status()],
    ["exec round trip: exec([\"true\"])", (s) => s.exec(["true"])],
  ]) {
    const samples = paths.map(() => []);
    for (let i = 0; i < 20; i++) for (const [, s] of paths) await op(s); // warm-up
    for (let i = 0; i < n; i++) {
      for (const [j, [, s]] of paths.entries()) samples[j].push(await time(() => op(s)));
    }
    const base = pct(samples[0], 0.5);
    const floor = pct(samples[1], 0.5);
    for (const [j, [name]] of paths.entries()) {
      const [p50, p99] = [pct(samples[j], 0.5), pct(samples[j], 0.99)];
      let added = j === 0 ? "" : `   added p50 ${(p50 - base).toFixed(2)} ms`;
      if (j === 2) added += ` (${(p50 - floor).toFixed(2)} ms over the bare Worker)`;
      console.log(`${what.padEnd(34)} ${name.padEnd(34)} p50 ${p50.toFixed(2).padStart(6)} ms  p99 ${p99.toFixed(2).padStart(6)} ms${added}`);
    }
  }
  await sandbox.destroy();
} finally {
  await bare.dispose();
  await worker.stop();
  await host.stop();
}
