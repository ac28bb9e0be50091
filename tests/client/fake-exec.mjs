// The pieces the host-less client benches share: an exec server that sends prepared frames as
// the host would, the packages under test pointed at it, and the figures' arithmetic.
import { WebSocketServer } from "ws";

/** Serves `frames` (JSON strings) to every exec session: `init` once the client's first message
 * comes, then the frames as fast as the socket takes them, then a completion. Resolves to the
 * server once it listens. */
export function serveFrames(frames) {
  const wss = new WebSocketServer({ port: 0 });
  wss.on("connection", (ws) => {
    ws.once("message", () => {
      ws.send(JSON.stringify({ type: "init", data: { auth: "successful", context: { instanceName: "i", containerName: "main" } } }));
      let next = 0;
      const pump = () => {
        while (next < frames.length && ws.bufferedAmount < 4 << 20) ws.send(frames[next++]);
        if (next < frames.length) return setTimeout(pump, 0);
        ws.send(JSON.stringify({ type: "completion", data: { exitCode: 0, status: "Success" } }));
        ws.close(1000);
      };
      pump();
    });
  });
  return new Promise((resolve) => wss.on("listening", () => resolve(wss)));
}

/** A sandbox handle of each package directory in `pkgs`, its API at `base`. */
export async function sandboxesOf(pkgs, base) {
  const handles = [];
  for (const p of pkgs) {
    const m = await import(`${p}/node.js`);
    handles.push(m.Sandbox.forService(new m.Northflank({ token: "t", projectId: "p", baseUrl: base }), "s"));
  }
  return handles;
}

/** The median. */
export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** This process's CPU time so far, ms: wall time suffers from whatever else the machine runs,
 * CPU time much less. */
export const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
