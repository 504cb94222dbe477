// The real-model zoo benchmark (issue 16): one row per zoo model with its op
// count, parameters, FLOP per sample, the engine against onnxruntime-node and
// the float task metric, and for each setting and rounding method the
// quantization's wall time and peak RSS, its task metric (M-LSD: F1 on the
// generated test images; vit_fmnist: top-1 on the Fashion-MNIST test set;
// BlazeFace: SNR against float; torchvision: SNR and top-1 agreement with
// float) and whether its exported ONNX runs in onnxruntime-node and agrees
// with q.run.
//
//   deno task bench:zoo [--dir DIR] [--only a,b] [--settings W8A8,W4A8,W4A4] [--methods attention,nearest]
//                       [--iterations N] [--calibration N] [--batch N] [--eval N] [--no-float]
//                       [--timeout-minutes 240] [--results DIR] [--table]
//                       [--split test|validation] [--set key=value,…]
//
// Each cell (the float facts, and every quantization) runs in a process of
// its own (bench/zoo-cell.ts), so that its peak RSS is its own and a crash,
// a failure or the time limit stops only that cell; a failing cell records
// its error and the bench goes on. Results go to bench/results/zoo/<model>.json,
// a cell replacing the same cell of an earlier run; the table is printed from
// all the files there (--table prints it without running anything).
//
// --split validation scores on the validation images (M-LSD: the 100 its
// decoding thresholds are chosen on; vit_fmnist: the last 10,000 training
// images), the split on which options are chosen; --set passes extra quantize
// options (e.g. learningRate=1e-2,activationDrop=0). Either makes cells of
// their own, shown as extra rows beside the default ones, and a validation
// run's float facts are kept apart from the test set's.
//
// Defaults as issue 16 sets them: BlazeFace, M-LSD and vit_fmnist 200
// iterations per block; the 224×224 torchvision models 20 iterations and 64
// calibration samples. Calibration: vit_fmnist the 1,024 bundled
// Fashion-MNIST images; the others 128 (torchvision: 64) generated line
// images (zoo/mlsd.ts, seeds from 0) in the input's range: synthetic, which
// is enough for op coverage, memory and time, and for the seeded-weight
// torchvision models no real data would mean more.
import { flagValue, selectModels, zooDir, type ZooModel } from "../zoo/manifest.ts";
import type { Comparison, FloatFacts, QuantizeFacts, Split, Step, TaskMetric } from "./zoo-cell.ts";

const args = Deno.args;
const dir = zooDir(flagValue(args, "dir"));
const resultsDir = flagValue(args, "results") ?? new URL("results/zoo", import.meta.url).pathname;
const settings = (flagValue(args, "settings") ?? "W8A8,W4A8,W4A4").split(",");
const methods = (flagValue(args, "methods") ?? "attention,nearest").split(",");
const timeoutMinutes = Number(flagValue(args, "timeout-minutes") ?? 240);
const split = (flagValue(args, "split") ?? "test") as Split;
if (split !== "test" && split !== "validation") {
  throw new Error(`--split is test or validation, got ${split}`);
}
const set = flagValue(args, "set") ?? "";
/** What sets a run's cells apart from the default ones: its split and extra options ("" for the default). */
const variant = [split === "validation" ? "validation" : "", set].filter(Boolean).join(", ");

/** When and where a cell ran. */
interface RunContext {
  date: string;
  commit: string;
  /** Wall time of the whole process (loading, quantization, evaluation). */
  wallSeconds: number;
  /** 1-minute load average as the cell ended. */
  load: number;
}

interface FloatResult extends RunContext {
  facts?: FloatFacts;
  error?: string;
}

interface CellResult extends RunContext {
  setting: string;
  method: string;
  /** The split and extra options, when not the default ones. */
  variant?: string;
  iterations: number;
  calibration: number;
  batchSize: number;
  quantize?: QuantizeFacts;
  metric?: TaskMetric;
  /** q.run against the float model on the first evaluation samples. */
  float?: Comparison;
  metricError?: string;
  export?: { runs: boolean; ort?: Comparison; error?: string };
  /** Set when the process was stopped or died. */
  ended?: string;
}

interface ModelResults {
  model: string;
  float?: FloatResult;
  /** The float facts on the validation split. */
  validationFloat?: FloatResult;
  cells: Record<string, CellResult>;
}

/** Iterations per block and calibration samples for a model, unless given. */
function settingsFor(model: ZooModel): { iterations: number; calibration: number; batchSize: number } {
  const torchvision = model.source.kind === "torchvision";
  const fmnist = model.source.kind === "fixture";
  return {
    iterations: Number(flagValue(args, "iterations") ?? (torchvision ? 20 : 200)),
    calibration: Number(flagValue(args, "calibration") ?? (torchvision ? 64 : fmnist ? 1024 : 128)),
    batchSize: Number(flagValue(args, "batch") ?? 32),
  };
}

// ---------------------------------------------------------------- running a cell

const commit = await (async () => {
  const out = await new Deno.Command("git", { args: ["rev-parse", "--short", "HEAD"], stdout: "piped" })
    .output().catch(() => undefined);
  return out?.success ? new TextDecoder().decode(out.stdout).trim() : "unknown";
})();

/**
 * Runs bench/zoo-cell.ts with `cellArgs` and feeds each step it prints to
 * `onStep`; stops it after the time limit. Returns how it ended when that was
 * not normally.
 */
async function runCell(cellArgs: string[], onStep: (step: Step) => void): Promise<string | undefined> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-env",
      "--allow-ffi",
      "--allow-sys",
      "--allow-run=cat",
      // The spill file of activation caches, in the temporary folder.
      "--allow-write",
      new URL("zoo-cell.ts", import.meta.url).pathname,
      "--dir",
      dir,
      ...cellArgs,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const deadline = performance.now() + timeoutMinutes * 60_000;
  let stage = "start", buffered = "", ended: string | undefined;
  for (;;) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), Math.max(0, deadline - performance.now()));
    });
    const read = await Promise.race([lines.read(), timeout]);
    clearTimeout(timer);
    if (read === "timeout") {
      child.kill("SIGKILL");
      ended = `stopped after ${timeoutMinutes} minutes, at ${stage}`;
      break;
    }
    if (read.done) break;
    buffered += read.value;
    const complete = buffered.split("\n");
    buffered = complete.pop()!;
    for (const line of complete) {
      if (!line.startsWith("{")) continue;
      const step = JSON.parse(line) as Step;
      if (step.step === "progress") {
        if (step.at !== stage) console.error(`  … ${step.at}`);
        stage = step.at;
      } else {
        stage = `after ${step.step}`;
      }
      onStep(step);
    }
  }
  const status = await child.status;
  const errors = (await stderr).split("\n").filter((l) => l.trim() && !l.includes("[W:onnxruntime"));
  if (!ended && !status.success) {
    ended = `the process exited with ${status.code}${
      status.signal ? ` (${status.signal})` : ""
    } at ${stage}: ${errors.slice(-1)[0] ?? ""}`;
  }
  return ended;
}

function context(t0: number): RunContext {
  return {
    date: new Date().toISOString().slice(0, 16).replace("T", " "),
    commit,
    wallSeconds: (performance.now() - t0) / 1000,
    load: Deno.loadavg()[0],
  };
}

async function floatOf(model: ZooModel): Promise<FloatResult> {
  const t0 = performance.now();
  let facts: FloatFacts | undefined;
  const ended = await runCell(["--model", model.name, "--float", "--split", split, ...passEval()], (step) => {
    if (step.step === "float") facts = step.facts;
  });
  return { ...context(t0), facts, ...(ended ? { error: ended } : {}) };
}

const passEval = () => (flagValue(args, "eval") ? ["--eval", flagValue(args, "eval")!] : []);

async function cellOf(
  model: ZooModel,
  setting: string,
  method: string,
  float?: FloatFacts,
): Promise<CellResult> {
  const s = settingsFor(model);
  const t0 = performance.now();
  const result: Omit<CellResult, keyof RunContext> = {
    setting,
    method,
    ...(variant ? { variant } : {}),
    ...s,
  };
  const thresholds = float?.thresholds;
  const ended = await runCell(
    [
      "--model",
      model.name,
      "--setting",
      setting,
      "--method",
      method,
      "--iterations",
      String(s.iterations),
      "--calibration",
      String(s.calibration),
      "--batch",
      String(s.batchSize),
      "--split",
      split,
      "--set",
      set,
      ...passEval(),
      ...(thresholds ? ["--thresholds", `${thresholds.scoreThreshold},${thresholds.minLength}`] : []),
    ],
    (step) => {
      if (step.step === "quantize") result.quantize = step.facts;
      if (step.step === "metric") {
        result.metric = step.metric;
        result.float = step.float;
        if (step.error) result.metricError = step.error;
      }
      if (step.step === "export") result.export = { runs: step.runs, ort: step.ort, error: step.error };
    },
  );
  return { ...result, ...context(t0), ...(ended ? { ended } : {}) };
}

// ---------------------------------------------------------------- results files

const fileOf = (name: string) => `${resultsDir}/${name}.json`;

function readResults(name: string): ModelResults | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(fileOf(name)));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

function writeResults(r: ModelResults): void {
  Deno.mkdirSync(resultsDir, { recursive: true });
  // Cells in a fixed order, so that the files diff well.
  const order = ([, c]: [string, CellResult]) =>
    `${["W8A8", "W4A8", "W4A4"].indexOf(c.setting)} ${["attention", "nearest"].indexOf(c.method)} ${
      c.variant ?? ""
    }`;
  const cells = Object.fromEntries(Object.entries(r.cells).sort((a, b) => order(a).localeCompare(order(b))));
  Deno.writeTextFileSync(fileOf(r.model), JSON.stringify({ ...r, cells }, null, 2) + "\n");
}

// ---------------------------------------------------------------- table

const fixed = (x: number, digits: number) => x.toFixed(digits);
const pct = (x: number) => (100 * x).toFixed(2);
/** An SNR; identical outputs give Infinity, which the cells' JSON carries as null. */
const db = (x: number | null) => (x === Infinity || x === null ? "∞" : `${x.toFixed(1)} dB`);
const sci = (x: number) => x.toExponential(1);
const code = (error: string) => error.split(":")[0];

/** M-LSD: F1; vit_fmnist: top-1; the others: SNR against float (and top-1 agreement for classifiers). */
function metricText(metric: TaskMetric | undefined, float: Comparison | undefined): string {
  if (metric?.f1 !== undefined) return `F1 ${pct(metric.f1)}`;
  if (metric?.top1 !== undefined) return `top-1 ${pct(metric.top1)}`;
  if (!float) return "";
  const agreement = float.top1Agreement !== undefined
    ? `, top-1 = ${fixed(100 * float.top1Agreement, 0)} %`
    : "";
  return `SNR ${db(float.snrDb)}${agreement}`;
}

function exportText(e: CellResult["export"]): string {
  if (!e) return "";
  if (e.error) return e.runs ? `runs, then ${code(e.error)}` : `fails (${code(e.error)})`;
  if (!e.ort) return "";
  const agrees = e.ort.exact >= 0.95 ? "agrees" : "differs";
  const segments = e.ort.sameSegments !== undefined
    ? `, same segments ${fixed(100 * e.ort.sameSegments, 0)} %`
    : "";
  return `${agrees}: ${fixed(100 * e.ort.exact, 0)} % exact${segments}, SNR ${db(e.ort.snrDb)}`;
}

/** A quantization cell as four columns: metric (or the failure), time, peak RSS, export. */
function cellColumns(c: CellResult | undefined): string[] {
  if (!c) return ["", "", "", ""];
  const q = c.quantize;
  const time = q?.seconds !== undefined
    ? `${fixed(q.seconds, 0)}${q.cpuSeconds !== undefined ? ` (${fixed(q.cpuSeconds, 0)})` : ""}`
    : "";
  const rss = q?.peakRssMiB !== undefined ? fixed(q.peakRssMiB, 0) : "";
  if (!q || q.error) {
    return [q?.error ? `fails (${code(q.error)}) at ${q.at}` : (c.ended ?? "no result"), time, rss, ""];
  }
  const metric = c.metricError ? `metric: ${code(c.metricError)}` : metricText(c.metric, c.float);
  return [metric, time, rss, exportText(c.export)];
}

/** One line of a cell, for the progress log. */
const cellText = (c: CellResult) => {
  const [metric, time, rss, exported] = cellColumns(c);
  return [metric, time && `${time} s (CPU s)`, rss && `${rss} MiB`, exported].filter(Boolean).join("; ");
};

function floatMetricText(f: FloatFacts | undefined): string {
  if (!f?.metric) return "";
  if (f.metric.f1 !== undefined) {
    const t = f.thresholds!;
    return `F1 ${pct(f.metric.f1)} (score > ${t.scoreThreshold}, length > ${t.minLength} px)`;
  }
  if (f.metric.top1 !== undefined) return `top-1 ${pct(f.metric.top1)}`;
  return "";
}

function markdown(head: string[], rows: string[][]): string {
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(width[i])).join(" | ")} |`;
  return [line(head), line(width.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** The models: size, cost, float agreement and float metric, and the quantization settings they ran with. */
function modelTable(all: ModelResults[]): string {
  const head = [
    "model",
    "ops",
    "parameters",
    "MFLOP/sample",
    "engine vs onnxruntime-node",
    "float metric",
    "iterations, calibration",
  ];
  return markdown(
    head,
    all.map((r) => {
      const f = r.float?.facts;
      const ort = f?.ort
        ? `max rel. ${sci(f.ort.maxRel)}, SNR ${db(f.ort.snrDb)}`
        : f?.ortError
        ? `fails (${code(f.ortError)})`
        : "";
      const used = Object.values(r.cells).filter((c) =>
        settings.includes(c.setting) && methods.includes(c.method)
      );
      return [
        r.model,
        f ? String(f.ops) : r.float?.error ? "fails" : "",
        f ? `${fixed(f.parameters / 1e6, 2)} M` : "",
        f ? fixed(f.flopsPerSample / 1e6, 0) : "",
        ort,
        [floatMetricText(f), r.validationFloat && `validation: ${floatMetricText(r.validationFloat.facts)}`]
          .filter(Boolean).join("; "),
        [...new Set(used.map((c) => `${c.iterations}, ${c.calibration}`))].join("; "),
      ];
    }),
  );
}

const cellKey = (setting: string, method: string, variant = "") =>
  `${setting} ${method}${variant ? ` (${variant})` : ""}`;

/**
 * One setting: per model and method, the metric, quantize time (CPU), peak
 * RSS and the export check; a row per model and variant (split, options).
 */
function settingTable(all: ModelResults[], setting: string): string {
  const head = [
    setting,
    ...methods.flatMap((m) => [m, "s (CPU s)", "peak MiB", "export in onnxruntime-node vs q.run"]),
  ];
  return markdown(
    head,
    all.flatMap((r) => {
      const shown = Object.values(r.cells).filter((c) => c.setting === setting && methods.includes(c.method));
      const variants = [...new Set(["", ...shown.map((c) => c.variant ?? "")])].sort();
      return variants.map((v) => [
        v ? `${r.model} (${v})` : r.model,
        ...methods.flatMap((m) => cellColumns(r.cells[cellKey(setting, m, v)])),
      ]);
    }),
  );
}

function tables(all: ModelResults[]): string {
  return [modelTable(all), ...settings.map((s) => settingTable(all, s))].join("\n\n");
}

/** Every error in full, under the table. */
function problems(all: ModelResults[]): string {
  const out: string[] = [];
  for (const r of all) {
    if (r.float?.error) out.push(`- ${r.model}, float: ${r.float.error}`);
    if (r.float?.facts?.error) out.push(`- ${r.model}, float: ${r.float.facts.error}`);
    if (r.float?.facts?.ortError) out.push(`- ${r.model}, onnxruntime-node: ${r.float.facts.ortError}`);
    for (const [key, c] of Object.entries(r.cells)) {
      if (!settings.includes(c.setting) || !methods.includes(c.method)) continue;
      if (c.quantize?.error) out.push(`- ${r.model}, ${key}: ${c.quantize.error} (at ${c.quantize.at})`);
      if (c.metricError) out.push(`- ${r.model}, ${key}, metric: ${c.metricError}`);
      if (c.export?.error) out.push(`- ${r.model}, ${key}, export: ${c.export.error}`);
      if (c.ended) out.push(`- ${r.model}, ${key}: ${c.ended}`);
    }
  }
  return out.join("\n");
}

/** Where the cells shown come from: iterations, calibration, commits, dates, load. */
function provenance(all: ModelResults[]): string {
  const cells = all.flatMap((r) => Object.values(r.cells));
  const runs = [...all.flatMap((r) => (r.float ? [r.float] : [])), ...cells];
  const commits = [...new Set(runs.map((c) => c.commit))].join(", ");
  const dates = runs.map((c) => c.date).sort();
  const load = runs.map((c) => c.load);
  const batches = [...new Set(cells.map((c) => c.batchSize))].join(", ");
  return `Cells from ${runs.length} runs at commit ${commits}, ${dates[0]} to ${dates.at(-1)} (UTC); ` +
    `1-minute load average ${fixed(Math.min(...load), 1)}–${fixed(Math.max(...load), 1)} on ` +
    `${navigator.hardwareConcurrency} logical cores; quantization batch ${batches || "–"}.`;
}

// ---------------------------------------------------------------- main

const models = selectModels(args);
if (!args.includes("--table")) {
  for (const model of models) {
    if (!(await Deno.stat(`${dir}/${model.file}`).catch(() => undefined))) {
      console.error(`${model.name}: ${dir}/${model.file} is missing (deno task zoo assembles it)`);
      continue;
    }
    const results = readResults(model.name) ?? { model: model.name, cells: {} };
    if (!args.includes("--no-float")) {
      console.error(`${model.name}: float${split === "validation" ? " (validation)" : ""}`);
      results[split === "validation" ? "validationFloat" : "float"] = await floatOf(model);
      writeResults(results);
    }
    for (const setting of settings) {
      for (const method of methods) {
        console.error(`${model.name}: ${setting} ${method}`);
        const cell = await cellOf(model, setting, method, results.float?.facts);
        results.cells[cellKey(setting, method, variant)] = cell;
        writeResults(results);
        console.error(`  ${cellText(cell)} (${fixed(cell.wallSeconds, 0)} s in all)`);
      }
    }
  }
}
const all = models.map((m) => readResults(m.name)).filter((r): r is ModelResults => r !== undefined);
const listed = problems(all);
console.log(`${provenance(all)}\n\n${tables(all)}\n${listed ? `\n${listed}\n` : ""}`);
