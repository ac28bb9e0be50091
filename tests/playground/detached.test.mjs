// The playground runs programs as detached processes, in real headless Chromium against a real
// host: a reload of the page mid-run reattaches to the program (its whole output once, then
// live, with stdin and Stop), and a network drop of 5 s mid-run loses no line and repeats none.
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { TOKEN } from "../sdk-compat/host.mjs";
import { relay } from "../client/relay.mjs";
import { startPlayground, status } from "./env.mjs";

/** The host's edge proxy keeps a sandbox this long after its last hold closed
 * (HOLD_GRACE, crates/host/src/api/edge/hold.rs). */
const HOLD_GRACE_MS = 15_000;

let env;
let host;
let browser;
const pages = new Set();

before(async () => {
  env = await startPlayground();
  ({ host, browser } = env);
});

afterEach(async () => {
  for (const page of pages) await page.close({ runBeforeUnload: true }).catch(() => {});
  pages.clear();
});

after(() => env?.stop());

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const output = (page) => page.evaluate(() => window.playground.output);
const lines = (prefix, from, to) => Array.from({ length: to - from + 1 }, (_, i) => `${prefix} ${from + i}\n`).join("");

/** The sandboxes in the playground's project, as the host lists them. */
async function sandboxes() {
  const res = await fetch(`${host.base}/v1/projects/playground/services`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  return (await res.json()).data.services.map((s) => s.id);
}

/** Opens the playground page at `base` in a context of its own, runs `code` (Python) and
 * resolves once it runs. Every WebSocket the page opens is kept in `page.sockets`. */
async function runOn(base, code) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 700 } });
  const page = await context.newPage();
  pages.add(page);
  page.errors = [];
  page.on("pageerror", (e) => page.errors.push(e.message));
  page.sockets = [];
  page.on("websocket", (ws) => {
    const socket = { url: ws.url(), closed: false };
    ws.on("close", () => (socket.closed = true));
    page.sockets.push(socket);
  });
  await page.goto(`${base}/`);
  await status(page, ["ready"], 30_000);
  await page.evaluate((code) => (window.playground.code = code), code);
  await page.click(".fbx-run");
  await status(page, ["running"]);
  return page;
}

/** Waits until the page's output is `text` exactly (and says what it was if it never is). */
async function outputIs(page, text, timeout = 20_000) {
  try {
    await page.waitForFunction((t) => window.playground.output === t, text, { timeout, polling: 20 });
  } catch {
    assert.equal(await output(page), text);
  }
}

const saved = (page) => page.evaluate(() => Object.entries(sessionStorage).filter(([k]) => k.startsWith("flankbox-playground:")));

test("a reload mid-run reattaches: the whole output once, then stdin, and the program's exit", async () => {
  const program = [
    "import sys, time",
    "for i in range(1, 6):",
    '    print("before", i, flush=True)',
    "    time.sleep(0.05)",
    'name = input("name? ")',
    'print("hello", name, flush=True)',
    "for i in range(1, 4):",
    '    print("after", i, flush=True)',
    "    time.sleep(0.05)",
    "sys.exit(5)",
    "",
  ].join("\n");
  const page = await runOn(host.base, program);
  const waiting = `${lines("before", 1, 5)}name? `;
  await outputIs(page, waiting);
  const sandbox = await page.evaluate(() => window.playground.dataset.sandbox);
  assert.deepEqual(await sandboxes(), [sandbox]);
  assert.deepEqual(await saved(page), [], "nothing is kept while the page lives");

  // What the reloaded page finds in sessionStorage, before its scripts run.
  await page.addInitScript(() => (window.keptAtLoad = Object.entries(sessionStorage).filter(([k]) => k.startsWith("flankbox-playground:"))));
  await page.reload();
  // The same sandbox and program: the output from its start, once, and the code that runs.
  await status(page, ["running"]);
  await outputIs(page, waiting);
  assert.equal(await page.evaluate(() => window.playground.dataset.sandbox), sandbox);
  assert.deepEqual(await sandboxes(), [sandbox], "the reload made no sandbox and lost none");
  assert.equal(await page.evaluate(() => window.playground.code), program);
  // (Once, in a full run, Stop was already off here: the page's status and output say why.)
  const shown = async () => `${await page.textContent(".fbx-status")}; output ${JSON.stringify(await output(page))}`;
  assert.equal(await page.isEnabled(".fbx-stop"), true, `Stop is off: ${await shown()}`);
  // What it took was in this tab's sessionStorage, never in the URL; taken, it is gone.
  const [[key, entry], ...more] = await page.evaluate(() => window.keptAtLoad);
  assert.deepEqual(more, []);
  assert.equal(key, "flankbox-playground:/:0", "keyed by the widget's place on the page");
  const { sandboxId, capability, id, code, language } = JSON.parse(entry);
  assert.deepEqual({ sandboxId, code, language }, { sandboxId: sandbox, code: program, language: "python" });
  for (const secret of [sandboxId, capability, id]) assert.ok(secret && !page.url().includes(secret), `${secret} is not in ${page.url()}`);
  assert.deepEqual(await saved(page), []);

  // Typing reaches the program; its exit shows.
  await page.fill(".fbx-stdin-input", "ada");
  await page.press(".fbx-stdin-input", "Enter");
  await status(page, ["exited"]);
  assert.equal(await output(page), `${waiting}ada\nhello ada\n${lines("after", 1, 3)}`);
  assert.match(await page.textContent(".fbx-status"), /exit code 5/);
  assert.equal(await page.evaluate(() => window.playground.dataset.exitCode), "5");
  assert.deepEqual(await saved(page), [], "the ended program is forgotten");
  assert.deepEqual(page.errors, []);
});

test("Stop after a reload kills the program at once, and the sandbox runs the next Run", async () => {
  const page = await runOn(host.base, 'print("looping", flush=True)\nwhile True:\n    pass\n');
  await outputIs(page, "looping\n");
  const sandbox = await page.evaluate(() => window.playground.dataset.sandbox);
  await page.reload();
  await status(page, ["running"]);
  await outputIs(page, "looping\n");
  // Timed inside the page, from the click to the "stopped" status.
  const took = await page.evaluate(
    () =>
      new Promise((resolve) => {
        const el = window.playground;
        const started = performance.now();
        new MutationObserver((_, obs) => el.dataset.status === "stopped" && (obs.disconnect(), resolve(performance.now() - started))).observe(el, {
          attributes: true,
          attributeFilter: ["data-status"],
        });
        setTimeout(() => resolve(Infinity), 10_000);
        document.querySelector(".fbx-stop").click();
      }),
  );
  assert.ok(took < 1000, `stopped after ${took} ms`);
  assert.match(await page.textContent(".fbx-footer"), /^stopped after \d+ ms$/);
  assert.equal(await output(page), "looping\n", "nothing but the program's output");
  assert.deepEqual(await saved(page), []);
  await page.evaluate(() => (window.playground.code = 'print("again")\n'));
  await page.click(".fbx-run");
  await status(page, ["exited"]);
  assert.equal(await output(page), "again\n");
  assert.equal(await page.evaluate(() => window.playground.dataset.sandbox), sandbox);
  assert.deepEqual(page.errors, []);
});

test("5 s offline mid-run: every line once, in order, and the exit code; the sandbox stays held", async () => {
  // Chromium's offline mode (context.setOffline) fails new connections but leaves open
  // WebSockets open: their frames wait and arrive once online, so it alone never makes the
  // client resume. The page therefore goes through a relay (tests/client/relay.mjs) that is cut
  // as the browser goes offline, as a real network drop does: every socket of the page closes
  // (the program's output, the hold), and every reconnection fails until it is back online.
  const cut = await relay(host.base);
  try {
    const page = await runOn(cut.url, 'import time\nfor i in range(1, 81):\n    print("line", i, flush=True)\n    time.sleep(0.1)\nraise SystemExit(3)\n');
    const sandbox = await page.evaluate(() => window.playground.dataset.sandbox);
    await page.waitForFunction(() => window.playground.output.includes("line 10\n"), null, { polling: 20 });
    await page.context().setOffline(true);
    // The relay also refuses new connections until the page is back online: a reconnection the
    // browser began before offline took effect must fail too, as in a real drop.
    assert.ok(cut.outage(60_000) > 0, "the cut found open sockets");
    const cutAt = performance.now();
    await sleep(5_000);
    // The client keeps trying to reconnect, and each try's socket fails as soon as the relay
    // drops it; a try begun a moment ago may not have failed yet. So the page has no open socket
    // at some moment of the next two seconds, not necessarily at this one.
    const openSockets = () => page.sockets.filter((s) => !s.closed).map((s) => s.url);
    const until = performance.now() + 2_000;
    while (openSockets().length > 0 && performance.now() < until) await sleep(20);
    const open = openSockets();
    assert.deepEqual(open, [], "every socket of the page closed");
    const before = await output(page);
    assert.ok(!before.includes("line 80\n"), "offline, the output stopped");
    const holds = page.sockets.filter((s) => s.url.includes("/hold/")).length;
    cut.back();
    await page.context().setOffline(false);

    await status(page, ["exited"], 30_000);
    assert.equal(await output(page), lines("line", 1, 80));
    assert.match(await page.textContent(".fbx-status"), /exit code 3/);
    // The hold was opened again, and the edge proxy keeps the sandbox past its grace.
    const reheld = page.sockets.filter((s) => s.url.includes("/hold/"));
    assert.ok(reheld.length > holds && !reheld.at(-1).closed, "the page holds its sandbox again");
    await sleep(Math.max(0, cutAt + HOLD_GRACE_MS + 2_000 - performance.now()));
    assert.deepEqual(await sandboxes(), [sandbox], "the sandbox outlived the hold's grace");
    await page.evaluate(() => (window.playground.code = 'print("still here")\n'));
    await page.click(".fbx-run");
    await status(page, ["exited"]);
    assert.equal(await output(page), "still here\n");
    assert.deepEqual(page.errors, []);
  } finally {
    for (const page of pages) await page.close({ runBeforeUnload: true }).catch(() => {});
    pages.clear();
    cut.close();
  }
});

test("a tab closed while its program runs leaves no sandbox behind once the hold's grace is over", async () => {
  const page = await runOn(host.base, 'print("looping", flush=True)\nwhile True:\n    pass\n');
  await outputIs(page, "looping\n");
  const sandbox = await page.evaluate(() => window.playground.dataset.sandbox);
  // Its pagehide keeps the sandbox (a reload would take it over); nothing comes back for it.
  const closedAt = performance.now();
  await page.close({ runBeforeUnload: true });
  pages.delete(page);
  assert.ok((await sandboxes()).includes(sandbox), "kept at the close");
  const deadline = closedAt + HOLD_GRACE_MS + 15_000;
  while ((await sandboxes()).includes(sandbox) && performance.now() < deadline) await sleep(250);
  assert.ok(!(await sandboxes()).includes(sandbox), "the hold's grace ended the sandbox");
  assert.ok(performance.now() - closedAt >= HOLD_GRACE_MS - 1_000, "not before the grace");
});
