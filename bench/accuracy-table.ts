// The README's 2,000-iteration accuracy tables, from the raw results of the
// per-row `bench:accuracy` runs (bench/results/accuracy-*.json with 2,000
// iterations on all 10,000 test images, default options but for Attention
// Round's variant) and BRECQ's figures in tests/fixtures/PEERS.md: the main
// table with the default variant, then both variants side by side.
//   deno task bench:accuracy-table
import { defaultOptions } from "../src/quant/options.ts";

interface Row {
  model: string;
  setting: string;
  method: string;
  top1: number;
  agreement: number;
  seconds: number;
  variant?: string;
}

const results = new URL("results/", import.meta.url);
const found = new Map<string, Row>();
const floats = new Map<string, number>();
for (const entry of [...Deno.readDirSync(results)].sort((a, b) => a.name.localeCompare(b.name))) {
  if (!/^accuracy-.*\.json$/.test(entry.name)) continue;
  const run = JSON.parse(Deno.readTextFileSync(new URL(entry.name, results)));
  const variantOnly = /^(attention\.variant=\w+)?$/.test(run.options ?? "");
  if (run.iterations !== 2000 || run.evalCount !== 10000 || (run.data ?? "test") !== "test" || !variantOnly) {
    continue;
  }
  for (const r of run.rows as Row[]) {
    if (r.setting === "FP32") floats.set(r.model, r.top1);
    else if (r.method !== "attention") found.set(`${r.model} ${r.setting} ${r.method}`, r);
    else if (r.variant) found.set(`${r.model} ${r.setting} attention ${r.variant}`, r);
    else throw new Error(`${entry.name}: an attention row without its variant`);
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
const models = ["resnet18_fmnist", "mobilenetv2_fmnist"], settings = ["W4A32", "W4A4", "W3A3", "W2A4"];
const cell = (r: Row | undefined) => (r ? r.top1.toFixed(2) : "–");
const time = (r: Row | undefined) => (r ? r.seconds.toFixed(0) : "–");
console.log(
  "| model | setting | float | nearest | adaround | attention | attention − adaround | BRECQ (PEERS.md) | time s: adaround / attention |",
);
console.log("|---|---|---:|---:|---:|---:|---:|---|---:|");
for (const model of models) {
  for (const setting of settings) {
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
  for (const setting of settings) {
    const [adaround, stochastic, expectation] = ["adaround", "attention stochastic", "attention expectation"]
      .map((m) => found.get(`${model} ${setting} ${m}`));
    console.log(`| ${model} | ${setting} | ${both(adaround)} | ${both(stochastic)} | ${both(expectation)} |`);
  }
}
