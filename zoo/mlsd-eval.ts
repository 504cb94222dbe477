// Float F1 of M-LSD tiny and large on generated line images (zoo/mlsd.ts), in
// onnxruntime-node and in the engine: decoding thresholds chosen on the
// validation images (seeds from 1,000), F1 reported on the test images (seeds
// from 2,000) with those thresholds.
//
//   deno task zoo:mlsd [--dir DIR] [--validation 100] [--test 200] [--out FILE.json]
//
// Both runtimes run one image at a time (the models' batch is fixed to 1) on
// one thread. Assemble the zoo first (deno task zoo).
import { init, loadModel, Tensor } from "../mod.ts";
import { ortNodeRun } from "../tests/ort.ts";
import { flagValue, selectModels, zooDir } from "./manifest.ts";
import {
  chooseThresholds,
  type DecodeOptions,
  type F1Score,
  lineImage,
  mlsdF1,
  mlsdInput,
  type MlsdMaps,
  mlsdSeeds,
  type Segment,
} from "./mlsd.ts";

const args = Deno.args;
const dir = zooDir(flagValue(args, "dir"));
const validationCount = Number(flagValue(args, "validation") ?? 100);
const testCount = Number(flagValue(args, "test") ?? 200);

interface Images {
  inputs: Tensor[];
  truth: Segment[][];
}

function images(first: number, count: number): Images {
  const inputs: Tensor[] = [], truth: Segment[][] = [];
  for (let seed = first; seed < first + count; seed++) {
    const { image, segments } = lineImage(seed);
    const x = mlsdInput([image]);
    inputs.push(new Tensor(x.data, x.shape));
    truth.push(segments);
  }
  return { inputs, truth };
}

type Runner = (input: Tensor) => Promise<Record<string, Tensor>>;

async function maps(run: Runner, set: Images): Promise<{ maps: MlsdMaps[]; ms: number }> {
  const out: MlsdMaps[] = [];
  const t0 = performance.now();
  for (const input of set.inputs) {
    const r = await run(input);
    out.push({ scores: r.scores.data as Float32Array, offsets: r.offsets.data as Float32Array });
  }
  return { maps: out, ms: (performance.now() - t0) / set.inputs.length };
}

interface Row {
  model: string;
  runtime: "onnxruntime-node" | "engine";
  thresholds: DecodeOptions;
  validation: F1Score;
  test: F1Score;
  msPerImage: number;
}

await init();
const validation = images(mlsdSeeds.validation, validationCount);
const test = images(mlsdSeeds.test, testCount);
const rows: Row[] = [];
for (const model of selectModels(["--only", "mlsd_tiny_320,mlsd_large_320"])) {
  const bytes = await Deno.readFile(`${dir}/${model.file}`);
  const inputName = model.inputs[0].name;
  const engine = loadModel(bytes);
  const runners: [Row["runtime"], Runner][] = [
    ["onnxruntime-node", (x) => ortNodeRun(bytes, { [inputName]: x })],
    ["engine", (x) => Promise.resolve(engine.run({ [inputName]: x }))],
  ];
  for (const [runtime, run] of runners) {
    const v = await maps(run, validation);
    const chosen = chooseThresholds(v.maps, validation.truth);
    const t = await maps(run, test);
    const row: Row = {
      model: model.name,
      runtime,
      thresholds: chosen.options,
      validation: chosen.score,
      test: mlsdF1(t.maps, test.truth, chosen.options),
      msPerImage: (v.ms * validationCount + t.ms * testCount) / (validationCount + testCount),
    };
    rows.push(row);
    console.error(`${model.name}, ${runtime}: test F1 ${(100 * row.test.f1).toFixed(2)}`);
  }
  engine.dispose();
}

const pct = (x: number) => (100 * x).toFixed(2);
console.log(
  `| model | runtime | score threshold | min. length px | validation F1 (${validationCount}) | test F1 (${testCount}) | test precision | test recall | ms per image |`,
);
console.log("|---|---|---:|---:|---:|---:|---:|---:|---:|");
for (const r of rows) {
  console.log(
    `| ${r.model} | ${r.runtime} | ${r.thresholds.scoreThreshold} | ${r.thresholds.minLength} | ${
      pct(r.validation.f1)
    } | ${pct(r.test.f1)} | ${pct(r.test.precision)} | ${pct(r.test.recall)} | ${r.msPerImage.toFixed(0)} |`,
  );
}
// Where the figures come from; the times move with the machine's load.
const git = await new Deno.Command("git", { args: ["rev-parse", "--short", "HEAD"], stdout: "piped" })
  .output().catch(() => undefined);
const context = {
  commit: git?.success ? new TextDecoder().decode(git.stdout).trim() : "unknown",
  date: new Date().toISOString().slice(0, 10),
  load: Deno.loadavg(),
  cores: navigator.hardwareConcurrency,
};
console.log(
  `\nAt commit ${context.commit}, ${context.date}; load average ${
    context.load.map((l) => l.toFixed(1)).join(" ")
  } ` +
    `on ${context.cores} logical cores as the run ended.`,
);
const outFile = flagValue(args, "out");
if (outFile) {
  await Deno.writeTextFile(
    outFile,
    JSON.stringify(
      { ...context, validation: validationCount, test: testCount, seeds: mlsdSeeds, rows },
      null,
      2,
    ) +
      "\n",
  );
}
