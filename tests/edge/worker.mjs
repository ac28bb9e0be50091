// Runs examples/edge-proxy in real workerd (`wrangler dev`), with flankbox/edge taken from the
// built package (pkg/), in front of a host; and tools the edge suites share.
import { spawn } from "node:child_process";
import { mkdirSync, rmSync, symlinkSync } from "node:fs";
import { createServer } from "node:net";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { workerdFromBundle } from "../client/env.mjs";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

export function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Installs the built package (pkg/) as the example's `flankbox` dependency, as
 * `npm install` of a local package would: a link in its node_modules. */
function installPackage() {
  const modules = join(ROOT, "examples/edge-proxy/node_modules");
  mkdirSync(modules, { recursive: true });
  rmSync(join(modules, "flankbox"), { force: true, recursive: true });
  symlinkSync(join(ROOT, "pkg"), join(modules, "flankbox"), "dir");
}

/** Starts the example Worker; resolves to `{ url, stop() }`. `vars` are its environment. */
export async function startWorker(vars) {
  installPackage();
  const port = await freePort();
  const args = [
    "dev",
    "--config", join(ROOT, "examples/edge-proxy/wrangler.toml"),
    "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", String(await freePort()),
    "--test-scheduled",
    "--show-interactive-dev-session=false",
    ...Object.entries(vars).flatMap(([k, v]) => ["--var", `${k}:${v}`]),
  ];
  const log = [];
  const child = spawn(join(ROOT, "node_modules/.bin/wrangler"), args, {
    cwd: join(ROOT, "examples/edge-proxy"),
    detached: true,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "1", NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.on("data", (d) => log.push(String(d)));
  child.stderr.on("data", (d) => log.push(String(d)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = performance.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited:\n${log.join("")}`);
    try {
      const res = await fetch(`${url}/`);
      if (res.status === 404) break;
    } catch {}
    if (performance.now() > deadline) throw new Error(`wrangler dev did not start:\n${log.join("")}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    log,
    async stop() {
      const exited = new Promise((r) => child.once("exit", r));
      try {
        process.kill(-child.pid, "SIGTERM");
      } catch {}
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {}
    },
  };
}

/** The example Worker bundled by esbuild and served by Miniflare's workerd directly, without
 * wrangler's dev proxy in front (for the bench). Resolves to `{ url, stop() }`. */
export async function startWorkerDirect(vars) {
  installPackage();
  const { execFileSync } = await import("node:child_process");
  const { mkdtempSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const out = mkdtempSync(join(tmpdir(), "flankbox-edge-worker-"));
  execFileSync(
    join(ROOT, "node_modules/.bin/esbuild"),
    ["src/worker.js", "--bundle", "--format=esm", "--platform=neutral", "--conditions=workerd,worker,browser", "--main-fields=module,main", "--loader:.wasm=copy", `--outdir=${out}`, "--log-level=warning"],
    { cwd: join(ROOT, "examples/edge-proxy"), stdio: "inherit" },
  );
  const mf = await workerdFromBundle(out, vars, { host: "127.0.0.1", port: await freePort() });
  const url = (await mf.ready).toString().replace(/\/$/, "");
  return { url, stop: () => mf.dispose() };
}
