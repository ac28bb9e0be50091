// The output pane: a running program's stdout, stderr, the input typed to it and errors, drawn
// once per frame and capped, so a flood costs the page a counter, not a freeze.
import { el } from "./dom.js";

/** Characters of output kept on screen; past it a marker counts what was dropped. */
const OUTPUT_CAP = 200_000;

export class OutputPane {
  #pre;
  #queue = [];
  #flushScheduled = false;
  #shown = 0;
  #dropped = 0;

  /** Draws into `pre`. */
  constructor(pre) {
    this.#pre = pre;
  }

  /** Everything on screen, as text. */
  get text() {
    return this.#pre.textContent;
  }

  clear() {
    this.#queue = [];
    this.#shown = 0;
    this.#dropped = 0;
    this.#pre.textContent = "";
  }

  /** Queues `text` of `kind` (stdout, stderr, stdin, error); it is drawn on the next frame,
   * and only up to OUTPUT_CAP characters. */
  append(text, kind) {
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
      requestAnimationFrame(() => this.flush());
    }
  }

  /** Draws what is queued now. */
  flush() {
    this.#flushScheduled = false;
    const out = this.#pre;
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
}
