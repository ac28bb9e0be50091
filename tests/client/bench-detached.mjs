// Detached-process benchmarks through the package in Node, against the local host; each beside
// a baseline measured in the same run:
//   resume      a cut of every socket → the next output line of a detached process
//               vs  a fresh attach (list, attach) → its first line (what a resume is made of)
//   spawn       spawn(["true"], { detached: true }) → wait()   vs  spawn(["true"]) → wait()
// Run with FLANKBOX_TEST_URL/TOKEN set (scripts/test-env start); BENCH_RUNS sets the samples.
import { relay } from "./relay.mjs";
import { ROOT, URL_, TOKEN, project } from "./env.mjs";

const { Northflank, Sandbox } = await import(`${ROOT}/pkg/node.js`);
const runs = Number(process.env.BENCH_RUNS ?? 30);
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.round((xs.length - 1) * p)];
const row = (name, xs, base) => {
  const [p50, p99, b50, b99] = [pct(xs, 0.5), pct(xs, 0.99), pct(base, 0.5), pct(base, 0.99)];
  console.log(`${name.padEnd(40)} p50 ${p50.toFixed(2).padStart(8)} ms  p99 ${p99.toFixed(2).padStart(8)} ms   baseline p50 ${b50.toFixed(2).padStart(7)} p99 ${b99.toFixed(2).padStart(7)}   ratio ${(p50 / b50).toFixed(1)}x`);
};

/** Resolves with the time of the next chunk of `reader` after now. */
const nextChunk = async (reader) => {
  const { value, done } = await reader.read();
  if (done) throw new Error("the stream ended");
  return [performance.now(), value];
};

const projectId = project("bench-detached");
const cutter = await relay(URL_);
const direct = new Northflank({ token: TOKEN, projectId, baseUrl: URL_ });
const viaRelay = new Northflank({ token: TOKEN, projectId, baseUrl: cutter.url });
// 2 vCPU: on the default plan's 0.2 vCPU a start's dozen short processes wait for the CPU
// quota's next period, and the figure would measure the plan, not the supervisor.
const created = await Sandbox.create(direct, { plan: "nf-compute-200" });
let small;
try {
  const sandbox = Sandbox.forService(viaRelay, created.id);
  // A line every 2 ms: the delay to the next line after a cut is the resume, within 2 ms.
  const ticker = await sandbox.spawn("while :; do echo tick; sleep 0.002; done", { detached: true, encoding: "utf8" });
  const reader = ticker.stdout.getReader();
  await nextChunk(reader);
  const resume = [];
  const fresh = [];
  for (let i = 0; i < runs; i++) {
    // Past STABLE_MS (1 s) of a held connection, so each cut is a first drop, not a flapping link.
    const until = performance.now() + 1100;
    while (performance.now() < until) await nextChunk(reader);
    const t = performance.now();
    cutter.cut();
    // Chunks already on their way before the cut are not the resume: wait past them.
    let [at] = await nextChunk(reader);
    while (at - t < 1) [at] = await nextChunk(reader);
    resume.push(at - t);
  }
  // The baseline: a fresh attach (list, then attach) to a process that printed a line.
  const done = await Sandbox.forService(direct, created.id).spawn("echo tick", { detached: true });
  await done.wait();
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const attached = await Sandbox.forService(direct, created.id).attach(done.id, { encoding: "utf8" });
    const [first] = await nextChunk(attached.stdout.getReader());
    fresh.push(first - t0);
    await attached.wait();
  }
  row("resume after a cut → next line", resume, fresh);
  await ticker.kill();
  await ticker.wait();

  const startCost = async (sandbox, name) => {
    const plain = [];
    const detached = [];
    for (let i = 0; i < runs; i++) {
      let t = performance.now();
      await (await sandbox.spawn(["true"])).wait();
      plain.push(performance.now() - t);
      t = performance.now();
      await (await sandbox.spawn(["true"], { detached: true })).wait();
      detached.push(performance.now() - t);
    }
    row(name, detached, plain);
  };
  await startCost(Sandbox.forService(direct, created.id), "detached spawn(true) → wait()");
  // The same on the default plan's 0.2 vCPU, where the start's processes wait for the quota.
  small = await Sandbox.create(direct);
  await startCost(small, "  … on the default plan (0.2 vCPU)");
} finally {
  await small?.destroy();
  await created.destroy();
  cutter.close();
}
