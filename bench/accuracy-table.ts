// The README's 2,000-iteration accuracy tables, from the raw results of the
// per-row `bench:accuracy` runs (bench/results/accuracy-*.json with 2,000
// iterations on all 10,000 test images, default options but for Attention
// Round's variant) and BRECQ's figures in tests/fixtures/PEERS.md: the main
// table with the default variant, both variants side by side, other seeds and
// asymmetric weights.
//   deno task bench:accuracy-table
import { defaultOptions } from "../src/quant/options.ts";
import { mean } from "./fmnist.ts";

interface Row {
  model: string;
  setting: string;
  method: string;
  top1: number;
  agreement: number;
  seconds: number;
  variant?: string;
}

interface Run {
  iterations: number;
  evalCount: number;
  data?: string;
  options?: string;
  rows: Row[];
}

/** The 2,000-iteration, 10,000-test-image runs in a results folder whose options match `options`, by file name. */
function runs(folder: URL, options: RegExp): [string, Run][] {
  return [...Deno.readDirSync(folder)].map((e) => e.name).sort().filter((name) => name.endsWith(".json"))
    .map((name): [string, Run] => [name, JSON.parse(Deno.readTextFileSync(new URL(name, folder)))])
    .filter(([, run]) =>
      run.iterations === 2000 && run.evalCount === 10000 && (run.data ?? "test") === "test" &&
      options.test(quantizeOptions(run.options))
    );
}

/** A run's --set options without `threads=N`, which does not change the result (see Threads in the README). */
function quantizeOptions(options = ""): string {
  return options.split(",").filter((o) => !/^threads=\d+$/.test(o)).join(",");
}

/** "model setting method", with the variant for attention. */
function keyOf(r: Row, file: string): string {
  if (r.method !== "attention") return `${r.model} ${r.setting} ${r.method}`;
  if (!r.variant) throw new Error(`${file}: an attention row without its variant`);
  return `${r.model} ${r.setting} attention ${r.variant}`;
}

const results = new URL("results/", import.meta.url);
const found = new Map<string, Row>();
const floats = new Map<string, number>();
for (const [name, run] of runs(results, /^(attention\.variant=\w+)?$/)) {
  // Reruns of a cell, for the text under the table (a later code, another summation order), not the table.
  if (!name.startsWith("accuracy-") || /-(rerun|before-shards)\.json$/.test(name)) continue;
  for (const r of run.rows) {
    if (r.setting === "FP32") floats.set(r.model, r.top1);
    else found.set(keyOf(r, name), r);
  }
}

const brecq = new Map<string, string>();
const peers = Deno.readTextFileSync(new URL("../tests/fixtures/PEERS.md", import.meta.url));
for (const line of peers.split("\n")) {
  const cells = line.split("|").map((c) => c.trim());
  if (cells.length > 5 && cells[3].startsWith("BRECQ (official)")) {
    brecq.set(
      `${cells[1]} ${cells[2]}`,
      cells[5] && cells[5] !== "–" ? `${cells[4]} (${cells[5]} s)` : cells[4],
    );
  }
}

const variant = defaultOptions.attention.variant;
const methods = ["nearest", "adaround", `attention ${variant}`];
const models = ["resnet18_fmnist", "mobilenetv2_fmnist", "vit_fmnist"],
  settings = ["W4A32", "W4A4", "W3A3", "W2A4"];
/** The settings of a model that any run has. */
const settingsOf = (model: string) =>
  settings.filter((s) => [...found.keys()].some((k) => k.startsWith(`${model} ${s} `)));
const cell = (r: Row | undefined) => (r ? r.top1.toFixed(2) : "–");
const time = (r: Row | undefined) => (r ? r.seconds.toFixed(0) : "–");
console.log(
  "| model | setting | float | nearest | adaround | attention | attention − adaround | BRECQ (PEERS.md) | time s: adaround / attention |",
);
console.log("|---|---|---:|---:|---:|---:|---:|---|---:|");
for (const model of models) {
  for (const setting of settingsOf(model)) {
    const [nearest, adaround, attention] = methods.map((m) => found.get(`${model} ${setting} ${m}`));
    const gap = adaround && attention ? (attention.top1 - adaround.top1).toFixed(2) : "–";
    console.log(
      `| ${model} | ${setting} | ${floats.get(model)?.toFixed(2) ?? "–"} | ${cell(nearest)} | ${
        cell(adaround)
      } | ${cell(attention)} | ${gap} | ${brecq.get(`${model} ${setting}`) ?? "–"} | ${time(adaround)} / ${
        time(attention)
      } |`,
    );
  }
}

const both = (r: Row | undefined) => (r ? `${r.top1.toFixed(2)} / ${r.agreement.toFixed(2)}` : "–");
console.log(`\nAttention Round's variants (default: ${variant}), top-1 % / agreement with float %:\n`);
console.log("| model | setting | adaround | attention, stochastic | attention, expectation |");
console.log("|---|---|---:|---:|---:|");
for (const model of models) {
  for (const setting of settingsOf(model)) {
    const [adaround, stochastic, expectation] = ["adaround", "attention stochastic", "attention expectation"]
      .map((m) => found.get(`${model} ${setting} ${m}`));
    console.log(`| ${model} | ${setting} | ${both(adaround)} | ${both(stochastic)} | ${both(expectation)} |`);
  }
}

/** Rows of seed-numbered runs (seed 0 where the options name none), by "model setting method". */
function bySeed(folder: URL, options: RegExp, seedZero?: Map<string, Row>): Map<string, Map<number, Row>> {
  const groups = new Map<string, Map<number, Row>>();
  for (const [name, run] of runs(folder, options)) {
    const seed = Number(quantizeOptions(run.options).match(/^seed=(\d+)/)?.[1] ?? 0);
    for (const r of run.rows.filter((r) => r.setting !== "FP32")) {
      const key = keyOf(r, name);
      if (!groups.has(key)) groups.set(key, new Map(seedZero?.has(key) ? [[0, seedZero.get(key)!]] : []));
      groups.get(key)!.set(seed, r);
    }
  }
  return groups;
}

function printBySeed(groups: Map<string, Map<number, Row>>): void {
  console.log(
    "| model | setting | method | top-1 by seed | mean top-1 | mean agreement | BRECQ (PEERS.md) |",
  );
  console.log("|---|---|---|---|---:|---:|---|");
  for (const [key, seeds] of groups) {
    const [model, setting, ...method] = key.split(" ");
    const rows = [...seeds].sort(([a], [b]) => a - b);
    console.log(
      `| ${model} | ${setting} | ${method.join(" ")} | ${
        rows.map(([s, r]) => `${s}: ${r.top1.toFixed(2)}`).join(", ")
      } | ${mean(rows.map(([, r]) => r.top1)).toFixed(2)} | ${
        mean(rows.map(([, r]) => r.agreement)).toFixed(2)
      } | ${brecq.get(`${model} ${setting}`) ?? "–"} |`,
    );
  }
}

// Cells rerun with other seeds (bench/results/seeds/, `--set seed=N[,attention.variant=V]`), beside seed 0
// from the tables above.
console.log("\nOther seeds, top-1 % by seed, and means of top-1 and of agreement with float %:\n");
printBySeed(bySeed(new URL("seeds/", results), /^seed=\d+(,attention\.variant=\w+)?$/, found));

// BRECQ's weight quantizer, asymmetric per channel (bench/results/asymmetric/,
// `--set [seed=N,]symmetricWeights=false`), for a like-for-like comparison with BRECQ's figures.
console.log("\nWith asymmetric weights (BRECQ's weight quantizer), top-1 % by seed and means:\n");
printBySeed(bySeed(new URL("asymmetric/", results), /^(seed=\d+,)?symmetricWeights=false$/));
