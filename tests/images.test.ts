// Calibration from a folder of PNG and JPEG images (src/cli/images.ts): the
// preprocessing against values worked out by hand, and `attnround quantize
// --calib DIR` on generated folders, whose lossless PNGs give the same model,
// byte for byte, as the API on the .npz they were made from.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
// deno-lint-ignore no-import-prefix
import { encode as encodePng } from "npm:fast-png@8.0.0";
// deno-lint-ignore no-import-prefix
import jpeg from "npm:jpeg-js@0.4.4";
import {
  init,
  inputsFromNpz,
  loadModel,
  quantize,
  type QuantizeOptionsInput,
  readNpz,
  Tensor,
} from "../mod.ts";
import { loadImages } from "../src/cli/images.ts";
import type { Runtime } from "../src/cli/runtime.ts";
import { readFixture } from "./fixtures.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const MODEL = join(root, "tests", "fixtures", "tiny_cnn_fmnist.onnx");
const inDeno = Boolean(process.versions.deno);

function cli(...args: string[]) {
  const command = inDeno
    ? ["run", "--allow-read", "--allow-write", "--allow-env", join(root, "src", "cli", "main.ts"), ...args]
    : [join(root, "bin", "attnround.mjs"), ...args];
  const r = spawnSync(process.execPath, command, { cwd: root, encoding: "utf8", timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A Runtime that reads `files` (name → bytes) from the folder "/images". */
function memoryRuntime(files: Record<string, Uint8Array>): Runtime {
  return {
    readDir: () => Promise.resolve(Object.keys(files)),
    readFile: (path: string) => Promise.resolve(files[path.slice("/images/".length)]),
  } as unknown as Runtime;
}

/** A float32 tensor's values, rounded to `digits` places. */
const values = (t: Tensor, digits = 6) => [...(t.data as Float32Array)].map((v) => +v.toFixed(digits));

const rgbPng = (width: number, height: number, rgb: number[]) =>
  encodePng({ width, height, data: Uint8Array.from(rgb), channels: 3, depth: 8 });

Deno.test("images: resize, channel order, mean/std and layout as documented", async () => {
  // 2×2 RGB: red, green / blue, white.
  const png = rgbPng(2, 2, [255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255]);
  const rt = memoryRuntime({ "a.png": png, "notes.txt": new Uint8Array(3) });
  const nchw = { name: "x", dtype: "float32" as const, shape: ["n", 3, "h", "w"] };
  const same = await loadImages(rt, "/images", nchw, {});
  assert.deepEqual(same.shape, [1, 3, 2, 2]);
  assert.deepEqual(values(same), [1, 0, 0, 1, 0, 1, 0, 1, 0, 0, 1, 1]);
  // Down to 1×1 bilinear with half-pixel centres: the mean of the four pixels.
  const one = await loadImages(rt, "/images", nchw, { size: [1, 1], mean: [0.5], std: [0.25] });
  assert.deepEqual(values(one), [0, 0, 0]);
  const bgr = await loadImages(rt, "/images", nchw, { channels: "bgr" });
  assert.deepEqual(values(bgr).slice(0, 4), [0, 0, 1, 1]);
  const nhwc = await loadImages(rt, "/images", { name: "x", dtype: "float32", shape: ["n", 2, 2, 3] }, {});
  assert.deepEqual(nhwc.shape, [1, 2, 2, 3]);
  assert.deepEqual(values(nhwc).slice(0, 6), [1, 0, 0, 0, 1, 0]);
  const scaled = await loadImages(rt, "/images", nchw, { mean: [0, 0.5, 1], std: [1, 2, 4] });
  assert.deepEqual(values(scaled).slice(4, 8), [-0.25, 0.25, -0.25, 0.25]);
  // A 1-channel model gets the gray level (ITU-R 601 luma).
  const gray = await loadImages(rt, "/images", { name: "x", dtype: "float32", shape: ["n", 1, 2, 2] }, {});
  assert.deepEqual(values(gray, 4), [0.299, 0.587, 0.114, 1]);
});

Deno.test("images: quantize --calib DIR on PNG and JPEG files; lossless PNGs give the API's model byte for byte", async () => {
  await init();
  const dir = mkdtempSync(join(tmpdir(), "attnround-images-"));
  try {
    const { x } = readNpz(readFixture("calib.npz"));
    const count = 48, per = 28 * 28;
    const raw = x.data as Uint8Array;
    const pngs = join(dir, "png"), mixed = join(dir, "mixed");
    mkdirSync(pngs), mkdirSync(mixed);
    for (let i = 0; i < count; i++) {
      const pixels = raw.slice(i * per, (i + 1) * per);
      const name = `img${String(i).padStart(3, "0")}`;
      writeFileSync(
        join(pngs, `${name}.png`),
        encodePng({ width: 28, height: 28, data: pixels, channels: 1 }),
      );
      // The mixed folder: colour JPEGs at 28×28 and colour PNGs at 56×56 (each pixel doubled).
      const rgba = new Uint8Array(per * 4);
      for (let p = 0; p < per; p++) rgba.set([pixels[p], pixels[p], pixels[p], 255], p * 4);
      if (i % 2 === 0) {
        writeFileSync(
          join(mixed, `${name}.jpg`),
          jpeg.encode({ width: 28, height: 28, data: rgba }, 95).data,
        );
      } else {
        const big: number[] = [];
        for (let yy = 0; yy < 56; yy++) {
          for (let xx = 0; xx < 56; xx++) {
            big.push(...[0, 0, 0].map(() => pixels[(yy >> 1) * 28 + (xx >> 1)]));
          }
        }
        writeFileSync(join(mixed, `${name}.png`), rgbPng(56, 56, big));
      }
    }
    writeFileSync(join(pngs, "README.txt"), "not an image");

    const options: QuantizeOptionsInput = { iterations: 8, holdout: 16, seed: 3 };
    writeFileSync(join(dir, "options.json"), JSON.stringify(options));
    const model = loadModel(readFixture("tiny_cnn_fmnist.onnx"));
    const all = inputsFromNpz(readNpz(readFixture("calib.npz")), model.inputs[0]).x;
    const first = all.data.slice(0, count * per) as Float32Array;
    const q = await quantize(model, new Tensor(first, [count, 1, 28, 28]), options);
    const api = q.toOnnx();
    q.dispose();
    model.dispose();

    const out = join(dir, "q.onnx");
    const r = cli("quantize", MODEL, "--calib", pngs, "--config", join(dir, "options.json"), "--out", out);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`png: ${count} samples of \\[1,28,28\\]`));
    assert.ok(
      Buffer.compare(readFileSync(out), api) === 0,
      "the model from the PNG folder differs from the API's",
    );

    const m = cli(
      "quantize",
      MODEL,
      "--calib",
      mixed,
      "--resize",
      "28x28",
      "--mean",
      "0",
      "--std",
      "1",
      "--limit",
      "20",
      "--iters",
      "4",
      "--out",
      out,
      "--json",
    );
    assert.equal(m.code, 0, m.stderr);
    assert.equal(JSON.parse(m.stdout).layers, 3);
    const bad = cli("quantize", MODEL, "--calib", mixed, "--resize", "28by28", "--out", out);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--resize takes WIDTHxHEIGHT/);
    const help = cli("quantize", "--help").stdout;
    for (const flag of ["--resize WxH", "--mean", "--std", "--channels", "--layout"]) {
      assert.ok(help.includes(flag), flag);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
