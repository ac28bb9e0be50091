// The Terminal tab: an interactive shell on a PTY, in the playground's sandbox, sized to its pane.
// A chunk of its own (xterm.js), loaded when the tab first opens. Tab goes to the shell;
// Escape, then Tab, leaves the terminal, as in the editor.
import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import xtermCss from "@xterm/xterm/css/xterm.css";
import { injectStyle } from "./dom.js";

/** How long after Escape a Tab leaves the terminal instead of reaching the shell. */
const ESCAPE_TAB_MS = 2000;

export class ShellTerminal {
  #pane;
  #term;
  #fit;
  #proc;
  #ended = false;

  /** Draws into `pane` at once, then runs the shell in the sandbox `sandbox()` resolves to;
   * `onEnd` is called when the shell ends or could not start. */
  constructor(pane, sandbox, onEnd) {
    this.#pane = pane;
    injectStyle("flankbox-xterm-styles", xtermCss);
    pane.replaceChildren(); // a shell that ended left its screen
    const term = new Terminal({ fontSize: 13, convertEol: false, cursorBlink: true, theme: { background: "#1e1e1e" } });
    this.#fit = new FitAddon();
    term.loadAddon(this.#fit);
    let escapedAt = -Infinity;
    // false: xterm leaves the key alone, so the browser moves the focus on.
    term.attachCustomKeyEventHandler((e) => {
      if (e.type !== "keydown") return true;
      if (e.key === "Escape") escapedAt = performance.now();
      else if (e.key === "Tab" && performance.now() - escapedAt < ESCAPE_TAB_MS) return false;
      else if (!["Shift", "Control", "Alt", "Meta"].includes(e.key)) escapedAt = -Infinity;
      return true;
    });
    term.open(pane);
    term.textarea?.setAttribute("aria-label", "Terminal: a shell in the sandbox. Escape then Tab leaves it.");
    this.#fit.fit();
    this.#term = term;
    term.write("connecting…\r\n");
    this.#start(sandbox, onEnd);
  }

  async #start(sandbox, onEnd) {
    const term = this.#term;
    try {
      const proc = await (await sandbox()).spawn(undefined, { tty: true, cols: term.cols, rows: term.rows });
      this.#proc = proc;
      if (this.#ended) return void proc.kill();
      term.onData((d) => proc.write(d).catch(() => {}));
      term.onResize(({ cols, rows }) => proc.resize(cols, rows));
      new ResizeObserver(() => !this.#pane.hidden && this.#fit.fit()).observe(this.#pane);
      const reader = proc.stdout.getReader();
      (async () => {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          term.write(value);
        }
        term.write("\r\n[the shell ended]\r\n");
        onEnd();
      })();
      term.focus();
    } catch (e) {
      term.write(`\r\n${e.message}\r\n`);
      onEnd();
    }
  }

  /** Fits the terminal to its pane again and gives it the keyboard. */
  show() {
    this.#fit.fit();
    this.#term.focus();
  }

  /** Ends the shell. */
  kill() {
    this.#ended = true;
    this.#proc?.kill();
  }

  /** The visible text, line by line. */
  get text() {
    const buffer = this.#term.buffer.active;
    const lines = [];
    for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i)?.translateToString(true) ?? "");
    return lines.join("\n");
  }
}
