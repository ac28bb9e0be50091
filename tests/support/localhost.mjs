// Reaching a sandbox's exposed port from Node as a browser would.
//
// A public port's name is `{port}--{service}--{project}.localhost:{hostPort}`. Browsers resolve
// every `*.localhost` name to loopback by themselves (RFC 6761 §6.3); Node asks the system
// resolver, which here knows only `localhost`. These helpers resolve such names the browsers'
// way and leave every other name to the system.
import http from "node:http";
import dns from "node:dns";
import WebSocket from "ws";

/** A `lookup` for node:http and ws that sends `*.localhost` to 127.0.0.1. */
export function lookup(hostname, options, callback) {
  if (typeof options === "function") [options, callback] = [{}, options];
  if (hostname === "localhost" || hostname.endsWith(".localhost")) {
    if (options.all) callback(null, [{ address: "127.0.0.1", family: 4 }]);
    else callback(null, "127.0.0.1", 4);
    return;
  }
  dns.lookup(hostname, options, callback);
}

/** `GET url` (or another method with `body`); resolves to `{ status, headers, body }`. */
export function request(url, { method = "GET", body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, lookup, agent: false }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** `GET url` until the server inside the sandbox answers something other than 502. */
export async function requestWhenUp(url, { timeoutMs = 20_000 } = {}) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const res = await request(url);
    if (res.status !== 502 || performance.now() > deadline) return res;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Opens a WebSocket to `url`; resolves once it is open. */
export function openWebSocket(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { lookup });
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

/** Sends `message` and resolves to the next message received, as a string or a Buffer. */
export function roundTrip(ws, message) {
  return new Promise((resolve, reject) => {
    ws.once("message", (data, isBinary) => resolve(isBinary ? Buffer.from(data) : data.toString()));
    ws.once("error", reject);
    ws.send(message);
  });
}
