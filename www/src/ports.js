// "Open preview": which TCP ports a sandbox's programs listen on (read from /proc/net/tcp{,6}),
// looked for while a program runs, each exposed and linked.

/** Ports below this are left alone: a playground program's web server uses a high port. */
const FIRST_PORT = 1024;
/** How often a running program's listening ports are looked for. */
const PORT_POLL_MS = 1000;

/** The listening ports in the text of `/proc/net/tcp` and `/proc/net/tcp6`, ascending. Each
 * line is `sl local_address rem_address st …`; `local_address` ends in `:PORT` (hex) and state
 * `0A` is LISTEN. */
export function listeningPorts(procNetTcp) {
  const ports = new Set();
  for (const line of procNetTcp.split("\n")) {
    const [, local, , state] = line.trim().split(/\s+/);
    if (state !== "0A" || !local?.includes(":")) continue;
    const port = parseInt(local.slice(local.lastIndexOf(":") + 1), 16);
    if (port >= FIRST_PORT) ports.add(port);
  }
  return [...ports].sort((a, b) => a - b);
}

/** While `running()`, every PORT_POLL_MS, finds the ports the sandbox's programs listen on,
 * exposes them (each once: `exposed` maps port → URL for this sandbox), and calls
 * `show([{ port, url }])` with the open ones on every look. */
export async function watchPorts(sandbox, { exposed, running, show }) {
  for (;;) {
    // The first look waits too: a program that ends by then (most runs) costs no look at all,
    // and none competes with the program's start.
    await new Promise((r) => setTimeout(r, PORT_POLL_MS));
    if (!running()) return;
    try {
      const { stdout } = await sandbox.exec(["cat", "/proc/net/tcp", "/proc/net/tcp6"], { timeoutMs: 10_000 });
      const open = [];
      for (const port of listeningPorts(stdout)) {
        if (!running()) return;
        // A port already exposed costs nothing again.
        let url = exposed.get(port);
        if (!url) {
          url = await sandbox.exposePort(port, { protocol: "HTTP", public: true });
          if (url) exposed.set(port, url);
        }
        if (url) open.push({ port, url });
      }
      if (running()) show(open);
    } catch {
      // A failed look is retried on the next tick; the program's own output is what matters.
    }
  }
}
