// A TCP relay to the host whose `cut()` destroys every connection through it, as a network
// drop does: the client sees its sockets close (1006) and the host sees them go.
import { createServer, connect } from "node:net";

/** Relays to `target` (an http URL); resolves to `{ url, cut, outage, refused, close }`; `cut()`
 * returns how many sockets it destroyed; `outage(ms)` cuts, then drops every new connection for
 * `ms` (a network that stays down, so a reconnect has to wait and try again); `refused()` counts
 * the connections dropped so. */
export function relay(target) {
  const { hostname, port } = new URL(target);
  const open = new Set();
  let downUntil = 0;
  let refused = 0;
  const server = createServer((client) => {
    if (performance.now() < downUntil) {
      refused++;
      return client.destroy();
    }
    const upstream = connect(Number(port), hostname);
    open.add(client).add(upstream);
    const gone = () => {
      for (const s of [client, upstream]) {
        s.destroy();
        open.delete(s);
      }
    };
    client.on("error", gone).on("close", gone);
    upstream.on("error", gone).on("close", gone);
    client.pipe(upstream).pipe(client);
  });
  const cut = () => {
    const n = open.size;
    for (const s of open) s.destroy();
    open.clear();
    return n;
  };
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({
        url: `http://127.0.0.1:${server.address().port}`,
        cut,
        outage: (ms) => {
          downUntil = performance.now() + ms;
          return cut();
        },
        /** Ends an outage now. */
        back: () => void (downUntil = 0),
        refused: () => refused,
        close: () => server.close(),
      }),
    ),
  );
}
