// The element's DOM: its styles, a tiny element builder, and the widget's parts.
import css from "./style.css";
import { LANGUAGES } from "./languages.js";

/** Adds `text` to the page as a style sheet, once per `id` for every widget on it. */
export function injectStyle(id, text) {
  if (document.getElementById(id)) return;
  const style = document.createElement("style");
  style.id = id;
  style.textContent = text;
  document.head.append(style);
}

/** Adds the widget's own styles (xterm's come with the terminal). */
export function injectStyles() {
  injectStyle("flankbox-playground-styles", css);
}

/** `document.createElement(tag)` with `props` assigned (a name with a dash, like `aria-label`,
 * is set as an attribute) and `children` appended. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key.includes("-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children);
  return node;
}

/** Removes the indentation every line of an element's text shares. */
export function dedent(text) {
  const lines = text.replace(/^\n+|\s+$/g, "").split("\n");
  const indent = Math.min(...lines.filter((l) => l.trim()).map((l) => l.match(/^ */)[0].length));
  return lines.map((l) => l.slice(indent)).join("\n") + "\n";
}

/** What screen readers call the code view and the editor. */
export const codeLabel = (language) => `Code, ${LANGUAGES[language].label}. Escape then Tab leaves the editor; Ctrl+Enter runs.`;

let widgets = 0;

/** Builds the widget's parts inside `host` and returns them by name; `compact` is the embedded
 * layout, `language` the one selected, `code` what the code view shows until the editor
 * replaces it. */
export function buildUi(host, { compact, language: selected, code: text }) {
  const id = `fbx-${++widgets}`;
  const language = el("select", { className: "fbx-language", title: "Language", "aria-label": "Language" });
  for (const [id, l] of Object.entries(LANGUAGES)) language.append(el("option", { value: id, textContent: l.label, selected: id === selected }));
  const icon = (text) => el("span", { "aria-hidden": "true", textContent: text });
  const run = el("button", { className: "fbx-run", title: "Run (Ctrl+Enter)" }, icon("▶ "), "Run");
  const stop = el("button", { className: "fbx-stop", title: "Stop the program", disabled: true }, icon("■ "), "Stop");
  const status = el("span", { className: "fbx-status", role: "status" });
  const previews = el("span", { className: "fbx-previews" });
  // The pane itself is not a live region: a flood would drown a screen reader. `announce` says
  // what was printed, at most once a second (output.js).
  const output = el("pre", { className: "fbx-output", role: "log", tabIndex: 0, "aria-label": "Output", "aria-live": "off" });
  const announce = el("div", { className: "fbx-sr-only", "aria-live": "polite" });
  const stdinField = el("input", { className: "fbx-stdin-input", placeholder: "stdin: type and press Enter", "aria-label": "Input to the program (Enter sends a line)", disabled: true });
  const eof = el("button", { type: "button", className: "fbx-eof", textContent: "EOF", title: "End of input (Ctrl+D)", "aria-label": "EOF: end of input (Ctrl+D)", disabled: true });
  const stdin = el("form", { className: "fbx-stdin" }, stdinField, eof);
  const tab = (name, label, selected) =>
    el("button", {
      type: "button",
      id: `${id}-tab-${name}`,
      className: `fbx-tab fbx-tab-${name}`,
      role: "tab",
      textContent: label,
      tabIndex: selected ? 0 : -1,
      "aria-selected": String(selected),
      "aria-controls": `${id}-${name}`,
    });
  const outTab = tab("output", "Output", true);
  const termTab = tab("terminal", "Terminal", false);
  const panel = (name, className, ...children) => el("div", { id: `${id}-${name}`, className, role: "tabpanel", "aria-labelledby": `${id}-tab-${name}` }, ...children);
  const outputPane = panel("output", "fbx-output-pane", output, stdin);
  const terminal = panel("terminal", "fbx-terminal");
  terminal.hidden = true;
  // The code, shown as text until the editor (a chunk of its own) loads on first focus.
  const code = el("pre", { className: "fbx-code", tabIndex: 0, role: "textbox", "aria-multiline": "true", "aria-label": codeLabel(selected), textContent: text });
  const editor = el("div", { className: "fbx-editor" }, code);
  const footer = el("div", { className: "fbx-footer" });
  const root = el(
    "div",
    { className: `fbx ${compact ? "fbx-compact" : "fbx-page"}` },
    el("div", { className: "fbx-toolbar" }, language, run, stop, status, previews),
    el(
      "div",
      { className: "fbx-main" },
      editor,
      el("div", { className: "fbx-side" }, el("div", { className: "fbx-tabs", role: "tablist", "aria-label": "Output or terminal" }, outTab, termTab), outputPane, terminal, announce),
    ),
    footer,
  );
  host.append(root);
  return { root, language, run, stop, status, previews, output, announce, stdin, stdinField, eof, outTab, termTab, terminal, outputPane, code, editor, footer };
}
