// What a page pays for the playground, in bytes transferred as Chromium counts them (headers and
// encoded bodies: HTML, JS, CSS, wasm, every fetch, and WebSocket frames once a Run has run).
// The goal (issue 10): at most 120 KB from navigation until the editor shows its code and Run is
// clickable, on the served page and on a plain page embedding the widget.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startPlayground, status } from "./env.mjs";

const GOAL_BYTES = 120_000;
/** Files that must wait for first use: the editor, xterm.js, the client and its wasm. */
const LAZY = /editor-|terminal-|\.wasm$|\/flankbox-[^/]*\.js$|\/browser\.js$|\/flankbox\.js$/;

let env;
before(async () => (env = await startPlayground()));
after(() => env?.stop());

/** What the page has transferred: everything, or (`interactive`) only what it requested before
 * its playground marked itself interactive (code shown, Run clickable). */
function transferred(page, { interactive = false } = {}) {
  return page.evaluate((interactive) => {
    const mark = Math.max(...performance.getEntriesByName("flankbox:interactive").map((m) => m.startTime));
    const nav = performance.getEntriesByType("navigation")[0];
    const files = [nav, ...performance.getEntriesByType("resource").filter((r) => !interactive || r.startTime <= mark)].map((r) => ({
      url: r.name,
      bytes: r.transferSize,
    }));
    return { mark, files, bytes: files.reduce((n, f) => n + f.bytes, 0) };
  }, interactive);
}

/** Opens `path` in a fresh context (nothing cached), counting WebSocket bytes received. */
async function openFresh(path) {
  const context = await env.browser.newContext();
  const page = await context.newPage();
  page.wsBytes = 0;
  page.on("websocket", (ws) => ws.on("framereceived", (f) => (page.wsBytes += typeof f.payload === "string" ? Buffer.byteLength(f.payload) : f.payload.length)));
  await page.goto(`${env.host.base}${path}`);
  // Code shown and Run clickable; then whatever was requested before that has arrived.
  await page.waitForFunction(() => {
    const el = document.querySelector("flankbox-playground");
    return el?.querySelector(".fbx-code")?.textContent.trim() && !el.querySelector(".fbx-run").disabled;
  });
  await page.waitForLoadState("load");
  await new Promise((r) => setTimeout(r, 500));
  return { page, context };
}

const kb = (n) => `${(n / 1000).toFixed(1)} KB`;

for (const [what, path, selector] of [
  ["the served playground page", "/", "flankbox-playground"],
  ["a plain page with the widget", "/widget-demo.html", "#first"],
]) {
  test(`${what}: at most 120 KB until the code shows and Run is clickable`, async () => {
    const { page, context } = await openFresh(path);
    try {
      const first = await transferred(page, { interactive: true });
      assert.ok(Number.isFinite(first.mark), "the playground marked itself interactive");
      const lazy = first.files.filter((f) => LAZY.test(new URL(f.url).pathname));
      assert.deepEqual(lazy, [], "nothing that waits for first use came before it");
      // Run, without touching the editor: the client and its wasm come now, the editor does not.
      // (The page's example reads stdin; this program does not.)
      await page.evaluate((s) => (document.querySelector(s).code = 'print("hi")\n'), selector);
      await page.click(`${selector} .fbx-run`);
      await status(page, ["exited"], 60_000, selector);
      const run = await transferred(page);
      const afterRun = run.bytes + page.wsBytes;
      const files = run.files.map((f) => new URL(f.url).pathname);
      assert.ok(files.some((f) => f.endsWith(".wasm")), "Run loaded the client's wasm");
      assert.ok(!files.some((f) => /terminal-/.test(f)), "Run did not load xterm.js");
      console.log(`weight: ${what}: first paint ${kb(first.bytes)} in ${first.files.length} responses; after the first Run ${kb(afterRun)} (${kb(page.wsBytes)} of it WebSocket frames)`);
      for (const f of first.files) console.log(`  ${new URL(f.url).pathname} ${f.bytes}`);
      assert.ok(first.bytes <= GOAL_BYTES, `first paint took ${first.bytes} bytes (goal ${GOAL_BYTES})`);
    } finally {
      await page.close({ runBeforeUnload: true });
      await context.close();
    }
  });
}

test("each part loads when first used: the editor on focus, a mode when chosen, xterm.js with the Terminal tab", async () => {
  const { page, context } = await openFresh("/widget-demo.html");
  const loaded = async () => (await transferred(page)).files.map((f) => new URL(f.url).pathname).filter((p) => p.endsWith(".js"));
  /** The scripts that `act` makes the page load. */
  const loadsOf = async (act) => {
    const before = new Set(await loaded());
    await act();
    await new Promise((r) => setTimeout(r, 500));
    return (await loaded()).filter((p) => !before.has(p));
  };
  try {
    const editor = await loadsOf(async () => {
      await page.click("#first .fbx-code");
      await page.waitForSelector("#first .cm-editor.cm-focused");
    });
    assert.ok(editor.some((p) => /\/editor-/.test(p)), `focus loaded the editor: ${editor}`);
    assert.ok(!editor.some((p) => /terminal-/.test(p)), "but not xterm.js");
    const c = await loadsOf(() => page.selectOption("#first .fbx-language", "c"));
    assert.ok(c.length > 0 && !c.some((p) => /editor-|terminal-/.test(p)), `choosing C loaded its mode alone: ${c}`);
    const cAgain = await loadsOf(async () => {
      await page.selectOption("#first .fbx-language", "python");
      await page.selectOption("#first .fbx-language", "c");
    });
    assert.deepEqual(cAgain, [], "a mode loads once");
    const terminal = await loadsOf(() => page.click("#first .fbx-tab-terminal"));
    assert.ok(terminal.some((p) => /terminal-/.test(p)), `the Terminal tab loaded xterm.js: ${terminal}`);
  } finally {
    await page.close({ runBeforeUnload: true });
    await context.close();
  }
});
