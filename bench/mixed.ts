// Mixed precision from the coding length against other allocations of the
// same size (SPEC §6, §11): on the fixture models, with attention rounding
// and the same iterations, at average weight budgets of 3 and 4 bits with
// 4-bit and float activations:
//   coding length  bits from ρ = L/(m·n) (src/quant/mixed.ts, as quantize's mixedPrecision gives them)
//   uniform        every layer in the budget at B bits
//   reversed       the same rule with ρ negated: most bits to the lowest ρ
//   random         the ρ values shuffled among the layers (seeded), then the same rule; mean over --seeds
// The budget: the first and last layer stay at 8 bits in every allocation and
// are outside it; over the other layers Σ b·P ≤ B·Σ P (P = parameters), which
// uniform B-bit meets exactly. So every allocation's weights take at most as
// many bits as uniform B-bit with 8-bit first and last layers: the table gives
// each one's weight size (integer weights, without the per-channel scales,
// which are the same for all). Every allocation runs through the same
// quantize() as per-layer weightBits overrides.
// Prints a Markdown table and writes the raw results (with every layer's bits) as JSON.
//   deno task bench:mixed [--fast] [--iters 2000] [--models resnet18_fmnist,mobilenetv2_fmnist]
//        [--settings W3A4,W3A32,W4A4,W4A32] [--allocations coding-length,uniform,reversed,random]
//        [--seeds 0,1,2] [--eval 10000] [--data test|train] [--out bench/results/mixed.json] [--shard i/n]
//        [--spread κ: the mapping's bits per bit of ρ, default src/quant/mixed.ts's]
//        [--from a.json,b.json: print the table of earlier runs' results (e.g. the shards) instead of running]
//        [--variant stochastic|expectation: Attention Round's variant, default the library's]
// --fast: 200 iterations per block and 2,000 test images. --data train: the
// last 10,000 Fashion-MNIST training images instead of the test set (as bench/accuracy.ts).
import { init, loadModel, type Model, quantize, readNpz } from "../mod.ts";
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
import { measureLayers } from "../src/quant/layers.ts";
import { allocateBits, type BudgetLayer, defaultCandidates, defaultSpread } from "../src/quant/mixed.ts";
import { type AttentionOptions, defaultOptions, type QuantizeOptionsInput } from "../src/quant/options.ts";

const fast = Deno.args.includes("--fast");
const iterations = Number(option("iters", fast ? "200" : "2000"));
const evalCount = Number(option("eval", fast ? "2000" : "10000"));
const models = option("models", "resnet18_fmnist,mobilenetv2_fmnist").split(",");
const settings = option("settings", "W3A4,W3A32,W4A4,W4A32").split(",");
const allocations = option("allocations", "coding-length,uniform,reversed,random").split(",");
const seeds = option("seeds", "0,1,2").split(",").map(Number);
const out = option("out", `bench/results/mixed${fast ? "-fast" : ""}.json`);
const [shard, shards] = option("shard", "0/1").split("/").map(Number);
const data = option("data", "test");
const spread = Number(option("spread", String(defaultSpread)));
const from = option("from", "");
const variant = option("variant", defaultOptions.attention.variant) as AttentionOptions["variant"];

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

interface Layer extends BudgetLayer {
  name: string;
}

/** Bits of every quantizable layer (first and last at 8) under an allocation of the budget B. */
function allocation(layers: Layer[], kind: string, budget: number, seed: number): number[] {
  const middle = layers.slice(1, -1);
  let ranked: BudgetLayer[] = middle;
  if (kind === "uniform") {
    if (!defaultCandidates.includes(budget)) {
      throw new Error(`uniform needs a whole budget among the candidates, got ${budget}`);
    }
    return layers.map((_, i) => (i === 0 || i === layers.length - 1 ? 8 : budget));
  }
  if (kind === "reversed") {
    ranked = middle.map((l) => ({ ...l, codingLengthPerWeight: -l.codingLengthPerWeight }));
  }
  if (kind === "random") {
    const rhos = shuffle(middle.map((l) => l.codingLengthPerWeight), seed);
    ranked = middle.map((l, i) => ({ ...l, codingLengthPerWeight: rhos[i] }));
  }
  return [8, ...allocateBits(ranked, budget, defaultCandidates, spread), 8];
}

interface Row {
  model: string;
  setting: string;
  allocation: string;
  seed?: number;
  top1: number;
  /** Top-1 agreement with the float model, %. */
  agreement: number;
  /** Integer weight bits of all quantized layers, in KiB. */
  weightKiB: number;
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
  spread: number;
  variant: AttentionOptions["variant"];
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
  // A shard takes whole (model, setting) groups, so that allocations with the same bits share one run.
  const mine: Job[] = [];
  let groupIndex = 0;
  for (const m of models) {
    for (const s of settings) {
      if (groupIndex++ % shards !== shard) continue;
      for (const a of allocations) {
        if (a === "random") { for (const seed of seeds) mine.push([m, s, a, seed]); }
        else mine.push([m, s, a, undefined]);
      }
    }
  }

  const loaded = new Map<string, { model: Model; layers: Layer[]; floatClasses: Uint8Array; top1: number }>();
  for (const name of models) {
    const model = loadModel(readFixture(`${name}.onnx`));
    const layers = measureLayers(model.graph).map(({ key, name, parameters, codingLengthPerWeight }) => ({
      key,
      name,
      parameters,
      codingLengthPerWeight,
    }));
    if (new Set(layers.map((l) => l.name)).size !== layers.length || layers.some((l) => !l.name)) {
      throw new Error(`${name}: per-layer overrides need unique, non-empty node names`);
    }
    const floatClasses = await predict(images, evalCount, (input) => model.run({ input }).logits);
    loaded.set(name, { model, layers, floatClasses, top1: percentSame(floatClasses, labels) });
  }

  for (const [name, setting, kind, seed] of mine) {
    const [, w, a] = setting.match(/^W(\d+(?:\.\d+)?)A(\d+)$/)!;
    const budget = Number(w);
    const { model, layers, floatClasses } = loaded.get(name)!;
    const bits = allocation(layers, kind, budget, seed ?? 0);
    // Quantization is deterministic: an allocation with the bits of one already run has its result.
    const same = rows.find((r) => r.model === name && r.setting === setting && r.bits.join() === bits.join());
    if (same) {
      rows.push({ ...same, allocation: kind, seed, sameAs: same.sameAs ?? same.allocation });
      console.error(JSON.stringify({ ...rows.at(-1), bits: undefined }));
      continue;
    }
    const options: QuantizeOptionsInput = {
      weightBits: 8,
      activationBits: Number(a),
      rounding: "attention",
      attention: { variant },
      iterations,
      seed: 0,
      layers: Object.fromEntries(layers.map((l, i) => [l.name, { weightBits: bits[i] }])),
    };
    const started = performance.now();
    const q = await quantize(model, calib, options);
    const seconds = (performance.now() - started) / 1000;
    const reported = q.report.layers.map((l) => l.weightBits);
    if (reported.join() !== bits.join()) {
      throw new Error(`${name} ${setting} ${kind}: quantize used other bits`);
    }
    const classes = await predict(images, evalCount, (input) => q.run({ input }).logits);
    const middle = layers.slice(1, -1), middleBits = bits.slice(1, -1);
    const budgetParams = middle.reduce((s, l) => s + l.parameters, 0);
    const averageBits = middle.reduce((s, l, i) => s + middleBits[i] * l.parameters, 0) / budgetParams;
    if (averageBits > budget * (1 + 1e-12)) throw new Error(`${name} ${setting} ${kind}: over the budget`);
    rows.push({
      model: name,
      setting,
      allocation: kind,
      seed,
      top1: percentSame(classes, labels),
      agreement: percentSame(classes, floatClasses),
      weightKiB: layers.reduce((s, l, i) => s + bits[i] * l.parameters, 0) / 8 / 1024,
      averageBits,
      bits,
      seconds,
    });
    q.dispose();
    console.error(JSON.stringify({ ...rows.at(-1), bits: undefined }));
  }

  const float = Object.fromEntries([...loaded].map(([name, l]) => [name, l.top1]));
  return { iterations, evalCount, data, seeds, spread, variant, float, rows };
}

/** The results of earlier runs, merged (they must share iterations, images, seeds, κ and variant). */
function merged(files: string[]): Results {
  const parts: Results[] = files.map((f) => JSON.parse(Deno.readTextFileSync(f)));
  for (const p of parts) {
    for (const k of ["iterations", "evalCount", "data", "seeds", "spread", "variant"] as const) {
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
    ` WxAy: average weight budget x bits over all layers but the first and last (8 bits, outside the budget),` +
    ` activations y bits. Random: mean over seeds ${results.seeds.join(", ")}. κ = ${results.spread}.\n`,
);
console.log(
  "| model | setting | allocation | top-1 % | agreement with FP32 % | weights KiB | average bits in budget | time s |",
);
console.log("|---|---|---|---:|---:|---:|---:|---:|");
if (shard === 0 || from) {
  for (const [name, top1] of Object.entries(results.float)) {
    console.log(`| ${name} | FP32 | – | ${top1.toFixed(2)} | 100.00 | – | 32 | – |`);
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
for (const { model, setting, allocation, rows: group } of groups) {
  const label = (allocation === "random" ? `random (${group.length} seeds)` : allocation) +
    (group.every((r) => r.sameAs)
      ? ` (same bits as ${[...new Set(group.map((r) => r.sameAs))].join(", ")})`
      : "");
  console.log(
    `| ${model} | ${setting} | ${label} | ${mean(group.map((r) => r.top1)).toFixed(2)} | ${
      mean(group.map((r) => r.agreement)).toFixed(2)
    } | ${mean(group.map((r) => r.weightKiB)).toFixed(1)} | ${
      mean(group.map((r) => r.averageBits)).toFixed(3)
    } | ${mean(group.map((r) => r.seconds)).toFixed(0)} |`,
  );
}
// The same top-1 figures side by side, one row per model and budget.
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
