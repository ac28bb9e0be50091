// The playground bench (issue 10, part 5): a Python `print("hi")` Run in headless Chromium on
// the served page, against a host serving www/dist (scripts/bench gives it the release build).
// Each figure is timed inside the page, from the Run button's pointerdown, and split at the
// playground's own User Timing marks (www/src/timing.js); each is printed beside a baseline
// measured in the same run, interleaved: the same work done through the client directly in a
// blank page of the same origin, without the playground.
//
//   first Run    a freshly loaded page (new browser context, nothing cached), Run pressed as
//                soon as it is clickable, until the output shows: on the served page, on the
//                served page once its warm-up is done, and on a plain page with the widget
//                baseline: import the client, read the config, Sandbox.create, spawn, first byte
//   second Run   the same page again, until the status says "exited"
//                baseline: spawn of `python3 -u -c` until exit (and writeFile + spawn, the
//                two round trips a Run used to make)
//
// BENCH_RUNS=N multiplies the 20 runs of each; BENCH_ONLY=first or second runs just that part.
// It prints figures; it never fails on speed.
import { startPlayground } from "./env.mjs";
import { TOKEN } from "../sdk-compat/host.mjs";

const RUNS = 20 * Number(process.env.BENCH_RUNS ?? 1);
const ONLY = process.env.BENCH_ONLY;
const PROGRAM = 'print("hi")\n';
/** A page of the host's origin that loads nothing (the host's 404 page). */
const BLANK = "/bench-blank-page";

const env = await startPlayground();
const { host, browser } = env;

const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.round((xs.length - 1) * p)];
const fmt = (xs) => (xs.length ? `${pct(xs, 0.5).toFixed(1).padStart(6)} / ${pct(xs, 0.99).toFixed(1).padStart(6)} ms` : "     – /      – ms");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Waits until the playground project has no sandbox left (a closed page's DELETE has landed),
 * so that no run shares the machine with the previous one's teardown, and the edge proxy's
 * per-client limit is never in the way. */
async function settle() {
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(25)) {
    const res = await fetch(`${host.base}/v1/projects/playground/services`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    if ((await res.json()).data.services.length === 0) return sleep(100);
  }
  throw new Error("sandboxes were left behind");
}

/** A fresh page (its own context, nothing cached) at `path`, as soon as its navigation is
 * answered (its scripts may still be loading). */
async function freshPage(path) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error(`page error: ${e.message}`));
  await page.goto(`${host.base}${path}`, { waitUntil: "commit" });
  return { page, close: () => page.close({ runBeforeUnload: true }).then(() => context.close()) };
}

/** A blank page of the host's origin, for the baselines: the client as a user's own page
 * would load it (the package's browser entry, /pkg/browser.js). */
async function blankPage() {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${host.base}${BLANK}`);
  return { page, close: () => page.close({ runBeforeUnload: true }).then(() => context.close()) };
}

/** Presses Run on `selector` and resolves to the Run's marks, in ms after the press, once its
 * status says "exited". */
async function pressRun(page, selector) {
  await page.evaluate(() => document.addEventListener("pointerdown", (e) => (window.__benchPress = e.timeStamp), { capture: true, once: true }));
  await page.click(`${selector} .fbx-run`);
  await page.waitForFunction(() => performance.getEntriesByName("flankbox:exited").length, null, { polling: 10, timeout: 60_000 });
  const { marks, output, exitCode } = await page.evaluate((selector) => {
    const press = window.__benchPress;
    const marks = {};
    for (const m of performance.getEntriesByType("mark")) if (m.name.startsWith("flankbox:")) marks[m.name.slice(9)] = m.startTime - press;
    const el = document.querySelector(selector);
    return { marks, output: el.output, exitCode: el.dataset.exitCode };
  }, selector);
  if (output !== "hi\n" || exitCode !== "0") throw new Error(`the Run printed ${JSON.stringify(output)}, exit code ${exitCode}`);
  return marks;
}

/** The client alone in a blank page: what it takes from nothing to `print("hi")`'s first byte
 * (import, config, create, spawn), as marks in ms after the start (`first-byte` is the total);
 * the sandbox is left in `window.__benchSandbox`. */
function clientFirstRun(page) {
  return page.evaluate(async (program) => {
    const started = performance.now();
    const marks = {};
    const mark = (step) => (marks[step] ??= performance.now() - started);
    const [{ Northflank, Sandbox }, config] = await Promise.all([
      import("/pkg/browser.js").finally(() => mark("client")),
      fetch("/playground/config.json", { cache: "no-store" })
        .then((r) => r.json())
        .finally(() => mark("config")),
    ]);
    const nf = new Northflank({ baseUrl: new URL(config.edgePath, location.href).href.replace(/\/$/, "") });
    const sandbox = await Sandbox.create(nf, {
      image: "ubuntu:22.04",
      plan: "nf-compute-100-1",
      ttlSeconds: 600,
      tags: ["playground"],
      onProgress: (p) => p.id && mark("created"),
    });
    mark("sandbox");
    window.__benchSandbox = sandbox;
    const proc = await sandbox.spawn(["python3", "-u", "-c", program], { encoding: "utf8" });
    mark("spawned");
    const reader = proc.stdout.getReader();
    let out = (await reader.read()).value;
    mark("first-byte");
    for (let r; !(r = await reader.read()).done; ) out += r.value;
    await proc.wait();
    if (out !== "hi\n") throw new Error(`the client printed ${JSON.stringify(out)}`);
    return marks;
  }, PROGRAM);
}

/** The client alone, in the blank page's sandbox: one Run's worth of work until the exit, in
 * ms; with `writeFirst`, the file written first and then run (two round trips). */
function clientRun(page, writeFirst) {
  return page.evaluate(
    async ({ program, writeFirst }) => {
      const sandbox = window.__benchSandbox;
      const started = performance.now();
      let command = ["python3", "-u", "-c", program];
      if (writeFirst) {
        await sandbox.writeFile("/workspace/main.py", program);
        command = ["python3", "-u", "/workspace/main.py"];
      }
      const proc = await sandbox.spawn(command, { encoding: "utf8" });
      let out = "";
      const reader = proc.stdout.getReader();
      for (let r; !(r = await reader.read()).done; ) out += r.value;
      const exit = await proc.wait();
      if (out !== "hi\n" || exit.exitCode !== 0) throw new Error(`the client printed ${JSON.stringify(out)}`);
      return performance.now() - started;
    },
    { program: PROGRAM, writeFirst },
  );
}

/** Prints one figure per line: the step's own time (since the step before it that this Run
 * marked) and the time so far (since the press, or the baseline's start), each p50 / p99. */
function breakdown(title, runs, steps) {
  console.log(`  ${title}`);
  console.log(`    ${"step".padEnd(44)} ${"its own time p50 / p99".padStart(22)}   ${"so far p50 / p99".padStart(25)}`);
  for (const [step, label] of steps) {
    const own = [];
    const since = [];
    for (const marks of runs) {
      if (marks[step] === undefined) continue;
      const before = steps.map(([s]) => marks[s]).filter((t) => t !== undefined && t <= marks[step] && t !== marks[step]);
      own.push(marks[step] - Math.max(0, ...before));
      since.push(marks[step]);
    }
    const note = own.length < runs.length ? ` (in ${own.length} of ${runs.length} runs)` : "";
    console.log(`    ${(label + note).padEnd(44)} ${fmt(own).padStart(22)}   ${fmt(since).padStart(25)}`);
  }
}

const FIRST_STEPS = [
  ["run", "press -> Run's handler"],
  ["client", "client and wasm loaded, config read"],
  ["sandbox", "sandbox created (or its warm-up awaited)"],
  ["written", "file written (separately)"],
  ["spawned", "spawned (file written in the same exec)"],
  ["first-byte", "first byte of output"],
  ["output-shown", "output drawn"],
  ["exited", '"exited" shown'],
];
const CLIENT_STEPS = [
  ["config", "config read"],
  ["client", "client and wasm loaded (/pkg/browser.js)"],
  ["created", "create answered (POST, through /edge)"],
  ["sandbox", "sandbox ready (scale, then polls)"],
  ["spawned", "spawned"],
  ["first-byte", "first byte of output"],
];
const SECOND_STEPS = [...FIRST_STEPS.slice(0, 7), ["exit", "exit code in"], ["exited", '"exited" shown']];

const b64url = (text) => Buffer.from(text).toString("base64url");
const FIRST_RUNS = [
  ["the served page, Run pressed once clickable", `/#lang=python&code=${b64url(PROGRAM)}`, "flankbox-playground", "interactive"],
  ["the served page, Run pressed after its warm-up", `/#lang=python&code=${b64url(PROGRAM)}`, "flankbox-playground", "ready"],
  ["a plain page with the widget (no warm-up)", "/widget-demo.html", "#first", "interactive"],
];

/** First Runs on freshly loaded pages, each kind in turn and the baseline, interleaved. */
async function firstRuns() {
  const first = FIRST_RUNS.map(() => []);
  const clientFirst = [];
  for (let i = 0; i < RUNS; i++) {
    for (const [k, [, path, selector, when]] of FIRST_RUNS.entries()) {
      const { page, close } = await freshPage(path);
      await page.waitForFunction(
        ([selector, when]) => {
          const el = document.querySelector(selector);
          const run = el?.querySelector(".fbx-run");
          if (!run || run.disabled) return false;
          return when === "ready" ? el.dataset.status === "ready" : performance.getEntriesByName("flankbox:interactive").length > 0;
        },
        [selector, when],
        { polling: "raf", timeout: 60_000 },
      );
      if (selector !== "flankbox-playground") await page.evaluate(([s, code]) => (document.querySelector(s).code = code), [selector, PROGRAM]);
      first[k].push(await pressRun(page, selector));
      await close();
      await settle();
    }
    const { page, close } = await blankPage();
    clientFirst.push(await clientFirstRun(page));
    await page.evaluate(() => window.__benchSandbox.destroy());
    await close();
    await settle();
  }
  console.log(`\nA freshly loaded page's first Run, until the output shows (goal p50 <= 250 ms):`);
  for (const [k, [what]] of FIRST_RUNS.entries()) console.log(`  ${what.padEnd(50)} ${fmt(first[k].map((m) => m["output-shown"]))}`);
  console.log(`  ${"baseline: the client alone in a blank page".padEnd(50)} ${fmt(clientFirst.map((m) => m["first-byte"]))}   (import, config, create, spawn, first byte)`);
  for (const [k, [what]] of FIRST_RUNS.entries()) breakdown(what, first[k], FIRST_STEPS);
  breakdown("baseline: the client alone in a blank page", clientFirst, CLIENT_STEPS);
}

/** Second Runs: the served page, warmed by one Run, beside the client in a blank page. */
async function secondRuns() {
  const played = await freshPage(`/#lang=python&code=${b64url(PROGRAM)}`);
  await pressRun(played.page, "flankbox-playground");
  const blank = await blankPage();
  await clientFirstRun(blank.page);
  const second = [];
  const clientSpawn = [];
  const clientWriteSpawn = [];
  for (let i = 0; i < RUNS; i++) {
    second.push(await pressRun(played.page, "flankbox-playground"));
    clientSpawn.push(await clientRun(blank.page, false));
    clientWriteSpawn.push(await clientRun(blank.page, true));
  }
  console.log(`\nA second Run on the same page, until "exited" (goal p50 <= 60 ms):`);
  console.log(`  ${"the served page".padEnd(50)} ${fmt(second.map((m) => m.exited))}`);
  console.log(`  ${"baseline: the client alone, spawn until exit".padEnd(50)} ${fmt(clientSpawn)}`);
  console.log(`  ${"  and writeFile, then spawn until exit".padEnd(50)} ${fmt(clientWriteSpawn)}`);
  breakdown("the served page", second, SECOND_STEPS);
  await blank.page.evaluate(() => window.__benchSandbox.destroy());
  await blank.close();
  await played.close();
}

try {
  console.log(`flankbox playground bench: Python print("hi") in headless Chromium, ${RUNS} runs each; figures p50 / p99`);
  await settle();
  // Warm the host (its pool, Python's files in the page cache) and Chromium once, unmeasured.
  {
    const { page, close } = await blankPage();
    await clientFirstRun(page);
    await page.evaluate(() => window.__benchSandbox.destroy());
    await close();
    await settle();
  }

  if (ONLY !== "second") await firstRuns();
  if (ONLY !== "first") await secondRuns();
} finally {
  await env.stop();
}
