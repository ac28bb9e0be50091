// <flankbox-playground>: an editor, Run and Stop, live output with stdin, and a terminal, on a
// sandbox of its own. The playground page is one of these, full size; any page can embed more:
//
//   <script type="module" src="…/flankbox/widget.js"></script>
//   <flankbox-playground language="python">print("hi")</flankbox-playground>
//
// This file wires the parts together: the DOM (dom.js), the sandbox's lifecycle (session.js),
// the output pane (output.js), port previews (ports.js) and the terminal (terminal.js).
import { EditorView, basicSetup } from "codemirror";
import { Compartment } from "@codemirror/state";
import { keymap } from "@codemirror/view";
import { LANGUAGES, DEFAULT_LANGUAGE } from "./languages.js";
import { buildUi, dedent, el, injectStyles } from "./dom.js";
import { OutputPane } from "./output.js";
import { SandboxSession } from "./session.js";
import { watchPorts } from "./ports.js";
import { ShellTerminal } from "./terminal.js";

export class FlankboxPlayground extends HTMLElement {
  #language = DEFAULT_LANGUAGE;
  #editor;
  #mode = new Compartment();
  #session;
  #output;
  #proc;
  #writing = Promise.resolve(); // the running program's input, in order: EOF waits for it
  #terminal;
  #listeners = new Set();
  #connected; // aborts what is bound to the page while the element is in it
  ui = {};

  connectedCallback() {
    this.#connected = new AbortController();
    addEventListener("pagehide", () => this.destroy({ keepalive: true }), { signal: this.#connected.signal });
    if (this.ui.root) return;
    injectStyles();
    const initial = this.hasAttribute("code") ? this.getAttribute("code") : this.textContent.trim() ? dedent(this.textContent) : undefined;
    this.textContent = "";
    this.#language = LANGUAGES[this.getAttribute("language")] ? this.getAttribute("language") : DEFAULT_LANGUAGE;
    this.#session = new SandboxSession({
      api: this.getAttribute("api") ?? location.origin,
      onStatus: (step, detail) => this.#setStatus(step, detail),
      onSandbox: (id) => (id ? (this.dataset.sandbox = id) : delete this.dataset.sandbox),
      onIdle: () => !this.#proc && this.destroy(),
    });
    this.#build(initial ?? LANGUAGES[this.#language].example);
    this.#setStatus("idle", "Press Run (Ctrl+Enter)");
    if (this.hasAttribute("prepare")) this.#session.ensure().catch(() => {});
  }

  disconnectedCallback() {
    this.#connected.abort();
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
    return this.#output.text;
  }

  #changed() {
    for (const fn of this.#listeners) fn({ language: this.#language, code: this.code });
  }

  #build(code) {
    const ui = buildUi(this, { compact: this.getAttribute("layout") !== "page", language: this.#language });
    Object.assign(this.ui, ui);
    this.#output = new OutputPane(ui.output);
    this.#editor = new EditorView({
      doc: code,
      parent: ui.editor,
      extensions: [
        keymap.of([{ key: "Mod-Enter", run: () => (this.run(), true) }]),
        basicSetup,
        this.#mode.of(LANGUAGES[this.#language].mode()),
        EditorView.updateListener.of((u) => u.docChanged && this.#changed()),
      ],
    });
    ui.language.addEventListener("change", () => {
      const wasExample = Object.values(LANGUAGES).some((l) => l.example === this.code);
      this.language = ui.language.value;
      if (wasExample) this.code = LANGUAGES[ui.language.value].example;
    });
    ui.run.addEventListener("click", () => this.run());
    ui.stop.addEventListener("click", () => this.stop());
    ui.stdin.addEventListener("submit", (e) => {
      e.preventDefault();
      this.sendInput(ui.stdinField.value + "\n");
      ui.stdinField.value = "";
    });
    ui.stdinField.addEventListener("keydown", (e) => {
      if (e.key === "d" && e.ctrlKey) {
        e.preventDefault();
        this.endInput();
      }
    });
    ui.eof.addEventListener("click", () => this.endInput());
    ui.outTab.addEventListener("click", () => this.#showTab("output"));
    ui.termTab.addEventListener("click", () => this.#showTab("terminal"));
    // Warm a sandbox up while the user is still typing.
    ui.editor.addEventListener("focusin", () => this.#session.ensure().catch(() => {}), { once: true });
  }

  #setStatus(step, detail = "") {
    this.dataset.status = step;
    this.ui.status.textContent = detail ? `${step}: ${detail}` : step;
  }

  /** Runs the editor's code; output streams into the output pane. */
  async run() {
    if (this.#proc) return;
    const lang = LANGUAGES[this.#language];
    this.#output.clear();
    this.ui.footer.textContent = "";
    delete this.dataset.exitCode;
    this.#showTab("output");
    this.ui.run.disabled = true;
    this.#setStatus("preparing");
    let proc;
    try {
      const sandbox = await this.#session.ensure();
      await sandbox.writeFile(lang.file, this.code);
      const started = performance.now();
      proc = await sandbox.spawn(lang.run, { encoding: "utf8" });
      this.#proc = proc;
      this.#writing = Promise.resolve();
      this.#setStatus("running");
      this.#inputEnabled(true);
      this.ui.stop.disabled = false;
      const pumps = [this.#pump(proc.stdout, "stdout"), this.#pump(proc.stderr, "stderr")];
      watchPorts(sandbox, { exposed: this.#session.exposed, running: () => this.#proc === proc, show: (open) => this.#showPreviews(open) });
      const exit = await proc.wait();
      await Promise.all(pumps);
      this.#output.flush();
      const ms = Math.round(performance.now() - started);
      if (exit.status === "Unknown") {
        this.#setStatus("stopped", `after ${ms} ms`);
      } else {
        this.#setStatus("exited", `exit code ${exit.exitCode} in ${ms} ms`);
      }
      this.ui.footer.textContent = exit.status === "Unknown" ? `stopped after ${ms} ms` : `exit code ${exit.exitCode} · ${ms} ms`;
      this.dataset.exitCode = exit.exitCode;
    } catch (e) {
      this.#output.flush();
      this.#output.append(`\n${e.name}: ${e.message}\n`, "error");
      this.#output.flush();
      this.#setStatus("error", e.message);
    } finally {
      if (this.#proc === proc) this.#proc = undefined;
      this.#showPreviews([]);
      this.#inputEnabled(false);
      this.ui.stop.disabled = true;
      this.ui.run.disabled = false;
      this.#session.touch();
    }
  }

  /** Shows an "Open preview" link to each of `open` ({ port, url }). */
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
    this.#output.append(text, "stdin");
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
      this.#output.append(value, kind);
    }
  }

  #showTab(tab) {
    const terminal = tab === "terminal";
    this.ui.outputPane.hidden = terminal;
    this.ui.terminal.hidden = !terminal;
    this.ui.outTab.ariaSelected = String(!terminal);
    this.ui.termTab.ariaSelected = String(terminal);
    if (!terminal) return;
    if (this.#terminal) this.#terminal.show();
    else {
      const shell = new ShellTerminal(this.ui.terminal, () => this.#session.ensure(), () => this.#terminal === shell && (this.#terminal = undefined));
      this.#terminal = shell;
    }
  }

  /** The terminal's visible text (for tests and screen readers). */
  get terminalText() {
    return this.#terminal?.text ?? "";
  }

  /** Destroys the sandbox, also one still being made. With `keepalive`, the request outlives
   * the page. */
  async destroy({ keepalive = false } = {}) {
    this.#proc?.kill();
    this.#terminal?.kill();
    this.#terminal = undefined;
    await this.#session.destroy({ keepalive });
  }
}

if (!customElements.get("flankbox-playground")) customElements.define("flankbox-playground", FlankboxPlayground);
