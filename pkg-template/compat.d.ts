import type { Port } from "./flankbox.js";

/** Thrown on HTTP errors when the client was made with `throwErrorOnHttpErrorCode: true`. */
export class NorthflankApiCallError extends Error {
  status: number;
  id?: string;
  details?: unknown;
}

export interface ApiContext { name: string; token: string; host?: string }

/** Keeps named contexts in memory, like @northflank/js-client's provider. */
export class ApiClientInMemoryContextProvider {
  addContext(context: ApiContext): Promise<void>;
  removeContext(name: string): Promise<void>;
  useContext(name: string): Promise<void>;
  getCurrentContext(): ApiContext | undefined;
}

export interface ApiCallArgs { parameters: { projectId: string; teamId?: string; serviceId?: string; volumeId?: string }; data?: any; options?: Record<string, string | number | boolean> }
/** As with the SDK, `data` is typed as present; it is `undefined` when `error` is set. */
export interface ApiCallResult<T = any> { data: T; error?: { status: number; message: string; id?: string; details?: unknown }; pagination?: { hasNextPage: boolean; cursor?: string; count: number } }
type Call<T = any> = (args: ApiCallArgs) => Promise<ApiCallResult<T>>;

export interface DataEmitter { on(event: "data", fn: (chunk: Uint8Array & { toString(): string }) => void): this; on(event: "end", fn: () => void): this; off(event: string, fn: (...a: any[]) => void): this; once(event: string, fn: (...a: any[]) => void): this }
/** How a command ended, as the SDK reports it. */
export interface CommandResult { exitCode: number; status: "Success" | "Failure" | "Unknown" }
export interface ExecSession {
  stdOut: DataEmitter;
  stdErr: DataEmitter;
  stdIn: { write(data: string | Uint8Array): Promise<void>; end(): void };
  resize(cols: number, rows: number): void;
  kill(): void;
  waitForCommandResult(): Promise<CommandResult>;
}
export interface ExecOptions { command?: string | string[]; shell?: string; tty?: boolean; ttyColumns?: number; ttyRows?: number }
type ServiceParams = { projectId: string; teamId?: string; serviceId: string };

/** A client shaped like @northflank/js-client's ApiClient, for the calls sandboxes use. */
export class ApiClient {
  constructor(contextProvider: ApiClientInMemoryContextProvider, options?: { throwErrorOnHttpErrorCode?: boolean });
  create: { service: { deployment: Call }; volume: Call };
  get: { service: Call & { ports: Call<{ ports: Port[] }>; containers: Call }; volume: Call };
  list: { services: Call; volumes: Call };
  scale: { service: Call };
  pause: { service: Call };
  resume: { service: Call };
  restart: { service: Call };
  update: { service: { ports: Call }; volume: Call };
  delete: { service: Call; volume: Call };
  attach: { volume: Call };
  detach: { volume: Call };
  exec: {
    execServiceSession(parameters: ServiceParams, options?: ExecOptions): Promise<ExecSession>;
    execServiceCommand(parameters: ServiceParams, options?: ExecOptions): Promise<{ commandResult: CommandResult; stdOut: string; stdErr: string }>;
  };
}
