// `flankbox-host serve --www` as a production site (issue 10 part 4), over raw HTTP so that what
// is checked is what goes over the wire: brotli or gzip by Accept-Encoding (the build's
// precompressed files), Cache-Control by whether a name carries a content hash, ETags that
// answer 304, and ranges (with If-Range) still served.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { startHost } from "../sdk-compat/host.mjs";
import { ROOT } from "../client/env.mjs";

const DIST = join(ROOT, "www/dist");
const IMMUTABLE = "public, max-age=31536000, immutable";

let host;
before(async () => (host = await startHost({ args: ["--www", DIST] })));
after(() => host?.stop());

/** GETs (or `method`) `path` with `headers`; the body as it came, undecoded. */
function get(path, headers = {}, method = "GET") {
  return new Promise((resolve, reject) => {
    const req = request(`${host.base}${path}`, { method, headers }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end();
  });
}

const file = (path) => readFileSync(join(DIST, path));
/** The page's entry script and the chunks it imports at once: what a visit loads first. */
function firstLoad() {
  const entry = file("index.html").toString().match(/src="\.\/([^"]+\.js)"/)[1];
  const chunks = [...file(entry).toString().matchAll(/from"\.\/([^"]+\.js)"/g)].map((m) => m[1]);
  return ["index.html", entry, ...chunks];
}

test("each file goes brotli, gzip or plain by Accept-Encoding, and decodes to the file", async () => {
  const [, entry] = firstLoad();
  for (const path of ["index.html", entry, "pkg/widget.js"]) {
    const raw = file(path);
    const br = await get(`/${path}`, { "accept-encoding": "gzip, deflate, br" });
    assert.equal(br.status, 200);
    assert.equal(br.headers["content-encoding"], "br", path);
    assert.match(br.headers.vary, /accept-encoding/i);
    assert.equal(Number(br.headers["content-length"]), statSync(join(DIST, `${path}.br`)).size);
    assert.deepEqual(brotliDecompressSync(br.body), raw);
    const gz = await get(`/${path}`, { "accept-encoding": "gzip" });
    assert.equal(gz.headers["content-encoding"], "gzip", path);
    assert.deepEqual(gunzipSync(gz.body), raw);
    const plain = await get(`/${path}`);
    assert.equal(plain.headers["content-encoding"], undefined);
    assert.deepEqual(plain.body, raw);
  }
});

test("content-hashed files are immutable; pages, the widget's entry and the package's fixed names are revalidated", async () => {
  const [, entry, ...chunks] = firstLoad();
  const wasm = pageWasm();
  const hashed = [entry, ...chunks, wasm, ...widgetChunks()];
  for (const path of hashed) {
    const res = await get(`/${path}`, { "accept-encoding": "br" });
    assert.equal(res.status, 200, path);
    assert.equal(res.headers["cache-control"], IMMUTABLE, path);
  }
  for (const path of ["", "index.html", "widget-demo.html", "pkg/widget.js", "pkg/browser.js", "pkg/flankbox_bg.wasm"]) {
    const res = await get(`/${path}`, { "accept-encoding": "br" });
    assert.equal(res.status, 200, path);
    assert.equal(res.headers["cache-control"], "no-cache", path);
  }
  assert.equal((await get(`/${wasm}`)).headers["content-type"], "application/wasm");
  // Another site's page may import the package (a module script is fetched in CORS mode); the
  // playground's own pages stay closed to other origins.
  const origin = { origin: "https://docs.example" };
  for (const path of ["pkg/widget.js", widgetChunks()[0], "pkg/browser.js", "pkg/flankbox_bg.wasm"])
    assert.equal((await get(`/${path}`, origin)).headers["access-control-allow-origin"], "*", path);
  assert.equal((await get("/", origin)).headers["access-control-allow-origin"], undefined);
  assert.match((await get(`/${entry}`)).headers["content-type"], /javascript/);
  // The config holds a token in dev mode: never stored at all.
  assert.equal((await get("/playground/config.json")).headers["cache-control"], "no-store");
  // No file: the API's own 404.
  const missing = await get("/no-such-file.js");
  assert.equal(missing.status, 404);
  assert.match(missing.body.toString(), /"error"/);
});

test("ETags: one per encoding, and If-None-Match answers 304 with the validators", async () => {
  const [, entry] = firstLoad();
  for (const path of ["/", `/${entry}`]) {
    const br = await get(path, { "accept-encoding": "br" });
    const plain = await get(path);
    assert.match(br.headers.etag, /^"[^"]+"$/);
    assert.notEqual(br.headers.etag, plain.headers.etag, "the encodings are told apart");
    const again = await get(path, { "accept-encoding": "br", "if-none-match": br.headers.etag });
    assert.equal(again.status, 304, path);
    assert.equal(again.body.length, 0);
    assert.equal(again.headers.etag, br.headers.etag);
    assert.equal(again.headers["cache-control"], br.headers["cache-control"]);
    // The plain representation's tag does not validate the brotli one.
    assert.equal((await get(path, { "accept-encoding": "br", "if-none-match": plain.headers.etag })).status, 200);
    assert.equal((await get(path, { "if-none-match": `"other", ${plain.headers.etag}` })).status, 304);
    // If-None-Match decides, whatever If-Modified-Since says.
    const stale = await get(path, { "if-none-match": '"other"', "if-modified-since": plain.headers["last-modified"] });
    assert.equal(stale.status, 200);
  }
});

test("ranges are served, and an If-Range that no longer matches gets the whole file", async () => {
  const path = "pkg/flankbox_bg.wasm";
  const raw = file(path);
  const part = await get(`/${path}`, { range: "bytes=100-199" });
  assert.equal(part.status, 206);
  assert.equal(part.headers["content-range"], `bytes 100-199/${raw.length}`);
  assert.deepEqual(part.body, raw.subarray(100, 200));
  const { etag } = part.headers;
  assert.equal((await get(`/${path}`, { range: "bytes=100-199" }, "HEAD")).status, 206);
  assert.equal((await get(`/${path}`, { range: "bytes=0-9", "if-range": etag })).status, 206);
  const whole = await get(`/${path}`, { range: "bytes=0-9", "if-range": '"changed"' });
  assert.equal(whole.status, 200);
  assert.deepEqual(whole.body, raw);
  assert.equal((await get(`/${path}`, { range: `bytes=${raw.length + 10}-` })).status, 416);
});

test("encoded sizes: what a first visit loads, plain, gzip and brotli", async () => {
  const sizes = { plain: 0, gzip: 0, br: 0 };
  for (const path of firstLoad()) {
    for (const [name, accept] of [
      ["plain", undefined],
      ["gzip", "gzip"],
      ["br", "br, gzip"],
    ]) {
      const res = await get(`/${path}`, accept ? { "accept-encoding": accept } : {});
      sizes[name] += res.body.length;
    }
  }
  const wasm = pageWasm();
  const wasmSizes = {};
  for (const [name, accept] of [
    ["plain", undefined],
    ["gzip", "gzip"],
    ["br", "br"],
  ])
    wasmSizes[name] = (await get(`/${wasm}`, accept ? { "accept-encoding": accept } : {})).body.length;
  console.log(`served: first load (${firstLoad().join(", ")}): ${sizes.plain} bytes plain, ${sizes.gzip} gzip, ${sizes.br} brotli`);
  console.log(`served: the client's wasm: ${wasmSizes.plain} bytes plain, ${wasmSizes.gzip} gzip, ${wasmSizes.br} brotli`);
  assert.ok(sizes.br < sizes.gzip && sizes.gzip < sizes.plain, JSON.stringify(sizes));
  assert.ok(sizes.br <= sizes.plain * 0.45, `brotli saves over half: ${JSON.stringify(sizes)}`);
  assert.ok(wasmSizes.br < wasmSizes.gzip && wasmSizes.gzip < wasmSizes.plain * 0.5, JSON.stringify(wasmSizes));
});

/** The page's content-hashed wasm. */
function pageWasm() {
  const name = readdirSync(DIST).find((f) => /^flankbox_bg-[0-9A-Z]{8}\.wasm$/.test(f));
  assert.ok(name, "www/dist has the page's hashed wasm");
  return name;
}

function widgetChunks() {
  return readdirSync(join(DIST, "pkg/widget"))
    .filter((f) => f.endsWith(".js"))
    .map((f) => `pkg/widget/${f}`);
}
