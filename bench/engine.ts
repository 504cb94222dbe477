// Float inference throughput on the fixture models: onnxruntime-web (wasm,
// SIMD, 1 thread), onnxruntime-node (native CPU, 1 intra-op thread) and the
// attnround engine, side by side in one process. Each configuration is timed
// in interleaved rounds (engine order rotating per round) after a warm-up,
// so that drifts of a noisy machine hit every engine alike. Prints one
// Markdown table: images/s and achieved GFLOP/s (Conv + Gemm FLOPs).
//   deno task bench:engine [--seconds 2] [--rounds 4]
// The attnround column reads "n/a" until mod.ts exports loadModel.
// deno-lint-ignore no-import-prefix
import * as ortWeb from "npm:onnxruntime-web@1.30.0";
import { readNpz } from "../src/data/npy.ts";
import { Tensor } from "../src/tensor.ts";
import { readFixture } from "../tests/fixtures.ts";
import { ortNodeSession, toOrtTensor } from "../tests/ort.ts";

const args = Deno.args;
const option = (name: string, fallback: number) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? Number(args[at + 1]) : fallback;
};
const minSeconds = option("seconds", 2); // per configuration, summed over rounds
const rounds = option("rounds", 4);

// MFLOPs per image from tests/fixtures/README.md (2 × Conv/Gemm MACs).
const models = [
  { name: "resnet18_fmnist", mflops: 57.15 },
  { name: "mobilenetv2_fmnist", mflops: 68.71 },
];
const batches = [1, 32];

type Logits = Float32Array;
/** One engine bound to one model: runs a batch, resolves to its logits. */
type Runner = (input: Tensor) => Promise<Logits>;
interface Engine {
  name: string;
  /** A runner for the model, or a reason why there is none. */
  load(bytes: Uint8Array): Promise<Runner | string>;
}

ortWeb.env.wasm.numThreads = 1; // no worker threads: the single-thread wasm path
ortWeb.env.wasm.simd = true; // 1.30 ships SIMD builds only; stated for clarity
const ortWebEngine: Engine = {
  name: "onnxruntime-web (wasm SIMD, 1 thread)",
  async load(bytes) {
    const session = await ortWeb.InferenceSession.create(bytes, {
      executionProviders: ["wasm"],
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
    });
    return async (input) => {
      const x = new ortWeb.Tensor("float32", input.data as Float32Array, [...input.shape]);
      const out = await session.run({ input: x });
      return out.logits.data as Float32Array;
    };
  },
};

const ortNodeEngine: Engine = {
  name: "onnxruntime-node (CPU, 1 thread)",
  async load(bytes) {
    const session = await ortNodeSession(bytes);
    return async (input) => (await session.run({ input: toOrtTensor(input) })).logits.data as Float32Array;
  },
};

// The engine is looked up at run time so that this bench runs before it exists.
interface AttnroundModule {
  init(): Promise<void>;
  loadModel(bytes: Uint8Array): {
    run(feeds: Record<string, Tensor>): Record<string, Tensor> | Promise<Record<string, Tensor>>;
  };
}
const attnroundEngine: Engine = {
  name: "attnround",
  async load(bytes) {
    let lib: Partial<AttnroundModule>;
    try {
      lib = await import("../mod.ts") as Partial<AttnroundModule>;
    } catch (e) {
      return `mod.ts does not load: ${(e as Error).message.split("\n")[0]}`;
    }
    if (typeof lib.loadModel !== "function" || typeof lib.init !== "function") {
      return "mod.ts does not export loadModel yet";
    }
    try {
      await lib.init();
      const model = lib.loadModel(bytes);
      return async (input) => (await model.run({ input })).logits.data as Float32Array;
    } catch (e) {
      return `loadModel failed: ${(e as Error).message.split("\n")[0]}`;
    }
  },
};

const engines = [ortWebEngine, ortNodeEngine, attnroundEngine];

/** Largest |a − b| relative to the largest |b|: are two engines computing the same function? */
function relativeDifference(a: Logits, b: Logits): number {
  let diff = 0, scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return a.length === b.length ? diff / scale : Infinity;
}

/** Runs back to back for at least `seconds`; returns [runs, elapsed seconds]. */
async function timeRuns(run: Runner, input: Tensor, seconds: number): Promise<[number, number]> {
  let runs = 0;
  const start = performance.now();
  do {
    await run(input);
    runs++;
  } while (performance.now() - start < seconds * 1000);
  return [runs, (performance.now() - start) / 1000];
}

const { x: images } = readNpz(readFixture("test.npz"));
function inputBatch(batch: number): Tensor {
  const pixels = (images.data as Uint8Array).subarray(0, batch * 784);
  return new Tensor(Float32Array.from(pixels, (p) => p / 255), [batch, 1, 28, 28]);
}

const notes: string[] = [];
const rows: string[] = [];
for (const model of models) {
  const bytes = readFixture(`${model.name}.onnx`);
  const runners = new Map<Engine, Runner>();
  for (const engine of engines) {
    const runner = await engine.load(bytes);
    if (typeof runner === "string") notes.push(`${engine.name}, ${model.name}: n/a, ${runner}`);
    else runners.set(engine, runner);
  }
  for (const batch of batches) {
    const input = inputBatch(batch);
    // Warm-up, and a check that every engine computes what onnxruntime-node computes.
    const reference = await runners.get(ortNodeEngine)!(input);
    for (const [engine, run] of runners) {
      await timeRuns(run, input, 0.3);
      const difference = relativeDifference(await run(input), reference);
      if (!(difference < 1e-3)) {
        notes.push(
          `${engine.name}, ${model.name}, batch ${batch}: logits differ from onnxruntime-node by ${
            difference.toExponential(1)
          } (relative); its figures are not comparable`,
        );
      }
    }
    const totals = new Map<Engine, [number, number]>([...runners.keys()].map((e) => [e, [0, 0]]));
    const order = [...runners.keys()];
    for (let round = 0; round < rounds; round++) {
      for (let k = 0; k < order.length; k++) {
        const engine = order[(round + k) % order.length];
        const [runs, seconds] = await timeRuns(runners.get(engine)!, input, minSeconds / rounds);
        const total = totals.get(engine)!;
        total[0] += runs, total[1] += seconds;
      }
    }
    const imagesPerSecond = engines.map((e) => {
      const total = totals.get(e);
      return total ? (total[0] * batch) / total[1] : NaN;
    });
    const fmt = (v: number, digits: number) => Number.isNaN(v) ? "n/a" : v.toFixed(digits);
    const [web, , ours] = imagesPerSecond;
    rows.push(
      `| ${model.name} | ${batch} | ${imagesPerSecond.map((v) => fmt(v, 0)).join(" | ")} | ${
        imagesPerSecond.map((v) => fmt((v * model.mflops) / 1000, 2)).join(" | ")
      } | ${Number.isNaN(ours) ? "n/a" : `${(ours / web).toFixed(2)}×`} |`,
    );
  }
}

const runtime = typeof Deno.version === "object" ? `Deno ${Deno.version.deno}` : "unknown runtime";
console.log(
  `Float inference, ${runtime}, ${navigator.hardwareConcurrency} logical CPUs; ` +
    `≥ ${minSeconds} s per configuration in ${rounds} interleaved rounds after warm-up; ` +
    "input: the first test images.\n",
);
console.log(
  "| model | batch | ort-web img/s | ort-node img/s | attnround img/s " +
    "| ort-web GFLOP/s | ort-node GFLOP/s | attnround GFLOP/s | attnround / ort-web |",
);
console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const row of rows) console.log(row);
if (notes.length) console.log(`\n${notes.map((n) => `- ${n}`).join("\n")}`);
