// Starts the real flankbox-host binary for a test file, and stops it afterwards.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const HOST_BIN = process.env.FLANKBOX_HOST_BIN ?? join(root, "target", "debug", "flankbox-host");
export const TOKEN = "sdk-compat-token";

/** Starts a host with its own data directory; `args` are extra `serve` arguments. */
export async function startHost({ args = [] } = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), "flankbox-sdk-"));
  const child = spawn(HOST_BIN, ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--token", TOKEN, ...args], {
    stdio: ["ignore", "pipe", process.env.FLANKBOX_TEST_LOG ? "inherit" : "ignore"],
  });
  const base = await new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.on("line", (line) => {
      const m = line.match(/^flankbox-host listening on (\S+)/);
      if (m) resolve(m[1]);
    });
    child.on("exit", (code) => reject(new Error(`flankbox-host exited with ${code}`)));
  });
  return {
    base,
    dataDir,
    async stop() {
      const exited = new Promise((r) => child.on("exit", r));
      child.kill("SIGTERM");
      await exited;
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
