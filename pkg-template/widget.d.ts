/** `<flankbox-playground language="python">print("hi")</flankbox-playground>`: an editor, Run and
 * Stop, live output with stdin, and a terminal, on a sandbox of its own. Importing this module
 * defines the element. Attributes: `language` (python, javascript, bash, c, java), `code`,
 * `api` (the host or proxy; default: this page's origin), `layout` ("page" for full size),
 * `prepare` (make the sandbox, and load the editor, once the page is idle). The code shows at once;
 * the editor, the client and its wasm, and xterm.js load on first use. */
export class FlankboxPlayground extends HTMLElement {
  code: string;
  language: string;
  readonly output: string;
  readonly terminalText: string;
  run(): Promise<void>;
  stop(): void;
  sendInput(text: string): void;
  endInput(): void;
  onChange(fn: (state: { language: string; code: string }) => void): void;
  destroy(options?: { keepalive?: boolean }): Promise<void>;
}
