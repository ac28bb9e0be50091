// Browser (and bundler) entry: fetches and instantiates the module once, at import.
import init from "./flankbox.js";

await init({ module_or_path: new URL("./flankbox_bg.wasm", import.meta.url) });

export * from "./flankbox.js";
export { ApiClient, ApiClientInMemoryContextProvider, NorthflankApiCallError } from "./compat.js";
export { default as init } from "./flankbox.js";
