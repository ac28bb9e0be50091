// <flankbox-playground>: an editor, Run and Stop, live output with stdin, and a terminal, on a
// sandbox of its own. The playground page is one of these, full size; any page can embed more:
//
//   <script type="module" src="…/flankbox/widget.js"></script>
//   <flankbox-playground language="python">print("hi")</flankbox-playground>
//
// This file wires the parts together: the DOM (dom.js), the sandbox's lifecycle (session.js),
// the output pane (output.js), port previews (ports.js), the editor (editor.js) and the
// terminal (terminal.js).
//
// What a page pays up front is this module and its styles: the code shows as text and Run
// works. The rest loads when it is first needed, each a chunk of its own: the editor
// (CodeMirror) and the language's mode on the code's first focus, the sandbox's session and the
// client with its wasm on that focus or the first Run, xterm.js when the Terminal tab opens.
import { LANGUAGES, DEFAULT_LANGUAGE, writeAndRun } from "./languages.js";
import { buildUi, codeLabel, dedent, el, injectStyles } from "./dom.js";
import { OutputPane } from "./output.js";
import { watchPorts } from "./ports.js";
import { mark, markRunStart } from "./timing.js";

/** Marked on the page once a widget shows its code and Run works (the weight test reads it). */
const INTERACTIVE_MARK = "flankbox:interactive";

/** Where a widget keeps, for a reload of its tab, the program it runs (sessionStorage: this
 * tab only, never the URL). Keyed per widget: its id, or its place among the page's widgets. */
const runKey = (el) => `flankbox-playground:${location.pathname}:${el.id || [...document.querySelectorAll("flankbox-playground")].indexOf(el)}`;

/** `fn(sessionStorage)`, or undefined where storage is refused (a sandboxed frame). */
function stored(fn) {
  try {
    return fn(sessionStorage);
  } catch {}
}

/** Calls `fn` once the page has loaded and the browser is idle, so that work a page asks for
 * ahead of time never competes with its first paint. */
function whenIdle(fn) {
  const idle = () => (window.requestIdleCallback ? requestIdleCallback(fn, { timeout: 2000 }) : setTimeout(fn, 200));
  if (document.readyState === "complete") idle();
  else addEventListener("load", idle, { once: true });
}

/** The caret offset in `pre`'s text under the point (x, y), if the browser can tell. */
function offsetAt(pre, x, y) {
  const position = document.caretPositionFromPoint?.(x, y);
  const range = position ? { node: position.offsetNode, offset: position.offset } : document.caretRangeFromPoint?.(x, y);
  const node = range?.node ?? range?.startContainer;
  if (!node || !pre.contains(node)) return undefined;
  return range.offset ?? range.startOffset;
}

export class FlankboxPlayground extends HTMLElement {
  #language = DEFAULT_LANGUAGE;
  #code = ""; // the code while the editor is not loaded
  #editor; // the CodeEditor, once loaded
  #editorLoading; // Promise<CodeEditor>
  #caret = 0; // where the caret goes when the editor replaces the code view
  #session; // the SandboxSession, once its chunk is loaded (the first time a sandbox is wanted)
  #sessionLoading; // Promise<SandboxSession>
  #destroys = 0; // counts destroys: a sandbox asked for before one is not made
  #output;
  #proc;
  #busy = false; // a Run (or a reattach) is on, from its start to its end
  #running; // what a reload needs to reattach to #proc: { id, code, language, startedAt }
  #stopped; // the process that Stop was pressed for
  #reattaching = false; // a reload's program is being reattached to (its entry is still kept)
  #key; // this widget's sessionStorage key (runKey)
  #gotOutput = false; // whether the current Run's program has printed anything yet
  #writing = Promise.resolve(); // the running program's input, in order: EOF waits for it
  #terminal; // Promise<ShellTerminal>, from the Terminal tab's first opening until its shell ends
  #shell; // that ShellTerminal, once loaded
  #listeners = new Set();
  #connected; // aborts what is bound to the page while the element is in it
  ui = {};

  connectedCallback() {
    this.#connected = new AbortController();
    addEventListener("pagehide", () => this.#leave(), { signal: this.#connected.signal });
    if (this.ui.root) return;
    injectStyles();
    this.#key = runKey(this);
    // A program this widget ran before a reload of the page: its code shows, and it reattaches.
    const saved = stored((s) => JSON.parse(s.getItem(this.#key)));
    let initial = this.hasAttribute("code") ? this.getAttribute("code") : this.textContent.trim() ? dedent(this.textContent) : undefined;
    this.textContent = "";
    this.#language = LANGUAGES[this.getAttribute("language")] ? this.getAttribute("language") : DEFAULT_LANGUAGE;
    if (saved && LANGUAGES[saved.language]) [this.#language, initial] = [saved.language, saved.code];
    this.#code = initial ?? LANGUAGES[this.#language].example;
    this.#build();
    this.#setStatus("idle", "Press Run (Ctrl+Enter)");
    if (saved?.sandboxId) this.#reattach(saved);
    performance.mark(INTERACTIVE_MARK);
    // A page made for running code (the playground page) warms up the sandbox and the editor
    // once it has painted; an embedded widget waits for the user.
    if (this.hasAttribute("prepare"))
      whenIdle(() => {
        this.#sandbox().catch(() => {});
        Promise.all([import("./editor.js"), LANGUAGES[this.#language].mode()]).catch(() => {});
      });
  }

  disconnectedCallback() {
    this.#connected.abort();
    this.destroy({ keepalive: true });
  }

  /** The page goes away. A running program outlives a reload: its sandbox and process are kept
   * for the next page of this tab, which reattaches within the edge proxy's hold grace; a tab
   * really closed leaves its sandbox to that grace. That needs the proxy's hold (capability
   * mode); without it (token mode) nothing would end a sandbox left behind but its lifetime,
   * so the page destroys it, as it does when nothing runs. */
  #leave() {
    if (this.#reattaching) return; // its entry is still kept, for the next page
    const handover = this.#running && this.#session?.handover;
    if (handover && stored((s) => s.setItem(this.#key, JSON.stringify({ ...this.#running, ...handover })) ?? true)) return;
    this.destroy({ keepalive: true });
  }

  /** The sandbox's session, its chunk loaded once. */
  #sessionReady() {
    this.#sessionLoading ??= import("./session.js").then(
      ({ SandboxSession }) =>
        (this.#session = new SandboxSession({
          api: this.getAttribute("api") ?? location.origin,
          onStatus: (step, detail) => this.#setStatus(step, detail),
          onSandbox: (id) => (id ? (this.dataset.sandbox = id) : delete this.dataset.sandbox),
          onIdle: () => !this.#proc && this.destroy(),
          mark,
        })),
    );
    this.#sessionLoading.catch(() => (this.#sessionLoading = undefined));
    return this.#sessionLoading;
  }

  /** The sandbox, made once (and again after a destroy). */
  async #sandbox() {
    const destroys = this.#destroys;
    const session = await this.#sessionReady();
    if (destroys !== this.#destroys) throw new Error("the playground was destroyed meanwhile");
    return session.ensure();
  }

  /** Forgets the program kept for a reload. */
  #forget() {
    stored((s) => s.removeItem(this.#key));
  }

  /** The code in the editor. */
  get code() {
    return this.#editor?.code ?? this.#code;
  }

  set code(text) {
    if (this.#editor) {
      this.#editor.code = text;
    } else {
      this.#code = text;
      this.ui.code.textContent = text;
      this.#changed();
    }
  }

  get language() {
    return this.#language;
  }

  set language(id) {
    if (!LANGUAGES[id] || id === this.#language) return;
    this.#language = id;
    this.ui.language.value = id;
    this.ui.code.setAttribute("aria-label", codeLabel(id));
    if (this.#editor) this.#followMode(id);
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

  #build() {
    const ui = buildUi(this, { compact: this.getAttribute("layout") !== "page", language: this.#language, code: this.#code });
    Object.assign(this.ui, ui);
    this.#output = new OutputPane(ui.output, ui.announce);
    // The code view becomes the editor on its first focus (a click puts the caret where it was).
    ui.code.addEventListener("pointerdown", (e) => (this.#caret = offsetAt(ui.code, e.clientX, e.clientY) ?? this.#caret));
    ui.code.addEventListener("focus", () => this.#loadEditor().then((editor) => editor.focus(), () => {}));
    ui.code.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        this.run();
      }
    });
    ui.language.addEventListener("change", () => {
      const wasExample = Object.values(LANGUAGES).some((l) => l.example === this.code);
      this.language = ui.language.value;
      if (wasExample) this.code = LANGUAGES[ui.language.value].example;
    });
    ui.run.addEventListener("click", () => this.run());
    // The press comes a moment before the click (the release): the sandbox starts then.
    ui.run.addEventListener("pointerdown", () => this.#sandbox().catch(() => {}));
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
    // The tab list is one stop for Tab; the arrow keys move between its tabs.
    for (const [from, to] of [
      [ui.outTab, ui.termTab],
      [ui.termTab, ui.outTab],
    ]) {
      from.addEventListener("keydown", (e) => {
        if (!["ArrowLeft", "ArrowRight", "Home", "End"].includes(e.key)) return;
        e.preventDefault();
        to.focus();
        to.click();
      });
    }
    // Warm a sandbox up while the user is still typing.
    ui.editor.addEventListener("focusin", () => this.#sandbox().catch(() => {}), { once: true });
  }

  /** Loads the editor (once) and puts it in the code view's place. */
  #loadEditor() {
    this.#editorLoading ??= (async () => {
      const language = this.#language;
      const [{ CodeEditor }, mode] = await Promise.all([import("./editor.js"), LANGUAGES[language].mode()]);
      this.#editor = new CodeEditor({
        parent: this.ui.editor,
        doc: this.#code,
        caret: this.#caret,
        mode,
        label: codeLabel(language),
        onRun: () => this.run(),
        onChange: () => this.#changed(),
      });
      this.ui.code.remove();
      // The language changed while the editor loaded: its mode follows.
      if (this.#language !== language) this.#followMode(this.#language);
      return this.#editor;
    })();
    this.#editorLoading.catch((e) => {
      this.#editorLoading = undefined;
      this.#setStatus("error", `the editor did not load: ${e.message}`);
    });
    return this.#editorLoading;
  }

  /** Loads language `id`'s mode into the editor, unless another language is chosen meanwhile. */
  #followMode(id) {
    LANGUAGES[id].mode().then(
      (mode) => this.#language === id && this.#editor.setMode(mode, codeLabel(id)),
      (e) => this.#setStatus("error", `the ${LANGUAGES[id].label} mode did not load: ${e.message}`),
    );
  }

  #setStatus(step, detail = "") {
    this.dataset.status = step;
    this.ui.status.textContent = detail ? `${step}: ${detail}` : step;
  }

  /** Runs the editor's code; output streams into the output pane. Resolves once it ended. */
  async run() {
    if (this.#busy) return;
    const lang = LANGUAGES[this.#language];
    const [code, language] = [this.code, this.#language];
    markRunStart();
    await this.#follow("preparing", async () => {
      const sandbox = await this.#sandbox();
      mark("sandbox");
      // The file goes with the spawn when it fits in the command (one round trip, not two).
      let command = writeAndRun(lang, code);
      if (!command) {
        await sandbox.writeFile(lang.file, code);
        mark("written");
        command = lang.run;
      }
      const started = performance.now();
      // Detached: the program outlives the page's sockets (a reload reattaches to it, a dropped
      // network resumes where it was), and costs no more than a plain spawn.
      const proc = await sandbox.spawn(command, { detached: true, encoding: "utf8" });
      mark("spawned");
      return { sandbox, proc, started, running: { id: proc.id, code, language, startedAt: Date.now() } };
    });
  }

  /** Reattaches to the program `saved` by this widget before a reload: its whole output
   * again (from byte 0), then live, with stdin and Stop. */
  #reattach({ sandboxId, capability, id, code, language, startedAt }) {
    this.#reattaching = true;
    this.#follow("reattaching", async () => {
      let sandbox, proc;
      try {
        sandbox = await (await this.#sessionReady()).adopt(sandboxId, capability);
        proc = await sandbox.attach(id, { from: 0, encoding: "utf8" });
      } catch (e) {
        this.#reattaching = false;
        // Gone meanwhile (the grace passed, or the sandbox's lifetime): start afresh.
        this.#forget();
        this.#session?.destroy().catch(() => {});
        return void this.#setStatus("idle", `the program from before the reload is gone (${e.message}); press Run`);
      }
      this.#reattaching = false;
      // Taken: the entry goes (a tab duplicated from now on must not take it too); the next
      // pagehide writes it again if the program still runs.
      this.#forget();
      const started = performance.now() - (Date.now() - startedAt);
      return { sandbox, proc, started, running: { id, code, language, startedAt } };
    });
  }

  /** A Run's life: `start()` resolves to { sandbox, proc, started, running } (or nothing: it
   * did not start); output streams into the output pane until the program ends. */
  async #follow(step, start) {
    this.#busy = true;
    this.#gotOutput = false;
    this.#output.clear();
    this.ui.footer.textContent = "";
    delete this.dataset.exitCode;
    this.#showTab("output");
    this.ui.run.disabled = true;
    this.#setStatus(step);
    let proc;
    try {
      const begun = await start();
      if (!begun) return;
      const { sandbox, started, running } = begun;
      proc = begun.proc;
      this.#proc = proc;
      this.#running = running;
      this.#writing = Promise.resolve();
      this.#setStatus("running");
      this.#inputEnabled(true);
      this.ui.stop.disabled = false;
      const pumps = [this.#pump(proc.stdout, "stdout"), this.#pump(proc.stderr, "stderr")];
      watchPorts(sandbox, { exposed: this.#session.exposed, running: () => this.#proc === proc, show: (open) => this.#showPreviews(open) });
      const exit = await proc.wait();
      mark("exit");
      await Promise.all(pumps);
      this.#output.flush();
      const ms = Math.round(performance.now() - started);
      // A kill (Stop) ends a detached process with 137 (128 + SIGKILL).
      const stopped = exit.status === "Unknown" || (this.#stopped === proc && exit.exitCode === 137);
      if (stopped) {
        this.#setStatus("stopped", `after ${ms} ms`);
      } else {
        this.#setStatus("exited", `exit code ${exit.exitCode} in ${ms} ms`);
      }
      this.ui.footer.textContent = stopped ? `stopped after ${ms} ms` : `exit code ${exit.exitCode} · ${ms} ms`;
      this.dataset.exitCode = exit.exitCode;
      mark("exited");
    } catch (e) {
      this.#output.flush();
      this.#output.append(`\n${e.name}: ${e.message}\n`, "error");
      this.#output.flush();
      this.#setStatus("error", e.message);
    } finally {
      if (this.#proc === proc) {
        this.#proc = this.#running = undefined;
        this.#forget();
      }
      this.#busy = false;
      this.#showPreviews([]);
      this.#inputEnabled(false);
      this.ui.stop.disabled = true;
      this.ui.run.disabled = false;
      this.#session?.touch();
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
    this.#stopped = this.#proc;
    this.#kill();
  }

  #kill() {
    // A detached process's kill is a request, which fails once the sandbox is gone.
    try {
      Promise.resolve(this.#proc?.kill()).catch(() => {});
    } catch {}
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
      if (!this.#gotOutput) mark("first-byte");
      this.#gotOutput = true;
      this.#output.append(value, kind);
    }
  }

  #showTab(tab) {
    const terminal = tab === "terminal";
    this.ui.outputPane.hidden = terminal;
    this.ui.terminal.hidden = !terminal;
    for (const [tab, selected] of [
      [this.ui.outTab, !terminal],
      [this.ui.termTab, terminal],
    ]) {
      tab.setAttribute("aria-selected", String(selected));
      tab.tabIndex = selected ? 0 : -1;
    }
    if (!terminal) return;
    if (this.#terminal) return void this.#terminal.then((shell) => shell?.show());
    const opening = import("./terminal.js").then(({ ShellTerminal }) => {
      if (this.#terminal !== opening) return; // destroyed meanwhile
      const shell = new ShellTerminal(this.ui.terminal, () => this.#sandbox(), () => this.#terminal === opening && (this.#terminal = undefined));
      this.#shell = shell;
      return shell;
    });
    this.#terminal = opening;
    opening.catch((e) => {
      if (this.#terminal === opening) this.#terminal = undefined;
      this.ui.terminal.textContent = `The terminal did not load: ${e.message}`;
    });
  }

  /** The terminal's visible text (for tests and screen readers). */
  get terminalText() {
    return (this.#terminal && this.#shell?.text) ?? "";
  }

  /** Destroys the sandbox, also one still being made. With `keepalive`, the request outlives
   * the page. */
  async destroy({ keepalive = false } = {}) {
    this.#kill();
    this.#forget();
    if (this.#terminal) this.#shell?.kill();
    this.#terminal = undefined;
    this.#shell = undefined;
    this.#destroys++;
    await this.#session?.destroy({ keepalive });
  }
}

if (!customElements.get("flankbox-playground")) customElements.define("flankbox-playground", FlankboxPlayground);
