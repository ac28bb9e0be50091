// <flankbox-playground>: an editor, Run and Stop, live output with stdin, and a terminal, on a
// sandbox of its own. The playground page is one of these, full size; any page can embed more:
//
//   <script type="module" src="…/flankbox/widget.js"></script>
//   <flankbox-playground language="python">print("hi")</flankbox-playground>
import { EditorView, basicSetup } from "codemirror";
import { Compartment } from "@codemirror/state";
import { keymap } from "@codemirror/view";
import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import { Sandbox } from "flankbox";
import xtermCss from "@xterm/xterm/css/xterm.css";
import css from "./style.css";
import { LANGUAGES, DEFAULT_LANGUAGE } from "./languages.js";
import { connect } from "./connect.js";
import { listeningPorts } from "./preview.js";

/** Characters of output kept on screen; past it a marker counts what was dropped. */
const OUTPUT_CAP = 200_000;
/** How often a running program's listening ports are looked for. */
const PORT_POLL_MS = 1000;
/** A sandbox nobody ran anything in for this long is destroyed (and made again on demand). */
const IDLE_MS = 10 * 60_000;

function injectStyles() {
  if (document.getElementById("flankbox-playground-styles")) return;
  const style = document.createElement("style");
  style.id = "flankbox-playground-styles";
  style.textContent = xtermCss + css;
  document.head.append(style);
}

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

/** `bytes` random bytes in hex (crypto.randomUUID needs a secure context; this does not). */
function randomHex(bytes) {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Removes the indentation every line of an element's text shares. */
function dedent(text) {
  const lines = text.replace(/^\n+|\s+$/g, "").split("\n");
  const indent = Math.min(...lines.filter((l) => l.trim()).map((l) => l.match(/^ */)[0].length));
  return lines.map((l) => l.slice(indent)).join("\n") + "\n";
}

export class FlankboxPlayground extends HTMLElement {
  #language = DEFAULT_LANGUAGE;
  #editor;
  #mode = new Compartment();
  #sandbox; // Promise<Sandbox>
  #generation = 0; // counts destroys: a create that started before one is stale
  #connection; // Promise<{ nf, ... }>
  #info; // the resolved connection, for a destroy that cannot wait
  #sandboxId;
  #capability; // the edge proxy's capability for the sandbox, in capability mode
  #hold; // the WebSocket that keeps the sandbox alive on the host's edge proxy (see #create)
  #exposed = new Map(); // port → URL, for the current sandbox
  #proc;
  #writing = Promise.resolve(); // the running program's input, in order: EOF waits for it
  #queue = [];
  #flushScheduled = false;
  #shown = 0;
  #dropped = 0;
  #idleTimer;
  #terminal;
  #listeners = new Set();
  ui = {};

  connectedCallback() {
    if (this.ui.root) return;
    injectStyles();
    const initial = this.hasAttribute("code") ? this.getAttribute("code") : this.textContent.trim() ? dedent(this.textContent) : undefined;
    this.textContent = "";
    this.#language = LANGUAGES[this.getAttribute("language")] ? this.getAttribute("language") : DEFAULT_LANGUAGE;
    this.#build(initial ?? LANGUAGES[this.#language].example);
    this.#setStatus("idle", "Press Run (Ctrl+Enter)");
    if (this.hasAttribute("prepare")) this.#ensureSandbox().catch(() => {});
    addEventListener("pagehide", () => this.destroy({ keepalive: true }));
  }

  disconnectedCallback() {
    this.destroy({ keepalive: true });
  }

  /** The code in the editor. */
  get code() {
    return this.#editor.state.doc.toString();
  }

  set code(text) {
    this.#editor.dispatch({ changes: { from: 0, to: this.#editor.state.doc.length, insert: text } });
  }

  get language() {
    return this.#language;
  }

  set language(id) {
    if (!LANGUAGES[id] || id === this.#language) return;
    this.#language = id;
    this.ui.language.value = id;
    this.#editor.dispatch({ effects: this.#mode.reconfigure(LANGUAGES[id].mode()) });
    this.#changed();
  }

  /** Calls `fn({ language, code })` on every edit or language change. */
  onChange(fn) {
    this.#listeners.add(fn);
  }

  /** The text of the output pane. */
  get output() {
    return this.ui.output.textContent;
  }

  #changed() {
    for (const fn of this.#listeners) fn({ language: this.#language, code: this.code });
  }

  #build(code) {
    const compact = this.getAttribute("layout") !== "page";
    const language = el("select", { className: "fbx-language", title: "Language" });
    for (const [id, l] of Object.entries(LANGUAGES)) language.append(el("option", { value: id, textContent: l.label, selected: id === this.#language }));
    language.addEventListener("change", () => {
      const wasExample = Object.values(LANGUAGES).some((l) => l.example === this.code);
      this.language = language.value;
      if (wasExample) this.code = LANGUAGES[language.value].example;
    });
    const run = el("button", { className: "fbx-run", textContent: "▶ Run", title: "Run (Ctrl+Enter)" });
    const stop = el("button", { className: "fbx-stop", textContent: "■ Stop", disabled: true });
    const status = el("span", { className: "fbx-status", role: "status" });
    const previews = el("span", { className: "fbx-previews" });
    const output = el("pre", { className: "fbx-output", role: "log" });
    const stdinField = el("input", { className: "fbx-stdin-input", placeholder: "stdin: type and press Enter", disabled: true });
    const eof = el("button", { type: "button", className: "fbx-eof", textContent: "EOF", title: "End of input (Ctrl+D)", disabled: true });
    const stdin = el("form", { className: "fbx-stdin" }, stdinField, eof);
    const outTab = el("button", { className: "fbx-tab fbx-tab-output", textContent: "Output", ariaSelected: "true" });
    const termTab = el("button", { className: "fbx-tab fbx-tab-terminal", textContent: "Terminal", ariaSelected: "false" });
    const terminal = el("div", { className: "fbx-terminal", hidden: true });
    const outputPane = el("div", { className: "fbx-output-pane" }, output, stdin);
    const editor = el("div", { className: "fbx-editor" });
    const footer = el("div", { className: "fbx-footer" });
    const root = el(
      "div",
      { className: `fbx ${compact ? "fbx-compact" : "fbx-page"}` },
      el("div", { className: "fbx-toolbar" }, language, run, stop, status, previews),
      el("div", { className: "fbx-main" }, editor, el("div", { className: "fbx-side" }, el("div", { className: "fbx-tabs" }, outTab, termTab), outputPane, terminal)),
      footer,
    );
    this.append(root);
    Object.assign(this.ui, { root, language, run, stop, status, previews, output, stdin, stdinField, eof, outTab, termTab, terminal, outputPane, footer });

    this.#editor = new EditorView({
      doc: code,
      parent: editor,
      extensions: [
        keymap.of([{ key: "Mod-Enter", run: () => (this.run(), true) }]),
        basicSetup,
        this.#mode.of(LANGUAGES[this.#language].mode()),
        EditorView.updateListener.of((u) => u.docChanged && this.#changed()),
      ],
    });
    run.addEventListener("click", () => this.run());
    stop.addEventListener("click", () => this.stop());
    stdin.addEventListener("submit", (e) => {
      e.preventDefault();
      this.sendInput(stdinField.value + "\n");
      stdinField.value = "";
    });
    stdinField.addEventListener("keydown", (e) => {
      if (e.key === "d" && e.ctrlKey) {
        e.preventDefault();
        this.endInput();
      }
    });
    eof.addEventListener("click", () => this.endInput());
    outTab.addEventListener("click", () => this.#showTab("output"));
    termTab.addEventListener("click", () => this.#showTab("terminal"));
    // Warm a sandbox up while the user is still typing.
    editor.addEventListener("focusin", () => this.#ensureSandbox().catch(() => {}), { once: true });
  }

  #setStatus(step, detail = "") {
    this.dataset.status = step;
    this.ui.status.textContent = detail ? `${step}: ${detail}` : step;
  }

  #connect() {
    this.#connection ??= connect(this.getAttribute("api") ?? location.origin).then((c) => (this.#info = c));
    return this.#connection;
  }

  /** The sandbox, made once (and again after an idle timeout). */
  #ensureSandbox() {
    this.#touch();
    if (this.#sandbox) return this.#sandbox;
    const made = this.#create(this.#generation);
    this.#sandbox = made;
    made.catch((e) => {
      if (this.#sandbox !== made) return;
      this.#sandbox = undefined;
      this.#setStatus("error", e.message);
    });
    return made;
  }

  // A page that goes away must not leave its sandbox behind, also mid-create. `destroy` (on
  // pagehide, with keepalive) deletes whatever id it knows by then:
  // - token mode: the page names the sandbox, so the id is known before the create is sent
  //   (a DELETE that overtakes the create on the API's side finds nothing; the lifetime ends it);
  // - capability mode: the edge proxy names it, and the create's answer carries the name and
  //   the capability. `onProgress` hands them over as soon as that answer is in ("starting"),
  //   not when the sandbox is ready, so a page closed while it scales and starts destroys it.
  // A browser may skip pagehide or drop its requests, and a page closed while its create is in
  // flight never reads the answer. So in capability mode the create also asks the host's edge
  // proxy to hold the sandbox (a `flankbox-hold` tag), and the page holds it with a WebSocket
  // from the moment it knows the name. The proxy deletes the sandbox a few seconds after the
  // last hold closes (a browser closes a gone page's sockets whatever its scripts did), when no
  // page came to hold it within seconds of its create (an answer never read), and at once when
  // it could not deliver the create's answer (crates/host/src/api/edge.rs). Another edge proxy
  // ignores the tag; there the lifetime is the backstop.
  async #create(generation) {
    const { nf, ttlSeconds, mode, token } = await this.#connect();
    const stale = () => generation !== this.#generation;
    if (stale()) throw new Error("the sandbox was destroyed while it was being made");
    this.#setStatus("creating");
    const name = mode === "token" ? `playground-${randomHex(6)}` : undefined;
    this.#sandboxId = name;
    const created = (id, capability) => {
      if (this.dataset.sandbox === id && this.#capability === capability) return; // known already
      // Destroyed (idle, or the element removed) before the answer came: delete it now.
      if (stale()) return void this.#delete(id, capability ?? token, true);
      this.#sandboxId = id;
      this.#capability = capability;
      this.dataset.sandbox = id;
      if (capability) this.#holdOpen(id, capability, generation);
    };
    const sandbox = await Sandbox.create(nf, {
      name,
      image: "ubuntu:22.04",
      plan: "nf-compute-100-1",
      ttlSeconds,
      tags: mode === "token" ? ["playground"] : ["playground", "flankbox-hold"],
      onProgress: (p) => {
        if (p.id) created(p.id, p.capability);
        if (p.step !== "ready" && !stale()) this.#setStatus(p.step === "creating" ? "creating" : "starting", p.status ?? "");
      },
    });
    if (stale()) {
      sandbox.destroy().catch(() => {});
      throw new Error("the sandbox was destroyed while it was being made");
    }
    created(sandbox.id, sandbox.capability);
    this.#setStatus("ready");
    return sandbox;
  }

  /** Holds the sandbox on the edge proxy while this page lives (see #create); reopened if it
   * drops while the sandbox is still this page's. */
  #holdOpen(id, capability, generation) {
    const url = new URL(`${this.#info.base}/hold/${encodeURIComponent(id)}`);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(url);
    let opened = false;
    ws.onopen = () => {
      opened = true;
      ws.send(capability);
    };
    ws.onclose = (e) => {
      if (this.#hold !== ws) return;
      this.#hold = undefined;
      // Never opened (another edge proxy has no such route) or refused: nothing to hold.
      if (!opened || e.code === 1008) return;
      setTimeout(() => generation === this.#generation && this.#sandboxId === id && this.#holdOpen(id, capability, generation), 1000);
    };
    this.#hold = ws;
  }

  #touch() {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => !this.#proc && this.destroy(), IDLE_MS);
  }

  /** Runs the editor's code; output streams into the output pane. */
  async run() {
    if (this.#proc) return;
    const lang = LANGUAGES[this.#language];
    this.#clearOutput();
    this.#showTab("output");
    this.ui.run.disabled = true;
    this.#setStatus("preparing");
    let proc;
    try {
      const sandbox = await this.#ensureSandbox();
      await sandbox.writeFile(lang.file, this.code);
      const started = performance.now();
      proc = await sandbox.spawn(lang.run, { encoding: "utf8" });
      this.#proc = proc;
      this.#writing = Promise.resolve();
      this.#setStatus("running");
      this.#inputEnabled(true);
      this.ui.stop.disabled = false;
      const pumps = [this.#pump(proc.stdout, "stdout"), this.#pump(proc.stderr, "stderr")];
      this.#watchPorts(sandbox, () => this.#proc === proc);
      const exit = await proc.wait();
      await Promise.all(pumps);
      this.#flush();
      const ms = Math.round(performance.now() - started);
      if (exit.status === "Unknown") {
        this.#setStatus("stopped", `after ${ms} ms`);
      } else {
        this.#setStatus("exited", `exit code ${exit.exitCode} in ${ms} ms`);
      }
      this.ui.footer.textContent = exit.status === "Unknown" ? `stopped after ${ms} ms` : `exit code ${exit.exitCode} · ${ms} ms`;
      this.dataset.exitCode = exit.exitCode;
    } catch (e) {
      this.#flush();
      this.#append(`\n${e.name}: ${e.message}\n`, "error");
      this.#flush();
      this.#setStatus("error", e.message);
    } finally {
      if (this.#proc === proc) this.#proc = undefined;
      this.#showPreviews([]);
      this.#inputEnabled(false);
      this.ui.stop.disabled = true;
      this.ui.run.disabled = false;
      this.#touch();
    }
  }

  /** While the program runs, finds the ports it listens on, exposes them, and shows an "Open
   * preview" link to each. Links go when their port closes or the program ends. */
  async #watchPorts(sandbox, running) {
    while (running()) {
      try {
        const { stdout } = await sandbox.exec(["cat", "/proc/net/tcp", "/proc/net/tcp6"], { timeoutMs: 10_000 });
        const open = [];
        for (const port of listeningPorts(stdout)) {
          if (!running()) return;
          // Exposing is remembered per sandbox; a port already exposed costs nothing again.
          let url = this.#exposed.get(port);
          if (!url) {
            url = await sandbox.exposePort(port, { protocol: "HTTP", public: true });
            if (url) this.#exposed.set(port, url);
          }
          if (url) open.push({ port, url });
        }
        if (running()) this.#showPreviews(open);
      } catch {
        // A failed look is retried on the next tick; the program's own output is what matters.
      }
      await new Promise((r) => setTimeout(r, PORT_POLL_MS));
    }
  }

  #showPreviews(open) {
    const links = open.map(({ port, url }) =>
      el("a", { className: "fbx-preview", href: url, target: "_blank", rel: "noopener", textContent: `Open preview :${port}`, title: url }),
    );
    this.ui.previews.replaceChildren(...links);
    this.dataset.previews = open.map((p) => p.url).join(" ");
  }

  /** Stops the running program at once. */
  stop() {
    this.#proc?.kill();
  }

  /** Sends input to the running program. */
  sendInput(text) {
    const proc = this.#proc;
    if (!proc) return;
    this.#append(text, "stdin");
    this.#writing = this.#writing.then(() => proc.write(text)).catch(() => {});
  }

  /** Ends the running program's input. */
  endInput() {
    const proc = this.#proc;
    if (!proc) return;
    // After the input typed before it, which may still wait for room on the socket.
    this.#writing = this.#writing.then(() => proc.closeStdin()).catch(() => {});
    this.#inputEnabled(false);
  }

  #inputEnabled(on) {
    this.ui.stdinField.disabled = !on;
    this.ui.eof.disabled = !on;
  }

  async #pump(stream, kind) {
    const reader = stream.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      this.#append(value, kind);
    }
  }

  #clearOutput() {
    this.#queue = [];
    this.#shown = 0;
    this.#dropped = 0;
    this.ui.output.textContent = "";
    this.ui.footer.textContent = "";
    delete this.dataset.exitCode;
  }

  /** Queues output; it is drawn once per frame, and only up to OUTPUT_CAP characters, so a
   * flood costs the page a counter, not a freeze. */
  #append(text, kind) {
    const room = OUTPUT_CAP - this.#shown;
    if (room <= 0) {
      this.#dropped += text.length;
    } else {
      if (text.length > room) {
        this.#dropped += text.length - room;
        text = text.slice(0, room);
      }
      this.#shown += text.length;
      const last = this.#queue[this.#queue.length - 1];
      if (last && last.kind === kind) last.text += text;
      else this.#queue.push({ text, kind });
    }
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      requestAnimationFrame(() => this.#flush());
    }
  }

  #flush() {
    this.#flushScheduled = false;
    const out = this.ui.output;
    const stick = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
    let marker = out.querySelector(".fbx-truncated");
    for (const { text, kind } of this.#queue.splice(0)) {
      // Output of one stream that arrives in pieces stays one piece on screen (one node).
      const last = marker ? marker.previousSibling : out.lastChild;
      const same = kind === "stdout" ? last?.nodeType === Node.TEXT_NODE : last?.classList?.contains(`fbx-${kind}`);
      if (same) last.appendData ? last.appendData(text) : last.append(text);
      else out.insertBefore(kind === "stdout" ? document.createTextNode(text) : el("span", { className: `fbx-${kind}`, textContent: text }), marker);
    }
    if (this.#dropped > 0) {
      marker ??= out.appendChild(el("span", { className: "fbx-truncated" }));
      marker.textContent = `\n… output truncated: ${this.#dropped.toLocaleString()} more characters not shown …\n`;
      out.append(marker);
    }
    if (stick) out.scrollTop = out.scrollHeight;
  }

  #showTab(tab) {
    const terminal = tab === "terminal";
    this.ui.outputPane.hidden = terminal;
    this.ui.terminal.hidden = !terminal;
    this.ui.outTab.ariaSelected = String(!terminal);
    this.ui.termTab.ariaSelected = String(terminal);
    if (terminal) this.#openTerminal();
  }

  /** An interactive shell on a PTY, in the same sandbox, sized to its pane. */
  async #openTerminal() {
    if (this.#terminal) {
      this.#terminal.fit.fit();
      this.#terminal.term.focus();
      return;
    }
    const term = new Terminal({ fontSize: 13, convertEol: false, cursorBlink: true, theme: { background: "#1e1e1e" } });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(this.ui.terminal);
    fit.fit();
    this.#terminal = { term, fit };
    term.write("connecting…\r\n");
    try {
      const sandbox = await this.#ensureSandbox();
      const proc = await sandbox.spawn(undefined, { tty: true, cols: term.cols, rows: term.rows });
      this.#terminal.proc = proc;
      term.onData((d) => proc.write(d).catch(() => {}));
      term.onResize(({ cols, rows }) => proc.resize(cols, rows));
      new ResizeObserver(() => !this.ui.terminal.hidden && fit.fit()).observe(this.ui.terminal);
      const reader = proc.stdout.getReader();
      (async () => {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          term.write(value);
        }
        term.write("\r\n[the shell ended]\r\n");
        this.#terminal = undefined;
      })();
      term.focus();
    } catch (e) {
      term.write(`\r\n${e.message}\r\n`);
      this.#terminal = undefined;
    }
  }

  /** The terminal's visible text (for tests and screen readers). */
  get terminalText() {
    const buffer = this.#terminal?.term.buffer.active;
    if (!buffer) return "";
    const lines = [];
    for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i)?.translateToString(true) ?? "");
    return lines.join("\n");
  }

  /** Destroys the sandbox, also one still being made. With `keepalive`, the request outlives
   * the page. */
  async destroy({ keepalive = false } = {}) {
    const id = this.#sandboxId;
    const credential = this.#capability ?? this.#info?.token;
    const hold = this.#hold;
    this.#generation++;
    this.#hold = undefined;
    this.#proc?.kill();
    this.#terminal?.proc?.kill();
    this.#terminal = undefined;
    this.#sandbox = undefined;
    this.#sandboxId = undefined;
    this.#capability = undefined;
    delete this.dataset.sandbox;
    this.#exposed.clear();
    const deleted = this.#delete(id, credential, keepalive);
    // Let go of the hold only once the DELETE is on its way (it would end the sandbox anyway).
    hold?.close();
    await deleted;
  }

  async #delete(id, credential, keepalive) {
    const info = this.#info;
    if (!id || !info || !credential) return;
    // No await before the request: on pagehide there is no later.
    const { base, projectId } = info;
    await fetch(`${base}/v1/projects/${encodeURIComponent(projectId)}/services/${encodeURIComponent(id)}?delete_child_objects=true`, {
      method: "DELETE",
      keepalive,
      headers: { Authorization: `Bearer ${credential}` },
    }).catch(() => {});
  }
}

if (!customElements.get("flankbox-playground")) customElements.define("flankbox-playground", FlankboxPlayground);
