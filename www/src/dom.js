// The element's DOM: its styles, a tiny element builder, and the widget's parts.
import xtermCss from "@xterm/xterm/css/xterm.css";
import css from "./style.css";
import { LANGUAGES } from "./languages.js";

/** Adds the widget's styles to the page, once for every widget on it. */
export function injectStyles() {
  if (document.getElementById("flankbox-playground-styles")) return;
  const style = document.createElement("style");
  style.id = "flankbox-playground-styles";
  style.textContent = xtermCss + css;
  document.head.append(style);
}

/** `document.createElement(tag)` with `props` assigned and `children` appended. */
export function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

/** Removes the indentation every line of an element's text shares. */
export function dedent(text) {
  const lines = text.replace(/^\n+|\s+$/g, "").split("\n");
  const indent = Math.min(...lines.filter((l) => l.trim()).map((l) => l.match(/^ */)[0].length));
  return lines.map((l) => l.slice(indent)).join("\n") + "\n";
}

/** Builds the widget's parts inside `host` and returns them by name; `compact` is the embedded
 * layout, `language` the one selected. */
export function buildUi(host, { compact, language: selected }) {
  const language = el("select", { className: "fbx-language", title: "Language" });
  for (const [id, l] of Object.entries(LANGUAGES)) language.append(el("option", { value: id, textContent: l.label, selected: id === selected }));
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
  host.append(root);
  return { root, language, run, stop, status, previews, output, stdin, stdinField, eof, outTab, termTab, terminal, outputPane, editor, footer };
}
