// Chooses the ε rule and the spread κ of mixed precision (src/quant/mixed.ts)
// without the test set: the judge is the first --eval (2,000) of the last
// 10,000 Fashion-MNIST training images (Debian package dataset-fashion-mnist,
// the split bench/accuracy.ts --data train uses), or with --data calib the
// last 256 of the fixture calibration images.
//
// For each model, rule ("coordinate": ε² = δ²·n·mean(W²); "spectrum":
// ε² = δ²·n·‖W‖² / (m·min(m, n))), δ and κ, and for average budgets of
// 3 and 4 bits, the allocation's weights are rounded to nearest (per-channel
// Lp scales, activations in float) and the model is compared with the float
// one on those images: mean KL(float ‖ quantized) of the softmax
// outputs. Round-to-nearest is the proxy because it is cheap (every
// allocation is a choice among precomputed per-layer weights) and it prices
// each layer's bits without the reconstruction that the benchmark then runs.
// Score of a setting: the mean over models and budgets of
// ln(KL / KL of uniform bits at the same budget); the lowest wins among the
// settings that give some model other bits than uniform (a setting that
// leaves every layer at B bits turns mixed precision off). The same
// score of the reversed allocation (most bits to the lowest ρ) shows whether
// the order of the layers by ρ carries information at all.
// Prints a Markdown table and writes JSON.
//   deno task bench:mixed-epsilon [--models resnet18_fmnist,mobilenetv2_fmnist]
//        [--budgets 3,4] [--rules coordinate,spectrum] [--deltas 0.0625,0.125,0.25,0.5,1]
//        [--spreads 0.5,1,2,4] [--data train|calib] [--eval 2000] [--out bench/results/mixed-epsilon.json]
//        [--from FILE: score the rows of an earlier run's JSON instead of measuring]
import { init, loadModel, readNpz, Tensor } from "../mod.ts";
import { evaluationSet, mean, option, readFixture, toInput } from "./fmnist.ts";
import { Engine } from "../src/engine/engine.ts";
import { fakeQuantNearest } from "../src/kernels/quant.ts";
import { measureLayers, planWeightQuantizers } from "../src/quant/layers.ts";
import { defaultCandidates, defaultSpread, type EpsilonRule } from "../src/quant/mixed.ts";
import { resolveOptions } from "../src/quant/options.ts";
import { quantizedGraph } from "../src/quant/qgraph.ts";
import { alloc, f32, free } from "../src/wasm.ts";
import { fromRows } from "../src/layout.ts";

// The rule quantize() allocated bits by when this bench chose ε and κ (before the byte knapsack of
// src/quant/mixed.ts): targets B + κ·(ρ − ρ̄) rounded to the nearest candidate, then a greedy
// fix-up under Σ b·P ≤ B·Σ P. Kept here so that the README's figures from this bench stay reproducible.
interface BudgetLayer {
  /** A name that tells the layers apart (ties are broken by it, not by position). */
  key: string;
  parameters: number;
  codingLengthPerWeight: number;
}

/**
 * Bits per layer from coding length per weight: targets B + κ·(ρ − ρ̄) (κ = `spread`), rounded
 * to candidates, then the greedy fix-up (see the top of this file) so that
 * Σ b·P ≤ B·Σ P. Deterministic, and independent of the order of `layers`:
 * result i belongs to layers[i].
 */
function allocateBits(
  layers: readonly BudgetLayer[],
  averageBits: number,
  candidates: readonly number[] = defaultCandidates,
  spread = defaultSpread,
): number[] {
  const c = [...candidates].sort((a, b) => a - b);
  const total = layers.reduce((s, l) => s + l.parameters, 0);
  if (layers.length === 0) return [];
  const meanRho = total > 0
    ? layers.reduce((s, l) => s + l.parameters * l.codingLengthPerWeight, 0) / total
    : 0;
  const target = layers.map((l) => averageBits + spread * (l.codingLengthPerWeight - meanRho));
  // Index into c of each layer's bits: the nearest candidate, the lower one on a tie.
  const level = target.map((t) => {
    let best = 0;
    for (let i = 1; i < c.length; i++) if (Math.abs(c[i] - t) < Math.abs(c[best] - t)) best = i;
    return best;
  });
  // Integer bit·parameter sums are exact in float64 far beyond any model; the
  // bound gets a relative 1e-12 so that B = 3.3 over 1000 parameters admits 3300.
  const bound = averageBits * total * (1 + 1e-12);
  let used = layers.reduce((s, l, i) => s + c[level[i]] * l.parameters, 0);
  const order = (a: number, b: number) =>
    layers[a].codingLengthPerWeight - layers[b].codingLengthPerWeight ||
    (layers[a].key < layers[b].key ? -1 : layers[a].key > layers[b].key ? 1 : 0);
  // Over budget: the layer furthest above its target steps down (ties: lower ρ first).
  while (used > bound) {
    let pick = -1;
    for (let i = 0; i < layers.length; i++) {
      if (level[i] === 0) continue;
      const excess = c[level[i]] - target[i];
      if (pick < 0) pick = i;
      else {
        const best = c[level[pick]] - target[pick];
        if (excess > best || (excess === best && order(i, pick) < 0)) pick = i;
      }
    }
    // Unreachable: every layer at the lowest candidate fits, since B >= min(candidates).
    if (pick < 0) break;
    used -= (c[level[pick]] - c[level[pick] - 1]) * layers[pick].parameters;
    level[pick]--;
  }
  // Slack: the layer furthest below its target steps up if it fits and keeps
  // bits non-decreasing in ρ (ties: higher ρ first).
  for (;;) {
    let pick = -1;
    for (let i = 0; i < layers.length; i++) {
      if (level[i] === c.length - 1) continue;
      const up = c[level[i] + 1];
      if (used + (up - c[level[i]]) * layers[i].parameters > bound) continue;
      const rho = layers[i].codingLengthPerWeight;
      if (layers.some((l, k) => l.codingLengthPerWeight > rho && c[level[k]] < up)) continue;
      if (pick < 0) pick = i;
      else {
        const gap = target[i] - c[level[i]], best = target[pick] - c[level[pick]];
        if (gap > best || (gap === best && order(i, pick) > 0)) pick = i;
      }
    }
    if (pick < 0) break;
    used += (c[level[pick] + 1] - c[level[pick]]) * layers[pick].parameters;
    level[pick]++;
  }
  return level.map((i) => c[i]);
}

const numbers = (s: string) => s.split(",").map(Number);
const models = option("models", "resnet18_fmnist,mobilenetv2_fmnist").split(",");
const budgets = numbers(option("budgets", "3,4"));
const rules = option("rules", "coordinate,spectrum").split(",") as EpsilonRule["scale"][];
const deltas = numbers(option("deltas", "0.0625,0.125,0.25,0.5,1"));
const spreads = numbers(option("spreads", "0.5,1,2,4"));
const data = option("data", "train");
const evalCount = Number(option("eval", data === "train" ? "2000" : "256"));
const out = option("out", "bench/results/mixed-epsilon.json");
const candidates = [...defaultCandidates];

await init();
/** The judging images as the models' input [evalCount, 1, 28, 28]. */
function judgingImages(): Tensor {
  const all = data === "calib" ? toInput(readNpz(readFixture("calib.npz")).x) : evaluationSet("train").images;
  const start = data === "calib" ? all.shape[0] - evalCount : 0;
  return new Tensor(all.data.slice(start * 784, (start + evalCount) * 784), [evalCount, 1, 28, 28]);
}
const held = judgingImages();

function softmax(row: Float32Array): Float64Array {
  const max = Math.max(...row);
  const e = Float64Array.from(row, (v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

/** Mean KL(softmax(a) ‖ softmax(b)) and arg-max agreement over rows of 10 logits. */
function compare(a: Float32Array, b: Float32Array): { kl: number; agreement: number } {
  let kl = 0, agree = 0;
  const rows = a.length / 10;
  for (let r = 0; r < rows; r++) {
    const ra = a.subarray(r * 10, r * 10 + 10), rb = b.subarray(r * 10, r * 10 + 10);
    const p = softmax(ra), q = softmax(rb);
    for (let c = 0; c < 10; c++) if (p[c] > 0) kl += p[c] * Math.log(p[c] / Math.max(q[c], 1e-30));
    if (ra.indexOf(Math.max(...ra)) === rb.indexOf(Math.max(...rb))) agree++;
  }
  return { kl: kl / rows, agreement: agree / rows };
}

interface Row {
  model: string;
  budget: number;
  allocation: string;
  rule?: string;
  delta?: number;
  spread?: number;
  kl: number;
  agreement: number;
  bits: number[];
}
const from = option("from", "");
const rows: Row[] = from ? JSON.parse(Deno.readTextFileSync(from)).rows : [];

/** Runs every setting on every model and pushes the rows. */
function measure(): void {
  for (const name of models) {
    const model = loadModel(readFixture(`${name}.onnx`));
    const graph = model.graph;
    const logitsOf = (engine: { run(f: Record<string, Tensor>): Record<string, Tensor> }) => {
      const logits = new Float32Array(evalCount * 10);
      for (let start = 0; start < evalCount; start += 250) {
        const n = Math.min(250, evalCount - start);
        const input = new Tensor(held.data.slice(start * 784, (start + n) * 784), [n, 1, 28, 28]);
        logits.set(engine.run({ input }).logits.data as Float32Array, start * 10);
      }
      return logits;
    };
    const reference = logitsOf(model);
    const layers = measureLayers(graph);
    const last = layers.length - 1;
    // Round-to-nearest weights of every layer at every candidate width (original layout).
    const rtn = new Map<number, Tensor[]>();
    for (const bits of candidates) {
      const o = resolveOptions({
        layers: Object.fromEntries(layers.map((l) => [l.name, { weightBits: bits }])),
      });
      rtn.set(
        bits,
        planWeightQuantizers(graph, o).map((q) => {
          const m = q.rowsShape[0], size = q.rows.length;
          const w = alloc(size * 4), s = alloc(m * 4), z = alloc(m * 4);
          try {
            f32(w, size).set(q.rows), f32(s, m).set(q.scale), f32(z, m).set(q.zero);
            fakeQuantNearest(w, m, size / m, s, z, q.qmin, q.qmax, w);
            const weight = fromRows(f32(w, size).slice(), q.layer.weightShape, q.layer.channelAxis);
            return new Tensor(weight, q.layer.weightShape);
          } finally {
            free(w), free(s), free(z);
          }
        }),
      );
    }
    const cache = new Map<string, { kl: number; agreement: number }>();
    const evaluate = (bits: number[]) => {
      const key = bits.join(",");
      let result = cache.get(key);
      if (!result) {
        const weights = new Map(layers.map((l, i) => [l.layer.weight, rtn.get(bits[i])![i]]));
        const engine = new Engine(quantizedGraph(graph, weights, []));
        try {
          result = compare(reference, logitsOf(engine));
        } finally {
          engine.dispose();
        }
        cache.set(key, result);
      }
      return result;
    };
    // The first and last layer stay at 8 bits, outside the budget.
    const withEdges = (middle: number[]) => [8, ...middle, 8];
    for (const budget of budgets) {
      const uniform = withEdges(layers.slice(1, last).map(() => budget));
      rows.push({ model: name, budget, allocation: "uniform", ...evaluate(uniform), bits: uniform });
      console.error(JSON.stringify(rows.at(-1)));
    }
    for (const scale of rules) {
      for (const delta of deltas) {
        const measured = measureLayers(graph, { scale, delta }).slice(1, last);
        for (const spread of spreads) {
          for (const budget of budgets) {
            const bits = withEdges(allocateBits(measured, budget, candidates, spread));
            const setting = { model: name, budget, rule: scale, delta, spread };
            rows.push({ ...setting, allocation: "coding length", ...evaluate(bits), bits });
            console.error(JSON.stringify({ ...rows.at(-1), bits: undefined }));
            // Most bits to the lowest coding length: does the order carry information at all?
            const flipped = measured.map((l) => ({ ...l, codingLengthPerWeight: -l.codingLengthPerWeight }));
            const reversed = withEdges(allocateBits(flipped, budget, candidates, spread));
            rows.push({ ...setting, allocation: "reversed", ...evaluate(reversed), bits: reversed });
          }
        }
      }
    }
    model.dispose();
  }
}

if (!from) measure();

// Score per setting: mean over (model, budget) of ln(KL / KL uniform).
const uniformKl = new Map(
  rows.filter((r) => r.allocation === "uniform").map((r) => [`${r.model}/${r.budget}`, r.kl]),
);
const uniformBits = new Map(
  rows.filter((r) => r.allocation === "uniform").map((r) => [`${r.model}/${r.budget}`, r.bits.join()]),
);
const settings = new Map<string, {
  rule: string;
  delta: number;
  spread: number;
  logRatios: number[];
  reversedLogRatios: number[];
  /** Whether any model and budget gets other bits than uniform. */
  moves: boolean;
}>();
for (const r of rows.filter((r) => r.allocation !== "uniform")) {
  const key = `${r.rule}/${r.delta}/${r.spread}`;
  const s = settings.get(key) ??
    { rule: r.rule!, delta: r.delta!, spread: r.spread!, logRatios: [], reversedLogRatios: [], moves: false };
  const ratio = Math.log(r.kl / uniformKl.get(`${r.model}/${r.budget}`)!);
  (r.allocation === "reversed" ? s.reversedLogRatios : s.logRatios).push(ratio);
  if (r.allocation === "coding length" && r.bits.join() !== uniformBits.get(`${r.model}/${r.budget}`)) {
    s.moves = true;
  }
  settings.set(key, s);
}
const scored = [...settings.values()]
  .map((s) => ({ ...s, score: mean(s.logRatios), reversedScore: mean(s.reversedLogRatios) }))
  .sort((a, b) => a.score - b.score);
const chosen = scored.find((s) => s.moves) ?? scored[0];

const cell = (model: string, budget: number, s: { rule: string; delta: number; spread: number }) => {
  const r = rows.find((r) =>
    r.model === model && r.budget === budget && r.allocation === "coding length" && r.rule === s.rule &&
    r.delta === s.delta && r.spread === s.spread
  )!;
  return `${r.kl.toFixed(4)} (${(100 * r.agreement).toFixed(1)} %)`;
};
const columns = models.flatMap((m) => budgets.map((b) => [m, b] as const));
console.log(
  `\nRound-to-nearest weights, float activations; mean KL(float ‖ quantized) and top-1 agreement with the float model on ${evalCount} ${
    data === "train" ? "training images (of the last 10,000)" : "calibration images (the last ones)"
  }.\n`,
);
console.log(
  `| ε rule | δ | κ | other bits than uniform | score | score reversed | ${
    columns.map(([m, b]) => `${m} B=${b}`).join(" | ")
  } |`,
);
console.log(`|---|---:|---:|---|---:|---:|${columns.map(() => "---:|").join("")}`);
console.log(
  `| uniform | – | – | – | 0 | – | ${
    columns.map(([m, b]) => {
      const r = rows.find((r) => r.model === m && r.budget === b && r.allocation === "uniform")!;
      return `${r.kl.toFixed(4)} (${(100 * r.agreement).toFixed(1)} %)`;
    }).join(" | ")
  } |`,
);
for (const s of scored) {
  console.log(
    `| ${s.rule} | ${s.delta} | ${s.spread} | ${s.moves ? "yes" : "no"} | ${s.score.toFixed(3)} | ${
      s.reversedScore.toFixed(3)
    } | ${columns.map(([m, b]) => cell(m, b, s)).join(" | ")} |`,
  );
}
console.log(
  `\nChosen (lowest score among the settings that give other bits than uniform): ${chosen.rule}, δ = ${chosen.delta}, κ = ${chosen.spread}.`,
);
Deno.mkdirSync(new URL("results/", import.meta.url), { recursive: true });
Deno.writeTextFileSync(
  out,
  JSON.stringify({ data, evalCount, candidates, chosen, rows, scored }, null, 2) + "\n",
);
