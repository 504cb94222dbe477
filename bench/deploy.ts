// Deployment speed: the float fixture models against their quantized exports
// in onnxruntime-node (native CPU), onnxruntime-web (wasm SIMD) and this
// library's own engine, one thread each, batch 1 and 32, side by side in one
// process: every (export, runtime) pair of a model and batch is timed in
// interleaved rounds after a warm-up, so that a busy machine slows them alike.
// Also per export: the form, file sizes, top-1 on the test images in each
// runtime and in q.run; and whether an int8 kernel path in the engine would
// pay: the share of the engine's time in Conv/Gemm/MatMul (timed by wrapping
// those kernels) and what onnxruntime-web's int8 kernels gain over its float
// ones on the same model bound what such a path could give.
//   deno task bench:deploy [--models resnet18_fmnist,…] [--exports W8A8,W4A8,…]
//     [--rounding nearest] [--iters 2000] [--test 10000] [--seconds 2] [--rounds 4]
//     [--save DIR] [--out bench/results/deploy.json]
// Exports: W8A8, W7A8 and W4A8 (deploy form, the default at 8-bit activations),
// W4A8-exact and W4A4 (exact form). Rounding to nearest by default: speed and
// size do not depend on the rounding; `--rounding attention --iters 2000`
// gives the accuracy of a full run.
// deno-lint-ignore no-import-prefix
import * as ortWeb from "npm:onnxruntime-web@1.30.0";
import { gzipSync } from "fflate";
import { init, loadModel, quantize, readNpz, Tensor } from "../mod.ts";
import { Engine } from "../src/engine/engine.ts";
import type { OpRun } from "../src/engine/registry.ts";
import type { QuantizeOptionsInput, RoundingMode } from "../src/quant/options.ts";
import { ortNodeSession, toOrtTensor } from "../tests/ort.ts";
import { ortWebSession } from "../tests/ort-web.ts";
import { evaluationSet, option, percentSame, predict, readFixture, toInput } from "./fmnist.ts";

const models = option("models", "resnet18_fmnist,mobilenetv2_fmnist,vit_fmnist").split(",");
const exportNames = option("exports", "W8A8,W4A8,W4A8-exact,W4A4").split(",");
const rounding = option("rounding", "nearest") as RoundingMode;
const iterations = Number(option("iters", "2000"));
const testCount = Number(option("test", "10000"));
const minSeconds = Number(option("seconds", "2"));
const rounds = Number(option("rounds", "4"));
const saveDir = option("save", "");
const out = option("out", "bench/results/deploy.json");
const batches = [1, 32];

const EXPORTS: Record<string, QuantizeOptionsInput> = {
  "W8A8": { weightBits: 8, activationBits: 8 },
  // 7-bit weights stay int8 in the deploy form: onnxruntime's uint8 × int8 kernels, which cannot saturate on them.
  "W7A8": { weightBits: 7, activationBits: 8 },
  "W4A8": { weightBits: 4, activationBits: 8 },
  "W4A8-exact": { weightBits: 4, activationBits: 8, exportForm: "exact" },
  "W4A4": { weightBits: 4, activationBits: 4 },
};

await init();
const calibration = toInput(readNpz(readFixture("calib.npz")).x);
const { images, labels } = evaluationSet("test");

type Run = (input: Tensor) => Promise<Float32Array>;
const RUNTIMES = ["onnxruntime-node", "onnxruntime-web", "attnround"] as const;
type Runtime = typeof RUNTIMES[number];

async function runners(bytes: Uint8Array): Promise<Record<Runtime, Run>> {
  const node = await ortNodeSession(bytes);
  const web = await ortWebSession(bytes);
  const engine = loadModel(bytes);
  return {
    "onnxruntime-node": async (x) => (await node.run({ input: toOrtTensor(x) })).logits.data as Float32Array,
    "onnxruntime-web": async (x) =>
      (await web.run({ input: new ortWeb.Tensor("float32", x.data as Float32Array, [...x.shape]) })).logits
        .data as Float32Array,
    "attnround": (x) => Promise.resolve(engine.run({ input: x }).logits.data as Float32Array),
  };
}

async function top1(run: Run): Promise<number> {
  const classes = new Uint8Array(testCount);
  for (let start = 0; start < testCount; start += 500) {
    const n = Math.min(500, testCount - start);
    const logits = await run(new Tensor(images.data.slice(start * 784, (start + n) * 784), [n, 1, 28, 28]));
    for (let i = 0; i < n; i++) {
      let best = 0;
      for (let c = 1; c < 10; c++) if (logits[i * 10 + c] > logits[i * 10 + best]) best = c;
      classes[start + i] = best;
    }
  }
  return percentSame(classes, labels);
}

/** Runs back to back for at least `seconds`; returns [runs, elapsed seconds]. */
async function timeRuns(run: Run, input: Tensor, seconds: number): Promise<[number, number]> {
  let runs = 0;
  const start = performance.now();
  do {
    await run(input);
    runs++;
  } while (performance.now() - start < seconds * 1000);
  return [runs, (performance.now() - start) / 1000];
}

const batchOf = (n: number) => new Tensor(images.data.slice(0, n * 784), [n, 1, 28, 28]);

/** Share of the engine's forward time spent in Conv, Gemm and MatMul kernels (batch 32, float model). */
function layerShare(bytes: Uint8Array): number {
  const model = loadModel(bytes);
  const engine = new Engine(model.graph);
  // The engine's kernels per node, in order (private): wrapped here to time the layers.
  const inside = engine as unknown as { runs: OpRun[] };
  let inLayers = 0;
  inside.runs = inside.runs.map((run, i) =>
    ["Conv", "Gemm", "MatMul"].includes(engine.order[i].opType)
      ? (ctx, inputs) => {
        const t = performance.now();
        const result = run(ctx, inputs);
        inLayers += performance.now() - t;
        return result;
      }
      : run
  );
  const x = batchOf(32);
  engine.run({ input: x });
  inLayers = 0;
  const start = performance.now();
  do engine.run({ input: x }); while (performance.now() - start < minSeconds * 1000);
  const share = inLayers / (performance.now() - start);
  engine.dispose();
  model.dispose();
  return share;
}

interface ExportRow {
  model: string;
  export: string;
  form: string;
  onnxBytes: number;
  gzipBytes: number;
  /** Top-1 % on the test images: q.run (the float model for "float") and each runtime. */
  top1: Record<string, number>;
  /** Images/s per runtime and batch. */
  speed: Record<Runtime, Record<number, number>>;
}
const rows: ExportRow[] = [];
const shares: Record<string, number> = {};

for (const name of models) {
  const floatBytes = readFixture(`${name}.onnx`);
  const floatModel = loadModel(floatBytes);
  const exports: { label: string; form: string; bytes: Uint8Array; qrun?: number }[] = [
    { label: "float", form: "–", bytes: floatBytes },
  ];
  for (const label of exportNames) {
    const started = performance.now();
    const q = await quantize(floatModel, calibration, { ...EXPORTS[label], rounding, iterations, seed: 0 });
    const bytes = q.toOnnx();
    const qrun = percentSame(await predict(images, testCount, (input) => q.run({ input }).logits), labels);
    exports.push({ label, form: q.report.settings.exportForm!, bytes, qrun });
    if (saveDir) Deno.writeFileSync(`${saveDir}/${name}.${label}.onnx`, bytes);
    console.error(`${name} ${label}: quantized in ${((performance.now() - started) / 1000).toFixed(0)} s`);
    q.dispose();
  }
  shares[name] = layerShare(floatBytes);
  const floatTop1 = percentSame(
    await predict(images, testCount, (input) => floatModel.run({ input }).logits),
    labels,
  );
  floatModel.dispose();

  const loaded = await Promise.all(exports.map((e) => runners(e.bytes)));
  for (const [i, e] of exports.entries()) {
    const top: Record<string, number> = { "q.run": e.qrun ?? floatTop1 };
    for (const r of RUNTIMES) top[r] = await top1(loaded[i][r]);
    rows.push({
      model: name,
      export: e.label,
      form: e.form,
      onnxBytes: e.bytes.length,
      gzipBytes: gzipSync(e.bytes, { level: 9 }).length,
      top1: top,
      speed: { "onnxruntime-node": {}, "onnxruntime-web": {}, "attnround": {} },
    });
  }
  const mine = rows.slice(-exports.length);
  for (const batch of batches) {
    const input = batchOf(batch);
    const configs = exports.flatMap((_, i) =>
      RUNTIMES.map((r) => ({ i, r, run: loaded[i][r], runs: 0, seconds: 0 }))
    );
    for (const c of configs) await timeRuns(c.run, input, 0.2);
    for (let round = 0; round < rounds; round++) {
      for (let k = 0; k < configs.length; k++) {
        const c = configs[(round + k) % configs.length];
        const [runs, seconds] = await timeRuns(c.run, input, minSeconds / rounds);
        c.runs += runs, c.seconds += seconds;
      }
    }
    for (const c of configs) mine[c.i].speed[c.r][batch] = (c.runs * batch) / c.seconds;
    console.error(`${name} batch ${batch}: timed`);
  }
}

const kib = (n: number) => (n / 1024).toLocaleString("en-US", { maximumFractionDigits: 0 });
const fmt = (v: number) => v.toLocaleString("en-US", { maximumFractionDigits: 0 });
const floatOf = (r: ExportRow) => rows.find((f) => f.model === r.model && f.export === "float")!;
const runtime = `Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} logical CPUs`;
console.log(
  `\nImages/s, one thread, ${runtime}; ≥ ${minSeconds} s per configuration in ${rounds} interleaved rounds; ` +
    `× = against the float model in the same runtime and batch.\n`,
);
console.log(
  "| model | export | form | batch | onnxruntime-node | × | onnxruntime-web | × | attnround engine | × |",
);
console.log("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const batch of batches) {
  for (const r of rows) {
    const f = floatOf(r);
    const cells = RUNTIMES.map((rt) =>
      `${fmt(r.speed[rt][batch])} | ${(r.speed[rt][batch] / f.speed[rt][batch]).toFixed(2)}×`
    );
    console.log(`| ${r.model} | ${r.export} | ${r.form} | ${batch} | ${cells.join(" | ")} |`);
  }
}
console.log(
  `\nTop-1 % on ${testCount} test images (rounding ${rounding}${
    rounding === "nearest" ? "" : `, ${iterations} iterations`
  }); sizes in KiB.\n`,
);
console.log(
  "| model | export | form | .onnx | gzipped | q.run | onnxruntime-node | onnxruntime-web | attnround engine |",
);
console.log("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const r of rows) {
  console.log(
    `| ${r.model} | ${r.export} | ${r.form} | ${kib(r.onnxBytes)} | ${kib(r.gzipBytes)} | ${
      r.top1["q.run"].toFixed(2)
    } | ${RUNTIMES.map((rt) => r.top1[rt].toFixed(2)).join(" | ")} |`,
  );
}
console.log(
  "\nAn int8 path in the engine: share of its float forward time (batch 32) in Conv/Gemm/MatMul, " +
    "onnxruntime-web's W8A8 speed-up over its float model, and the engine's speed-up if its layers " +
    "gained as much (Amdahl: 1 / (1 − share + share / gain)).\n",
);
console.log("| model | layer share | onnxruntime-web W8A8 gain | projected engine gain |");
console.log("| --- | ---: | ---: | ---: |");
for (const name of models) {
  const w8 = rows.find((r) => r.model === name && r.export === "W8A8");
  const f = rows.find((r) => r.model === name && r.export === "float")!;
  const gain = w8 ? w8.speed["onnxruntime-web"][32] / f.speed["onnxruntime-web"][32] : NaN;
  const share = shares[name];
  console.log(
    `| ${name} | ${(share * 100).toFixed(0)} % | ${gain.toFixed(2)}× | ${
      (1 / (1 - share + share / gain)).toFixed(2)
    }× |`,
  );
}
Deno.writeTextFileSync(
  out,
  JSON.stringify({ rounding, iterations, testCount, rows, shares }, null, 2) + "\n",
);
