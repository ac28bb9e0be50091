// Where the client tests find the host, its token and the helper server (started by the test
// command), and small tools: a static file server and headless Chromium.
import { createServer } from "node:http";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { extname, join, normalize, dirname } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const URL_ = process.env.FLANKBOX_TEST_URL ?? "http://127.0.0.1:7444";
export const TOKEN = process.env.FLANKBOX_TEST_TOKEN ?? "client-test-token";
export const HELPER = process.env.FLANKBOX_TEST_HELPER ?? "http://127.0.0.1:7445";

const TYPES = { ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".html": "text/html", ".json": "application/json" };

/** Serves `dir` on a free loopback port; resolves to `{ url, close }`. */
export function serveStatic(dir) {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
    try {
      const body = await readFile(join(dir, path));
      res.writeHead(200, { "content-type": TYPES[extname(path)] ?? "application/octet-stream" });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve({ url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() })),
  );
}

/** Debian's Chromium, headless, through playwright-core (which downloads no browser). */
export async function launchChromium() {
  const { chromium } = await import("playwright-core");
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
  });
}

/** A project id no other test run shares. */
export function project(prefix) {
  return `${prefix}-${Math.random().toString(36).slice(2, 10)}`;
}

/** Opens a blank page of a static server of the repository in headless Chromium, runs
 * `fn(page, site)`, and closes it all; throws if the page raised an error. */
export async function withBlankPage(fn) {
  const site = await serveStatic(ROOT);
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${site.url}/tests/client/blank.html`);
    const result = await fn(page, site);
    if (errors.length) throw new Error(`the page raised: ${errors.join("; ")}`);
    return result;
  } finally {
    await browser.close();
    site.close();
  }
}

/** Real workerd (Miniflare) running a Worker bundled by esbuild into `dir` (entry `worker.js`),
 * with `bindings`; `options` go to Miniflare (e.g. `host` and `port` to serve it on a socket). */
export async function workerdFromBundle(dir, bindings, options = {}) {
  const { Miniflare } = await import("miniflare");
  return new Miniflare({
    modules: true,
    scriptPath: join(dir, "worker.js"),
    modulesRoot: dir,
    modulesRules: [
      { type: "ESModule", include: ["**/*.js"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
    compatibilityDate: "2026-04-01",
    bindings,
    ...options,
  });
}

/** `npm pack` of the built package (pkg/), installed from its tarball into a new scratch ESM
 * project, as a user gets it; resolves to the scratch directory. */
export function installPackedPackage(prefix) {
  const scratch = mkdtempSync(join(tmpdir(), prefix));
  const packed = JSON.parse(execFileSync("npm", ["pack", "--json", "--pack-destination", scratch, join(ROOT, "pkg")], { encoding: "utf8" }));
  writeFileSync(join(scratch, "package.json"), JSON.stringify({ name: "scratch", private: true, type: "module" }));
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", join(scratch, packed[0].filename)], { cwd: scratch, stdio: "inherit" });
  return scratch;
}

/** A page's program, for a bundler to bundle: the project and host come in the query string;
 * it creates a sandbox, runs a command whose output comes in three pieces 0.5 s apart, destroys
 * the sandbox, and leaves what it saw in `window.result`. */
export const BROWSER_ENTRY = `import { Northflank, Sandbox } from "flankbox";
const q = new URLSearchParams(location.search);
const nf = new Northflank({ token: q.get("token"), projectId: q.get("project"), baseUrl: q.get("api") });
const chunks = [];
const sb = await Sandbox.create(nf);
const r = await sb.exec("for i in 1 2 3; do echo line $i; sleep 0.5; done", { onStdout: (c) => chunks.push(c) });
await sb.destroy();
window.result = { stdout: r.stdout, chunks: chunks.length, code: r.exitCode };
`;

/** Opens `pageUrl` in `browser` with BROWSER_ENTRY's query for project `projectId`; resolves to
 * its `window.result`, and throws if the page raised. */
export async function runEntryInChromium(browser, pageUrl, projectId) {
  const tab = await browser.newPage();
  try {
    const errors = [];
    tab.on("pageerror", (e) => errors.push(e.message));
    const q = new URLSearchParams({ token: TOKEN, project: projectId, api: URL_ });
    await tab.goto(`${pageUrl}?${q}`);
    await tab.waitForFunction(() => window.result, null, { timeout: 30_000 }).catch((e) => {
      throw new Error(`no result: ${errors.join("; ") || e.message}`);
    });
    if (errors.length) throw new Error(`the page raised: ${errors.join("; ")}`);
    return await tab.evaluate(() => window.result);
  } finally {
    await tab.close();
  }
}

/** runEntryInChromium on `page` of the bundle in `dist`, served for the run. */
export async function runBundleInChromium(browser, dist, page, projectId) {
  const site = await serveStatic(dist);
  try {
    return await runEntryInChromium(browser, `${site.url}/${page}`, projectId);
  } finally {
    site.close();
  }
}

/** The services left in `projectId` on the test host (none, once every sandbox is destroyed). */
export async function servicesLeft(projectId) {
  const res = await fetch(`${URL_}/v1/projects/${projectId}/services`, { headers: { authorization: `Bearer ${TOKEN}` } });
  if (!res.ok) throw new Error(`listing services: ${res.status} ${await res.text()}`);
  return (await res.json()).data.services;
}
