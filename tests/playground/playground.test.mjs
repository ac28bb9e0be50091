// The playground in real headless Chromium against a real host serving it (dev mode).
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { mkdirSync } from "node:fs";
import { createHash } from "node:crypto";
import { TOKEN } from "../sdk-compat/host.mjs";
import { ROOT } from "../client/env.mjs";
import { startPlayground, status } from "./env.mjs";

let env;
let host;
let browser;

before(async () => {
  // The default: capability mode through the host's edge proxy, no token in any page.
  env = await startPlayground();
  ({ host, browser } = env);
});

afterEach(closeAll);

after(() => env?.stop());

const pages = new Set();

/** Closes every page a test opened, even when it failed, so no sandbox outlives its test. */
async function closeAll() {
  for (const page of pages) await page.close({ runBeforeUnload: true }).catch(() => {});
  pages.clear();
}

/** Opens the playground page with `code` in `language`. */
async function open(language, code) {
  const page = await browser.newPage({ viewport: { width: 1200, height: 700 } });
  pages.add(page);
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.errors = errors;
  // Everything the page sends, requests and WebSocket frames, is watched for the host's token.
  page.tokenSent = [];
  const watch = (what, text) => text?.includes(TOKEN) && page.tokenSent.push(what);
  page.on("request", (r) => watch(r.url(), r.url() + JSON.stringify(r.headers()) + (r.postData() ?? "")));
  page.on("websocket", (ws) => ws.on("framesent", (f) => watch(ws.url(), String(f.payload))));
  await page.goto(`${host.base}/`);
  await status(page, ["ready"], 30_000);
  await setCode(page, language, code);
  return page;
}

/** Puts code in the editor the way a user would: select all, then type (insertText, so the
 * editor's bracket closing does not double what is typed). The first click on the code view
 * loads the editor in its place. */
async function setCode(page, language, code) {
  await page.selectOption(".fbx-language", language);
  await page.click(".fbx-code, .cm-content");
  await page.waitForSelector(".cm-editor.cm-focused");
  await page.keyboard.press("Control+A");
  await page.keyboard.press("Delete");
  await page.keyboard.insertText(code);
  assert.equal(await page.evaluate(() => window.playground.code), code);
}

const output = (page) => page.evaluate(() => window.playground.output);

/** Waits until `check()` resolves truthy, polling; throws with `what` and the last value at the
 * deadline. */
async function until(what, check, { timeout = 20_000, every = 200 } = {}) {
  const deadline = performance.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (performance.now() > deadline) throw new Error(`${what}: still not so after ${timeout} ms`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** The sandboxes in the playground's project, as the host lists them. */
async function sandboxes() {
  const res = await fetch(`${host.base}/v1/projects/playground/services`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  return (await res.json()).data.services.map((s) => s.id);
}

/** Waits (generously) until the playground's project has no sandbox left. A page's own
 * clean-up is a keepalive DELETE on pagehide; when a browser drops it, or the page never read
 * its create's answer, the host's edge proxy deletes the sandbox once nothing holds it (its
 * hold's grace, 15 s, or 10 s after a create no page came to hold), so 30 s is enough. */
async function noneLeft(why) {
  let left = [];
  try {
    await until(why, async () => (left = await sandboxes()).length === 0, { timeout: 30_000 });
  } catch {
    assert.deepEqual(left, [], `${why}: sandboxes are left behind`);
  }
}

// Clicks Stop inside the page and times it there, from the click to the "stopped" status, so
// the figure is what a user waits for, without the test harness's own round trips.
const timeStop = (page) =>
  page.evaluate(
    () =>
      new Promise((resolve) => {
        const el = document.querySelector("flankbox-playground");
        const started = performance.now();
        const done = () => resolve(performance.now() - started);
        new MutationObserver((_, obs) => el.dataset.status === "stopped" && (obs.disconnect(), done())).observe(el, {
          attributes: true,
          attributeFilter: ["data-status"],
        });
        setTimeout(() => resolve(Infinity), 10_000);
        document.querySelector(".fbx-stop").click();
      }),
  );

test("output streams live: the first line shows before the program ends", async () => {
  const page = await open("python", 'import time\nfor i in range(7):\n    print("line", i, flush=True)\n    time.sleep(0.3)\n');
  await page.click(".fbx-run");
  // Read in the same instant the first line shows: the program is still running then.
  const seen = await page.waitForFunction(
    () => {
      const { output } = window.playground;
      const status = document.querySelector("flankbox-playground").dataset.status;
      return output.includes("line 0") && { status, output };
    },
    null,
    { polling: 10 },
  );
  const first = await seen.jsonValue();
  assert.equal(first.status, "running", `the first line showed while the program ran: ${JSON.stringify(first)}`);
  assert.ok(!first.output.includes("line 6"), `not all at the end: ${JSON.stringify(first.output)}`);
  await status(page, ["exited"]);
  assert.equal(await output(page), ["line 0", "line 1", "line 2", "line 3", "line 4", "line 5", "line 6", ""].join("\n"));
  assert.match(await page.textContent(".fbx-status"), /exit code 0/);
  assert.match(await page.textContent(".fbx-footer"), /exit code 0 · \d+ ms/);
  // The shared link carries the code and the language.
  assert.match(await page.evaluate(() => location.hash), /^#lang=python&code=/);
  // Written under target/; UPDATE_SCREENSHOTS=1 also refreshes the README's docs/playground.png.
  mkdirSync(join(ROOT, "target/playground"), { recursive: true });
  await page.screenshot({ path: join(ROOT, "target/playground/playground.png") });
  if (process.env.UPDATE_SCREENSHOTS === "1") await page.screenshot({ path: join(ROOT, "docs/playground.png") });
  assert.deepEqual(page.errors, []);
  // Capability mode: the page never held the API token, and its sandbox is the proxy's.
  assert.deepEqual(page.tokenSent, []);
  assert.match(await page.evaluate(() => window.playground.dataset.sandbox ?? ""), /^fbx-/);
});

test("stdin reaches the program, and end-of-input is possible", async () => {
  const page = await open("python", 'name = input("name? ")\nprint("hello", name)\nimport sys\nrest = sys.stdin.read()\nprint("rest:", len(rest.splitlines()), "lines")\n');
  await page.click(".fbx-run");
  await status(page, ["running"]);
  await page.waitForFunction(() => window.playground.output.includes("name?"));
  await page.fill(".fbx-stdin-input", "ada");
  await page.press(".fbx-stdin-input", "Enter");
  await page.waitForFunction(() => window.playground.output.includes("hello ada"));
  for (const line of ["one", "two"]) {
    await page.fill(".fbx-stdin-input", line);
    await page.press(".fbx-stdin-input", "Enter");
  }
  await page.click(".fbx-eof");
  await status(page, ["exited"]);
  assert.match(await output(page), /rest: 2 lines/);
});

test("stderr is styled apart, and a C program compiles and runs", async () => {
  const page = await open("python", 'import sys\nprint("to out")\nprint("to err", file=sys.stderr)\n');
  await page.click(".fbx-run");
  await status(page, ["exited"]);
  // What a user sees: all the red text, however many pieces it came in, and the rest apart
  // (the two streams may interleave: "to out", "to err", "\n", "\n").
  const [stdout, stderr] = await page.$eval(".fbx-output", (out) =>
    ["#text", "SPAN"].map((kind) => [...out.childNodes].filter((n) => n.nodeName === kind && (kind === "#text" || n.classList.contains("fbx-stderr"))).map((n) => n.textContent).join("")),
  );
  assert.equal(stderr, "to err\n");
  assert.equal(stdout, "to out\n");
  assert.equal(await page.evaluate(() => getComputedStyle(document.querySelector(".fbx-stderr")).color), "rgb(207, 34, 46)");

  await setCode(page, "c", '#include <stdio.h>\nint main(void) { int s = 0; for (int i = 1; i <= 10; i++) s += i; printf("sum=%d\\n", s); return 3; }\n');
  await page.click(".fbx-run");
  await status(page, ["exited"], 30_000);
  assert.equal(await output(page), "sum=55\n");
  assert.match(await page.textContent(".fbx-status"), /exit code 3/);
});

test("the code reaches the sandbox byte for byte, whatever it holds and however big", async () => {
  // A small program goes with the spawn (through sh's printf), a big one is written first:
  // each prints the SHA-256 of its own file, which must be the editor's code exactly.
  const program = (padding) =>
    `import hashlib\n# quotes ' " \` $HOME $(id) %s %b \\n \\ ; & | > < * ? ~ é 🙂\n# ${padding}\nprint(hashlib.sha256(open(__file__, "rb").read()).hexdigest())\n`;
  const page = await open("python", "print(1)\n");
  for (const code of [program(""), program("x".repeat(40_000))]) {
    await page.evaluate((code) => (window.playground.code = code), code);
    await page.click(".fbx-run");
    await status(page, ["exited"]);
    assert.equal(await output(page), `${createHash("sha256").update(code).digest("hex")}\n`, `${code.length} characters`);
  }
});

test("Stop ends an endless loop at once", async () => {
  const page = await open("python", 'print("looping", flush=True)\nwhile True:\n    pass\n');
  await page.click(".fbx-run");
  await status(page, ["running"]);
  // The program is in its loop once its line is out.
  await page.waitForFunction(() => window.playground.output.includes("looping"), null, { timeout: 15_000 });
  const took = await timeStop(page);
  assert.ok(took < 1000, `stopped after ${took} ms`);
  assert.match(await page.textContent(".fbx-footer"), /^stopped after \d+ ms$/);
  assert.equal(await output(page), "looping\n", "nothing but the program's output (no shell's \"Killed\")");
});

test("a program that starts a web server gets an Open preview link that shows its page", async () => {
  const server = [
    "import http.server",
    "class Page(http.server.BaseHTTPRequestHandler):",
    "    def do_GET(self):",
    "        body = b'<h1>made in the playground</h1>'",
    "        self.send_response(200)",
    "        self.send_header('Content-Type', 'text/html')",
    "        self.send_header('Content-Length', str(len(body)))",
    "        self.end_headers()",
    "        self.wfile.write(body)",
    "print('serving on 8000', flush=True)",
    "http.server.HTTPServer(('0.0.0.0', 8000), Page).serve_forever()",
    "",
  ].join("\n");
  const page = await open("python", server);
  await page.click(".fbx-run");
  const link = await page.waitForSelector(".fbx-preview", { timeout: 15_000 });
  assert.equal(await link.textContent(), "Open preview :8000");
  const href = await link.getAttribute("href");
  assert.match(href, /^http:\/\/p8000--fbx-[0-9a-z-]+--[^.]+\.localhost:\d+$/);
  // Following the link opens the sandbox's page in a new tab.
  const [preview] = await Promise.all([page.context().waitForEvent("page"), link.click()]);
  pages.add(preview);
  await preview.waitForLoadState();
  assert.equal(await preview.textContent("h1"), "made in the playground");
  // Stopping the program takes the link away.
  await page.click(".fbx-stop");
  await status(page, ["stopped", "exited"]);
  assert.equal(await page.$(".fbx-preview"), null);
  assert.deepEqual(page.errors, []);
});

test("an output flood keeps the page responsive: Stop takes effect within a second", async () => {
  const page = await open("bash", "yes 'flooding the output pane'\n");
  await page.click(".fbx-run");
  await status(page, ["running"]);
  // Well into the flood: over a megabyte past the cap.
  await page.waitForFunction(() => Number(document.querySelector(".fbx-truncated")?.textContent.match(/([\d,]+) more/)?.[1].replaceAll(",", "")) > 1_000_000, null, {
    timeout: 20_000,
  });
  const took = await timeStop(page);
  assert.ok(took < 1000, `Stop took ${took} ms`);
  assert.match(await page.textContent(".fbx-truncated"), /output truncated: [\d,]+ more characters/);
  assert.ok((await output(page)).length < 260_000, "the pane is capped");
});

test("the terminal runs an interactive shell that resizes with its pane", async () => {
  const page = await open("python", "print(1)\n");
  await page.click(".fbx-tab-terminal");
  await page.waitForFunction(() => /[#$] $/m.test(window.playground.terminalText), null, { timeout: 15_000 });
  await page.keyboard.type("echo hi\r");
  await page.waitForFunction(() => window.playground.terminalText.split("\n").some((l) => l.trim() === "hi"), null, { timeout: 5_000 });
  await page.keyboard.type("stty size\r");
  await page.waitForFunction(() => /^\d+ \d+$/m.test(window.playground.terminalText), null, { timeout: 5_000 });
  const before = (await page.evaluate(() => window.playground.terminalText)).match(/^(\d+) (\d+)$/m).slice(1).map(Number);
  await page.setViewportSize({ width: 1400, height: 900 });
  // The new size reaches the sandbox after the pane's resize observer fires: ask again until
  // the answer changes.
  const resized = (b) => {
    const m = window.playground.terminalText.match(/^(\d+) (\d+)$/m);
    return m && (Number(m[1]) !== b[0] || Number(m[2]) !== b[1]);
  };
  for (let i = 0; ; i++) {
    await page.keyboard.type("clear; stty size\r");
    try {
      await page.waitForFunction(resized, before, { timeout: 1_000 });
      break;
    } catch (e) {
      if (i === 14) throw e;
    }
  }
});

test("two widgets on a plain HTML page run independently", async () => {
  const page = await browser.newPage();
  pages.add(page);
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${host.base}/widget-demo.html`);
  await page.click("#first .fbx-run");
  await page.click("#second .fbx-run");
  const done = (id) => page.waitForFunction((id) => document.getElementById(id).dataset.status === "exited", id, { timeout: 30_000 });
  await Promise.all([done("first"), done("second")]);
  assert.equal(await page.evaluate(() => document.getElementById("first").output), "hello from widget one on linux\n");
  assert.equal(await page.evaluate(() => document.getElementById("second").output), "hello from widget two in bash\n");
  assert.deepEqual(errors, []);
});

test("no sandbox is left behind once the pages are gone", async () => {
  const page = await open("python", "print('bye')\n");
  await page.click(".fbx-run");
  await status(page, ["exited"]);
  assert.notEqual((await sandboxes()).length, 0);
  await closeAll();
  await noneLeft("after the page closed");
});

/** Opens the playground page (which makes its sandbox at once) and closes it (as a user does,
 * with its unload handlers) as soon as `when(page)` resolves, with the sandbox still being
 * made. `when` is called before the page loads. */
async function closeMidCreate(when) {
  await noneLeft("before the test");
  const page = await browser.newPage();
  pages.add(page);
  const closed = when(page).then(() => page.close({ runBeforeUnload: true }));
  await page.goto(`${host.base}/`).catch(() => {}); // the close may come before the load ends
  await closed;
  pages.delete(page);
}

test("a page closed while its sandbox starts leaves no sandbox behind", async () => {
  // Closed the moment the page shows "starting" (the create has answered; the sandbox scales
  // and boots). The page is not held there (request interception would also hold the page's
  // keepalive DELETE), so if it was ready by the close, or went past "starting" between two
  // polls (a boot takes a few ms), it is tried again.
  let mid = 0;
  for (let attempt = 0; attempt < 5 && !mid; attempt++) {
    await closeMidCreate(async (page) => {
      const named = () => window.playground?.dataset.sandbox && !["", "creating", "idle"].includes(window.playground.dataset.status);
      await page.waitForFunction(named, null, { timeout: 30_000, polling: 5 });
      const now = await page.evaluate(() => ({ status: window.playground.dataset.status, sandbox: window.playground.dataset.sandbox }));
      // The page knew the sandbox's name before it was ready.
      assert.match(now.sandbox, /^fbx-/);
      if (now.status === "starting") mid++;
    });
    await noneLeft("after a page closed while its sandbox started");
  }
  assert.equal(mid, 1, "a page was closed mid-start");
});

test("a page closed while its create request is in flight leaves no sandbox behind", async () => {
  // Closed the moment the page sends its create: the host's edge proxy is at work on it then,
  // and the page never gets the answer.
  await closeMidCreate(
    (page) =>
      new Promise((resolve) => page.on("request", (r) => r.method() === "POST" && r.url().endsWith("/services/deployment") && resolve())),
  );
  await noneLeft("after a page closed while its create was in flight");
});

test("a page that crashes (no pagehide at all) leaves no sandbox behind", async () => {
  await noneLeft("before the test");
  const page = await open("python", "print('crash')\n");
  await page.click(".fbx-run");
  await status(page, ["exited"]);
  assert.equal((await sandboxes()).length, 1);
  // The renderer dies: no script runs, only the sockets close; the hold's end is what tells.
  const cdp = await page.context().newCDPSession(page);
  const crashed = page.waitForEvent("crash", { timeout: 10_000 });
  cdp.send("Page.crash").catch(() => {}); // never answers: its page is gone
  await crashed;
  pages.delete(page);
  await page.context().close().catch(() => {});
  await noneLeft("after a page crashed");
});
