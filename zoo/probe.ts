// What the library does with each zoo model today: loadModel, one forward pass
// checked against onnxruntime-node, the time of one batch-1 pass in both, and a
// short W8A8 quantization (4 random samples, 2 iterations per block; again with
// rounding "nearest" if a block cannot be reconstructed) whose export is re-run
// in onnxruntime-node and in the engine. Every model runs in its own process
// with a time limit, so that a crash or a slow model cannot stop the rest.
//
//   deno task zoo:probe [--dir DIR] [--only a,b] [--run-seconds 120] [--quantize-seconds 60]
//                       [--no-quantize] [--out FILE.json] [--md FILE.md]
//
// Samples are seeded uniform noise in each input's range (zoo/manifest.json);
// the batch is 2 where the model's batch is dynamic, else 1. Errors are
// reported as the library throws them. Assemble the zoo first (deno task zoo).
import { flagValue, selectModels, zooDir, type ZooInput, type ZooModel } from "./manifest.ts";

const args = Deno.args;
const dir = zooDir(flagValue(args, "dir"));
const runSeconds = Number(flagValue(args, "run-seconds") ?? 120);
const quantizeSeconds = Number(flagValue(args, "quantize-seconds") ?? 60);
const withQuantize = !args.includes("--no-quantize");

/** One line of a child's report; the parent merges them into a ProbeResult. */
type Step =
  | { step: "load"; ms?: number; error?: string }
  | { step: "ort"; loadMs?: number; error?: string }
  | { step: "run"; batch: number; error?: string } & Partial<Difference>
  | { step: "timing"; engineMs?: number; ortMs?: number; error?: string }
  | { step: "quantize-start" }
  | { step: "progress"; at: string }
  | { step: "quantize" | "nearest" } & QuantizeResult
  | { step: "export"; error?: string } & ExportDifferences;

/**
 * The export run by onnxruntime-node (default and unoptimised) and by our own
 * engine, each against q.run; and q.run against the float model, the scale of
 * quantization's own error.
 */
interface ExportDifferences {
  ort?: Difference;
  ortUnoptimized?: Difference;
  engine?: Difference;
  float?: Difference;
}

interface QuantizeResult {
  ms?: number;
  blocks?: number;
  error?: string;
  /** Where the run was when it failed. */
  at?: string;
}

interface ProbeResult {
  name: string;
  file: string;
  bytes: number;
  load?: { ms?: number; error?: string };
  ort?: { loadMs?: number; error?: string };
  run?: { batch: number; error?: string } & Partial<Difference>;
  timing?: { engineMs?: number; ortMs?: number; error?: string };
  quantize?: QuantizeResult;
  /** rounding "nearest", tried when the attention rounding fails with UNSUPPORTED_MODEL. */
  nearest?: QuantizeResult;
  export?: { error?: string } & ExportDifferences;
  /** Set when the process was stopped or died. */
  ended?: string;
}

// ---------------------------------------------------------------- samples

/** mulberry32: a small seeded generator, so every run feeds the same samples. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The input's shape with batch n (symbolic batch or fixed 1). */
function concreteShape(input: ZooInput, n: number): number[] {
  return input.shape.map((d, i) => {
    if (i === 0) return n;
    if (typeof d !== "number") {
      throw new Error(`input ${input.name} has a symbolic dimension ${d} after the batch`);
    }
    return d;
  });
}

/** n samples drawn as the manifest's preprocessing says, seeds seed, seed + 1, … */
function samples(input: ZooInput, n: number, seed: number): { data: Float32Array; shape: number[] } {
  const shape = concreteShape(input, n);
  const perSample = shape.slice(1).reduce((a, b) => a * b, 1);
  const channels = input.layout === "NHWC" ? shape[shape.length - 1] : shape[1];
  const plane = input.layout === "NHWC" ? 1 : perSample / channels;
  const { range: [lo, hi], constantChannels = {}, mean, std } = input.preprocessing;
  const data = new Float32Array(n * perSample);
  for (let s = 0; s < n; s++) {
    const next = random(seed + s);
    for (let i = 0; i < perSample; i++) {
      const c = Math.floor(i / plane) % channels;
      let v = constantChannels[c] ?? lo + (hi - lo) * next();
      if (mean && std) v = (v - mean[c]) / std[c];
      data[s * perSample + i] = v;
    }
  }
  return { data, shape };
}

// ---------------------------------------------------------------- child: one model

function describe(e: unknown): string {
  if (e && typeof e === "object" && "code" in e && e instanceof Error) return `${e.code}: ${e.message}`;
  if (e instanceof Error) {
    // Not an anticipated error: where it was thrown helps whoever fixes it.
    const frame = e.stack?.split("\n").find((l) => l.trim().startsWith("at "))?.trim() ?? "";
    return `${e.name}: ${e.message}${frame ? ` (${frame})` : ""}`;
  }
  return String(e);
}

function emit(step: Step): void {
  console.log(JSON.stringify(step));
}

/**
 * How far our outputs are from the reference's, for the output where it is
 * worst: max |a − b|, that over max |b|, and the RMS of a − b over that of b.
 */
interface Difference {
  maxAbs: number;
  maxRel: number;
  rmsRel: number;
  output: string;
}

function compare(
  ours: Record<string, { data: ArrayLike<number | bigint>; shape: readonly number[] }>,
  reference: Record<string, { data: ArrayLike<number>; dims: readonly number[] }>,
): Difference {
  let worst: Difference = { maxAbs: 0, maxRel: -1, rmsRel: 0, output: "" };
  for (const [name, ref] of Object.entries(reference)) {
    const got = ours[name];
    if (!got) throw new Error(`the engine returned no output "${name}"`);
    if (got.shape.join() !== ref.dims.join()) {
      throw new Error(`output "${name}" has shape [${got.shape}], onnxruntime-node gives [${ref.dims}]`);
    }
    let maxAbs = 0, scale = 0, squaredDiff = 0, squaredRef = 0;
    for (let i = 0; i < ref.data.length; i++) {
      const d = Math.abs(Number(got.data[i]) - ref.data[i]);
      maxAbs = Number.isNaN(d) || d > maxAbs ? d : maxAbs; // a NaN stays
      scale = Math.max(scale, Math.abs(ref.data[i]));
      squaredDiff += d * d;
      squaredRef += ref.data[i] * ref.data[i];
    }
    const maxRel = maxAbs / (scale || 1);
    const rmsRel = Math.sqrt(squaredDiff / (squaredRef || 1));
    if (Number.isNaN(maxRel) || maxRel > worst.maxRel) worst = { maxAbs, maxRel, rmsRel, output: name };
    if (Number.isNaN(maxRel)) break;
  }
  return worst;
}

/** Our outputs in the reference's form, to compare two runs of our own. */
function asReference(
  outputs: Record<string, { data: ArrayLike<number | bigint>; shape: readonly number[] }>,
): Record<string, { data: ArrayLike<number>; dims: readonly number[] }> {
  return Object.fromEntries(
    Object.entries(outputs).map(([k, v]) => [k, { data: Array.from(v.data, Number), dims: v.shape }]),
  );
}

/** Best of up to three calls within about two seconds, in milliseconds (after one warm-up call). */
async function bestTime(call: () => unknown): Promise<number> {
  await call();
  let best = Infinity, spent = 0;
  for (let i = 0; i < 3 && spent < 2000; i++) {
    const t0 = performance.now();
    await call();
    const ms = performance.now() - t0;
    best = Math.min(best, ms);
    spent += ms;
  }
  return best;
}

async function probeOne(model: ZooModel): Promise<void> {
  const lib = await import("../mod.ts");
  // deno-lint-ignore no-import-prefix
  const ort = await import("npm:onnxruntime-node@1.30.0");
  await lib.init();
  const bytes = await Deno.readFile(`${dir}/${model.file}`);
  const input = model.inputs[0];
  const batch = input.batch === "dynamic" ? 2 : 1;
  const sample = samples(input, batch, 1);
  const one = samples(input, 1, 1);

  let session: Awaited<ReturnType<typeof ort.InferenceSession.create>> | undefined;
  let t0 = performance.now();
  try {
    session = await ort.InferenceSession.create(bytes, {
      executionProviders: ["cpu"],
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      logSeverityLevel: 3,
    });
    emit({ step: "ort", loadMs: performance.now() - t0 });
  } catch (e) {
    emit({ step: "ort", error: describe(e) });
  }
  const ortRun = async (x: { data: Float32Array; shape: number[] }) => {
    const out = await session!.run({ [input.name]: new ort.Tensor("float32", x.data, x.shape) });
    return Object.fromEntries(
      Object.entries(out).map(([k, v]) => [k, { data: v.data as Float32Array, dims: v.dims }]),
    );
  };

  let loaded: ReturnType<typeof lib.loadModel>;
  t0 = performance.now();
  try {
    loaded = lib.loadModel(bytes);
    emit({ step: "load", ms: performance.now() - t0 });
  } catch (e) {
    emit({ step: "load", error: describe(e) });
    return;
  }
  const engineRun = (x: { data: Float32Array; shape: number[] }) =>
    loaded.run({ [input.name]: new lib.Tensor(x.data, x.shape) });

  let runs = false;
  try {
    const ours = engineRun(sample);
    if (session) emit({ step: "run", batch, ...compare(ours, await ortRun(sample)) });
    else emit({ step: "run", batch, error: "ran, but onnxruntime-node cannot load the model to compare" });
    runs = true;
  } catch (e) {
    emit({ step: "run", batch, error: describe(e) });
  }
  if (runs) {
    try {
      emit({
        step: "timing",
        engineMs: await bestTime(() => engineRun(one)),
        ortMs: session ? await bestTime(() => ortRun(one)) : undefined,
      });
    } catch (e) {
      emit({ step: "timing", error: describe(e) });
    }
  }
  if (!withQuantize) return;

  const calibration = samples(input, 4, 101);
  const attempt = async (rounding: "attention" | "nearest") => {
    emit({ step: "quantize-start" });
    let at = "start";
    let blocks: number | undefined;
    const t0 = performance.now();
    try {
      const q = await lib.quantize(loaded, new lib.Tensor(calibration.data, calibration.shape), {
        weightBits: 8,
        activationBits: 8,
        iterations: 2,
        batchSize: 2,
        rounding,
        signal: AbortSignal.timeout(quantizeSeconds * 1000),
        onProgress: (p) => {
          const where = p.phase === "reconstruct" ? `reconstruct block ${p.block! + 1}/${p.blocks}` : p.phase;
          blocks = p.blocks ?? blocks;
          if (where !== at) emit({ step: "progress", at: at = where });
        },
      });
      return { q, result: { ms: performance.now() - t0, blocks } };
    } catch (e) {
      return { result: { ms: performance.now() - t0, error: describe(e), at } };
    }
  };
  let { q, result } = await attempt("attention");
  emit({ step: "quantize", ...result });
  if (result.error?.startsWith("UNSUPPORTED_MODEL")) {
    // The error says rounding to nearest needs no backward: see whether it gets further.
    ({ q, result } = await attempt("nearest"));
    emit({ step: "nearest", ...result });
  }
  if (!q) return;
  try {
    const exported = q.toOnnx();
    const ours = q.run({ [input.name]: new lib.Tensor(one.data, one.shape) });
    // With its default optimisations onnxruntime fuses Q/DQ pairs into integer
    // kernels; without them it runs the Q/DQ arithmetic as written.
    const reference = async (graphOptimizationLevel: "all" | "disabled") => {
      const qs = await ort.InferenceSession.create(exported, {
        intraOpNumThreads: 1,
        logSeverityLevel: 3,
        graphOptimizationLevel,
      });
      const out = await qs.run({ [input.name]: new ort.Tensor("float32", one.data, one.shape) });
      return Object.fromEntries(
        Object.entries(out).map(([k, v]) => [k, { data: v.data as Float32Array, dims: v.dims }]),
      );
    };
    emit({
      step: "export",
      ort: compare(ours, await reference("all")),
      ortUnoptimized: compare(ours, await reference("disabled")),
      engine: compare(
        lib.loadModel(exported).run({ [input.name]: new lib.Tensor(one.data, one.shape) }),
        asReference(ours),
      ),
      float: session ? compare(ours, await ortRun(one)) : undefined,
    });
  } catch (e) {
    emit({ step: "export", error: describe(e) });
  }
}

// ---------------------------------------------------------------- parent: every model, one process each

async function probeInChild(model: ZooModel): Promise<ProbeResult> {
  const result: ProbeResult = { name: model.name, file: model.file, bytes: model.bytes };
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-env",
      "--allow-ffi",
      "--allow-sys",
      new URL(import.meta.url).pathname,
      "--child",
      model.name,
      "--dir",
      dir,
      "--quantize-seconds",
      String(quantizeSeconds),
      ...(withQuantize ? [] : ["--no-quantize"]),
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  // The quantization aborts itself at its limit; the kill is for a pass that never yields.
  let deadline = performance.now() + runSeconds * 1000;
  let stage = "load";
  let buffered = "";
  for (;;) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), Math.max(0, deadline - performance.now()));
    });
    const read = await Promise.race([lines.read(), timeout]);
    clearTimeout(timer);
    if (read === "timeout") {
      child.kill("SIGKILL");
      result.ended = `stopped after the time limit, in ${stage}`;
      if (stage.startsWith("quantize")) {
        result[result.quantize ? "nearest" : "quantize"] = {
          error: "time limit",
          at: stage.replace(/^quantize: /, ""),
        };
      }
      break;
    }
    if (read.done) break;
    buffered += read.value;
    const complete = buffered.split("\n");
    buffered = complete.pop()!;
    for (const line of complete) {
      if (!line.startsWith("{")) continue; // anything else the libraries print
      const step = JSON.parse(line) as Step;
      if (step.step === "quantize-start") {
        deadline = performance.now() + (quantizeSeconds + 30) * 1000;
        stage = "quantize: start";
      } else if (step.step === "progress") {
        stage = `quantize: ${step.at}`;
      } else {
        const { step: name, ...rest } = step;
        (result as unknown as Record<string, unknown>)[name] = rest;
        stage = `after ${name}`;
      }
    }
  }
  const status = await child.status;
  const errors = (await stderr).trim();
  if (!result.ended && !status.success) {
    const last = errors.split("\n").filter((l) => l.trim()).slice(-1)[0] ?? "";
    result.ended = `the process exited with ${status.code}${
      status.signal ? ` (${status.signal})` : ""
    } in ${stage}: ${last}`;
  }
  return result;
}

// ---------------------------------------------------------------- table

/** "fails (CODE)": the error's code or class; the full message is listed under the table. */
const fails = (error: string) => `fails (${error.split(":")[0]})`;
const fixed = (x: number | undefined, digits = 0) => (x === undefined ? "" : x.toFixed(digits));
const sci = (x: number) => x.toExponential(1);

function quantizeCell(q: QuantizeResult | undefined): string {
  if (!q) return "";
  const seconds = q.ms === undefined ? [] : [`${fixed(q.ms / 1000)} s`];
  const limited = q.error?.startsWith("ABORTED") || q.error === "time limit";
  if (q.error) return [limited ? "time limit" : fails(q.error), ...seconds, `at ${q.at}`].join(", ");
  return ["ok", ...seconds, ...(q.blocks ? [`${q.blocks} blocks`] : [])].join(", ");
}

function cells(r: ProbeResult): string[] {
  const load = r.load?.error
    ? fails(r.load.error)
    : r.load
    ? `ok, ${fixed(r.load.ms)} ms`
    : r.ended
    ? "died"
    : "";
  const run = r.run?.error
    ? fails(r.run.error)
    : r.run?.maxRel !== undefined
    ? `max ${sci(r.run.maxRel)}, rms ${sci(r.run.rmsRel!)} (b${r.run.batch})`
    : "";
  const quantize = quantizeCell(r.quantize) + (r.nearest ? `; nearest: ${quantizeCell(r.nearest)}` : "");
  const e = r.export;
  const exported = e?.error
    ? fails(e.error)
    : e?.ort && e.ortUnoptimized
    ? `ort ${sci(e.ort.rmsRel)}, ort unopt. ${sci(e.ortUnoptimized.rmsRel)}` +
      (e.engine ? `, engine ${sci(e.engine.rmsRel)}` : "") +
      (e.float ? `; q.run vs float ${sci(e.float.rmsRel)}` : "")
    : "";
  return [
    r.name,
    fixed(r.bytes / 1e6, 1),
    load,
    run,
    fixed(r.timing?.engineMs),
    fixed(r.timing?.ortMs, 1),
    quantize,
    exported,
  ];
}

function table(results: ProbeResult[]): string {
  const head = [
    "model",
    "MB",
    "loadModel",
    "engine vs onnxruntime-node, rel. error",
    "engine ms (b1)",
    "onnxruntime-node ms (b1)",
    "quantize W8A8, 4 samples, 2 iterations",
    "export run by … vs q.run, rms rel. error",
  ];
  const rows = results.map(cells);
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(width[i])).join(" | ")} |`;
  return [line(head), line(width.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

function problems(results: ProbeResult[]): string {
  const out: string[] = [];
  for (const r of results) {
    const list = [
      ["ort", r.ort?.error],
      ["loadModel", r.load?.error],
      ["run", r.run?.error],
      ["timing", r.timing?.error],
      ["quantize", r.quantize?.error && `${r.quantize.error} (at ${r.quantize.at})`],
      ["quantize, nearest", r.nearest?.error && `${r.nearest.error} (at ${r.nearest.at})`],
      ["export", r.export?.error],
      ["process", r.ended],
    ].filter(([, e]) => e);
    for (const [where, e] of list) out.push(`- ${r.name}, ${where}: ${e}`);
  }
  return out.join("\n");
}

/** Where the numbers come from: command, commit, runtimes. */
async function context(): Promise<string> {
  const git = await new Deno.Command("git", { args: ["rev-parse", "--short", "HEAD"], stdout: "piped" })
    .output().catch(() => undefined);
  const commit = git?.success ? new TextDecoder().decode(git.stdout).trim() : "unknown";
  return [
    `# zoo:probe, ${new Date().toISOString().slice(0, 10)}`,
    "",
    `\`deno task zoo:probe ${args.join(" ")}\` at commit ${commit}; Deno ${Deno.version.deno},`,
    `onnxruntime-node 1.30.0; both engines on one thread; ${navigator.hardwareConcurrency} logical cores,` +
    ` load average ${
      Deno.loadavg().map((l) => l.toFixed(1)).join(" ")
    } at the end (times move with the load).`,
    "",
  ].join("\n");
}

// ---------------------------------------------------------------- main

const childName = flagValue(args, "child");
if (childName) {
  await probeOne(selectModels(["--only", childName])[0]);
} else {
  const results: ProbeResult[] = [];
  for (const model of selectModels(args)) {
    if (!(await Deno.stat(`${dir}/${model.file}`).catch(() => undefined))) {
      console.error(`${model.name}: ${dir}/${model.file} is missing (deno task zoo assembles it)`);
      continue;
    }
    const t0 = performance.now();
    const result = await probeInChild(model);
    results.push(result);
    console.error(`${model.name}: ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  const listed = problems(results);
  const report = `${table(results)}\n${listed ? `\n${listed}\n` : ""}`;
  console.log(report);
  const outFile = flagValue(args, "out");
  if (outFile) await Deno.writeTextFile(outFile, JSON.stringify(results, null, 2) + "\n");
  const mdFile = flagValue(args, "md");
  if (mdFile) {
    await Deno.writeTextFile(mdFile, `${await context()}\n${report}`);
    // Wrapped as the repository's deno fmt wants it, so the file can be committed as written.
    await new Deno.Command(Deno.execPath(), { args: ["fmt", "--quiet", mdFile] }).output();
  }
}
