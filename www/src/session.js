// A playground's sandbox: made on demand through its connection, held on the host's edge proxy
// while the page lives, destroyed when the page goes away (unless a program runs: a reload takes
// it over, see `adopt`) or after an idle spell. The client
// (a chunk with its wasm) is imported by the first `ensure`, never before.
import { connect } from "./connect.js";

/** A sandbox nobody ran anything in for this long is destroyed (and made again on demand). */
const IDLE_MS = 10 * 60_000;

/** `bytes` random bytes in hex (crypto.randomUUID needs a secure context; this does not). */
function randomHex(bytes) {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Deletes sandbox `id` (its volumes too) through the client, with `capability` in capability
 * mode. No await comes before the request: on pagehide there is no later, and `keepalive` lets
 * it outlive the page. */
function deleteSandbox(Sandbox, nf, id, capability, keepalive) {
  const handle = Sandbox.forService(nf, id, capability ? { capability } : undefined);
  return handle.destroy({ deleteVolume: true, keepalive }).catch(() => {});
}

export class SandboxSession {
  #api;
  #onStatus;
  #onSandbox;
  #onIdle;
  #mark;
  #sandbox; // Promise<Sandbox>
  #generation = 0; // counts destroys: a create that started before one is stale
  #connection; // Promise<{ nf, ... }>
  #info; // the resolved connection, for a destroy that cannot wait
  #sandboxId;
  #capability; // the edge proxy's capability for the sandbox, in capability mode
  #reported; // the sandbox id last handed to onSandbox
  #client; // the client's module, once imported: a destroy cannot wait for it
  #hold; // the WebSocket that keeps the sandbox alive on the host's edge proxy (see #create)
  #held; // the sandbox id a hold was opened for (and not refused): the proxy ends it if we go
  #idleTimer;
  /** Port → URL, for the current sandbox's exposed ports. */
  exposed = new Map();

  /** `api`: the host whose playground config to use. `onStatus(step, detail)` reports progress,
   * `onSandbox(id)` the sandbox's name once known (undefined once destroyed), and `onIdle()`
   * an idle spell's end; `mark(step)` marks a Run's step (timing.js, kept out of this chunk). */
  constructor({ api, onStatus, onSandbox, onIdle, mark }) {
    this.#api = api;
    this.#onStatus = onStatus;
    this.#onSandbox = onSandbox;
    this.#onIdle = onIdle;
    this.#mark = mark;
  }

  #connect() {
    this.#connection ??= connect(this.#api).then((c) => (this.#info = c));
    return this.#connection;
  }

  /** The sandbox, made once (and again after a destroy). */
  ensure() {
    this.touch();
    if (this.#sandbox) return this.#sandbox;
    const made = this.#create(this.#generation);
    this.#sandbox = made;
    made.catch((e) => {
      if (this.#sandbox !== made) return;
      this.#sandbox = undefined;
      this.#onStatus("error", e.message);
    });
    return made;
  }

  /** Takes over sandbox `id`, made by an earlier page of this tab (a reload), with the edge
   * proxy's `capability`: holds it again at once (the proxy deletes it a grace after its last
   * hold closed) and resolves to its handle. */
  adopt(id, capability) {
    this.touch();
    const generation = this.#generation;
    const adopted = this.#connect().then(async ({ nf }) => {
      const { Sandbox } = (this.#client = await import("flankbox"));
      if (generation !== this.#generation) throw new Error("the sandbox was destroyed while it was being taken over");
      this.#own(id, capability, generation, true);
      return Sandbox.forService(nf, id, { capability });
    });
    this.#sandbox = adopted;
    adopted.catch(() => this.#sandbox === adopted && (this.#sandbox = undefined));
    return adopted;
  }

  /** `{ sandboxId, capability }` while the edge proxy holds the sandbox for this page, so that a
   * page that takes over within the hold's grace (a reload) can `adopt` it; else undefined
   * (token mode, or another edge proxy: nothing would end a sandbox left behind but its
   * lifetime). */
  get handover() {
    const id = this.#sandboxId;
    return id && this.#held === id ? { sandboxId: id, capability: this.#capability } : undefined;
  }

  /** Restarts the idle countdown. */
  touch() {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => this.#onIdle(), IDLE_MS);
  }

  // A page that goes away must not leave its sandbox behind, also mid-create. `destroy` (on
  // pagehide, with keepalive) deletes whatever id it knows by then:
  // - token mode: the page names the sandbox, so the id is known before the create is sent
  //   (a DELETE that overtakes the create on the API's side finds nothing; the lifetime ends it);
  // - capability mode: the edge proxy names it, and the create's answer carries the name and
  //   the capability. `onProgress` hands them over as soon as that answer is in ("starting"),
  //   not when the sandbox is ready, so a page closed while it starts destroys it.
  // A browser may skip pagehide or drop its requests, and a page closed while its create is in
  // flight never reads the answer. So in capability mode the create also asks the host's edge
  // proxy to hold the sandbox (a `flankbox-hold` tag), and the page holds it with a WebSocket
  // from the moment it knows the name. The proxy deletes the sandbox 15 s after the last
  // hold closes (a browser closes a gone page's sockets whatever its scripts did; a reload's
  // page holds it again within that grace and `adopt`s it, see playground.js), when no
  // page came to hold it within seconds of its create (an answer never read), and at once when
  // it could not deliver the create's answer (crates/host/src/api/edge.rs). Another edge proxy
  // ignores the tag; there the lifetime is the backstop.
  async #create(generation) {
    const [{ nf, ttlSeconds, mode }, client] = await Promise.all([this.#connect(), import("flankbox")]);
    const { Sandbox } = (this.#client = client);
    this.#mark("client");
    const stale = () => generation !== this.#generation;
    if (stale()) throw new Error("the sandbox was destroyed while it was being made");
    this.#onStatus("creating");
    const name = mode === "token" ? `playground-${randomHex(6)}` : undefined;
    this.#sandboxId = name;
    const created = (id, capability) => {
      if (this.#reported === id && this.#capability === capability) return; // known already
      // Destroyed (idle, or the element removed) before the answer came: delete it now.
      if (stale()) return void deleteSandbox(Sandbox, nf, id, capability, true);
      this.#own(id, capability, generation);
    };
    const sandbox = await Sandbox.create(nf, {
      name,
      image: "ubuntu:22.04",
      plan: "nf-compute-100-1",
      ttlSeconds,
      tags: mode === "token" ? ["playground"] : ["playground", "flankbox-hold"],
      onProgress: (p) => {
        if (p.id) created(p.id, p.capability);
        if (p.step !== "ready" && !stale()) this.#onStatus(p.step === "creating" ? "creating" : "starting", p.status ?? "");
      },
    });
    if (stale()) {
      sandbox.destroy().catch(() => {});
      throw new Error("the sandbox was destroyed while it was being made");
    }
    created(sandbox.id, sandbox.capability);
    this.#onStatus("ready");
    return sandbox;
  }

  /** Makes sandbox `id` this page's: known, reported, and held with its `capability` (in
   * capability mode; `held`: an earlier page of this tab held it). */
  #own(id, capability, generation, held = false) {
    this.#sandboxId = this.#reported = id;
    this.#capability = capability;
    this.#onSandbox(id);
    if (capability) this.#holdOpen(id, capability, generation, held);
  }

  /** Holds the sandbox on the edge proxy while this page lives (see #create); reopened every
   * second while it is down and the sandbox is still this page's (a network drop: the proxy
   * keeps the sandbox for its grace, crates/host/src/api/edge/hold.rs). `held`: an earlier
   * page held it (a reload), so a first try that fails is worth another. */
  #holdOpen(id, capability, generation, held = false) {
    const url = new URL(`${this.#info.base}/hold/${encodeURIComponent(id)}`);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(url);
    ws.onopen = () => {
      this.#held = id;
      ws.send(capability);
    };
    ws.onclose = (e) => {
      if (this.#hold !== ws) return;
      this.#hold = undefined;
      // Refused (not this sandbox's capability, or it is gone): nothing to hold.
      if (e.code === 1008) return void (this.#held = undefined);
      // Never held (another edge proxy has no such route): nothing to hold either.
      if (this.#held !== id && !held) return;
      setTimeout(() => generation === this.#generation && this.#sandboxId === id && this.#holdOpen(id, capability, generation, true), 1000);
    };
    this.#hold = ws;
  }

  /** Destroys the sandbox, also one still being made. With `keepalive`, the request outlives
   * the page. */
  async destroy({ keepalive = false } = {}) {
    const id = this.#sandboxId;
    const capability = this.#capability;
    const hold = this.#hold;
    this.#generation++;
    clearTimeout(this.#idleTimer);
    this.#hold = undefined;
    this.#held = undefined;
    this.#sandbox = undefined;
    this.#sandboxId = undefined;
    this.#capability = undefined;
    this.#reported = undefined;
    this.#onSandbox(undefined);
    this.exposed.clear();
    const client = this.#client;
    const deleted = id && this.#info && client ? deleteSandbox(client.Sandbox, this.#info.nf, id, capability, keepalive) : undefined;
    // Let go of the hold only once the DELETE is on its way (it would end the sandbox anyway).
    hold?.close();
    await deleted;
  }
}
