// The Terminal tab: an interactive shell on a PTY, in the playground's sandbox, sized to its pane.
import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";

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
    pane.replaceChildren(); // a shell that ended left its screen
    const term = new Terminal({ fontSize: 13, convertEol: false, cursorBlink: true, theme: { background: "#1e1e1e" } });
    this.#fit = new FitAddon();
    term.loadAddon(this.#fit);
    term.open(pane);
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
