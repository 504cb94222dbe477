// Mixed precision against uniform precision at equal stored bytes (SPEC §6,
// §11): on the fixture models, with attention rounding and the same
// iterations, for each uniform setting WxAy (x = 3 or 4 bits, activations y =
// 4 bits or float) every allocation gets the bytes the uniform model stores
// for the layers in the budget (all but the first and last layer, 8 bits in
// every allocation): levels and zero points in their ONNX types (int2 at 2
// bits, int4 at 3 and 4, int8 above) and float32 scales. Uniform 3-bit
// weights are stored as int4, so W3 and W4 give the same budget.
//   uniform        every layer in the budget at x bits
//   sensitivity    quantize's default criterion: the knapsack over measured output-loss increases
//   coding length  the paper's criterion: the knapsack towards targets B + κ·(ρ − ρ̄)
//   reversed       the coding length with ρ negated: most bits to the lowest ρ
//   random         the ρ values shuffled among the layers (seeded); mean over --seeds
// Every allocation comes from src/quant/mixed-plan.ts and mixed.ts, as
// quantize's mixedPrecision makes it, and runs through the same quantize() as
// per-layer weightBits overrides, so that allocations with the same bits share
// one run. Each row's file size (the exported ONNX) is checked against the
// uniform model's: within 1 %.
// Prints a Markdown table and writes the raw results (with every layer's bits) as JSON.
//   deno task bench:mixed [--fast] [--iters 2000] [--models resnet18_fmnist,mobilenetv2_fmnist]
//        [--settings W3A4,W3A32,W4A4,W4A32] [--allocations uniform,sensitivity,coding-length,reversed,random]
//        [--seeds 0] [--eval 10000] [--data test|train] [--out bench/results/mixed.json] [--shard i/n]
//        [--from a.json,b.json: print the table of earlier runs' results (e.g. the shards) instead of running]
// --fast: 200 iterations per block and 2,000 test images. --data train: the
// last 10,000 Fashion-MNIST training images (the validation split) instead of the test set.
import { init, loadModel, type Model, quantize, readNpz, Tensor } from "../mod.ts";
import {
  evaluationSet,
  mean,
  mulberry32,
  option,
  percentSame,
  predict,
  readFixture,
  toInput,
} from "./fmnist.ts";
import { planLayerBits } from "../src/quant/layers.ts";
import { allocateMixedPrecision } from "../src/quant/mixed-plan.ts";
import {
  allocateBytes,
  averageBitsBytes,
  codingLengthCosts,
  layerStoredBytes,
  storedBits,
} from "../src/quant/mixed.ts";
import { defaultOptions, type QuantizeOptionsInput, resolveOptions } from "../src/quant/options.ts";

const fast = Deno.args.includes("--fast");
const iterations = Number(option("iters", fast ? "200" : "2000"));
const evalCount = Number(option("eval", fast ? "2000" : "10000"));
const models = option("models", "resnet18_fmnist,mobilenetv2_fmnist").split(",");
const settings = option("settings", "W3A4,W3A32,W4A4,W4A32").split(",");
const allocations = option("allocations", "uniform,sensitivity,coding-length,reversed,random").split(",");
const seeds = option("seeds", "0").split(",").map(Number);
const out = option("out", `bench/results/mixed${fast ? "-fast" : ""}.json`);
const [shard, shards] = option("shard", "0/1").split("/").map(Number);
const data = option("data", "test");
const from = option("from", "");
const variant = defaultOptions.attention.variant;

/** Seeded shuffle (mulberry32 + Fisher–Yates). */
function shuffle<T>(items: readonly T[], seed: number): T[] {
  const next = mulberry32(seed + 1);
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** The held-back calibration samples quantize() measures sensitivity on (the last `holdout`). */
function heldBack(calib: Tensor, holdout: number): Tensor {
  const n = Math.min(holdout, Math.floor(calib.shape[0] / 4)), per = calib.size / calib.shape[0];
  return new Tensor((calib.data as Float32Array).slice((calib.shape[0] - n) * per), [
    n,
    ...calib.shape.slice(1),
  ]);
}

/** Bits of every quantizable layer (first and last at 8) under an allocation at the budget of uniform x bits. */
function allocation(
  model: Model,
  calib: Tensor,
  base: QuantizeOptionsInput,
  kind: string,
  x: number,
  seed: number,
) {
  const o = resolveOptions(base);
  const plan = planLayerBits(model.graph, o);
  if (kind === "uniform") return plan.layers.map((_, i) => (plan.source[i] === "first-last" ? 8 : x));
  // The budget of uniform x bits: x bits stored in their container (3 in int4), so averageBits = the container.
  const averageBits = storedBits(x, false);
  const candidates = [2, 3, 4, 5, 6, 8];
  if (kind === "sensitivity" || kind === "coding-length") {
    const mixed = { criterion: kind, averageBits, candidates } as const;
    const { bits } = allocateMixedPrecision(
      model,
      resolveOptions({ ...base, mixedPrecision: mixed }),
      heldBack(
        calib,
        o.holdout,
      ),
    );
    return plan.layers.map((l, i) => bits.get(l.name) ?? plan.bits[i]);
  }
  const mixedPlan = planLayerBits(
    model.graph,
    resolveOptions({ ...base, mixedPrecision: { criterion: "coding-length", averageBits, candidates } }),
  );
  const free = plan.layers.filter((_, i) => mixedPlan.source[i] === "mixed");
  let rho = free.map((l) => l.codingLengthPerWeight);
  if (kind === "reversed") rho = rho.map((r) => -r);
  else if (kind === "random") rho = shuffle(rho, seed);
  else throw new Error(`unknown allocation ${kind}`);
  const cost = codingLengthCosts(
    free.map((l, i) => ({ ...l, codingLengthPerWeight: rho[i] })),
    averageBits,
    candidates,
  );
  const budget = free.reduce((a, l) => a + averageBitsBytes(l.parameters, l.rowsShape[0], averageBits), 0);
  const items = free.map((l, i) => ({
    cost: cost[i],
    bytes: candidates.map((b) => layerStoredBytes(l.parameters, l.rowsShape[0], b, false)),
  }));
  const choice = allocateBytes(items, budget)!;
  const chosen = new Map(free.map((l, i) => [l.name, candidates[choice[i]]]));
  return plan.layers.map((l, i) => chosen.get(l.name) ?? plan.bits[i]);
}

interface Row {
  model: string;
  setting: string;
  allocation: string;
  seed?: number;
  top1: number;
  /** Top-1 agreement with the float model, %. */
  agreement: number;
  /** Bytes of the exported ONNX file, and of the budget layers' weights in it. */
  fileBytes: number;
  budgetBytes: number;
  /** Σ b·P / Σ P over the layers in the budget. */
  averageBits: number;
  bits: number[];
  seconds: number;
  /** The allocation whose run this row reuses, when the bits are the same. */
  sameAs?: string;
}
interface Results {
  iterations: number;
  evalCount: number;
  data: string;
  seeds: number[];
  variant: string;
  /** FP32 top-1 per model. */
  float: Record<string, number>;
  rows: Row[];
}

/** Runs this shard's allocations. */
async function run(): Promise<Results> {
  await init();
  const calib = toInput(readNpz(readFixture("calib.npz")).x);
  const { images, labels } = evaluationSet(data);
  const rows: Row[] = [];
  type Job = [string, string, string, number | undefined];
  // A shard takes whole (model, activations) groups, so that allocations with the same bits share one run.
  const mine: Job[] = [];
  const groups = [...new Set(settings.map((s) => s.replace(/^W\d+/, "")))];
  let groupIndex = 0;
  for (const m of models) {
    for (const g of groups) {
      if (groupIndex++ % shards !== shard) continue;
      for (const s of settings.filter((s) => s.endsWith(g))) {
        for (const a of allocations) {
          if (a === "random") { for (const seed of seeds) mine.push([m, s, a, seed]); }
          else mine.push([m, s, a, undefined]);
        }
      }
    }
  }

  const loaded = new Map<string, { model: Model; floatClasses: Uint8Array; top1: number }>();
  for (const name of models) {
    const model = loadModel(readFixture(`${name}.onnx`));
    const floatClasses = await predict(images, evalCount, (input) => model.run({ input }).logits);
    loaded.set(name, { model, floatClasses, top1: percentSame(floatClasses, labels) });
  }

  for (const [name, setting, kind, seed] of mine) {
    const [, w, a] = setting.match(/^W(\d+)A(\d+)$/)!;
    const { model, floatClasses } = loaded.get(name)!;
    const base: QuantizeOptionsInput = {
      weightBits: 8,
      activationBits: Number(a),
      rounding: "attention",
      iterations,
      seed: 0,
    };
    const started = performance.now();
    const bits = allocation(model, calib, base, kind, Number(w), seed ?? 0);
    const allocationSeconds = (performance.now() - started) / 1000;
    const names = resolveOptions(base) && planLayerBits(model.graph, resolveOptions(base)).layers;
    // Quantization is deterministic: an allocation with the bits of one already run has its result.
    const same = rows.find((r) =>
      r.model === name && r.setting.endsWith(`A${a}`) && r.bits.join() === bits.join()
    );
    if (same) {
      rows.push({
        ...same,
        setting,
        allocation: kind,
        seed,
        sameAs: same.sameAs ?? `${same.allocation} ${same.setting}`,
      });
      console.error(JSON.stringify({ ...rows.at(-1), bits: undefined }));
      continue;
    }
    const options = {
      ...base,
      layers: Object.fromEntries(names.map((l, i) => [l.name, { weightBits: bits[i] }])),
    };
    const q = await quantize(model, calib, options);
    const seconds = (performance.now() - started) / 1000;
    const reported = q.report.layers.map((l) => l.weightBits);
    if (reported.join() !== bits.join()) {
      throw new Error(`${name} ${setting} ${kind}: quantize used other bits`);
    }
    const classes = await predict(images, evalCount, (input) => q.run({ input }).logits);
    const middle = q.report.layers.slice(1, -1);
    const budgetParams = middle.reduce((s, l) => s + l.parameters, 0);
    rows.push({
      model: name,
      setting,
      allocation: kind,
      seed,
      top1: percentSame(classes, labels),
      agreement: percentSame(classes, floatClasses),
      fileBytes: q.toOnnx().length,
      budgetBytes: middle.reduce((s, l) => s + l.storedBytes, 0),
      averageBits: middle.reduce((s, l) => s + l.weightBits * l.parameters, 0) / budgetParams,
      bits,
      seconds: kind === "sensitivity" ? seconds : seconds - allocationSeconds,
    });
    q.dispose();
    console.error(JSON.stringify({ ...rows.at(-1), bits: undefined }));
  }

  const float = Object.fromEntries([...loaded].map(([name, l]) => [name, l.top1]));
  return { iterations, evalCount, data, seeds, variant, float, rows };
}

/** The results of earlier runs, merged (they must share iterations, images, seeds and variant). */
function merged(files: string[]): Results {
  const parts: Results[] = files.map((f) => JSON.parse(Deno.readTextFileSync(f)));
  for (const p of parts) {
    for (const k of ["iterations", "evalCount", "data", "seeds", "variant"] as const) {
      if (JSON.stringify(p[k]) !== JSON.stringify(parts[0][k])) {
        throw new Error(`--from: the files differ in ${k}`);
      }
    }
  }
  return {
    ...parts[0],
    float: Object.assign({}, ...parts.map((p) => p.float)),
    rows: parts.flatMap((p) => p.rows),
  };
}

const results = from ? merged(from.split(",")) : await run();
const { rows } = results;
const evaluated = results.data === "train" ? "training images 50,000–59,999" : "test images";
console.log(
  `\nAttention rounding (${results.variant}), ${results.iterations} iterations per block, batch 32, seed 0; top-1 on ${results.evalCount} ${evaluated}.` +
    ` WxAy: every allocation gets the bytes uniform x-bit weights store for all layers but the first and last` +
    ` (8 bits, outside the budget), activations y bits. Random: mean over seeds ${
      results.seeds.join(", ")
    }.\n`,
);
console.log(
  "| model | setting | allocation | top-1 % | agreement with FP32 % | file bytes (vs uniform) | budget layers' bytes | average bits in budget | time s |",
);
console.log("|---|---|---|---:|---:|---:|---:|---:|---:|");
if (shard === 0 || from) {
  for (const [name, top1] of Object.entries(results.float)) {
    console.log(`| ${name} | FP32 | – | ${top1.toFixed(2)} | 100.00 | – | – | 32 | – |`);
  }
}
/** The values present, in the order of `preferred` (the command-line lists), others after. */
const ordered = (xs: string[], preferred: string[]) => {
  const rank = (x: string) => (preferred.includes(x) ? preferred.indexOf(x) : preferred.length);
  return [...new Set(xs)].sort((a, b) => rank(a) - rank(b));
};
const groups: { model: string; setting: string; allocation: string; rows: Row[] }[] = [];
for (const model of ordered(rows.map((r) => r.model), models)) {
  for (const setting of ordered(rows.map((r) => r.setting), settings)) {
    for (const allocation of ordered(rows.map((r) => r.allocation), allocations)) {
      const group = rows.filter((r) =>
        r.model === model && r.setting === setting && r.allocation === allocation
      );
      if (group.length > 0) groups.push({ model, setting, allocation, rows: group });
    }
  }
}
let worst = 0;
for (const { model, setting, allocation, rows: group } of groups) {
  const uniform = rows.find((r) => r.model === model && r.setting === setting && r.allocation === "uniform");
  const ratio = uniform ? mean(group.map((r) => r.fileBytes)) / uniform.fileBytes - 1 : NaN;
  if (Number.isFinite(ratio)) worst = Math.max(worst, Math.abs(ratio));
  const label = (allocation === "random" ? `random (${group.length} seeds)` : allocation) +
    (group.every((r) => r.sameAs)
      ? ` (same bits as ${[...new Set(group.map((r) => r.sameAs))].join(", ")})`
      : "");
  console.log(
    `| ${model} | ${setting} | ${label} | ${mean(group.map((r) => r.top1)).toFixed(2)} | ${
      mean(group.map((r) => r.agreement)).toFixed(2)
    } | ${mean(group.map((r) => r.fileBytes)).toFixed(0)} (${(100 * ratio).toFixed(2)} %) | ${
      mean(group.map((r) => r.budgetBytes)).toFixed(0)
    } | ${mean(group.map((r) => r.averageBits)).toFixed(3)} | ${
      mean(group.map((r) => r.seconds)).toFixed(0)
    } |`,
  );
}
console.log(`\nLargest file-size difference from uniform: ${(100 * worst).toFixed(2)} %.`);
if (worst > 0.01) console.log("**Some row is more than 1 % from uniform's size.**");
// The same top-1 figures side by side, one row per model and setting.
const shown = ordered(rows.map((r) => r.allocation), allocations);
console.log(`\n| model | setting | ${shown.map((a) => `${a} top-1 %`).join(" | ")} |`);
console.log(`|---|---|${shown.map(() => "---:").join("|")}|`);
for (const model of ordered(rows.map((r) => r.model), models)) {
  for (const setting of ordered(rows.map((r) => r.setting), settings)) {
    const cells = shown.map((a) =>
      groups.find((g) => g.model === model && g.setting === setting && g.allocation === a)
    );
    if (cells.every((g) => !g)) continue;
    const cell = (g?: (typeof groups)[number]) => (g ? mean(g.rows.map((r) => r.top1)).toFixed(2) : "–");
    console.log(`| ${model} | ${setting} | ${cells.map(cell).join(" | ")} |`);
  }
}
if (!from) {
  Deno.mkdirSync(new URL("results/", import.meta.url), { recursive: true });
  const file = shards > 1 ? out.replace(/\.json$/, `.${shard}of${shards}.json`) : out;
  Deno.writeTextFileSync(file, JSON.stringify(results, null, 2) + "\n");
}
