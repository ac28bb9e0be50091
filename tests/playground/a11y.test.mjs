// The playground without a mouse, and as a screen reader meets it: axe-core finds no serious or
// critical violation in any state; Tab reaches every control and leaves the editor and the
// terminal (Escape, then Tab); output is announced politely, at most about once a second.
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { startPlayground, status } from "./env.mjs";

const AXE = createRequire(import.meta.url).resolve("axe-core/axe.min.js");

let env;
const pages = new Set();
before(async () => (env = await startPlayground()));
afterEach(async () => {
  for (const page of pages) await page.close({ runBeforeUnload: true }).catch(() => {});
  pages.clear();
});
after(() => env?.stop());

async function open(path) {
  const page = await env.browser.newPage({ viewport: { width: 1200, height: 700 } });
  pages.add(page);
  page.errors = [];
  page.on("pageerror", (e) => page.errors.push(e.message));
  await page.goto(`${env.host.base}${path}`);
  await page.waitForSelector("flankbox-playground .fbx-code");
  return page;
}

/** axe-core's serious and critical violations on the page now, as readable lines. */
async function violations(page) {
  if (!(await page.evaluate(() => "axe" in window))) await page.addScriptTag({ path: AXE });
  const found = await page.evaluate(async () => (await window.axe.run(document, { resultTypes: ["violations"] })).violations);
  return found
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`);
}

const activeClass = (page) => page.evaluate(() => document.activeElement?.className ?? "");
const focusInside = (page, selector) => page.evaluate((s) => !!document.activeElement?.closest(s), selector);

/** Presses Tab (or `key`) until the focused element matches `selector`; fails after `max`. */
async function tabTo(page, selector, { key = "Tab", max = 15 } = {}) {
  for (let i = 0; i < max; i++) {
    if (await page.evaluate((s) => document.activeElement?.matches(s), selector)) return;
    await page.keyboard.press(key);
  }
  throw new Error(`${key} never reached ${selector} (at ${await activeClass(page)})`);
}

test("axe-core finds no serious or critical violation, in every state of the page", async () => {
  const page = await open("/");
  assert.deepEqual(await violations(page), [], "as loaded");
  await status(page, ["ready"], 30_000);
  await page.click(".fbx-code");
  await page.waitForSelector(".cm-editor.cm-focused");
  await page.keyboard.press("Control+A");
  await page.keyboard.insertText('import sys\nprint("out")\nprint("err", file=sys.stderr)\n');
  assert.deepEqual(await violations(page), [], "with the editor");
  await page.click(".fbx-run");
  await status(page, ["exited"]);
  assert.deepEqual(await violations(page), [], "with output");
  await page.click(".fbx-tab-terminal");
  await page.waitForFunction(() => /[#$] $/m.test(window.playground.terminalText), null, { timeout: 15_000 });
  assert.deepEqual(await violations(page), [], "with the terminal");
  const widgets = await open("/widget-demo.html");
  assert.deepEqual(await violations(widgets), [], "the widget page");
  assert.deepEqual([...page.errors, ...widgets.errors], []);
});

test("without a mouse: Tab into the editor, type, Escape and Tab out, run with the keyboard", async () => {
  const page = await open("/widget-demo.html");
  const first = "#first";
  // Every control on the way has a name a screen reader can say (axe checks it too).
  // Focus on the code view loads the editor in its place and moves the keyboard into it, which
  // may happen between two presses on a busy machine: either one is the editor reached.
  await tabTo(page, `${first} .fbx-code, ${first} .cm-content`);
  // Focus loads the editor in the code view's place, and gives it the keyboard.
  await page.waitForFunction(() => document.activeElement?.closest("#first .cm-editor"));
  await page.keyboard.press("Control+A");
  await page.keyboard.insertText('print("typed without a mouse")\n');
  await page.keyboard.press("Tab"); // indents: Tab belongs to the editor...
  assert.ok(await focusInside(page, `${first} .cm-editor`), "Tab alone stays in the editor");
  await page.keyboard.press("Escape"); // ...until Escape, then Tab, leaves it
  await page.keyboard.press("Tab");
  assert.ok(!(await focusInside(page, `${first} .cm-editor`)), `Escape, Tab left the editor (now on ${await activeClass(page)})`);
  // Back to Run, and Enter runs.
  await tabTo(page, `${first} .fbx-run`, { key: "Shift+Tab" });
  await page.keyboard.press("Enter");
  await status(page, ["exited"], 60_000, first);
  assert.equal(await page.evaluate(() => document.getElementById("first").output), "typed without a mouse\n");
  // The live region said it.
  await page.waitForFunction(() => document.querySelector("#first .fbx-sr-only[aria-live=polite]").textContent.includes("typed without a mouse"));
  // The tabs: arrow keys move between them; the terminal takes the keyboard and gives it back.
  await tabTo(page, `${first} .fbx-tab-output`);
  await page.keyboard.press("ArrowRight");
  assert.equal(await page.getAttribute(`${first} .fbx-tab-terminal`, "aria-selected"), "true");
  await page.waitForFunction(() => /[#$] $/m.test(document.getElementById("first").terminalText), null, { timeout: 15_000 });
  await page.waitForFunction(() => document.activeElement?.closest("#first .fbx-terminal"));
  await page.keyboard.press("Escape");
  await page.keyboard.press("Tab");
  assert.ok(!(await focusInside(page, `${first} .fbx-terminal`)), `Escape, Tab left the terminal (now on ${await activeClass(page)})`);
  assert.deepEqual(page.errors, []);
});

test("output is announced politely, at most about once a second, latest lines first", async () => {
  const page = await open("/widget-demo.html");
  await page.evaluate(() => {
    const el = document.getElementById("first");
    el.code = "import time\nfor i in range(40):\n    print('line', i, flush=True)\n    time.sleep(0.05)\n";
    const region = el.querySelector(".fbx-sr-only[aria-live=polite]");
    window.announced = [];
    new MutationObserver(() => region.textContent && window.announced.push({ at: performance.now(), text: region.textContent })).observe(region, {
      childList: true,
      characterData: true,
      subtree: true,
    });
  });
  await page.click("#first .fbx-run");
  await status(page, ["exited"], 60_000, "#first");
  await page.waitForFunction(() => window.announced.at(-1)?.text.includes("line 39"), null, { timeout: 5_000 });
  const announced = await page.evaluate(() => window.announced);
  const gaps = announced.slice(1).map((a, i) => a.at - announced[i].at);
  assert.ok(announced.length >= 2, `announced as it ran: ${JSON.stringify(announced)}`);
  assert.ok(announced.length <= 6, `throttled: ${announced.length} announcements for 2 s of output`);
  assert.ok(Math.min(...gaps) >= 900, `at most once a second: gaps ${gaps.map(Math.round)}`);
  assert.ok(announced.every((a) => a.text.length <= 300), "each announcement is short");
});
