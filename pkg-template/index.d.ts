export * from "./flankbox.js";
export { ApiClient, ApiClientInMemoryContextProvider, NorthflankApiCallError } from "./compat.js";
export { default as init } from "./flankbox.js";
