// Test helper, started by the test command next to the host. Two things the host will not do
// on demand: an exec WebSocket that drops mid-command (for the lost-stream test), and a raw
// WebSocket echo/stream (the baseline of the exec benchmarks).
//   /v1/command-exec/...  → init reply, one stdOut frame, then the TCP connection is cut
//   /echo                 → echoes every message
//   /stream?bytes=N       → sends N bytes in 64 KiB text frames, then closes 1000
import { createServer } from "node:http";
import { WebSocketServer } from "ws";

const port = Number(process.argv[2] ?? 7445);
const http = createServer((req, res) => {
  res.writeHead(404, { "content-type": "application/json", "access-control-allow-origin": "*" });
  res.end(JSON.stringify({ error: { status: 404, message: "helper: no REST here" } }));
});
const wss = new WebSocketServer({ server: http, perMessageDeflate: false });
wss.on("connection", (ws, req) => {
  const url = new URL(req.url, "http://x");
  if (url.pathname.startsWith("/v1/command-exec/")) {
    ws.once("message", (m) => {
      const base64 = JSON.parse(m.toString()).data?.context?.encoding === "base64";
      const out = "partial output\n";
      ws.send(JSON.stringify({ type: "init", data: { auth: "successful", context: { instanceName: "helper-0", containerName: "main" } } }));
      ws.send(JSON.stringify({ type: "stdOut", data: base64 ? Buffer.from(out).toString("base64") : out }));
      setTimeout(() => ws._socket.destroy(), 50);
    });
  } else if (url.pathname === "/echo") {
    ws.on("message", (m, binary) => ws.send(m, { binary }));
  } else if (url.pathname === "/stream") {
    // Up to 16 frames in flight: enough to keep the socket busy, bounded memory.
    let left = Number(url.searchParams.get("bytes") ?? 0);
    let inFlight = 0;
    const chunk = "x".repeat(64 * 1024);
    const pumpFrames = () => {
      while (left > 0 && inFlight < 16) {
        const n = Math.min(left, chunk.length);
        left -= n;
        inFlight++;
        ws.send(n === chunk.length ? chunk : chunk.slice(0, n), () => {
          inFlight--;
          if (left > 0) pumpFrames();
          else if (inFlight === 0) ws.close(1000);
        });
      }
    };
    pumpFrames();
  } else {
    ws.close(1008, "unknown path");
  }
});
http.listen(port, "127.0.0.1", () => console.log(`helper listening on ${port}`));
