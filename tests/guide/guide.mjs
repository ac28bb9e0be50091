// The code of the sandbox guide (shared/seed/sandboxes-on-northflank.md), as functions. The
// SDK is passed in, so the very same code runs with the official @northflank/js-client (in
// Node) and with flankbox's compat layer (in Node, Chromium and workerd): only the import of
// `ApiClient` and `ApiClientInMemoryContextProvider` changes.

export async function makeClient({ ApiClient, ApiClientInMemoryContextProvider }, { token, host }) {
  const contextProvider = new ApiClientInMemoryContextProvider();
  await contextProvider.addContext({
    name: "context",
    token,
    host,
  });

  const apiClient = new ApiClient(contextProvider, {
    throwErrorOnHttpErrorCode: true,
  });
  return apiClient;
}

function randomId() {
  return crypto.randomUUID().split("-")[4];
}

// "Starting an ephemeral sandbox", "Start the sandbox" and "Execute commands inside the sandbox".
export async function ephemeral(apiClient, projectId, log = () => {}) {
  const sandboxId = `sandbox-${randomId()}`;

  await apiClient.create.service.deployment({
    parameters: {
      projectId,
    },
    data: {
      name: sandboxId,
      billing: {
        deploymentPlan: "nf-compute-200", // 2 vCPU, 4GB RAM
      },
      deployment: {
        instances: 1,
        docker: {
          configType: "customCommand",
          customCommand: "sleep infinity",
        },
        external: {
          imagePath: "ubuntu:22.04",
        },
        storage: {
          ephemeralStorage: {
            storageSize: 2048,
          },
        },
      },
      runtimeEnvironment: {
        MY_VAR: "hello-world",
      },
    },
  });

  await apiClient.scale.service({
    parameters: {
      projectId,
      serviceId: sandboxId,
    },
    data: {
      instances: 1,
    },
  });

  // Poll until the service is running
  async function waitForReady() {
    while (true) {
      const svc = await apiClient.get.service({
        parameters: {
          projectId,
          serviceId: sandboxId,
        },
      });

      const status = svc.data?.status?.deployment?.status;
      if (status === "COMPLETED") return;
      if (status === "FAILED") throw new Error("Sandbox deployment failed");

      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  await waitForReady();

  const handle = await apiClient.exec.execServiceSession(
    {
      projectId,
      serviceId: sandboxId,
    },
    {
      shell: "bash -c",
      command: "echo 'Hello from the sandbox!' && ls /workspace && echo $MY_VAR && echo 'to stderr' >&2",
    },
  );

  const stdoutChunks = [];
  const stderrChunks = [];

  handle.stdOut.on("data", (data) => stdoutChunks.push(data.toString()));
  handle.stdErr.on("data", (data) => stderrChunks.push(data.toString()));

  const result = await handle.waitForCommandResult();

  log("Exit code:", result.exitCode);
  log("Stdout:", stdoutChunks.join(""));
  log("Stderr:", stderrChunks.join(""));
  return { sandboxId, exitCode: result.exitCode, stdout: stdoutChunks.join(""), stderr: stderrChunks.join("") };
}

// "Expose public port for HTTPS, WebSockets, GRPC".
export async function exposePort(apiClient, projectId, sandboxId) {
  await apiClient.update.service.ports({
    parameters: {
      projectId,
      serviceId: sandboxId,
    },
    data: {
      ports: [
        {
          name: "http",
          internalPort: 8080,
          public: true,
          protocol: "HTTP",
        },
      ],
    },
  });

  // Retrieve the public DNS
  const ports = await apiClient.get.service.ports({
    parameters: {
      projectId,
      serviceId: sandboxId,
    },
  });

  const publicUrl = ports.data.ports.find((p) => p.internalPort === 8080)?.dns;
  return publicUrl;
}

// "Create sandbox with volume for persistence", then "Pause or destroy the sandbox".
export async function withVolume(apiClient, projectId) {
  const sandboxId = `sandbox-${randomId()}`;
  const volumeName = `data-${sandboxId}`;

  // Create the volume first
  await apiClient.create.volume({
    parameters: {
      projectId,
    },
    data: {
      name: volumeName,
      mounts: [
        {
          containerMountPath: "/workspace",
        },
      ],
      spec: {
        accessMode: "ReadWriteMany",
        storageClassName: "nf-multi-rw",
        storageSize: 10240, // 10 GiB
      },
    },
  });

  // Create the service and attach the volume
  await apiClient.create.service.deployment({
    parameters: {
      projectId,
    },
    data: {
      name: sandboxId,
      billing: {
        deploymentPlan: "nf-compute-200",
      },
      deployment: {
        instances: 1,
        docker: {
          configType: "customCommand",
          customCommand: "sleep infinity",
        },
        external: {
          imagePath: "ubuntu:22.04",
        },
        storage: {
          ephemeralStorage: {
            storageSize: 2048,
          },
        },
      },
      createOptions: {
        volumesToAttach: [volumeName],
      },
      runtimeEnvironment: {
        MY_VAR: "hello-world",
      },
    },
  });

  const wait = async () => {
    for (;;) {
      const svc = await apiClient.get.service({ parameters: { projectId, serviceId: sandboxId } });
      if (svc.data?.status?.deployment?.status === "COMPLETED") return;
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const run = async (command) => {
    const handle = await apiClient.exec.execServiceSession({ projectId, serviceId: sandboxId }, { shell: "bash -c", command });
    const out = [];
    handle.stdOut.on("data", (d) => out.push(d.toString()));
    await handle.waitForCommandResult();
    return out.join("");
  };
  await wait();
  await run("echo survives > /workspace/note");

  // Pause: scales to 0, volume data persists
  await apiClient.scale.service({
    parameters: {
      projectId,
      serviceId: sandboxId,
    },
    data: {
      instances: 0,
    },
  });
  await apiClient.scale.service({ parameters: { projectId, serviceId: sandboxId }, data: { instances: 1 } });
  await wait();
  const kept = await run("cat /workspace/note");

  // Destroy: removes the service entirely
  await apiClient.delete.service({
    parameters: {
      projectId,
      serviceId: sandboxId,
    },
  });

  // Delete the volume (if one was created)
  await apiClient.delete.volume({
    parameters: {
      projectId,
      volumeId: volumeName,
    },
  });
  return { sandboxId, kept };
}

// Every flow, with the checks a test makes.
export async function runGuide(sdk, { token, host, projectId }) {
  const apiClient = await makeClient(sdk, { token, host });
  const eph = await ephemeral(apiClient, projectId);
  const check = (ok, what) => {
    if (!ok) throw new Error(`guide check failed: ${what}`);
  };
  check(eph.exitCode === 0, `exit code ${eph.exitCode}`);
  check(eph.stdout === "Hello from the sandbox!\nhello-world\n", `stdout ${JSON.stringify(eph.stdout)}`);
  check(eph.stderr === "to stderr\n", `stderr ${JSON.stringify(eph.stderr)}`);
  const dns = await exposePort(apiClient, projectId, eph.sandboxId);
  check(typeof dns === "string" && dns.startsWith(`http--${eph.sandboxId}--`), `dns ${dns}`);
  await apiClient.delete.service({ parameters: { projectId, serviceId: eph.sandboxId } });
  const vol = await withVolume(apiClient, projectId);
  check(vol.kept === "survives\n", `volume kept ${JSON.stringify(vol.kept)}`);
  let refused;
  try {
    await apiClient.get.service({ parameters: { projectId, serviceId: vol.sandboxId } });
  } catch (e) {
    refused = e;
  }
  check(refused?.status === 404, "a deleted service is a 404 error");
  return { ephemeral: eph, dns, volume: vol };
}
