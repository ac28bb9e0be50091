// The official @northflank/js-client 0.9.5 runs the guide's flows against the local host,
// unchanged: only the context's host points at it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync, readFileSync, mkdirSync, existsSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { ApiClient, ApiClientInMemoryContextProvider } from "@northflank/js-client";
import { startHost, TOKEN } from "./host.mjs";

let host;
let apiClient;
const projectId = "your-project-id";

async function client(token) {
  const contextProvider = new ApiClientInMemoryContextProvider();
  await contextProvider.addContext({ name: "context", token, host: host.base });
  return new ApiClient(contextProvider, { throwErrorOnHttpErrorCode: true });
}

before(async () => {
  host = await startHost();
  apiClient = await client(TOKEN);
});
after(async () => host?.stop());

// The guide's helper, with a deadline.
async function waitForReady(sandboxId) {
  const deadline = performance.now() + 30_000;
  while (true) {
    const svc = await apiClient.get.service({ parameters: { projectId, serviceId: sandboxId } });
    const status = svc.data?.status?.deployment?.status;
    if (status === "COMPLETED") return;
    if (status === "FAILED") throw new Error("Sandbox deployment failed");
    assert.ok(performance.now() < deadline, `still ${status}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function run(sandboxId, command) {
  const handle = await apiClient.exec.execServiceSession({ projectId, serviceId: sandboxId }, { shell: "bash -c", command });
  const stdoutChunks = [];
  const stderrChunks = [];
  handle.stdOut.on("data", (data) => stdoutChunks.push(data.toString()));
  handle.stdErr.on("data", (data) => stderrChunks.push(data.toString()));
  const result = await handle.waitForCommandResult();
  return { ...result, stdout: stdoutChunks.join(""), stderr: stderrChunks.join("") };
}

function deployment(sandboxId, extra = {}) {
  return {
    name: sandboxId,
    billing: { deploymentPlan: "nf-compute-200" },
    deployment: {
      instances: 1,
      docker: { configType: "customCommand", customCommand: "sleep infinity" },
      external: { imagePath: "ubuntu:22.04" },
      storage: { ephemeralStorage: { storageSize: 2048 } },
    },
    runtimeEnvironment: { MY_VAR: "hello-world" },
    ...extra,
  };
}

test("an ephemeral sandbox: create, scale, poll, exec with stdout, stderr and exit code", async () => {
  const sandboxId = `sandbox-${randomUUID().split("-")[4]}`;
  await apiClient.create.service.deployment({ parameters: { projectId }, data: deployment(sandboxId) });
  await apiClient.scale.service({ parameters: { projectId, serviceId: sandboxId }, data: { instances: 1 } });
  await waitForReady(sandboxId);

  const result = await run(sandboxId, "echo 'Hello from the sandbox!' && ls /workspace && echo $MY_VAR && echo warn >&2 && exit 7");
  assert.equal(result.exitCode, 7);
  assert.equal(result.status, "Failure");
  assert.equal(result.stdout, "Hello from the sandbox!\nhello-world\n");
  assert.equal(result.stderr, "warn\n");

  const ok = await apiClient.exec.execServiceCommand({ projectId, serviceId: sandboxId }, { command: ["uname", "-s"] });
  assert.deepEqual(ok.commandResult, { exitCode: 0, status: "Success" });
  assert.equal(ok.stdOut, "Linux\n");

  await apiClient.delete.service({ parameters: { projectId, serviceId: sandboxId } });
});

test("a volume created first, attached, and kept across pause and resume", async () => {
  const sandboxId = `sandbox-${randomUUID().split("-")[4]}`;
  const volumeName = `data-${sandboxId}`;
  const volume = await apiClient.create.volume({
    parameters: { projectId },
    data: { name: volumeName, mounts: [{ containerMountPath: "/workspace" }], spec: { accessMode: "ReadWriteMany", storageClassName: "nf-multi-rw", storageSize: 10240 } },
  });
  assert.equal(volume.data.id, volumeName);
  await apiClient.create.service.deployment({ parameters: { projectId }, data: deployment(sandboxId, { createOptions: { volumesToAttach: [volumeName] } }) });
  await waitForReady(sandboxId);
  assert.equal((await run(sandboxId, "echo kept > /workspace/notes.txt")).exitCode, 0);

  // Pause: scale to zero. Resume: scale back to one.
  await apiClient.scale.service({ parameters: { projectId, serviceId: sandboxId }, data: { instances: 0 } });
  await waitForReady(sandboxId);
  const paused = await apiClient.get.service({ parameters: { projectId, serviceId: sandboxId } });
  assert.equal(paused.data.deployment.instances, 0);
  await apiClient.scale.service({ parameters: { projectId, serviceId: sandboxId }, data: { instances: 1 } });
  await waitForReady(sandboxId);
  assert.equal((await run(sandboxId, "cat /workspace/notes.txt")).stdout, "kept\n");

  // The pause/resume endpoints work the same way.
  await apiClient.pause.service({ parameters: { projectId, serviceId: sandboxId } });
  await waitForReady(sandboxId);
  await apiClient.resume.service({ parameters: { projectId, serviceId: sandboxId }, data: {} });
  await waitForReady(sandboxId);
  assert.equal((await run(sandboxId, "cat /workspace/notes.txt")).stdout, "kept\n");

  // Destroy: the service, then the volume.
  await apiClient.delete.service({ parameters: { projectId, serviceId: sandboxId } });
  await apiClient.delete.volume({ parameters: { projectId, volumeId: volumeName } });
  await assert.rejects(apiClient.get.volume({ parameters: { projectId, volumeId: volumeName } }), (e) => e.status === 404);
  await assert.rejects(apiClient.get.service({ parameters: { projectId, serviceId: sandboxId } }), (e) => e.status === 404);
});

test("ports updated and read back with a DNS name", async () => {
  const sandboxId = `sandbox-${randomUUID().split("-")[4]}`;
  await apiClient.create.service.deployment({ parameters: { projectId }, data: deployment(sandboxId) });
  await waitForReady(sandboxId);
  await apiClient.update.service.ports({
    parameters: { projectId, serviceId: sandboxId },
    data: { ports: [{ name: "http", internalPort: 8080, public: true, protocol: "HTTP" }] },
  });
  const ports = await apiClient.get.service.ports({ parameters: { projectId, serviceId: sandboxId } });
  const publicUrl = ports.data.ports.find((p) => p.internalPort === 8080)?.dns;
  assert.match(publicUrl, new RegExp(`^http--${sandboxId}--${projectId}\\.localhost:\\d+$`));
  await apiClient.delete.service({ parameters: { projectId, serviceId: sandboxId } });
});

test("files upload and download through the SDK's tar-over-exec", async () => {
  const sandboxId = `sandbox-${randomUUID().split("-")[4]}`;
  await apiClient.create.service.deployment({ parameters: { projectId }, data: deployment(sandboxId) });
  await waitForReady(sandboxId);
  const local = mkdtempSync(join(tmpdir(), "flankbox-files-"));
  mkdirSync(join(local, "src", "nested"), { recursive: true });
  const blob = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) % 256));
  writeFileSync(join(local, "src", "nested", "blob.bin"), blob);
  writeFileSync(join(local, "src", "hello.txt"), "hello\n");
  await apiClient.upload.service.files({ projectId, serviceId: sandboxId }, { localPath: join(local, "src"), remotePath: "/workspace/up" });
  assert.equal((await run(sandboxId, "cat /workspace/up/hello.txt && wc -c < /workspace/up/nested/blob.bin")).stdout, "hello\n300000\n");
  await apiClient.download.service.files({ projectId, serviceId: sandboxId }, { remotePath: "/workspace/up", localPath: join(local, "down") });
  // The SDK resolves before its local tar extraction has flushed; give it a moment.
  const downloaded = join(local, "down", "nested", "blob.bin");
  for (let i = 0; i < 500 && !(existsSync(downloaded) && statSync(downloaded).size === blob.length); i++) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(readFileSync(downloaded), blob);
  // A single file, streamed in and out without tar.
  await apiClient.fileCopy.uploadServiceFileStream({ projectId, serviceId: sandboxId }, { source: blob, remotePath: "/workspace/stream/blob.bin" });
  const { fileStream, completionPromise } = await apiClient.fileCopy.downloadServiceFileStream({ projectId, serviceId: sandboxId }, { remotePath: "/workspace/stream/blob.bin" });
  const chunks = [];
  for await (const chunk of fileStream) chunks.push(chunk);
  assert.equal(await completionPromise, true);
  assert.deepEqual(Buffer.concat(chunks), blob);
  await apiClient.delete.service({ parameters: { projectId, serviceId: sandboxId } });
});

test("a GPU sandbox is refused, naming the GPU", async () => {
  await assert.rejects(
    apiClient.create.service.deployment({
      parameters: { projectId },
      data: {
        name: `jupyter-${randomUUID().split("-")[4]}`,
        billing: { deploymentPlan: "nf-gpu-a100-80-1g" },
        deployment: {
          instances: 1,
          external: { imagePath: "quay.io/jupyter/pytorch-notebook:cuda12-2026-02-09" },
          docker: { configType: "default" },
          gpu: { enabled: true, configuration: { gpuType: "a100-80", gpuCount: 1, timesliced: false } },
          storage: { ephemeralStorage: { storageSize: 256000 }, shmSize: 174080 },
        },
        ports: [{ name: "app", internalPort: 8888, public: true, protocol: "HTTP" }],
      },
    }),
    (e) => e.status === 400 && /a100-80/.test(e.message) && /not available/.test(e.message),
  );
});

test("a wrong token is refused on REST and on exec", async () => {
  const sandboxId = `sandbox-${randomUUID().split("-")[4]}`;
  await apiClient.create.service.deployment({ parameters: { projectId }, data: deployment(sandboxId) });
  await waitForReady(sandboxId);
  const intruder = await client("wrong-token");
  await assert.rejects(intruder.get.service({ parameters: { projectId, serviceId: sandboxId } }), (e) => e.status === 401);
  await assert.rejects(
    intruder.exec.execServiceCommand({ projectId, serviceId: sandboxId }, { command: ["touch", "/workspace/pwned"] }),
    /Command initialization failed/,
  );
  assert.equal((await run(sandboxId, "ls /workspace")).stdout, "");
  await apiClient.delete.service({ parameters: { projectId, serviceId: sandboxId } });
});

test("the guide's code, as shared with the flankbox compat tests", async () => {
  const { runGuide } = await import("../guide/guide.mjs");
  const sdk = await import("@northflank/js-client");
  const result = await runGuide(sdk, { token: TOKEN, host: host.base, projectId: "guide-official" });
  assert.equal(result.volume.kept, "survives\n");
});
