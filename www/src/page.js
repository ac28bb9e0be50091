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

let timer;
playground.onChange(({ language, code }) => {
  clearTimeout(timer);
  timer = setTimeout(() => history.replaceState(null, "", `#lang=${language}&code=${b64url.encode(code)}`), 300);
});
