// The playground page: one full-size <flankbox-playground>, its code and language kept in the
// URL hash so a link shares them.
import { FlankboxPlayground } from "./playground.js";

const b64url = {
  encode: (text) => btoa(String.fromCharCode(...new TextEncoder().encode(text))).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, ""),
  decode: (s) => new TextDecoder().decode(Uint8Array.from(atob(s.replaceAll("-", "+").replaceAll("_", "/")), (c) => c.charCodeAt(0))),
};

function fromHash() {
  const q = new URLSearchParams(location.hash.slice(1));
  let code;
  try {
    code = q.get("code") ? b64url.decode(q.get("code")) : undefined;
  } catch {}
  return { language: q.get("lang") ?? undefined, code };
}

const { language, code } = fromHash();
const playground = new FlankboxPlayground();
playground.setAttribute("layout", "page");
playground.setAttribute("prepare", "");
if (language) playground.setAttribute("language", language);
if (code !== undefined) playground.setAttribute("code", code);
document.getElementById("app").append(playground);
window.playground = playground;

const share = () => history.replaceState(null, "", `#lang=${playground.language}&code=${b64url.encode(playground.code)}`);
// After a reload, the widget shows the program it reattached to: the link follows.
if (playground.code !== (code ?? playground.code) || playground.language !== (language ?? playground.language)) share();
let timer;
playground.onChange(() => {
  clearTimeout(timer);
  timer = setTimeout(share, 300);
});
