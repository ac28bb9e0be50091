// A TCP relay to the host whose `cut()` destroys every connection through it, as a network
// drop does: the client sees its sockets close (1006) and the host sees them go.
import { createServer, connect } from "node:net";

/** Relays to `target` (an http URL); resolves to `{ url, cut, down, up, close }`; `cut()`
 * returns how many sockets it destroyed; `down()` cuts and refuses every connection until
 * `up()`, as a network that stays gone does. */
export function relay(target) {
  const { hostname, port } = new URL(target);
  const open = new Set();
  let refusing = false;
  const server = createServer((client) => {
    if (refusing) return void client.destroy();
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
        down: () => {
          refusing = true;
          return cut();
        },
        up: () => {
          refusing = false;
        },
        close: () => server.close(),
      }),
    ),
  );
}
