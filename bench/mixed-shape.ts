// How much of a layer's coding length per weight ρ (src/quant/mixed.ts) comes
// from its shape rather than from its weights: for every quantizable layer of
// the fixture models, ρ of the trained weight next to ρ of a Gaussian weight of
// the same shape and RMS (seeded, so the table is the same on every run),
// under the default ε rule. A ratio near 1 means the trained weight costs as
// many bits to code at that distortion as unstructured noise of that shape.
// Prints a Markdown table per model, the range of ρ and of the ratio, the
// Spearman rank correlation between ρ and the Gaussian's ρ, and between ρ and
// ρ under other ε rules (the allocation depends only on the layers' order by ρ
// and on κ); writes JSON.
//   deno task bench:mixed-shape [--models resnet18_fmnist,mobilenetv2_fmnist] [--out bench/results/mixed-shape.json]
import { init, loadModel } from "../mod.ts";
import { mean, mulberry32, option, readFixture } from "./fmnist.ts";
import { measureLayers } from "../src/quant/layers.ts";
import {
  defaultEpsilonRule,
  describeEpsilonRule,
  type EpsilonRule,
  layerCodingLength,
} from "../src/quant/mixed.ts";

const models = option("models", "resnet18_fmnist,mobilenetv2_fmnist").split(",");
const out = option("out", "bench/results/mixed-shape.json");

await init();

/** Seeded standard normal values (mulberry32 + Box–Muller). */
function gaussian(count: number, seed: number): Float32Array {
  const uniform = mulberry32(seed);
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    values[i] = Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  }
  return values;
}

/** Ranks (average ranks for ties), then Pearson correlation of the ranks. */
function spearman(a: number[], b: number[]): number {
  const ranks = (xs: number[]) => {
    const order = xs.map((x, i) => [x, i]).sort((p, q) => p[0] - q[0]);
    const r = new Array<number>(xs.length);
    for (let i = 0; i < order.length;) {
      let j = i;
      while (j + 1 < order.length && order[j + 1][0] === order[i][0]) j++;
      for (let k = i; k <= j; k++) r[order[k][1]] = (i + j) / 2;
      i = j + 1;
    }
    return r;
  };
  const ra = ranks(a), rb = ranks(b);
  const ma = mean(ra), mb = mean(rb);
  let sab = 0, saa = 0, sbb = 0;
  for (let i = 0; i < ra.length; i++) {
    sab += (ra[i] - ma) * (rb[i] - mb), saa += (ra[i] - ma) ** 2, sbb += (rb[i] - mb) ** 2;
  }
  return sab / Math.sqrt(saa * sbb);
}

const otherRules: EpsilonRule[] = [
  ...[0.125, 0.25, 0.5, 1].map((delta) => ({ scale: "coordinate" as const, delta })),
  ...[0.0625, 0.25, 1].map((delta) => ({ scale: "spectrum" as const, delta })),
];

const results: Record<string, unknown> = { rule: describeEpsilonRule(defaultEpsilonRule) };
for (const name of models) {
  const graph = loadModel(readFixture(`${name}.onnx`)).graph;
  const layers = measureLayers(graph).map((l, i) => {
    const m = l.rowsShape[0], n = l.rows.length / m;
    let sumSquares = 0;
    for (const w of l.rows) sumSquares += w * w;
    const noise = gaussian(l.rows.length, i + 1);
    const rms = Math.sqrt(sumSquares / l.rows.length);
    for (let k = 0; k < noise.length; k++) noise[k] *= rms;
    const gaussianRho = layerCodingLength(noise, m, "Gaussian reference").codingLengthPerWeight;
    return { name: l.name, m, n, parameters: l.parameters, rho: l.codingLengthPerWeight, gaussianRho };
  });
  results[name] = layers;
  console.log(`\n${name} (${describeEpsilonRule(defaultEpsilonRule)})\n`);
  console.log("| layer | m × n | parameters | ρ | ρ of Gaussian, same shape and RMS | ratio |");
  console.log("|---|---|---:|---:|---:|---:|");
  for (const l of layers) {
    console.log(
      `| ${l.name} | ${l.m} × ${l.n} | ${l.parameters} | ${l.rho.toFixed(3)} | ${
        l.gaussianRho.toFixed(3)
      } | ${(l.rho / l.gaussianRho).toFixed(3)} |`,
    );
  }
  const rhos = layers.map((l) => l.rho), ratios = layers.map((l) => l.rho / l.gaussianRho);
  console.log(
    `\nρ from ${Math.min(...rhos).toFixed(3)} to ${Math.max(...rhos).toFixed(3)}; ratio from ${
      Math.min(...ratios).toFixed(3)
    } to ${Math.max(...ratios).toFixed(3)}; Spearman(ρ, Gaussian ρ) = ${
      spearman(rhos, layers.map((l) => l.gaussianRho)).toFixed(3)
    }`,
  );
  // Whether another ε rule would order the layers differently (the allocation depends only on that order and κ).
  const orders: Record<string, number> = {};
  for (const rule of otherRules) {
    const other = measureLayers(graph, rule).map((l) => l.codingLengthPerWeight);
    orders[describeEpsilonRule(rule)] = spearman(rhos, other);
  }
  results[`${name} Spearman with other ε rules`] = orders;
  for (const [rule, r] of Object.entries(orders)) {
    console.log(`Spearman(ρ, ρ with ${rule}) = ${r.toFixed(3)}`);
  }
}
Deno.mkdirSync(new URL("results/", import.meta.url), { recursive: true });
Deno.writeTextFileSync(out, JSON.stringify(results, null, 2) + "\n");
