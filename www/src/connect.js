// How a playground gets a Northflank connection. In the host's dev mode (loopback only) the
// same-origin page fetches /playground/config.json; the token never appears in a page.
import { Northflank } from "flankbox";

/** Resolves to `{ nf, base, projectId, token, ttlSeconds }`, from the host at `host` (default:
 * this page's origin). The API may be elsewhere (Northflank itself): the config says where. */
export async function connect(host = location.origin) {
  const res = await fetch(`${host}/playground/config.json`, { cache: "no-store" });
  const config = await res.json();
  if (!res.ok) throw new Error(config?.error?.message ?? `the playground's config answered ${res.status}`);
  const base = config.baseUrl || host;
  const nf = new Northflank({ token: config.token, projectId: config.projectId, baseUrl: base });
  return { nf, ttlSeconds: config.ttlSeconds ?? 1800, token: config.token, base, projectId: config.projectId };
}
