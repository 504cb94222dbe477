// What the accuracy benches share: command-line options, the bundled
// Fashion-MNIST fixtures as model inputs, the evaluation split and top-1.
import { gunzipSync } from "fflate";
import { readNpz, Tensor } from "../mod.ts";

/** The value after `--name`, or the fallback. */
export function option(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Deno.args[i + 1] : fallback;
}

/** A `--set` value: a number where it parses, true/false as booleans, else the string. */
function setValue(raw: string): unknown {
  if (raw === "true" || raw === "false") return raw === "true";
  return raw !== "" && !isNaN(Number(raw)) ? Number(raw) : raw;
}

/** Applies quantize options written `a=1,b.c=x` (the benches' `--set`) to an options object. */
export function withSet<T extends object>(options: T, set: string): T {
  for (const kv of set.split(",").filter(Boolean)) {
    const [path, raw] = kv.split("=");
    const keys = path.split(".");
    let target = options as Record<string, unknown>;
    for (const k of keys.slice(0, -1)) target = (target[k] ??= {}) as Record<string, unknown>;
    target[keys.at(-1)!] = setValue(raw);
  }
  return options;
}

export const readFixture = (path: string) =>
  Deno.readFileSync(new URL(`../tests/fixtures/${path}`, import.meta.url));

/** uint8 images [N, 28, 28] as the models' float input [N, 1, 28, 28] in [0, 1]. */
export const toInput = (x: Tensor) =>
  new Tensor(Float32Array.from(x.data as Uint8Array, (v) => v / 255), [x.shape[0], 1, 28, 28]);

/** The last 10,000 images and labels of the Fashion-MNIST training split (gzipped IDX files). */
function trainingTail(): { x: Tensor; y: Tensor } {
  const dir = "/usr/share/datasets/fashion-mnist/";
  const idx = (file: string) => gunzipSync(Deno.readFileSync(dir + file));
  const images = idx("train-images-idx3-ubyte.gz").subarray(16),
    labels = idx("train-labels-idx1-ubyte.gz").subarray(8);
  return {
    x: new Tensor(images.slice(50000 * 784), [10000, 28, 28]),
    y: new Tensor(labels.slice(50000), [10000]),
  };
}

/**
 * The evaluation images and labels: the bundled test set, or with "train" the
 * validation split (the last 10,000 training images, Debian package
 * dataset-fashion-mnist) on which defaults are chosen.
 */
export function evaluationSet(data: string): { images: Tensor; labels: Uint8Array } {
  const set = data === "train" ? trainingTail() : readNpz(readFixture("test.npz"));
  return { images: toInput(set.x), labels: set.y.data as Uint8Array };
}

/** Arg-max class of the first `count` images, run 500 at a time. */
export async function predict(
  images: Tensor,
  count: number,
  run: (input: Tensor) => Tensor | Promise<Tensor>,
): Promise<Uint8Array> {
  const classes = new Uint8Array(count);
  for (let start = 0; start < count; start += 500) {
    const n = Math.min(500, count - start);
    const logits = (await run(new Tensor(images.data.slice(start * 784, (start + n) * 784), [n, 1, 28, 28])))
      .data as Float32Array;
    for (let i = 0; i < n; i++) {
      let best = 0;
      for (let c = 1; c < 10; c++) if (logits[i * 10 + c] > logits[i * 10 + best]) best = c;
      classes[start + i] = best;
    }
  }
  return classes;
}

export const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Percentage of the first a.length entries on which a and b agree. */
export const percentSame = (a: Uint8Array, b: Uint8Array) =>
  (100 * a.filter((v, i) => v === b[i]).length) / a.length;

/** Seeded uniform numbers in [0, 1) (mulberry32), so that a bench's random choices are the same on every run. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
