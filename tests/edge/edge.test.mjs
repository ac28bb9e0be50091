// The edge proxy, end to end: the example Worker (examples/edge-proxy) in real workerd, and the
// same logic mounted natively by the host at /edge, both in front of a real host. A page-side
// client (the package in Node, and in Chromium) creates, execs and destroys; every attack in
// the issue is made against both, and refused.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync, mkdtempSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";
import { startHost, TOKEN } from "../sdk-compat/host.mjs";
import { serveStatic, launchChromium } from "../client/env.mjs";
import { startWorker, ROOT } from "./worker.mjs";

const pkg = await import(`${ROOT}/pkg/node.js`);
const SECRET = "edge-suite-secret-0123456789abcdef0123456789";
const FRIEND = "http://friend.example";

let host;
let worker;
let site;
const targets = {};

before(async () => {
  site = await serveStatic(ROOT);
  const policy = {
    allowedOrigins: [site.url, FRIEND],
    maxTtlSeconds: 600,
    maxSandboxesPerClient: 2,
    allowPublicPorts: false,
    allowGpu: false,
    maxVolumeMb: 2048,
    exec: { maxFrameBytes: 65536, allowTty: false, idleTimeoutSeconds: 60 },
  };
  const file = join(mkdtempSync(join(tmpdir(), "flankbox-edge-")), "policy.json");
  writeFileSync(file, JSON.stringify(policy));
  host = await startHost({ args: ["--edge-secret", SECRET, "--edge-policy", file] });
  worker = await startWorker({
    NF_TOKEN: TOKEN,
    NF_UPSTREAM: host.base,
    NF_PROJECT: "playground",
    EDGE_SECRET: SECRET,
    EDGE_POLICY: JSON.stringify(policy),
  });
  targets.worker = worker.url;
  targets.native = `${host.base}/edge`;
});

after(async () => {
  await worker?.stop();
  await host?.stop();
  site?.close();
});

/** The host's own view, with its token: the services of the proxy's project. */
async function hostServices() {
  const res = await fetch(`${host.base}/v1/projects/playground/services`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  return (await res.json()).data.services.map((s) => s.id);
}

/** The host's own view of the proxy project's volumes: their ids. */
async function hostVolumes() {
  const res = await fetch(`${host.base}/v1/projects/playground/volumes`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  return (await res.json()).data.map((v) => v.id);
}

/** A raw call to a proxy: `{ status, body, headers }`. */
async function call(base, method, path, { body, capability, origin, ip } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (capability) headers.Authorization = `Bearer ${capability}`;
  if (origin) headers.Origin = origin;
  if (ip) headers["CF-Connecting-IP"] = ip;
  const res = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, body: json ?? text, headers: res.headers };
}

function createBody(overrides = {}) {
  return {
    name: "ignored",
    billing: { deploymentPlan: "nf-compute-20" },
    deployment: {
      instances: 1,
      external: { imagePath: "ubuntu:22.04" },
      docker: { configType: "customCommand", customCommand: "sleep infinity" },
    },
    ...overrides,
  };
}

async function rawCreate(base, opts = {}) {
  const r = await call(base, "POST", "/v1/projects/x/services/deployment", { ...opts, body: createBody(opts.body) });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return { id: r.body.data.id, capability: r.body.data.capability };
}

async function destroy(base, sandbox, opts = {}) {
  await call(base, "DELETE", `/v1/projects/x/services/${sandbox.id}`, { capability: sandbox.capability, ...opts });
}

/** Opens the exec socket, sends `init` then `after`, and reads to the close. */
function execRaw(base, id, init, { after = [], origin, project = "x" } = {}) {
  const url = `${base.replace(/^http/, "ws")}/v1/command-exec/projects/${project}/services/${id}`;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, origin ? { origin } : {});
    const frames = [];
    ws.on("open", () => {
      ws.send(JSON.stringify(init));
      for (const m of after) ws.send(m);
    });
    ws.on("message", (data) => frames.push(JSON.parse(String(data))));
    ws.on("close", (code) => resolve({ frames, code }));
    ws.on("error", reject);
  });
}

const initWith = (token, context) => ({ type: "init", data: { auth: { type: "apiToken", apiToken: token }, context } });

/** Waits, on the host, until a sandbox runs. */
async function running(id) {
  const deadline = performance.now() + 20_000;
  for (;;) {
    const res = await fetch(`${host.base}/v1/projects/playground/services/${id}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    if ((await res.json()).data.status.deployment.status === "COMPLETED") return;
    assert.ok(performance.now() < deadline, `${id} never ran`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs `command` in a sandbox directly on the host (with the token), for checking effects,
 * once the sandbox runs. */
async function onHost(id, command) {
  await running(id);
  const r = await execRaw(host.base, id, initWith(TOKEN, { command: ["sh", "-c", command], shell: "none" }), { project: "playground" });
  return r.frames.filter((f) => f.type === "stdOut").map((f) => f.data).join("");
}

const code = (r) => r.body?.error?.details?.code;

for (const kind of ["worker", "native"]) {
  describe(`through the ${kind === "worker" ? "example Worker in workerd" : "host's native /edge mount"}`, () => {
    const base = () => targets[kind];

    test("a page-side client in Node creates, execs with live output and stdin, and destroys", async () => {
      const nf = new pkg.Northflank({ baseUrl: base() });
      const sandbox = await pkg.Sandbox.create(nf, { ttlSeconds: 300 });
      try {
        assert.match(sandbox.id, /^fbx-[0-9a-f]{10}-[0-9a-z]+-[0-9a-z]{6}$/);
        assert.match(sandbox.capability, /^fbx1\./);
        const live = [];
        const r = await sandbox.exec("echo started; read line; echo got $line; echo oops >&2", {
          stdin: "typed input\n",
          onStdout: (s) => live.push(s),
        });
        assert.deepEqual([r.exitCode, r.stdout, r.stderr], [0, "started\ngot typed input\n", "oops\n"]);
        assert.ok(live.length >= 1 && live.join("") === r.stdout);
        assert.equal((await sandbox.status()).ready, true);
        // The same sandbox elsewhere, with only its id and capability.
        const again = await pkg.Sandbox.connect(nf, sandbox.id, { capability: sandbox.capability });
        assert.equal((await again.exec("echo reconnected")).stdout, "reconnected\n");
      } finally {
        await sandbox.destroy();
      }
      assert.ok(!(await hostServices()).includes(sandbox.id), "destroyed on the host");
    });

    test("a volume made through the proxy keeps its data across pause and resume, and goes with its sandbox", async () => {
      const nf = new pkg.Northflank({ baseUrl: base() });
      const sandbox = await pkg.Sandbox.create(nf, { ttlSeconds: 300, volume: { sizeMb: 1024, mountPaths: ["/data"] } });
      const volume = sandbox.volumeId;
      try {
        assert.match(volume, /^fbx-[0-9a-f]{10}-[0-9a-z]+-[0-9a-z]{6}$/, "named by the proxy");
        assert.ok((await hostVolumes()).includes(volume));
        assert.equal((await sandbox.exec("echo kept > /data/note && sync && cat /data/note")).stdout, "kept\n");
        await sandbox.pause();
        await sandbox.resume();
        assert.equal((await sandbox.exec("cat /data/note")).stdout, "kept\n");
      } finally {
        await sandbox.destroy();
      }
      const deadline = performance.now() + 15_000;
      while ((await hostVolumes()).includes(volume) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      assert.ok(!(await hostVolumes()).includes(volume), "the volume went with its sandbox");
    });

    test("a plan or storage is fixed at create: scale and resume cannot change it, and ephemeral storage is capped", async () => {
      const ip = `198.51.100.${kind === "worker" ? 23 : 24}`;
      const huge = await call(base(), "POST", "/v1/projects/x/services/deployment", {
        body: createBody({ deployment: { ...createBody().deployment, storage: { ephemeralStorage: { storageSize: 500_000 } } } }),
        ip,
      });
      assert.deepEqual([huge.status, code(huge)], [403, "POLICY"]);
      assert.match(huge.body.error.message, /500000 MB of ephemeral storage is over the limit/);
      const sandbox = await rawCreate(base(), { ip });
      try {
        for (const [action, body] of [
          ["scale", { instances: 1, deploymentPlan: "nf-compute-400" }],
          ["resume", { deploymentPlan: "nf-gpu-h100-80-1g" }],
          ["scale", { instances: 1, storage: { ephemeralStorage: { storageSize: 500_000 } } }],
        ]) {
          const r = await call(base(), "POST", `/v1/projects/x/services/${sandbox.id}/${action}`, { body, capability: sandbox.capability, ip });
          assert.deepEqual([r.status, code(r)], [403, "POLICY"], `${action} ${JSON.stringify(body)}`);
        }
        const plan = async () => (await (await fetch(`${host.base}/v1/projects/playground/services/${sandbox.id}`, { headers: { Authorization: `Bearer ${TOKEN}` } })).json()).data.billing.deploymentPlan;
        assert.equal(await plan(), "nf-compute-20", "the plan is unchanged");
      } finally {
        await destroy(base(), sandbox, { ip });
      }
    });

    test("volumes: over the policy's size, attached at creation, or someone else's are refused", async () => {
      const ip = `198.51.100.${kind === "worker" ? 21 : 22}`;
      const volumeBody = (storageSize, extra = {}) => ({ name: "data", mounts: [{ containerMountPath: "/data" }], spec: { accessMode: "ReadWriteOnce", storageSize }, ...extra });
      const big = await call(base(), "POST", "/v1/projects/x/volumes", { body: volumeBody(4096), ip });
      assert.deepEqual([big.status, code(big)], [403, "POLICY"]);
      assert.match(big.body.error.message, /4096 MB is over the limit of 2048 MB/);
      const victim = await rawCreate(base(), { ip });
      try {
        const grab = await call(base(), "POST", "/v1/projects/x/volumes", { body: volumeBody(1024, { attachedObjects: [{ id: victim.id, type: "service" }] }), ip });
        assert.deepEqual([grab.status, code(grab)], [403, "POLICY"]);
        const made = await call(base(), "POST", "/v1/projects/x/volumes", { body: volumeBody(1024), ip });
        assert.equal(made.status, 200, JSON.stringify(made.body));
        const id = made.body.data.id;
        // A volume the proxy did not make, and (on the Worker, where clients are told apart by
        // IP) one another client made.
        await fetch(`${host.base}/v1/projects/playground/volumes`, {
          method: "POST",
          headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" },
          body: JSON.stringify({ name: `admin-${kind}`, mounts: [{ containerMountPath: "/secret" }], spec: { accessMode: "ReadWriteOnce", storageSize: 1024 } }),
        });
        const foreign = kind === "worker" ? [`admin-${kind}`, id] : [`admin-${kind}`];
        for (const [i, vid] of foreign.entries()) {
          const thief = kind === "worker" && i === 1 ? "198.51.100.99" : ip;
          const r = await call(base(), "POST", "/v1/projects/x/services/deployment", { body: createBody({ createOptions: { volumesToAttach: [vid] } }), ip: thief });
          assert.deepEqual([r.status, code(r)], [403, "POLICY"], vid);
          assert.match(r.body.error.message, /was not made by this client/);
        }
        await fetch(`${host.base}/v1/projects/playground/volumes/admin-${kind}`, { method: "DELETE", headers: { Authorization: `Bearer ${TOKEN}` } });
        // Unclaimed, it is swept once expired; here it is deleted with the host's token.
        await fetch(`${host.base}/v1/projects/playground/volumes/${id}`, { method: "DELETE", headers: { Authorization: `Bearer ${TOKEN}` } });
      } finally {
        await destroy(base(), victim, { ip });
      }
    });

    test("a page in Chromium does the same, with no token anywhere in it", async () => {
      const browser = await launchChromium();
      try {
        const page = await browser.newPage();
        const errors = [];
        page.on("pageerror", (e) => errors.push(e.message));
        const sent = [];
        page.on("request", (r) => sent.push(r.url() + JSON.stringify(r.headers())));
        page.on("websocket", (ws) => ws.on("framesent", (f) => sent.push(String(f.payload))));
        await page.goto(`${site.url}/tests/client/blank.html`);
        const result = await page.evaluate(async (baseUrl) => {
          const { Northflank, Sandbox } = await import("/pkg/browser.js");
          const sandbox = await Sandbox.create(new Northflank({ baseUrl }));
          const chunks = [];
          const r = await sandbox.exec("cat; echo done", { stdin: "from chromium\n", onStdout: (s) => chunks.push(s) });
          await sandbox.destroy();
          return { id: sandbox.id, stdout: r.stdout, exitCode: r.exitCode, chunks: chunks.join("") };
        }, base());
        assert.deepEqual([result.stdout, result.exitCode, result.chunks], ["from chromium\ndone\n", 0, "from chromium\ndone\n"]);
        assert.ok(!(await hostServices()).includes(result.id));
        assert.ok(sent.length > 0 && sent.every((s) => !s.includes(TOKEN)), "the token never crossed the page");
        assert.deepEqual(errors, []);
      } finally {
        await browser.close();
      }
    });

    test("no capability, a forged one, the API token itself, an expired one: 401", async () => {
      const ip = `198.51.100.${kind === "worker" ? 1 : 2}`;
      const sandbox = await rawCreate(base(), { ip });
      const path = `/v1/projects/x/services/${sandbox.id}`;
      try {
        assert.equal(code(await call(base(), "GET", path)), "CAPABILITY_REQUIRED");
        const forged = sandbox.capability.replace(/\.[^.]+$/, ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        const narrower = sandbox.capability.replace(/^(fbx1\.[^.]+\.)[a-z]+/, "$1s");
        for (const bad of [forged, narrower, TOKEN, "fbx1.garbage"]) {
          const r = await call(base(), "GET", path, { capability: bad });
          assert.equal(r.status, 401, bad);
          assert.equal(code(r), "CAPABILITY_INVALID");
        }
      } finally {
        await destroy(base(), sandbox, { ip });
      }
      // A sandbox whose time is up is refused, and destroyed on that access.
      const short = await rawCreate(base(), { ip, body: { tags: [`flankbox-expires-${Math.floor(Date.now() / 1000) + 4}`] } });
      assert.ok((await hostServices()).includes(short.id));
      await new Promise((r) => setTimeout(r, 5000));
      const late = await call(base(), "GET", `/v1/projects/x/services/${short.id}`, { capability: short.capability });
      assert.deepEqual([late.status, code(late)], [401, "CAPABILITY_EXPIRED"]);
      assert.ok(!(await hostServices()).includes(short.id), "destroyed on its next access");
    });

    test("detached processes: a sandbox's capability spawns, lists and attaches; another sandbox's can do neither", async () => {
      const nf = new pkg.Northflank({ baseUrl: base() });
      const a = await pkg.Sandbox.create(nf, { ttlSeconds: 300 });
      const b = await pkg.Sandbox.create(nf, { ttlSeconds: 300 });
      try {
        const job = await a.spawn("echo one; sleep 0.3; echo two; exit 4", { detached: true, encoding: "utf8" });
        const own = pkg.Sandbox.forService(nf, a.id, { capability: a.capability });
        const listed = await own.processes();
        assert.deepEqual(listed.map((p) => p.id), [job.id]);
        const attached = await own.attach(job.id, { from: 0, encoding: "utf8" });
        const reader = attached.stdout.getReader();
        let output = "";
        for (let r = await reader.read(); !r.done; r = await reader.read()) output += r.value;
        assert.deepEqual([output, (await attached.wait()).exitCode], ["one\ntwo\n", 4]);
        // B's capability pointed at A: refused before anything runs in A.
        const wrong = pkg.Sandbox.forService(nf, a.id, { capability: b.capability });
        await assert.rejects(wrong.processes(), (e) => e.code !== "NOT_FOUND" && /for sandbox fbx-.* not fbx-|CAPABILITY_SCOPE|capability/i.test(`${e.code} ${e.message}`));
        await assert.rejects(wrong.attach(job.id), (e) => e.code !== "NOT_FOUND");
        // And B sees only its own (none).
        assert.deepEqual(await b.processes(), []);
      } finally {
        await a.destroy();
        await b.destroy();
      }
    });

    test("a capability for sandbox A does nothing to sandbox B", async () => {
      const ip = `198.51.100.${kind === "worker" ? 3 : 4}`;
      const a = await rawCreate(base(), { ip });
      const b = await rawCreate(base(), { ip });
      try {
        for (const [method, suffix] of [["GET", ""], ["DELETE", ""], ["POST", "/pause"], ["GET", "/ports"]]) {
          const r = await call(base(), method, `/v1/projects/x/services/${b.id}${suffix}`, { capability: a.capability, ip });
          assert.deepEqual([r.status, code(r)], [403, "CAPABILITY_SCOPE"], `${method} ${suffix}`);
        }
        const exec = await execRaw(base(), b.id, initWith(a.capability, { command: ["touch", "/tmp/from-a"] }));
        assert.equal(exec.code, 1008);
        assert.match(exec.frames[0].data.message, /for sandbox fbx-.* not fbx-/);
        assert.equal(await onHost(b.id, "ls /tmp/from-a 2>&1 || echo absent"), "ls: cannot access '/tmp/from-a': No such file or directory\nabsent\n");
        assert.ok((await hostServices()).includes(b.id), "B is still there");
      } finally {
        await destroy(base(), a, { ip });
        await destroy(base(), b, { ip });
      }
    });

    test("an exec init that smuggles a token or a forbidden context is refused, and nothing runs", async () => {
      const ip = `198.51.100.${kind === "worker" ? 5 : 6}`;
      const sandbox = await rawCreate(base(), { ip });
      try {
        const smuggled = await execRaw(base(), sandbox.id, initWith(TOKEN, { command: ["touch", "/tmp/smuggled"] }));
        assert.equal(smuggled.code, 1008);
        assert.deepEqual(smuggled.frames.map((f) => f.type), ["error"]);
        assert.match(smuggled.frames[0].data.message, /invalid capability/);
        const tty = await execRaw(base(), sandbox.id, initWith(sandbox.capability, { command: ["touch", "/tmp/tty"], tty: true }));
        assert.equal(tty.code, 1008);
        assert.match(tty.frames[0].data.message, /PTY/);
        const notInit = await execRaw(base(), sandbox.id, { type: "payload", data: "touch /tmp/payload\n" });
        assert.equal(notInit.code, 1008);
        assert.equal(await onHost(sandbox.id, "ls /tmp"), "", "nothing ran");
        // The good init goes through, with the real token put in by the proxy.
        const ok = await execRaw(base(), sandbox.id, initWith(sandbox.capability, { command: ["echo", "allowed"], shell: "none" }));
        assert.equal(ok.frames.filter((f) => f.type === "stdOut").map((f) => f.data).join(""), "allowed\n");
        assert.equal(ok.code, 1000);
      } finally {
        await destroy(base(), sandbox, { ip });
      }
    });

    test("an oversized exec message is refused with an error frame and close 1009", async () => {
      const ip = `198.51.100.${kind === "worker" ? 7 : 8}`;
      const sandbox = await rawCreate(base(), { ip });
      await running(sandbox.id);
      try {
        const huge = JSON.stringify({ type: "payload", data: "x".repeat(70_000) });
        const r = await execRaw(base(), sandbox.id, initWith(sandbox.capability, { command: ["cat"], shell: "none" }), { after: [huge] });
        assert.equal(r.code, 1009);
        const error = r.frames.find((f) => f.type === "error");
        assert.match(error.data.message, /over the policy's limit of 65536 bytes/);
        const bigInit = initWith(sandbox.capability, { command: ["echo", "y".repeat(70_000)] });
        assert.equal((await execRaw(base(), sandbox.id, bigInit)).code, 1009);
      } finally {
        await destroy(base(), sandbox, { ip });
      }
    });

    test("disallowed images, plans, GPUs and public ports are refused", async () => {
      const ip = `198.51.100.${kind === "worker" ? 9 : 10}`;
      const cases = [
        [{ deployment: { ...createBody().deployment, external: { imagePath: "alpine:3.19" } } }, /image alpine:3.19/],
        [{ billing: { deploymentPlan: "nf-compute-400" } }, /plan nf-compute-400/],
        [{ billing: { deploymentPlan: "nf-gpu-h100-80-1g" } }, /GPUs are not allowed/],
        [{ billing: { deploymentPlan: "nf-compute-20", gpu: { enabled: true, configuration: { gpuType: "a100-80", gpuCount: 1 } } } }, /GPUs are not allowed \(asked for a100-80\)/],
        [{ ports: [{ name: "web", internalPort: 8080, public: true, protocol: "HTTP" }] }, /public ports are not allowed/],
      ];
      const before = await hostServices();
      for (const [body, message] of cases) {
        const r = await call(base(), "POST", "/v1/projects/x/services/deployment", { body: createBody(body), ip });
        assert.deepEqual([r.status, code(r)], [403, "POLICY"], JSON.stringify(body));
        assert.match(r.body.error.message, message);
      }
      assert.deepEqual(await hostServices(), before, "nothing was created");
      // And a public port on an existing sandbox.
      const sandbox = await rawCreate(base(), { ip });
      try {
        const ports = { ports: [{ name: "web", internalPort: 8080, public: true, protocol: "HTTP" }] };
        const r = await call(base(), "POST", `/v1/projects/x/services/${sandbox.id}/ports`, { body: ports, capability: sandbox.capability, ip });
        assert.deepEqual([r.status, code(r)], [403, "POLICY"]);
        const private_ = { ports: [{ name: "web", internalPort: 8080, public: false, protocol: "HTTP" }] };
        const ok = await call(base(), "POST", `/v1/projects/x/services/${sandbox.id}/ports`, { body: private_, capability: sandbox.capability, ip });
        assert.equal(ok.status, 200);
      } finally {
        await destroy(base(), sandbox, { ip });
      }
    });

    if (kind === "native") {
      test("a DNS-rebinding page (its own name in Host and Origin) is not taken for the host's own origin", async () => {
        const { port } = new URL(host.base);
        const ask = (name) =>
          new Promise((resolve, reject) => {
            const body = JSON.stringify(createBody());
            const req = httpRequest(
              {
                host: "127.0.0.1",
                port,
                method: "POST",
                path: "/edge/v1/projects/x/services/deployment",
                headers: { Host: `${name}:${port}`, Origin: `http://${name}:${port}`, "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) },
              },
              (res) => {
                let text = "";
                res.on("data", (c) => (text += c));
                res.on("end", () => resolve({ status: res.statusCode, body: JSON.parse(text) }));
              },
            );
            req.on("error", reject);
            req.end(body);
          });
        const evil = await ask("rebind.evil.example");
        assert.deepEqual([evil.status, evil.body.error?.details?.code], [403, "ORIGIN"]);
        // The same request under a loopback name is the playground's own page.
        const own = await ask("127.0.0.1");
        assert.equal(own.status, 200, JSON.stringify(own.body));
        await destroy(base(), { id: own.body.data.id, capability: own.body.data.capability }, { origin: `http://127.0.0.1:${port}` });
      });
    }

    test("a foreign origin gets no CORS and a 403; a capability works only from its own origin", async () => {
      const preflight = await call(base(), "OPTIONS", "/v1/projects/x/services/deployment", { origin: "http://evil.example" });
      assert.deepEqual([preflight.status, code(preflight)], [403, "ORIGIN"]);
      assert.equal(preflight.headers.get("access-control-allow-origin"), null);
      const allowed = await call(base(), "OPTIONS", "/v1/projects/x/services/deployment", { origin: FRIEND });
      assert.equal(allowed.status, 204);
      assert.equal(allowed.headers.get("access-control-allow-origin"), FRIEND);
      const ip = `198.51.100.${kind === "worker" ? 11 : 12}`;
      const create = await call(base(), "POST", "/v1/projects/x/services/deployment", { body: createBody(), origin: "http://evil.example", ip });
      assert.deepEqual([create.status, code(create)], [403, "ORIGIN"]);
      // Made from FRIEND, the capability is bound to it: the site's own (allowed) origin cannot use it.
      const sandbox = await rawCreate(base(), { ip, origin: FRIEND });
      try {
        const path = `/v1/projects/x/services/${sandbox.id}`;
        assert.equal((await call(base(), "GET", path, { capability: sandbox.capability, origin: FRIEND })).status, 200);
        const elsewhere = await call(base(), "GET", path, { capability: sandbox.capability, origin: site.url });
        assert.deepEqual([elsewhere.status, code(elsewhere)], [403, "CAPABILITY_SCOPE"]);
        const exec = await execRaw(base(), sandbox.id, initWith(sandbox.capability, { command: ["true"] }), { origin: site.url });
        assert.equal(exec.code, 1008);
        const foreignSocket = await new Promise((resolve) => {
          const ws = new WebSocket(`${base().replace(/^http/, "ws")}/v1/command-exec/projects/x/services/${sandbox.id}`, { origin: "http://evil.example" });
          ws.on("unexpected-response", (_, res) => resolve(res.statusCode));
          ws.on("open", () => resolve("opened"));
          ws.on("error", () => resolve("error"));
        });
        assert.equal(foreignSocket, 403, "the upgrade itself is refused");
      } finally {
        await destroy(base(), sandbox, { ip, origin: FRIEND });
      }
    });

    test("one client gets at most the policy's number of live sandboxes", async () => {
      // The Worker counts by CF-Connecting-IP; the native mount by the peer address (all of
      // this machine is one client there).
      const ip = `198.51.100.${kind === "worker" ? 13 : 14}`;
      const a = await rawCreate(base(), { ip });
      const b = await rawCreate(base(), { ip });
      try {
        const third = await call(base(), "POST", "/v1/projects/x/services/deployment", { body: createBody(), ip });
        assert.deepEqual([third.status, code(third)], [429, "TOO_MANY_SANDBOXES"]);
        assert.match(third.body.error.message, /already has 2 live sandboxes/);
        if (kind === "worker") {
          // Another client is not affected.
          const other = await rawCreate(base(), { ip: "198.51.100.99" });
          await destroy(base(), other, { ip: "198.51.100.99" });
        }
        // Destroying one makes room.
        await destroy(base(), a, { ip });
        const again = await rawCreate(base(), { ip });
        await destroy(base(), again, { ip });
      } finally {
        await destroy(base(), b, { ip });
      }
      // Five creates at once: no more than two stay, and each that stays got its 200.
      const racer = `198.51.100.${kind === "worker" ? 15 : 16}`;
      const before = new Set(await hostServices());
      const answers = await Promise.all(
        Array.from({ length: 5 }, () => call(base(), "POST", "/v1/projects/x/services/deployment", { body: createBody(), ip: racer })),
      );
      const won = answers.filter((r) => r.status === 200);
      try {
        assert.ok(won.length >= 1 && won.length <= 2, `${won.length} of 5 won`);
        assert.ok(answers.every((r) => r.status === 200 || code(r) === "TOO_MANY_SANDBOXES"), JSON.stringify(answers.map((r) => r.body)));
        const kept = (await hostServices()).filter((id) => !before.has(id));
        assert.deepEqual(kept.sort(), won.map((r) => r.body.data.id).sort(), "the losers undid their creates");
      } finally {
        for (const r of won) await destroy(base(), { id: r.body.data.id, capability: r.body.data.capability }, { ip: racer });
      }
    });
  });
}

test("the Worker's scheduled handler destroys expired sandboxes", async () => {
  const ip = "198.51.100.20";
  const sandbox = await rawCreate(worker.url, { ip, body: { tags: [`flankbox-expires-${Math.floor(Date.now() / 1000) + 2}`] } });
  const live = await rawCreate(worker.url, { ip });
  await new Promise((r) => setTimeout(r, 3000));
  const res = await fetch(`${worker.url}/cdn-cgi/handler/scheduled`);
  assert.equal(res.status, 200);
  const left = await hostServices();
  assert.ok(!left.includes(sandbox.id), "the expired one is gone");
  assert.ok(left.includes(live.id), "the live one stays");
  await destroy(worker.url, live, { ip });
});

test("a capability from the Worker works on the native mount: one logic, one secret", async () => {
  const ip = "198.51.100.21";
  const sandbox = await rawCreate(worker.url, { ip });
  const r = await call(targets.native, "GET", `/v1/projects/x/services/${sandbox.id}`, { capability: sandbox.capability });
  assert.equal(r.status, 200);
  assert.equal(r.body.data.id, sandbox.id);
  await destroy(targets.native, sandbox);
});

test("an exec session quiet for the policy's idle timeout is closed, in the Worker and natively", async () => {
  const policy = { exec: { idleTimeoutSeconds: 1 } };
  const file = join(mkdtempSync(join(tmpdir(), "flankbox-edge-idle-")), "policy.json");
  writeFileSync(file, JSON.stringify(policy));
  const quietHost = await startHost({ args: ["--edge-secret", SECRET, "--edge-policy", file] });
  const { startWorkerDirect } = await import("./worker.mjs");
  const quietWorker = await startWorkerDirect({
    NF_TOKEN: TOKEN,
    NF_UPSTREAM: quietHost.base,
    NF_PROJECT: "playground",
    EDGE_SECRET: SECRET,
    EDGE_POLICY: JSON.stringify(policy),
  });
  try {
    for (const base of [quietWorker.url, `${quietHost.base}/edge`]) {
      const sandbox = await rawCreate(base);
      const deadline = performance.now() + 20_000;
      let done;
      // Until it runs (an exec into a starting sandbox ends at once, with an error frame).
      do {
        const started = performance.now();
        done = await execRaw(base, sandbox.id, initWith(sandbox.capability, { command: ["sleep", "30"], shell: "none" }));
        done.ms = performance.now() - started;
      } while (done.frames.some((f) => f.type === "error") && performance.now() < deadline && (await new Promise((r) => setTimeout(r, 100, true))));
      assert.equal(done.code, 4000, base);
      assert.ok(done.ms >= 900 && done.ms < 10_000, `closed after ${done.ms} ms`);
      await destroy(base, sandbox);
    }
  } finally {
    await quietWorker.stop();
    await quietHost.stop();
  }
});

test("a misconfigured proxy throws a JS Error with name, code, status and details, in workerd", async () => {
  const { workerdFromBundle } = await import("../client/env.mjs");
  const { freePort } = await import("./worker.mjs");
  const { execFileSync } = await import("node:child_process");
  const src = mkdtempSync(join(tmpdir(), "flankbox-edge-config-"));
  writeFileSync(
    join(src, "worker.js"),
    `import { createEdgeProxy } from ${JSON.stringify(join(ROOT, "pkg/edge.js"))};
     export default {
       fetch() {
         try {
           createEdgeProxy({ token: "t", projectId: "p", secret: "too short" });
           return Response.json({ threw: false });
         } catch (e) {
           const { name, code, status, message, details } = e;
           return Response.json({ threw: true, isError: e instanceof Error, stack: typeof e.stack, name, code, status, message, details });
         }
       },
     };`,
  );
  const out = join(src, "out");
  execFileSync(join(ROOT, "node_modules/.bin/esbuild"), [join(src, "worker.js"), "--bundle", "--format=esm", "--platform=neutral", "--conditions=workerd,worker,browser", "--loader:.wasm=copy", `--outdir=${out}`, "--log-level=warning"]);
  const mf = await workerdFromBundle(out, {}, { host: "127.0.0.1", port: await freePort() });
  try {
    const got = await (await fetch(await mf.ready)).json();
    assert.deepEqual(
      { threw: got.threw, isError: got.isError, stack: got.stack, name: got.name, code: got.code, status: got.status },
      { threw: true, isError: true, stack: "string", name: "FlankboxEdgeError", code: "CONFIG", status: 500 },
    );
    assert.match(got.message, /secret/i);
    assert.equal(got.details?.error?.message, got.message);
  } finally {
    await mf.dispose();
  }
});
