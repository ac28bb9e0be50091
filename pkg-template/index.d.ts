// The package's types. The option and result interfaces come from the Rust bindings
// (src/wasm/types.rs, through wasm-bindgen's flankbox.d.ts). The classes are declared here
// rather than taken from wasm-bindgen's output, which marks every parameter as required:
// every options object may be left out (the bindings read a missing one as `{}`), a `spawn`
// without a command opens a login shell, and `spawn`'s streams follow its `encoding`.
// tests/types/types.test.mjs checks these against the generated ones, member for member.
import type * as wasm from "./flankbox.js";
import type {
  AttachOptions,
  CallOptions,
  DetachedSpawnOptions,
  ConnectOptions,
  DestroyOptions,
  ExecResult,
  ExitInfo,
  ExposePortOptions,
  FileEntry,
  ForServiceOptions,
  NorthflankOptions,
  Port,
  ProcessInfo,
  Progress,
  SandboxOptions,
  SpawnOptions,
} from "./flankbox.js";

// The classes have `[Symbol.dispose]` (`using sandbox = …` frees the handle, where the runtime
// has `Symbol.dispose`). Declared here as lib.esnext.disposable declares them, so that a project
// whose `lib` is older (ES2022) loads these types; with a newer lib the declarations merge.
declare global {
  interface SymbolConstructor {
    readonly dispose: unique symbol;
    readonly asyncDispose: unique symbol;
  }
}

export * from "./flankbox.js";
export { ApiClient, ApiClientInMemoryContextProvider, NorthflankApiCallError } from "./compat.js";
export { default as init } from "./flankbox.js";

/** Bytes in: a string (sent as UTF-8), a `Uint8Array` or an `ArrayBuffer`. */
export type Bytes = string | Uint8Array | ArrayBuffer;

export interface ExecOptions extends Omit<wasm.ExecOptions, "stdin"> {
  /** Input: a string, bytes, or a `ReadableStream` of them; without it stdin is closed at once. */
  stdin?: Bytes | ReadableStream<Bytes>;
}

/** Where a sandbox stands: `status` is the deployment's (`"UNKNOWN"` when it has none yet). */
export interface SandboxStatus extends Omit<wasm.SandboxStatus, "reason"> {}

/** A file for `uploadDir`: `data` may be text or bytes (none: an empty file). */
export interface FileInput { path: string; data?: Bytes }

/**
 * A Northflank API connection: a token, a project and a base URL.
 */
export declare class Northflank {
  /**
   * `new Northflank({ token, projectId, teamId?, baseUrl? })`; for an edge proxy only
   * `{ baseUrl }`, the proxy's URL.
   */
  constructor(options?: NorthflankOptions);
  free(): void;
  [Symbol.dispose](): void;
  /**
   * One REST call to `path` (below the base URL, e.g. `/v1/projects/p/services`): `GET`,
   * `POST` (with `body` as JSON, or none) or `DELETE`. Resolves to `{ data, pagination? }`;
   * rejects on any status but 200. Reads are retried.
   */
  call(method: string, path: string, body?: unknown, options?: CallOptions): Promise<{ data: any; pagination?: { hasNextPage: boolean; cursor?: string; count: number } }>;
  /** The API base URL. */
  readonly baseUrl: string;
  /** The project. */
  readonly projectId: string;
}

/**
 * A sandbox: one Northflank deployment service.
 */
export declare class Sandbox {
  private constructor();
  free(): void;
  [Symbol.dispose](): void;
  /** A handle on an existing sandbox, checked to exist. */
  static connect(nf: Northflank, id: string, options?: ConnectOptions): Promise<Sandbox>;
  /**
   * Creates a sandbox and resolves once it is ready: creates the volume first when asked,
   * creates the service with one instance, and polls with backoff until it is `COMPLETED`,
   * reporting each step through `onProgress`. Gives up after `timeoutMs` (default 120 s)
   * and then deletes what it made.
   */
  static create(nf: Northflank, options?: SandboxOptions): Promise<Sandbox>;
  /** A handle on a service by id, without any request (for layers built on this one). */
  static forService(nf: Northflank, id: string, options?: ForServiceOptions): Sandbox;
  /** Deletes the sandbox, and with `deleteVolume` its volumes too. */
  destroy(options?: DestroyOptions): Promise<void>;
  /** Downloads every file under `dir`, with paths relative to it. */
  downloadDir(dir: string, options?: CallOptions): Promise<FileEntry[]>;
  /**
   * Runs a command to its end. A string goes to `shell` (default `bash -c`), an array runs as
   * is. Output streams to `onStdout`/`onStderr` as it arrives and is kept up to
   * `outputLimitBytes` per stream (head and tail). A dropped connection rejects with
   * `STREAM_LOST`, never as an exit code.
   */
  exec(cmd: string | string[], options?: ExecOptions): Promise<ExecResult>;
  /**
   * Exposes a port (replacing any with the same number) and resolves to the URL that
   * reaches it: `https://{dns}` on Northflank, `http://{dns}` on a local host, `tcp://…` for
   * TCP. A port that gets no name (private HTTP) resolves to `undefined`.
   */
  exposePort(port: number, options?: ExposePortOptions): Promise<string | undefined>;
  /**
   * A handle of detached process `id`, started by any client: its output replays from `from`
   * (default 0, everything still kept) and goes on live; `wait()` gives its real exit code, even
   * if it ended before. Rejects with `NOT_FOUND` if there is no such process.
   */
  attach(id: string, options?: AttachOptions & { encoding?: "bytes" }): Promise<DetachedProcess<Uint8Array>>;
  attach(id: string, options: AttachOptions & { encoding: "utf8" }): Promise<DetachedProcess<string>>;
  attach(id: string, options?: AttachOptions): Promise<DetachedProcess>;
  /** Pauses: scales to 0 (processes end, ephemeral storage goes, volumes stay) and waits. */
  pause(options?: CallOptions): Promise<void>;
  /** The sandbox's ports. */
  ports(options?: CallOptions): Promise<Port[]>;
  /** Every detached process of the sandbox, whoever started it. */
  processes(options?: CallOptions): Promise<ProcessInfo[]>;
  /** Reads a file, byte for byte. */
  readFile(path: string, options?: CallOptions): Promise<Uint8Array>;
  /** Resumes: scales back to 1 and waits until the fresh sandbox is ready (`onProgress` as in `create`). */
  resume(options?: CallOptions & { onProgress?: (progress: Progress) => void }): Promise<void>;
  /**
   * Starts a process and returns its handle at once, with streams for its output: `Uint8Array`
   * chunks, or strings with `encoding: "utf8"`. Without a command, a login shell. With `tty`,
   * it gets a terminal of `cols` × `rows` (stderr then arrives on stdout). With `detached: true`
   * it outlives every connection: its handle has an `id` for `attach`, and resumes by itself
   * after a dropped connection (within `resumeWithinMs`). A detached process has no terminal.
   */
  spawn(cmd: string | string[] | null | undefined, options: SpawnOptions & DetachedSpawnOptions & { detached: true; encoding: "utf8" }): Promise<DetachedProcess<string>>;
  spawn(cmd: string | string[] | null | undefined, options: SpawnOptions & DetachedSpawnOptions & { detached: true; encoding?: "bytes" }): Promise<DetachedProcess<Uint8Array>>;
  spawn(cmd: string | string[] | null | undefined, options: SpawnOptions & DetachedSpawnOptions & { detached: true }): Promise<DetachedProcess>;
  spawn(cmd?: string | string[] | null, options?: SpawnOptions & DetachedSpawnOptions & { encoding?: "bytes" }): Promise<SandboxProcess<Uint8Array>>;
  spawn(cmd: string | string[] | null | undefined, options: SpawnOptions & DetachedSpawnOptions & { encoding: "utf8" }): Promise<SandboxProcess<string>>;
  spawn(cmd?: string | string[] | null, options?: SpawnOptions & DetachedSpawnOptions): Promise<SandboxProcess>;
  /** Where the sandbox stands. */
  status(options?: CallOptions): Promise<SandboxStatus>;
  /**
   * Uploads files into `dir` as one tar stream: `{ "a.txt": "…", "sub/b.bin": Uint8Array }`
   * or `[{ path, data }]`.
   */
  uploadDir(dir: string, files: Record<string, Bytes> | FileInput[], options?: CallOptions): Promise<void>;
  /** Writes a file (its directory is made), byte for byte. */
  writeFile(path: string, data: Bytes, options?: CallOptions): Promise<void>;
  /**
   * The capability this sandbox is driven with, when it came from an edge proxy: hand it
   * to `Sandbox.connect(nf, id, { capability })` elsewhere. `undefined` with a token.
   */
  readonly capability: string | undefined;
  /** The service id. */
  readonly id: string;
  /** The volume made by `create`, if any. */
  readonly volumeId: string | undefined;
}

/** The handle of a detached process (`spawn(cmd, { detached: true })`, `attach(id)`): its `id` is there. */
export type DetachedProcess<Chunk extends Uint8Array | string = Uint8Array | string> = SandboxProcess<Chunk> & { readonly id: string };

/**
 * A running command: `stdout` and `stderr` are streams of `Uint8Array` (strings with
 * `encoding: "utf8"`); `wait()` resolves to its exit. `kill()` ends the command. A detached
 * process's handle reconnects by itself after a drop and rejects `wait()` with `STREAM_LOST`
 * only when that fails within `resumeWithinMs` or the output to resume from is no longer kept.
 */
export declare class SandboxProcess<Chunk extends Uint8Array | string = Uint8Array | string> {
  private constructor();
  free(): void;
  [Symbol.dispose](): void;
  /** Ends the input (a terminal gets ^D). */
  closeStdin(): void;
  /**
   * Ends the command: the connection closes and the server kills it; a detached process gets
   * SIGKILL (from whichever client holds the handle), and `wait()` then gives its exit.
   * Resolves once that is done or sent.
   */
  kill(): Promise<void>;
  /** Resizes the terminal. */
  resize(cols: number, rows: number): void;
  /** Resolves to the exit when the command ends; rejects with `STREAM_LOST` if the connection drops first. */
  wait(): Promise<ExitInfo>;
  /** Sends input; resolves once it is on its way (waiting while more than 1 MiB is queued). */
  write(data: Bytes): Promise<void>;
  /** Error output, like `stdout` (empty with a terminal). */
  readonly stderr: ReadableStream<Chunk>;
  /** A detached process's id (`undefined` for a process tied to its connection). */
  readonly id: string | undefined;
  /** Output (everything, with a terminal). */
  readonly stdout: ReadableStream<Chunk>;
}
