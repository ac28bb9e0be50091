// sandbox.exposePort() resolves to a URL that works: in Node (resolving *.localhost as a
// browser does) and in headless Chromium (which resolves it by itself), for HTTP and WebSockets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ROOT, URL_, TOKEN, project, withBlankPage } from "./env.mjs";
import { requestWhenUp, openWebSocket, roundTrip } from "../support/localhost.mjs";
import { serveCommand } from "../support/port-server.mjs";

const pkg = await import(`${ROOT}/pkg/node.js`);
const apiPort = new URL(URL_).port;

test("Node: exposePort gives the URL of the server inside the sandbox", async () => {
  const projectId = project("ports-node");
  const nf = new pkg.Northflank({ token: TOKEN, projectId, baseUrl: URL_ });
  const sandbox = await pkg.Sandbox.create(nf, { command: serveCommand([8080]) });
  try {
    const url = await sandbox.exposePort(8080);
    assert.equal(url, `http://p8080--${sandbox.id}--${projectId}.localhost:${apiPort}`);
    const page = await requestWhenUp(`${url}/`);
    assert.equal(page.status, 200);
    assert.equal(page.body.toString(), "hello from the sandbox\n");
    const ws = await openWebSocket(`${url.replace("http:", "ws:")}/echo`);
    assert.equal(await roundTrip(ws, "echo from node"), "echo from node");
    ws.close();
  } finally {
    await sandbox.destroy();
  }
});

test("Chromium: the page fetches the exposed URL and talks WebSocket to it", async () => {
  const projectId = project("ports-chromium");
  const result = await withBlankPage((page) =>
    page.evaluate(
      async ({ baseUrl, token, projectId, command }) => {
        const { Northflank, Sandbox } = await import("/pkg/browser.js");
        const nf = new Northflank({ token, projectId, baseUrl });
        const sandbox = await Sandbox.create(nf, { command });
        try {
          const url = await sandbox.exposePort(8080);
          let res;
          for (let i = 0; i < 400; i++) {
            res = await fetch(`${url}/`);
            if (res.status !== 502) break;
            await new Promise((r) => setTimeout(r, 50));
          }
          const body = await res.text();
          const echoed = await new Promise((resolve, reject) => {
            const ws = new WebSocket(`${url.replace("http:", "ws:")}/echo`);
            ws.onopen = () => ws.send("echo from chromium");
            ws.onmessage = (m) => {
              resolve(m.data);
              ws.close();
            };
            ws.onerror = () => reject(new Error("websocket failed"));
          });
          return { id: sandbox.id, url, status: res.status, body, echoed };
        } finally {
          await sandbox.destroy();
        }
      },
      { baseUrl: URL_, token: TOKEN, projectId, command: serveCommand([8080]) },
    ),
  );
  assert.equal(result.url, `http://p8080--${result.id}--${projectId}.localhost:${apiPort}`);
  assert.deepEqual([result.status, result.body, result.echoed], [200, "hello from the sandbox\n", "echo from chromium"]);
});
