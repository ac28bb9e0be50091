// The `customCommand` that runs tests/fixtures/port-server.py inside a sandbox (HTTP and a
// WebSocket echo on each port). The script travels base64-encoded in the command, since a new
// sandbox holds no files of ours.
import { readFileSync } from "node:fs";

const script = readFileSync(new URL("../fixtures/port-server.py", import.meta.url)).toString("base64");

/** Runs the server on each of `ports` (the last in the foreground). */
export function serveCommand(ports) {
  const servers = ports.map((p) => `python3 /tmp/port-server.py ${p}`).join(" & ");
  return `echo ${script} | base64 -d > /tmp/port-server.py && { ${servers}; }`;
}
