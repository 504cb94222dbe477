// Accuracy of the rounding modes on the fixture models: quantize with the
// 1,024-image calibration set, evaluate top-1 on the 10,000 test images.
// Prints one Markdown table (FP32, then nearest / adaround / attention per
// setting, with the wall time of each quantization) and writes the raw
// results as JSON.
//   deno task bench:accuracy [--fast] [--iters 2000] [--models resnet18_fmnist,…]
//        [--settings W4A32,W4A4,W3A3,W2A4] [--methods nearest,adaround,attention]
//        [--eval 10000] [--out bench/results/accuracy.json] [--shard i/n]
//        [--data test|train] [--set key=value,…] [--last-input-bits 8]
// --fast: 200 iterations per block and 2,000 test images.
// --data train: evaluate on the last 10,000 Fashion-MNIST training images
//   (Debian package dataset-fashion-mnist) instead of the test set: the split
//   on which defaults are chosen, so that the test set is never tuned on.
// --set: extra quantize options, e.g. activationLearningRate=4e-4,attention.sigma0=1.
// --last-input-bits: the last layer's input at these bits (BRECQ's runs in
//   PEERS.md keep mobilenetv2's classifier input at 8 bits).
// Each row also gives the top-1 agreement with the float model.
// --export: also export each quantized model to ONNX and give the top-1 of
//   that file run by onnxruntime-node (one thread, default options).
import { init, loadModel, type Model, quantize, readNpz } from "../mod.ts";
import { evaluationSet, option, percentSame, predict, readFixture, toInput, withSet } from "./fmnist.ts";
import { quantizableLayers } from "../src/graph/partition.ts";
import type { QuantizeOptionsInput, RoundingMode } from "../src/quant/options.ts";
import { ortNodeRun } from "../tests/ort.ts";

const fast = Deno.args.includes("--fast");
const iterations = Number(option("iters", fast ? "200" : "2000"));
const evalCount = Number(option("eval", fast ? "2000" : "10000"));
const models = option("models", "resnet18_fmnist,mobilenetv2_fmnist").split(",");
const settings = option("settings", "W4A32,W4A4,W3A3,W2A4").split(",");
const methods = option("methods", "nearest,adaround,attention").split(",") as RoundingMode[];
const out = option("out", `bench/results/accuracy${fast ? "-fast" : ""}.json`);
const [shard, shards] = option("shard", "0/1").split("/").map(Number);
const data = option("data", "test");
const lastInputBits = option("last-input-bits", "");
const exported = Deno.args.includes("--export");
const extraOptions = [option("set", ""), lastInputBits && `lastInputBits=${lastInputBits}`].filter(Boolean)
  .join(",");
await init();
const calib = toInput(readNpz(readFixture("calib.npz")).x);

const { images, labels } = evaluationSet(data);

interface Row {
  model: string;
  setting: string;
  method: string;
  top1: number;
  /** Top-1 agreement with the float model, %. */
  agreement: number;
  /** Top-1 of the exported ONNX model in onnxruntime-node, % (with --export). */
  exportTop1?: number;
  seconds: number;
  msPerIteration?: number;
  /** Attention Round's variant, for attention rows. */
  variant?: string;
}
const rows: Row[] = [];
const jobs: [string, string, RoundingMode][] = [];
for (const m of models) for (const s of settings) for (const method of methods) jobs.push([m, s, method]);
const mine = jobs.filter((_, i) => i % shards === shard);

const loaded = new Map<string, Model>();
const floatClasses = new Map<string, Uint8Array>();
for (const name of models) {
  const model = loadModel(readFixture(`${name}.onnx`));
  loaded.set(name, model);
  floatClasses.set(name, await predict(images, evalCount, (input) => model.run({ input }).logits));
  if (shard === 0) {
    rows.push({
      model: name,
      setting: "FP32",
      method: "–",
      top1: percentSame(floatClasses.get(name)!, labels),
      agreement: 100,
      seconds: 0,
    });
  }
}
for (const [name, setting, method] of mine) {
  const [, w, a] = setting.match(/^W(\d+)A(\d+)$/)!;
  const options: QuantizeOptionsInput = withSet({
    weightBits: Number(w),
    activationBits: Number(a),
    rounding: method,
    iterations,
    seed: 0,
  }, option("set", ""));
  if (lastInputBits) {
    const last = quantizableLayers(loaded.get(name)!.graph).at(-1)!.name;
    options.layers = { ...options.layers, [last]: { activationBits: Number(lastInputBits) } };
  }
  const started = performance.now();
  const q = await quantize(loaded.get(name)!, calib, options);
  const seconds = (performance.now() - started) / 1000;
  const blocks = q.report.blocks.filter((b) => b.msPerIteration > 0);
  const msPerIteration = blocks.length
    ? blocks.reduce((s, b) => s + b.msPerIteration, 0) / blocks.length
    : undefined;
  const classes = await predict(images, evalCount, (input) => q.run({ input }).logits);
  let exportTop1: number | undefined;
  if (exported) {
    const onnx = q.toOnnx();
    const inputName = loaded.get(name)!.graph.inputs[0].name;
    const outputName = loaded.get(name)!.graph.outputs[0].name;
    const ortClasses = await predict(
      images,
      evalCount,
      async (input) => (await ortNodeRun(onnx, { [inputName]: input }))[outputName],
    );
    exportTop1 = percentSame(ortClasses, labels);
  }
  rows.push({
    model: name,
    setting,
    method,
    top1: percentSame(classes, labels),
    agreement: percentSame(classes, floatClasses.get(name)!),
    exportTop1,
    seconds,
    msPerIteration,
    variant: method === "attention" ? q.report.settings.attention.variant : undefined,
  });
  q.dispose();
  console.error(JSON.stringify(rows.at(-1)));
}

const evaluated = data === "train" ? "training images 50,000–59,999" : "test images";
console.log(
  `\n${iterations} iterations per block, batch 32, seed 0; top-1 on ${evalCount} ${evaluated}.` +
    (extraOptions ? ` Options: ${extraOptions}.` : "") + "\n",
);
console.log(
  "| model | setting | method | top-1 % | agreement with FP32 % |" +
    (exported ? " export top-1 % (onnxruntime-node) |" : "") +
    " quantization time s | ms / iteration (mean over blocks) |",
);
console.log(`|---|---|---|---:|---:|${exported ? "---:|" : ""}---:|---:|`);
for (const r of rows) {
  console.log(
    `| ${r.model} | ${r.setting} | ${r.method} | ${r.top1.toFixed(2)} | ${r.agreement.toFixed(2)} | ${
      exported ? `${r.exportTop1?.toFixed(2) ?? "–"} | ` : ""
    }${r.seconds ? r.seconds.toFixed(0) : "–"} | ${r.msPerIteration?.toFixed(1) ?? "–"} |`,
  );
}
Deno.mkdirSync(new URL("results/", import.meta.url), { recursive: true });
const file = shards > 1 ? out.replace(/\.json$/, `.${shard}of${shards}.json`) : out;
Deno.writeTextFileSync(
  file,
  JSON.stringify({ iterations, evalCount, data, options: extraOptions, rows }, null, 2) + "\n",
);
