// flankbox/edge: the edge proxy for Cloudflare Workers. It holds the Northflank token, and
// browsers reach their sandboxes with capabilities it issues. Every decision (capabilities,
// policy, rewriting, the exec relay's limits and closes) is made by the Rust core (EdgeCore,
// WebAssembly); this file moves bytes.
//
//   import { createEdgeProxy } from "flankbox/edge";
//   const proxy = createEdgeProxy({ token, projectId, secret, policy });
//   export default { fetch: proxy.fetch, scheduled: proxy.scheduled };
import { initSync, EdgeCore } from "./edge/flankbox_edge.js";
import wasmModule from "./edge/flankbox_edge_bg.wasm";

initSync({ module: wasmModule });

const NORTHFLANK = "https://api.northflank.com";
const JSON_HEADERS = { "Content-Type": "application/json" };

function randomNonce() {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return Array.from(bytes, (b) => alphabet[b % 36]).join("");
}

/** A refusal from the core (`{ status, body }`) as a Response. */
function refusal(e, headers = []) {
  if (e && typeof e.status === "number" && typeof e.body === "string") {
    return new Response(e.body, { status: e.status, headers: [...headers, ["Content-Type", "application/json"]] });
  }
  throw e;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

/**
 * Builds the proxy. Options: `token`, `projectId`, `teamId?`, `secret` (≥ 32 bytes; rotating it
 * invalidates every capability), `policy?` (see the README), `upstream?` (default Northflank),
 * `basePath?` (a path prefix the proxy is mounted under, e.g. "/api").
 * Returns `{ fetch(request, env, ctx), scheduled(event, env, ctx) }`.
 */
export function createEdgeProxy(options) {
  const { token, projectId, teamId, secret, policy = {}, basePath = "" } = options;
  const core = new EdgeCore(secret ?? "", token ?? "", projectId ?? "", teamId ?? undefined, JSON.stringify(policy));
  const upstream = (options.upstream ?? NORTHFLANK).replace(/\/+$/, "");
  const io = {
    async call(method, path, body) {
      const headers = { Authorization: `Bearer ${token}`, ...(body != null ? JSON_HEADERS : {}) };
      const res = await fetch(upstream + path, { method, headers, body: body ?? undefined });
      return { status: res.status, body: await res.text() };
    },
    nonce: randomNonce,
  };

  async function exec(request, path, origin, ownOrigin, ctx) {
    let grant;
    try {
      grant = core.openExec(path, origin ?? undefined, ownOrigin);
    } catch (e) {
      return refusal(e);
    }
    // The upstream socket is opened at once, in parallel with the browser's init: it carries
    // nothing until the init has been checked, and is closed if it is refused.
    const upstreamOpening = fetch(upstream + grant.upstreamPath, { headers: { Upgrade: "websocket" } }).catch(() => ({ status: 502 }));
    const [client, server] = Object.values(new WebSocketPair());
    server.accept();
    let upstreamSocket;
    let state = "init"; // → "connecting" → "open" once upstream answers, → "closed"
    const early = [];
    let idle;
    // How the session ends is the core's call ({ frame?, code, reason }); this only does it.
    const end = ({ frame, code, reason }) => {
      if (state === "closed") return;
      state = "closed";
      clearTimeout(idle);
      try { if (frame) server.send(frame); } catch {}
      try { server.close(code, reason); } catch {}
      try { upstreamSocket?.close(code, reason); } catch {}
    };
    const touch = () => {
      clearTimeout(idle);
      idle = setTimeout(() => end(core.execIdle()), core.execIdleTimeoutMs);
    };
    touch();
    server.addEventListener("message", async (event) => {
      touch();
      const size = typeof event.data === "string" ? new TextEncoder().encode(event.data).length : event.data.byteLength;
      const tooLarge = core.execMessage(size);
      if (tooLarge) return end(tooLarge);
      if (state === "open") return upstreamSocket.send(event.data);
      if (state !== "init") return early.push(event.data);
      state = "connecting";
      const text = typeof event.data === "string" ? event.data : new TextDecoder().decode(event.data);
      let init;
      try {
        init = await core.execInit(grant, text, origin ?? undefined, nowSeconds(), io);
      } catch (refused) {
        upstreamOpening.then((res) => res.webSocket && (res.webSocket.accept(), res.webSocket.close(1000)));
        return end(refused);
      }
      const res = await upstreamOpening;
      if (!res.webSocket) return end(core.execUpstreamFailed(res.status));
      upstreamSocket = res.webSocket;
      upstreamSocket.accept();
      upstreamSocket.addEventListener("message", (e) => {
        touch();
        try { server.send(e.data); } catch {}
      });
      upstreamSocket.addEventListener("close", (e) => end(core.execClosed(e.code, e.reason)));
      upstreamSocket.addEventListener("error", () => end(core.execLost("upstream")));
      upstreamSocket.send(init);
      if (state === "closed") return upstreamSocket.close(1000);
      state = "open";
      for (const data of early.splice(0)) upstreamSocket.send(data);
    });
    server.addEventListener("close", (e) => end(core.execClosed(e.code, e.reason)));
    server.addEventListener("error", () => end(core.execLost("client")));
    ctx?.waitUntil?.(new Promise((resolve) => server.addEventListener("close", resolve)));
    return new Response(null, { status: 101, webSocket: client });
  }

  return {
    async fetch(request, env, ctx) {
      const url = new URL(request.url);
      if (!url.pathname.startsWith(`${basePath}/v1/`)) {
        const body = JSON.stringify({ error: { status: 404, message: `the edge proxy has no route ${url.pathname}`, details: { code: "NOT_FOUND" } } });
        return new Response(body, { status: 404, headers: JSON_HEADERS });
      }
      const path = url.pathname.slice(basePath.length);
      const origin = request.headers.get("Origin");
      if (request.headers.get("Upgrade")?.toLowerCase() === "websocket") return exec(request, path, origin, url.origin, ctx);
      const hasBody = !["GET", "HEAD", "DELETE", "OPTIONS"].includes(request.method);
      const answer = await core.handle(
        {
          method: request.method,
          path,
          query: url.search.slice(1),
          authorization: request.headers.get("Authorization") ?? undefined,
          origin: origin ?? undefined,
          ownOrigin: url.origin,
          // Cloudflare sets it on every request; elsewhere (local workerd) all share one bucket.
          client: request.headers.get("CF-Connecting-IP") ?? "unknown",
          body: hasBody ? await request.text() : "",
          now: nowSeconds(),
        },
        io,
      );
      return new Response(answer.status === 204 ? null : answer.body, { status: answer.status, headers: answer.headers });
    },
    async scheduled(event, env, ctx) {
      const swept = core.sweep(nowSeconds(), io);
      ctx?.waitUntil?.(swept);
      await swept;
    },
  };
}
