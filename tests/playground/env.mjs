// What the playground's test files share: a host serving the built playground, and Chromium.
import { join } from "node:path";
import { startHost } from "../sdk-compat/host.mjs";
import { ROOT, launchChromium } from "../client/env.mjs";

/** A host serving www/dist (capability mode, the default), and a headless Chromium. */
export async function startPlayground() {
  const host = await startHost({ args: ["--www", join(ROOT, "www/dist")] });
  const browser = await launchChromium();
  return {
    host,
    browser,
    async stop() {
      await browser.close();
      await host.stop();
    },
  };
}

/** Waits until the page's (first) playground shows one of the `wanted` statuses. */
export function status(page, wanted, timeout = 20_000, selector = "flankbox-playground") {
  return page.waitForFunction(([w, s]) => w.includes(document.querySelector(s)?.dataset.status), [wanted, selector], { timeout, polling: 20 });
}
