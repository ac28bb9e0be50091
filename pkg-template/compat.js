// The compat layer: `ApiClient` and `ApiClientInMemoryContextProvider`, shaped like
// @northflank/js-client for every call the sandbox guide makes, over the wasm client. The
// guide's code runs in a browser or a Worker with only its import line changed.
import { Northflank, Sandbox } from "./flankbox.js";

const DEFAULT_HOST = "https://api.northflank.com";

/** Thrown on HTTP errors when the client was made with `throwErrorOnHttpErrorCode: true`. */
export class NorthflankApiCallError extends Error {
  constructor({ status, message, id, details }) {
    super(message);
    this.name = "NorthflankApiCallError";
    this.status = status;
    this.id = id;
    this.details = details;
  }
}

/** Keeps named contexts (`{ name, token, host? }`) in memory, like the SDK's provider. */
export class ApiClientInMemoryContextProvider {
  #contexts = new Map();
  #current;

  async addContext(context) {
    if (!context?.name || !context?.token) throw new TypeError("a context needs a name and a token");
    this.#contexts.set(context.name, { ...context, host: context.host ?? DEFAULT_HOST });
    this.#current ??= context.name;
  }

  async removeContext(name) {
    this.#contexts.delete(name);
    if (this.#current === name) this.#current = this.#contexts.keys().next().value;
  }

  async useContext(name) {
    if (!this.#contexts.has(name)) throw new Error(`No context named ${name}`);
    this.#current = name;
  }

  getCurrentContext() {
    return this.#contexts.get(this.#current);
  }
}

/** A byte chunk that prints as UTF-8 text, as a Node Buffer does (`data.toString()`). */
class Chunk extends Uint8Array {
  toString(encoding) {
    if (encoding && encoding !== "utf8" && encoding !== "utf-8") return super.toString();
    return new TextDecoder().decode(this);
  }
}

/** The smallest event emitter the guide needs: `on('data')`, `once`, `off`. Like a Node
 * stream, it starts flowing when the first `data` listener comes, so nothing is emitted into
 * the void between `execServiceSession` resolving and the caller's `.on('data')`. */
class Emitter {
  #listeners = new Map();
  #start;
  constructor(start) {
    this.#start = start;
  }
  on(event, fn) {
    if (!this.#listeners.has(event)) this.#listeners.set(event, []);
    this.#listeners.get(event).push(fn);
    if (event === "data") this.flow();
    return this;
  }
  /** Starts reading (once). */
  flow() {
    const start = this.#start;
    this.#start = undefined;
    return start?.(this);
  }
  once(event, fn) {
    const wrapped = (...args) => {
      this.off(event, wrapped);
      fn(...args);
    };
    return this.on(event, wrapped);
  }
  off(event, fn) {
    const list = this.#listeners.get(event) ?? [];
    const i = list.indexOf(fn);
    if (i >= 0) list.splice(i, 1);
    return this;
  }
  emit(event, ...args) {
    for (const fn of [...(this.#listeners.get(event) ?? [])]) fn(...args);
  }
}

/** Reads a byte stream into an emitter as `data` events, then `end`. */
async function pump(stream, emitter) {
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    emitter.emit("data", new Chunk(value.buffer, value.byteOffset, value.byteLength));
  }
  emitter.emit("end");
}

function query(options) {
  const entries = Object.entries(options ?? {}).filter(([, v]) => v !== undefined);
  return entries.length ? "?" + entries.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&") : "";
}

/** A client shaped like `@northflank/js-client`'s `ApiClient`. */
export class ApiClient {
  #provider;
  #throw;

  constructor(contextProvider, options = {}) {
    this.#provider = contextProvider;
    this.#throw = Boolean(options.throwErrorOnHttpErrorCode);
    const call = (method, rest, { withBody = false } = {}) => (args = {}) => this.#call(method, rest, args, withBody);
    const svc = (tail = "") => (p) => `/services/${encodeURIComponent(p.serviceId)}${tail}`;
    const vol = (tail = "") => (p) => `/volumes/${encodeURIComponent(p.volumeId)}${tail}`;
    this.create = {
      service: { deployment: call("POST", () => "/services/deployment", { withBody: true }) },
      volume: call("POST", () => "/volumes", { withBody: true }),
    };
    this.get = {
      service: Object.assign(call("GET", svc()), {
        ports: call("GET", svc("/ports")),
        containers: call("GET", svc("/containers")),
      }),
      volume: call("GET", vol()),
    };
    this.list = { services: call("GET", () => "/services"), volumes: call("GET", () => "/volumes") };
    this.scale = { service: call("POST", svc("/scale"), { withBody: true }) };
    this.pause = { service: call("POST", svc("/pause")) };
    this.resume = { service: call("POST", svc("/resume"), { withBody: true }) };
    this.restart = { service: call("POST", svc("/restart")) };
    this.update = { service: { ports: call("POST", svc("/ports"), { withBody: true }) }, volume: call("POST", vol(), { withBody: true }) };
    this.delete = { service: call("DELETE", svc()), volume: call("DELETE", vol()) };
    this.attach = { volume: call("POST", vol("/attach"), { withBody: true }) };
    this.detach = { volume: call("POST", vol("/detach"), { withBody: true }) };
    this.exec = {
      execServiceSession: (parameters, options = {}) => this.#session(parameters, options),
      execServiceCommand: (parameters, options = {}) => this.#command(parameters, options),
    };
  }

  #client(parameters) {
    const context = this.#provider.getCurrentContext();
    if (!context) throw new Error("No context: call contextProvider.addContext first");
    return new Northflank({ token: context.token, baseUrl: context.host, projectId: parameters.projectId, teamId: parameters.teamId });
  }

  async #call(method, rest, { parameters = {}, data, options } = {}, withBody) {
    const client = this.#client(parameters);
    const team = parameters.teamId ? `/teams/${encodeURIComponent(parameters.teamId)}` : "";
    const path = `/v1${team}/projects/${encodeURIComponent(parameters.projectId)}${rest(parameters)}${query(options)}`;
    try {
      const envelope = await client.call(method, path, withBody ? (data ?? {}) : undefined);
      return { data: envelope.data, pagination: envelope.pagination, error: undefined };
    } catch (e) {
      if (e.status === undefined) throw e; // network, timeout, abort: the SDK throws these too
      const error = { status: e.status, message: e.message, id: e.id, details: e.details };
      if (this.#throw) throw new NorthflankApiCallError(error);
      return { data: undefined, error };
    }
  }

  // A session like the SDK's: `stdOut`/`stdErr` emit `data`, `waitForCommandResult()` resolves
  // to `{ exitCode, status }` once the command ended and its output was delivered.
  async #session(parameters, { command, shell, tty, ttyColumns, ttyRows } = {}) {
    const sandbox = Sandbox.forService(this.#client(parameters), parameters.serviceId);
    // The SDK runs a command without a shell unless one is named.
    const process = await sandbox.spawn(command, { shell: shell ?? "none", tty, cols: ttyColumns, rows: ttyRows });
    let pumps = [];
    const stdOut = new Emitter((e) => (pumps[0] = pump(process.stdout, e)));
    const stdErr = new Emitter((e) => (pumps[1] = pump(process.stderr, e)));
    let result;
    return {
      stdOut,
      stdErr,
      stdIn: {
        write: (data) => process.write(data),
        end: () => process.closeStdin(),
      },
      resize: (cols, rows) => process.resize(cols, rows),
      kill: () => process.kill(),
      async waitForCommandResult() {
        result ??= process.wait().then(async ({ exitCode, status }) => {
          // Output still on its way is delivered before the result, as the SDK does.
          stdOut.flow();
          stdErr.flow();
          await Promise.all(pumps);
          return { exitCode, status };
        });
        return result;
      },
    };
  }

  // The SDK's one-shot helper: `{ commandResult, stdOut, stdErr }` with the output as text.
  async #command(parameters, options = {}) {
    const session = await this.#session(parameters, { ...options, shell: options.shell ?? "none" });
    // One streaming decoder per stream: a character split across two chunks stays whole.
    const [outText, errText] = [new TextDecoder(), new TextDecoder()];
    let stdOut = "";
    let stdErr = "";
    session.stdOut.on("data", (d) => (stdOut += outText.decode(d, { stream: true })));
    session.stdErr.on("data", (d) => (stdErr += errText.decode(d, { stream: true })));
    const commandResult = await session.waitForCommandResult();
    stdOut += outText.decode();
    stdErr += errText.decode();
    return { commandResult, stdOut, stdErr };
  }
}
