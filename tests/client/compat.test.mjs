// The guide's code through flankbox's compat layer, in Node and in headless Chromium; and files
// crossing between flankbox and the official SDK.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ROOT, URL_, TOKEN, project, withBlankPage } from "./env.mjs";

const pkg = await import(`${ROOT}/pkg/node.js`);

test("the guide's code runs in Node with only its import changed", async () => {
  const { runGuide } = await import("../guide/guide.mjs");
  const result = await runGuide(pkg, { token: TOKEN, host: URL_, projectId: project("guide-node") });
  assert.equal(result.ephemeral.stdout, "Hello from the sandbox!\nhello-world\n");
  assert.equal(result.volume.kept, "survives\n");
});

test("the guide's code runs in Chromium with only its import changed", async () => {
  // One origin serves the package and the guide; the API is another origin (CORS).
  const result = await withBlankPage((page) =>
    page.evaluate(
      async ({ host, token, projectId }) => {
        const sdk = await import("/pkg/browser.js");
        const { runGuide } = await import("/tests/guide/guide.mjs");
        return runGuide(sdk, { token, host, projectId });
      },
      { host: URL_, token: TOKEN, projectId: project("guide-chromium") },
    ),
  );
  assert.equal(result.ephemeral.stdout, "Hello from the sandbox!\nhello-world\n");
  assert.equal(result.ephemeral.stderr, "to stderr\n");
  assert.equal(result.volume.kept, "survives\n");
});

test("a file written by flankbox reads back with the official SDK, and the other way round", async () => {
  const official = await import("@northflank/js-client");
  const { mkdtempSync, readFileSync, writeFileSync, existsSync, statSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const projectId = project("cross");
  const nf = new pkg.Northflank({ token: TOKEN, projectId, baseUrl: URL_ });
  const sandbox = await pkg.Sandbox.create(nf);
  const ctx = new official.ApiClientInMemoryContextProvider();
  await ctx.addContext({ name: "c", token: TOKEN, host: URL_ });
  const sdk = new official.ApiClient(ctx, { throwErrorOnHttpErrorCode: true });
  const params = { projectId, serviceId: sandbox.id };
  try {
    const ours = new Uint8Array(300_000).map((_, i) => (i * 13) % 256);
    await sandbox.writeFile("/workspace/from-flankbox/data.bin", ours);
    const local = mkdtempSync(join(tmpdir(), "flankbox-cross-"));
    await sdk.download.service.files(params, { remotePath: "/workspace/from-flankbox", localPath: join(local, "down") });
    const downloaded = join(local, "down", "data.bin");
    for (let i = 0; i < 500 && !(existsSync(downloaded) && statSync(downloaded).size === ours.length); i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(new Uint8Array(readFileSync(downloaded)), ours);

    const theirs = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7) % 256));
    writeFileSync(join(local, "up.bin"), theirs);
    await sdk.upload.service.files(params, { localPath: join(local, "up.bin"), remotePath: "/workspace/from-sdk/up.bin" });
    assert.deepEqual(await sandbox.readFile("/workspace/from-sdk/up.bin"), new Uint8Array(theirs));
    // And directories, both ways.
    const entries = await sandbox.downloadDir("/workspace");
    assert.deepEqual(entries.map((e) => e.path).sort(), ["from-flankbox/data.bin", "from-sdk/up.bin"]);
  } finally {
    await sandbox.destroy();
  }
});
