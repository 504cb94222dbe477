// The browser bundle of mod.ts (build/bundle-browser.mjs) quantizes
// tiny_cnn_fmnist inside headless Chromium (Debian's /usr/bin/chromium, driven
// by playwright-core) on 2 threads (Web Workers running the worker bundle), in
// a page served from localhost without cross-origin isolation (so without
// SharedArrayBuffer) that fetches the bundles, the model and the calibration
// set. Its .npz export must be byte-identical to the one this runtime makes on
// one thread, and to the other runtime's (Deno or Node) with the same seed
// and options. Skipped only where Chromium is not installed and CI is not set
// (.ci/run installs it).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Buffer } from "node:buffer";
import { fileURLToPath } from "node:url";
import { type Files, haveChromium, withChromium } from "./chromium.ts";
import { inOtherRuntime, otherRuntime, SAME_RUNS, sameRunNpz, sha256Hex } from "./determinism.ts";
import { readFixture } from "./fixtures.ts";

const chromiumInstalled = haveChromium("tests/browser.test.ts (the browser tests)");
const root = fileURLToPath(new URL("..", import.meta.url));
const BUNDLE = "attnround.browser.mjs";
const WORKER = "attnround.worker.mjs";
const TIMEOUT_MS = 180_000;

function withTimeout<T>(work: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${TIMEOUT_MS / 1000} s`)), TIMEOUT_MS);
  });
  return Promise.race([work, limit]).finally(() => clearTimeout(timer));
}

Deno.test({
  name:
    "browser: the bundle quantizes tiny_cnn_fmnist in Chromium on 2 workers to the same .npz bytes as Deno and Node",
  ignore: !chromiumInstalled,
  async fn() {
    const run = SAME_RUNS.tiny;
    const dir = mkdtempSync(join(tmpdir(), "attnround-browser-"));
    try {
      const built = spawnSync("node", [join(root, "build", "bundle-browser.mjs"), join(dir, BUNDLE)], {
        encoding: "utf8",
        timeout: 60_000,
      });
      assert.equal(built.status, 0, `bundling mod.ts for the browser failed: ${built.stderr}`);
      const files: Files = {
        "/": [
          "text/html; charset=utf-8",
          new TextEncoder().encode('<!DOCTYPE html><title>attnround</title><link rel="icon" href="data:,">'),
        ],
        [`/${BUNDLE}`]: ["text/javascript", readFileSync(join(dir, BUNDLE))],
        [`/${WORKER}`]: ["text/javascript", readFileSync(join(dir, WORKER))],
        [`/${run.model}`]: ["application/octet-stream", readFixture(run.model)],
        "/calib.npz": ["application/octet-stream", readFixture("calib.npz")],
      };
      const inBrowser = await withChromium(
        files,
        { timeout: 60_000 },
        async ({ browser, origin, requests }) => {
          const page = await browser.newPage();
          const problems: string[] = [];
          page.on("pageerror", (e) => problems.push(e.message));
          page.on("console", (m) => m.type() === "error" && problems.push(m.text()));
          const loaded: string[] = [];
          page.on("request", (r) => loaded.push(r.url()));
          await page.goto(`${origin}/`, { waitUntil: "load" });

          const { encoded, isolated } = await withTimeout(
            page.evaluate(async ({ bundle, run }) => {
              const m = await import(bundle);
              await m.init();
              const bytes = async (url: string) => new Uint8Array(await (await fetch(url)).arrayBuffer());
              const model = m.loadModel(await bytes(`/${run.model}`));
              const pixels = m.readNpz(await bytes("/calib.npz")).x.data.subarray(0, run.images * 784);
              const images = new m.Tensor(Float32Array.from(pixels, (v: number) => v / 255), [
                run.images,
                1,
                28,
                28,
              ]);
              const q = await m.quantize(model, images, { ...run.options, threads: 2 });
              const npz: Uint8Array = q.toNpz();
              q.dispose();
              model.dispose();
              let text = "";
              for (const b of npz) text += String.fromCharCode(b);
              return {
                encoded: btoa(text),
                isolated: (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated,
              };
            }, { bundle: `/${BUNDLE}`, run }),
            "quantize in Chromium",
          );
          assert.deepEqual(problems, [], "no page errors");
          assert.equal(isolated, false, "the page is not cross-origin isolated");
          assert.ok(
            loaded.every((u) => u.startsWith(origin)),
            `the page fetched only from ${origin}: ${loaded}`,
          );
          assert.deepEqual(
            [...new Set(requests)].sort(),
            ["/", `/${BUNDLE}`, `/${WORKER}`, "/calib.npz", `/${run.model}`].sort(),
            "the page loaded itself, the bundle, the worker bundle, the model and the calibration set",
          );
          const workers = requests.filter((r) => r === `/${WORKER}`).length;
          assert.ok(workers >= 2, `the worker bundle was loaded ${workers} times: 2 workers at least`);
          return encoded;
        },
      );

      const browserNpz = new Uint8Array(Buffer.from(inBrowser, "base64"));
      const here = await sameRunNpz(run, 1);
      assert.ok(here.length > 1000, `the .npz export has only ${here.length} bytes`);
      assert.equal(browserNpz.length, here.length, "Chromium's .npz has the same length as this runtime's");
      assert.ok(browserNpz.every((b, i) => b === here[i]), "Chromium's .npz bytes equal this runtime's");
      const there = inOtherRuntime(["npz:tiny"])["npz:tiny"];
      assert.equal(there, await sha256Hex(here), `${otherRuntime}'s .npz differs from this runtime's`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
});
