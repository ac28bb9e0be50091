// How a playground gets its connection. By default the host's /playground/config.json names its
// edge proxy: the page creates sandboxes through it and drives each with the capability it gets
// back, so no token is ever in a page. In the host's dev mode (loopback only) the config carries
// a token instead, for pointing the playground at another API.

/** Resolves to `{ nf, mode, base, projectId, token?, ttlSeconds }`, from the host at `host`
 * (default: this page's origin). */
export async function connect(host = location.origin) {
  // The client (its wasm) loads alongside the config, on the first focus or Run.
  const [res, { Northflank }] = await Promise.all([fetch(`${host}/playground/config.json`, { cache: "no-store" }), import("flankbox")]);
  const config = await res.json();
  if (!res.ok) throw new Error(config?.error?.message ?? `the playground's config answered ${res.status}`);
  const ttlSeconds = config.ttlSeconds ?? 1800;
  if (config.mode === "edge") {
    const base = new URL(config.edgePath, host).href.replace(/\/$/, "");
    return { nf: new Northflank({ baseUrl: base }), mode: "edge", base, projectId: "edge", ttlSeconds };
  }
  const base = config.baseUrl || host;
  const nf = new Northflank({ token: config.token, projectId: config.projectId, baseUrl: base });
  return { nf, mode: "token", ttlSeconds, token: config.token, base, projectId: config.projectId };
}
