// Node entry: reads the module from disk synchronously. Node 20 has no global WebSocket
// without a flag; the `ws` package stands in for it there. No top-level await, so that
// CommonJS can `require("flankbox")` (Node 20.19+ and 22.12+ load ES modules synchronously).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { initSync } from "./flankbox.js";

initSync({ module: readFileSync(new URL("./flankbox_bg.wasm", import.meta.url)) });

if (typeof globalThis.WebSocket === "undefined") {
  globalThis.WebSocket = createRequire(import.meta.url)("ws");
}

export * from "./flankbox.js";
export { ApiClient, ApiClientInMemoryContextProvider, NorthflankApiCallError } from "./compat.js";
// Already initialised here; exported so every entry has the shape index.d.ts declares.
export { default as init } from "./flankbox.js";
