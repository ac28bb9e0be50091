// The output pane: a running program's stdout, stderr, the input typed to it and errors, drawn
// once per frame and capped, so a flood costs the page a counter, not a freeze. Screen readers
// hear it through a polite live region, at most once a second and only the latest lines.
import { el } from "./dom.js";
import { mark } from "./timing.js";

/** Characters of output kept on screen; past it a marker counts what was dropped. */
const OUTPUT_CAP = 200_000;
/** The least time between two announcements of new output. */
const ANNOUNCE_MS = 1000;
/** The most characters one announcement reads: the latest ones. */
const ANNOUNCE_CHARS = 300;

export class OutputPane {
  #pre;
  #queue = [];
  #flushScheduled = false;
  #shown = 0;
  #dropped = 0;
  #announce;
  #unsaid = ""; // output not announced yet (its latest ANNOUNCE_CHARS)
  #truncationSaid = false;
  #announceTimer;
  #saidAt = -Infinity;
  #drawn = false; // whether anything was drawn since the last clear (for the first draw's mark)
  #marker; // the truncation marker, once output passed the cap: the pane's last child

  /** Draws into `pre`, and announces through the live region `announce`. */
  constructor(pre, announce) {
    this.#pre = pre;
    this.#announce = announce;
  }

  /** Everything on screen, as text. */
  get text() {
    return this.#pre.textContent;
  }

  clear() {
    this.#queue = [];
    this.#shown = 0;
    this.#dropped = 0;
    this.#drawn = false;
    this.#marker = undefined;
    this.#pre.textContent = "";
    this.#unsaid = "";
    this.#truncationSaid = false;
    clearTimeout(this.#announceTimer);
    this.#announceTimer = undefined;
    this.#announce.textContent = "";
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
      // What the user typed is not read back to them.
      if (kind !== "stdin") this.#unsaid = (this.#unsaid + text).slice(-ANNOUNCE_CHARS);
    }
    this.#scheduleAnnouncement();
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      requestAnimationFrame(() => this.flush());
    }
  }

  #scheduleAnnouncement() {
    if (this.#announceTimer !== undefined) return;
    const wait = Math.max(0, this.#saidAt + ANNOUNCE_MS - performance.now());
    this.#announceTimer = setTimeout(() => this.#say(), wait);
  }

  #say() {
    this.#announceTimer = undefined;
    let text = this.#unsaid.trim();
    this.#unsaid = "";
    if (this.#dropped > 0 && !this.#truncationSaid) {
      this.#truncationSaid = true;
      text += " (output truncated)";
    }
    if (!text) return;
    this.#saidAt = performance.now();
    this.#announce.textContent = text;
  }

  /** Draws what is queued now. */
  flush() {
    this.#flushScheduled = false;
    const out = this.#pre;
    const queued = this.#queue.splice(0);
    let marker = this.#marker;
    // Reading the scroll position lays the pane out. Past the cap only the marker's count
    // changes, every frame of a flood: that costs no layout of the pane's text, nor a read.
    const stick = (queued.length > 0 || (this.#dropped > 0 && !marker)) && out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
    for (const { text, kind } of queued) {
      // Output of one stream that arrives in pieces stays one piece on screen (one node).
      const last = marker ? marker.previousSibling : out.lastChild;
      const same = kind === "stdout" ? last?.nodeType === Node.TEXT_NODE : last?.classList?.contains(`fbx-${kind}`);
      if (same) last.appendData ? last.appendData(text) : last.append(text);
      else out.insertBefore(kind === "stdout" ? document.createTextNode(text) : el("span", { className: `fbx-${kind}`, textContent: text }), marker);
    }
    if (this.#dropped > 0) {
      marker ??= this.#marker = out.appendChild(el("span", { className: "fbx-truncated" }));
      marker.textContent = `\n… output truncated: ${this.#dropped.toLocaleString()} more characters not shown …\n`;
    }
    if (stick) out.scrollTop = out.scrollHeight;
    if (!this.#drawn && out.firstChild) {
      this.#drawn = true;
      mark("output-shown");
    }
  }
}
