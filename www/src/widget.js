// The embeddable widget: one script defines <flankbox-playground>.
export { FlankboxPlayground } from "./playground.js";
