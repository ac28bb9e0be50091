// "Open preview": which TCP ports a sandbox's programs listen on, read from /proc/net/tcp{,6}.

/** Ports below this are left alone: a playground program's web server uses a high port. */
const FIRST_PORT = 1024;

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
