// Node entry: reads the module from disk synchronously. Node 20 has no global WebSocket
// without a flag; the `ws` package stands in for it there.
import { readFileSync } from "node:fs";
import { initSync } from "./flankbox.js";

initSync({ module: readFileSync(new URL("./flankbox_bg.wasm", import.meta.url)) });

if (typeof globalThis.WebSocket === "undefined") {
  const { WebSocket } = await import("ws");
  globalThis.WebSocket = WebSocket;
}

export * from "./flankbox.js";
export { ApiClient, ApiClientInMemoryContextProvider, NorthflankApiCallError } from "./compat.js";
// Already initialised here; exported so every entry has the shape index.d.ts declares.
export { default as init } from "./flankbox.js";
