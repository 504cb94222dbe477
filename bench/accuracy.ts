// Accuracy of the rounding modes on the fixture models: quantize with the
// 1,024-image calibration set, evaluate top-1 on the 10,000 test images.
// Prints one Markdown table (FP32, then nearest / adaround / attention per
// setting, with the wall time of each quantization) and writes the raw
// results as JSON.
//   deno task bench:accuracy [--fast] [--iters 2000] [--models resnet18_fmnist,…]
//        [--settings W4A32,W4A4,W3A3,W2A4] [--methods nearest,adaround,attention]
//        [--eval 10000] [--out bench/results/accuracy.json] [--shard i/n]
// --fast: 200 iterations per block and 2,000 test images.
import { init, loadModel, type Model, readNpz, Tensor } from "../mod.ts";
import { quantize } from "../src/quant/quantize.ts";
import type { QuantizeOptions, RoundingMode } from "../src/quant/options.ts";

function option(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Deno.args[i + 1] : fallback;
}
const fast = Deno.args.includes("--fast");
const iterations = Number(option("iters", fast ? "200" : "2000"));
const evalCount = Number(option("eval", fast ? "2000" : "10000"));
const models = option("models", "resnet18_fmnist,mobilenetv2_fmnist").split(",");
const settings = option("settings", "W4A32,W4A4,W3A3,W2A4").split(",");
const methods = option("methods", "nearest,adaround,attention").split(",") as RoundingMode[];
const out = option("out", `bench/results/accuracy${fast ? "-fast" : ""}.json`);
const [shard, shards] = option("shard", "0/1").split("/").map(Number);

await init();
const read = (path: string) => Deno.readFileSync(new URL(`../tests/fixtures/${path}`, import.meta.url));
const toInput = (x: Tensor) =>
  new Tensor(Float32Array.from(x.data as Uint8Array, (v) => v / 255), [x.shape[0], 1, 28, 28]);
const calib = toInput(readNpz(read("calib.npz")).x);
const test = readNpz(read("test.npz"));
const images = toInput(test.x), labels = test.y.data as Uint8Array;

function top1(run: (input: Tensor) => Tensor): number {
  let correct = 0;
  for (let start = 0; start < evalCount; start += 500) {
    const n = Math.min(500, evalCount - start);
    const logits = run(new Tensor(images.data.slice(start * 784, (start + n) * 784), [n, 1, 28, 28]))
      .data as Float32Array;
    for (let i = 0; i < n; i++) {
      let best = 0;
      for (let c = 1; c < 10; c++) if (logits[i * 10 + c] > logits[i * 10 + best]) best = c;
      if (best === labels[start + i]) correct++;
    }
  }
  return (100 * correct) / evalCount;
}

interface Row {
  model: string;
  setting: string;
  method: string;
  top1: number;
  seconds: number;
  msPerIteration?: number;
}
const rows: Row[] = [];
const jobs: [string, string, RoundingMode][] = [];
for (const m of models) for (const s of settings) for (const method of methods) jobs.push([m, s, method]);
const mine = jobs.filter((_, i) => i % shards === shard);

const loaded = new Map<string, Model>();
for (const name of models) {
  const model = loadModel(read(`${name}.onnx`));
  loaded.set(name, model);
  if (shard === 0) {
    rows.push({
      model: name,
      setting: "FP32",
      method: "–",
      top1: top1((input) => model.run({ input }).logits),
      seconds: 0,
    });
  }
}
for (const [name, setting, method] of mine) {
  const [, w, a] = setting.match(/^W(\d+)A(\d+)$/)!;
  const options: Partial<QuantizeOptions> = {
    weightBits: Number(w),
    activationBits: Number(a),
    rounding: method,
    iterations,
    seed: 0,
  };
  const started = performance.now();
  const q = await quantize(loaded.get(name)!, calib, options);
  const seconds = (performance.now() - started) / 1000;
  const blocks = q.report.blocks.filter((b) => b.msPerIteration > 0);
  const msPerIteration = blocks.length
    ? blocks.reduce((s, b) => s + b.msPerIteration, 0) / blocks.length
    : undefined;
  rows.push({
    model: name,
    setting,
    method,
    top1: top1((input) => q.run({ input }).logits),
    seconds,
    msPerIteration,
  });
  q.dispose();
  console.error(JSON.stringify(rows.at(-1)));
}

console.log(`\n${iterations} iterations per block, batch 32, seed 0; top-1 on ${evalCount} test images.\n`);
console.log(
  "| model | setting | method | top-1 % | quantization time s | ms / iteration (mean over blocks) |",
);
console.log("|---|---|---|---:|---:|---:|");
for (const r of rows) {
  console.log(
    `| ${r.model} | ${r.setting} | ${r.method} | ${r.top1.toFixed(2)} | ${
      r.seconds ? r.seconds.toFixed(0) : "–"
    } | ${r.msPerIteration?.toFixed(1) ?? "–"} |`,
  );
}
Deno.mkdirSync(new URL("results/", import.meta.url), { recursive: true });
const file = shards > 1 ? out.replace(/\.json$/, `.${shard}of${shards}.json`) : out;
Deno.writeTextFileSync(file, JSON.stringify({ iterations, evalCount, rows }, null, 2) + "\n");
