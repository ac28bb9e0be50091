// The official @northflank/js-client 0.9.5 exposes a sandbox's web server through the local
// host and tails its logs: the port's DNS name reaches the server inside the sandbox.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { ApiClient, ApiClientInMemoryContextProvider } from "@northflank/js-client";
import { startHost, TOKEN } from "./host.mjs";
import { request, requestWhenUp, openWebSocket, roundTrip } from "../support/localhost.mjs";
import { serveCommand } from "../support/port-server.mjs";

let host;
let apiClient;
const projectId = "ports-project";

before(async () => {
  host = await startHost();
  const contextProvider = new ApiClientInMemoryContextProvider();
  await contextProvider.addContext({ name: "context", token: TOKEN, host: host.base });
  apiClient = new ApiClient(contextProvider, { throwErrorOnHttpErrorCode: true });
});
after(async () => host?.stop());

async function sandbox(serviceId, customCommand) {
  await apiClient.create.service.deployment({
    parameters: { projectId },
    data: {
      name: serviceId,
      billing: { deploymentPlan: "nf-compute-200" },
      deployment: {
        instances: 1,
        docker: { configType: "customCommand", customCommand },
        external: { imagePath: "ubuntu:22.04" },
        storage: { ephemeralStorage: { storageSize: 1024 } },
      },
    },
  });
  const deadline = performance.now() + 30_000;
  for (;;) {
    const svc = await apiClient.get.service({ parameters: { projectId, serviceId } });
    const status = svc.data.status.deployment.status;
    if (status === "COMPLETED") return;
    assert.notEqual(status, "FAILED");
    assert.ok(performance.now() < deadline, `still ${status}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("python3 -m http.server 8080 is reached by the port's DNS name, and a WebSocket echo too", async () => {
  const serviceId = "web-server";
  const site = "mkdir -p /tmp/site && echo '<h1>hello from http.server</h1>' > /tmp/site/index.html && cd /tmp/site";
  await sandbox(serviceId, `${site} && { python3 -m http.server 8080 & ${serveCommand([8081])}; }`);
  await apiClient.update.service.ports({
    parameters: { projectId, serviceId },
    data: {
      ports: [
        { name: "http", internalPort: 8080, public: true, protocol: "HTTP" },
        { name: "ws", internalPort: 8081, public: true, protocol: "HTTP" },
      ],
    },
  });
  const ports = await apiClient.get.service.ports({ parameters: { projectId, serviceId } });
  const dns = (name) => ports.data.ports.find((p) => p.name === name).dns;
  assert.equal(dns("http"), `http--${serviceId}--${projectId}.localhost:${new URL(host.base).port}`);

  const page = await requestWhenUp(`http://${dns("http")}/`);
  assert.equal(page.status, 200);
  assert.equal(page.body.toString(), "<h1>hello from http.server</h1>\n");
  const listing = await request(`http://${dns("http")}/missing.txt`);
  assert.equal(listing.status, 404, "the sandbox's own 404, passed through");

  assert.equal((await requestWhenUp(`http://${dns("ws")}/`)).status, 200);
  const ws = await openWebSocket(`ws://${dns("ws")}/echo`);
  assert.equal(await roundTrip(ws, "hello over the proxy"), "hello over the proxy");
  assert.deepEqual(await roundTrip(ws, Buffer.from([0, 1, 2, 250])), Buffer.from([0, 1, 2, 250]));
  ws.close();

  // Paused: the name answers 503 until resumed.
  await apiClient.pause.service({ parameters: { projectId, serviceId } });
  const deadline = performance.now() + 10_000;
  let paused;
  do paused = await request(`http://${dns("http")}/`);
  while (paused.status !== 503 && performance.now() < deadline);
  assert.equal(paused.status, 503);
  assert.match(paused.body.toString(), /paused/);
});

test("the SDK's log tail receives what the main process prints, and the range query reads it back", async () => {
  const serviceId = "chatty-logger";
  await sandbox(serviceId, "echo booted; i=0; while true; do echo line $i; i=$((i+1)); sleep 0.1; done");
  const tail = await apiClient.logs.tailServiceLogs({ parameters: { projectId, serviceId }, options: { lineLimit: 1 } });
  const received = [];
  const enough = new Promise((resolve) =>
    tail.on("logs-received", (lines) => {
      received.push(...lines);
      if (received.length >= 6) resolve();
    }),
  );
  const errors = [];
  tail.on("error", (e) => errors.push(e));
  const closed = tail.start();
  await enough;
  await tail.stop();
  await closed;
  assert.deepEqual(errors, []);
  // The backlog line may still be "booted" if the tail starts right away.
  const numbers = received.filter((l) => l.log.startsWith("line ")).map((l) => Number(l.log.replace("line ", "")));
  assert.ok(numbers.length >= 5, `${received.map((l) => l.log)}`);
  assert.ok(numbers.every((n, i) => i === 0 || n === numbers[i - 1] + 1), `in order, none lost: ${numbers}`);
  assert.ok(received.every((l) => l.ts instanceof Date && !Number.isNaN(l.ts.getTime())));
  assert.ok(received.every((l) => l.containerId.startsWith(`${serviceId}-`)));

  const range = await apiClient.logs.getServiceLogs({
    parameters: { projectId, serviceId },
    options: { lineLimit: 3, direction: "forward" },
  });
  assert.deepEqual(
    range.data.map((l) => l.log),
    ["booted", "line 0", "line 1"],
  );
});
