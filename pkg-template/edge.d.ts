/** The edge proxy's policy; every field is optional and defaults to the locked-down value. */
export interface EdgePolicy {
  /** Images a sandbox may run (default `["ubuntu:22.04"]`). */
  images?: string[];
  /** Deployment plans (default `["nf-compute-20", "nf-compute-100-1", "nf-compute-200"]`). */
  plans?: string[];
  /** Longest lifetime of a sandbox and its capability, seconds (default 1800). */
  maxTtlSeconds?: number;
  /** Live sandboxes per client IP (default 2). */
  maxSandboxesPerClient?: number;
  /** Whether ports may be public (default false). */
  allowPublicPorts?: boolean;
  /** Whether GPUs may be asked for (default false). */
  allowGpu?: boolean;
  /** Largest volume a sandbox may be created with, MB; 0 allows none (default 0). A client holds
   * as many live volumes as sandboxes; a volume goes with its sandbox. */
  maxVolumeMb?: number;
  /** Most ephemeral storage a sandbox may ask for, MB (default 4096). */
  maxEphemeralMb?: number;
  /** Origins allowed to call; `"*"` for any (default: only the proxy's own origin). */
  allowedOrigins?: string[];
  /** Bind each capability to the origin of the page that created the sandbox (default true). */
  bindOrigin?: boolean;
  /** Operations a capability grants (default all). */
  operations?: Array<"status" | "exec" | "pause" | "resume" | "destroy" | "ports" | "logs">;
  /** Exec limits. */
  exec?: { maxFrameBytes?: number; idleTimeoutSeconds?: number; allowTty?: boolean; users?: string[] };
}

export interface EdgeProxyOptions {
  /** The Northflank API token; it never leaves the Worker. */
  token: string;
  projectId: string;
  teamId?: string;
  /** HMAC key for capabilities, at least 32 bytes. Rotating it invalidates every capability. */
  secret: string;
  policy?: EdgePolicy;
  /** The API to forward to (default `https://api.northflank.com`). */
  upstream?: string;
  /** A path prefix the proxy is mounted under. */
  basePath?: string;
}

export interface EdgeProxy {
  /** A Worker's fetch handler. */
  fetch(request: Request, env?: unknown, ctx?: { waitUntil(p: Promise<unknown>): void }): Promise<Response>;
  /** A Worker's scheduled handler: destroys expired sandboxes. */
  scheduled(event?: unknown, env?: unknown, ctx?: { waitUntil(p: Promise<unknown>): void }): Promise<void>;
}

/** What the proxy throws (a bad configuration) or rejects with (an upstream failure in
 * `scheduled`). */
export interface FlankboxEdgeError extends Error {
  name: "FlankboxEdgeError";
  /** e.g. "CONFIG" for a bad configuration. */
  code: string;
  /** The HTTP status the proxy answers such a refusal with. */
  status: number;
  /** The Northflank-shaped error body: `{ error: { status, message, ... } }`. */
  details?: unknown;
}

/** Builds the edge proxy; throws a `FlankboxEdgeError` (code "CONFIG") on a bad configuration,
 * e.g. a secret shorter than 32 bytes. */
export function createEdgeProxy(options: EdgeProxyOptions): EdgeProxy;
