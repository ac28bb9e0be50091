// The code editor: CodeMirror, a chunk of its own that the playground loads when its code view
// first gets focus (or ahead of time on the full page). Tab indents; Escape, then Tab, leaves
// (CodeMirror's tab-focus mode), so the keyboard is never trapped.
import { EditorView, basicSetup } from "codemirror";
import { Compartment, EditorSelection } from "@codemirror/state";
import { keymap } from "@codemirror/view";
import { indentWithTab } from "@codemirror/commands";

export class CodeEditor {
  #view;
  #mode = new Compartment();
  #label = new Compartment();

  /** An editor in `parent` holding `doc`, the caret at `caret`, in language mode `mode`;
   * `label` names it to screen readers. Mod-Enter calls `onRun()`; every edit
   * `onChange(code)`. */
  constructor({ parent, doc, caret = 0, mode, label, onRun, onChange }) {
    this.#view = new EditorView({
      doc,
      parent,
      selection: EditorSelection.cursor(Math.min(caret, doc.length)),
      extensions: [
        keymap.of([{ key: "Mod-Enter", run: () => (onRun(), true) }, indentWithTab]),
        basicSetup,
        this.#mode.of(mode),
        this.#label.of(EditorView.contentAttributes.of({ "aria-label": label })),
        EditorView.updateListener.of((u) => u.docChanged && onChange(u.state.doc.toString())),
      ],
    });
  }

  get code() {
    return this.#view.state.doc.toString();
  }

  set code(text) {
    this.#view.dispatch({ changes: { from: 0, to: this.#view.state.doc.length, insert: text } });
  }

  /** Switches to language mode `mode`, named `label`. */
  setMode(mode, label) {
    this.#view.dispatch({ effects: [this.#mode.reconfigure(mode), this.#label.reconfigure(EditorView.contentAttributes.of({ "aria-label": label }))] });
  }

  focus() {
    this.#view.focus();
  }
}
