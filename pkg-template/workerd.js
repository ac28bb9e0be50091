// Cloudflare Workers entry: the module is imported as a compiled WebAssembly.Module.
import { initSync } from "./flankbox.js";
import wasmModule from "./flankbox_bg.wasm";

initSync({ module: wasmModule });

export * from "./flankbox.js";
export { ApiClient, ApiClientInMemoryContextProvider, NorthflankApiCallError } from "./compat.js";
// Already initialised here; exported so every entry has the shape index.d.ts declares.
export { default as init } from "./flankbox.js";
