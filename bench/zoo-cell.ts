// One cell of `deno task bench:zoo`, run by bench/zoo.ts in a process of its
// own: either a zoo model's float facts (--float) or one quantization
// (--setting W4A8 --method attention). It prints one JSON object per line,
// {"step": …}, which the parent merges; anything else on stdout is ignored.
//
// float: ops, parameters, FLOP per sample, the engine against onnxruntime-node
// on the first samples of the evaluation set, and the float task metric.
// quantize: quantize() with the cell's settings (caches beyond the memory
// budget spill to a temporary file, as the command line's do); its wall and CPU time and
// the process's peak RSS (VmHWM) as quantize() returns, before anything else
// is loaded; the task metric of q.run; SNR and top-1 agreement of q.run against
// the float model; and the exported ONNX run by onnxruntime-node against q.run.
import { init, inspectModel, loadModel, type Model, quantize, Tensor } from "../mod.ts";
import type { QuantizedModel, QuantizeOptionsInput, SpillStore } from "../mod.ts";
import { Engine } from "../src/engine/engine.ts";
import { evaluationSet, readFixture, toInput, withSet } from "./fmnist.ts";
import { rows } from "../tests/fixtures.ts";
import { withinFloatRounding } from "../tests/helpers.ts";
import { readNpz } from "../src/data/npy.ts";
import { flagValue, selectModels, zooDir, type ZooInput, type ZooModel } from "../zoo/manifest.ts";
import {
  chooseThresholds,
  type DecodeOptions,
  decodeSegments,
  f1Score,
  lineImage,
  lineImageOptionsFor,
  type MatchCounts,
  matchSegments,
  type MlsdMaps,
  mlsdSeeds,
  type Segment,
} from "../zoo/mlsd.ts";

// ---------------------------------------------------------------- what a cell reports

export interface Comparison {
  samples: number;
  /** max |a − b| over max |b|, for the output where it is largest. */
  maxRel: number;
  /** 10 log10(Σb² / Σ(a − b)²), for the output where it is smallest (Infinity when equal). */
  snrDb: number;
  /** The same, for each output. */
  snrDbByOutput: Record<string, number>;
  /** Samples whose arg-max (of the first output) is the same, in [0, 1]; classifiers only. */
  top1Agreement?: number;
  /** Samples whose decoded segments are the same (endpoints within 0.01 pixel), in [0, 1]; M-LSD only. */
  sameSegments?: number;
  /** Samples on which every output value agrees to float rounding, |a − b| ≤ 1e-4 (1 + |b|), in [0, 1]. */
  exact: number;
  /** RMS of a − b over that of b, all outputs together. */
  rmsRel: number;
}

/** The task metric: F1 for M-LSD, top-1 for vit_fmnist; for the others the comparison with float says it. */
export interface TaskMetric {
  samples: number;
  f1?: number;
  precision?: number;
  recall?: number;
  top1?: number;
}

export interface FloatFacts {
  ops: number;
  parameters: number;
  flopsPerSample: number;
  /** The engine against onnxruntime-node. */
  ort?: Comparison;
  ortError?: string;
  metric?: TaskMetric;
  /** M-LSD: decoding thresholds chosen on the validation images, and the F1 there. */
  thresholds?: DecodeOptions;
  validationF1?: number;
  engineMsPerSample?: number;
  error?: string;
}

export interface QuantizeFacts {
  /** Wall time of quantize(). */
  seconds?: number;
  /** CPU time the process spent in it (all threads): on a loaded machine, closer to the time on a free core. */
  cpuSeconds?: number;
  peakRssMiB?: number;
  blocks?: number;
  /** Wall time of each block's reconstruction. */
  blockSeconds?: number[];
  error?: string;
  /** Where it was when it failed. */
  at?: string;
}

export type Step =
  | { step: "progress"; at: string }
  | { step: "float"; facts: FloatFacts }
  | { step: "quantize"; facts: QuantizeFacts }
  | { step: "metric"; metric?: TaskMetric; float?: Comparison; error?: string }
  | { step: "export"; runs: boolean; ort?: Comparison; error?: string };

function emit(step: Step): void {
  console.log(JSON.stringify(step));
}

export function describe(e: unknown): string {
  if (e && typeof e === "object" && "code" in e && e instanceof Error) return `${e.code}: ${e.message}`;
  if (e instanceof Error) {
    const frame = e.stack?.split("\n").find((l) => l.trim().startsWith("at "))?.trim() ?? "";
    return `${e.name}: ${e.message}${frame ? ` (${frame})` : ""}`;
  }
  return String(e);
}

// ---------------------------------------------------------------- samples

/** How the model is fed: its input, its largest batch, and the sets it is calibrated and scored on. */
interface Feeding {
  input: ZooInput;
  /** 1 where the model's batch is fixed. */
  maxBatch: number;
  calibration(count: number): Tensor;
  evaluation: EvalSet;
}

interface EvalSet {
  count: number;
  /** Samples [start, start + n) as one batch, with the line segments of generated line images. */
  batch(start: number, n: number): { input: Tensor; truth?: Segment[][] };
  labels?: Uint8Array;
}

const sampleShape = (input: ZooInput) => input.shape.slice(1) as number[];

/**
 * Generated line images (zoo/mlsd.ts) at the input's size, laid out and scaled
 * as the manifest's preprocessing says: RGB in [0, 255] mapped onto its
 * range, constant channels set, then ImageNet mean/std where given.
 */
export function lineImages(
  input: ZooInput,
  firstSeed: number,
  count: number,
): { input: Tensor; truth: Segment[][] } {
  const shape = sampleShape(input);
  const nhwc = input.layout === "NHWC";
  const [height, width, channels] = nhwc ? shape : [shape[1], shape[2], shape[0]];
  if (height !== width) {
    throw new Error(`${input.name}: generated images are square, the input is ${height}×${width}`);
  }
  const { range: [lo, hi], constantChannels = {}, mean, std } = input.preprocessing;
  const plane = height * width, perSample = plane * channels;
  const data = new Float32Array(count * perSample);
  const truth: Segment[][] = [];
  for (let n = 0; n < count; n++) {
    const { image, segments } = lineImage(firstSeed + n, lineImageOptionsFor(height));
    truth.push(segments);
    for (let c = 0; c < channels; c++) {
      const constant = constantChannels[c];
      for (let p = 0; p < plane; p++) {
        let v = constant ?? lo + ((hi - lo) * image.data[p * 3 + c]) / 255;
        if (mean && std) v = (v - mean[c]) / std[c];
        data[n * perSample + (nhwc ? p * channels + c : c * plane + p)] = v;
      }
    }
  }
  return { input: new Tensor(data, [count, ...shape]), truth };
}

/**
 * vit_fmnist: the 1,024 bundled Fashion-MNIST calibration images and the
 * 10,000 test images with labels (with "validation", the last 10,000 training
 * images). The others: generated line images, seeds from 0 for calibration
 * and from 2,000 for evaluation, M-LSD's test range (with "validation", 100
 * images from 1,000, the range its decoding thresholds are chosen on).
 */
function feeding(model: ZooModel, evalCount: number | undefined, split: Split): Feeding {
  const input = model.inputs[0];
  const maxBatch = input.batch === "fixed" ? 1 : 32;
  if (model.source.kind === "fixture") {
    const { images, labels } = evaluationSet(split === "validation" ? "train" : "test");
    const count = Math.min(evalCount ?? 10000, images.shape[0]);
    const calibration = toInput(readNpz(readFixture("calib.npz")).x);
    return {
      input,
      maxBatch,
      calibration: (n) => rows(calibration, 0, Math.min(n, calibration.shape[0])),
      evaluation: { count, batch: (start, n) => ({ input: rows(images, start, n) }), labels },
    };
  }
  const count = evalCount ?? (model.task !== "line-segments" ? 32 : split === "validation" ? 100 : 200);
  const first = mlsdSeeds[split];
  return {
    input,
    maxBatch,
    calibration: (n) => lineImages(input, mlsdSeeds.calibration, n).input,
    evaluation: { count, batch: (start, n) => lineImages(input, first + start, n) },
  };
}

/** Runs `run` over the evaluation set in batches and hands each sample's outputs (batch of 1) to `visit`. */
async function forEachSample(
  set: EvalSet,
  count: number,
  maxBatch: number,
  run: (x: Tensor) => Record<string, Tensor> | Promise<Record<string, Tensor>>,
  visit: (index: number, outputs: Record<string, Tensor>, x: Tensor, truth?: Segment[]) => void,
): Promise<void> {
  for (let start = 0; start < count; start += maxBatch) {
    const n = Math.min(maxBatch, count - start);
    const { input, truth } = set.batch(start, n);
    const out = await run(input);
    for (let k = 0; k < n; k++) {
      const one: Record<string, Tensor> = {};
      for (const [name, t] of Object.entries(out)) one[name] = rows(t, k, 1);
      visit(start + k, one, rows(input, k, 1), truth?.[k]);
    }
  }
}

// ---------------------------------------------------------------- comparisons and metrics

/** Accumulates a Comparison of outputs `a` against reference outputs `b`, sample by sample. */
class Comparer {
  private samples = 0;
  private same = 0;
  private exact = 0;
  private readonly perOutput = new Map<
    string,
    { maxAbs: number; scale: number; noise: number; signal: number }
  >();

  private sameLines = 0;

  /** With `thresholds`, M-LSD's outputs are also compared as the segments they decode to. */
  constructor(private readonly classifier: boolean, private readonly thresholds?: DecodeOptions) {}

  add(a: Record<string, Tensor>, b: Record<string, Tensor>): void {
    this.samples++;
    if (this.thresholds && sameSegments(mapsOf(a), mapsOf(b), this.thresholds)) this.sameLines++;
    let close = true;
    for (const [name, ref] of Object.entries(b)) {
      const got = a[name];
      if (!got || got.shape.join() !== ref.shape.join()) {
        throw new Error(`output "${name}": shape [${got?.shape}] against [${ref.shape}]`);
      }
      const s = this.perOutput.get(name) ?? { maxAbs: 0, scale: 0, noise: 0, signal: 0 };
      const x = got.data as Float32Array, y = ref.data as Float32Array;
      for (let i = 0; i < y.length; i++) {
        const d = x[i] - y[i];
        const ad = Math.abs(d);
        s.maxAbs = Number.isNaN(ad) || ad > s.maxAbs ? ad : s.maxAbs;
        s.scale = Math.max(s.scale, Math.abs(y[i]));
        s.noise += d * d;
        s.signal += y[i] * y[i];
        if (!withinFloatRounding(x[i], y[i])) close = false;
      }
      this.perOutput.set(name, s);
    }
    if (close) this.exact++;
    if (this.classifier) {
      const first = Object.keys(b)[0];
      if (argmax(a[first].data as Float32Array) === argmax(b[first].data as Float32Array)) this.same++;
    }
  }

  result(): Comparison {
    let maxRel = 0, snrDb = Infinity, noise = 0, signal = 0;
    const snrDbByOutput: Record<string, number> = {};
    for (const [name, s] of this.perOutput) {
      const rel = s.maxAbs / (s.scale || 1);
      maxRel = Number.isNaN(rel) || rel > maxRel ? rel : maxRel;
      snrDbByOutput[name] = s.noise === 0 ? Infinity : 10 * Math.log10(s.signal / s.noise);
      snrDb = Math.min(snrDb, snrDbByOutput[name]);
      noise += s.noise;
      signal += s.signal;
    }
    return {
      samples: this.samples,
      maxRel,
      snrDb,
      snrDbByOutput,
      ...(this.classifier ? { top1Agreement: this.same / this.samples } : {}),
      ...(this.thresholds ? { sameSegments: this.sameLines / this.samples } : {}),
      exact: this.exact / this.samples,
      rmsRel: Math.sqrt(noise / (signal || 1)),
    };
  }
}

/** Whether two samples' maps decode to the same segments, endpoints within 0.01 pixel. */
function sameSegments(a: MlsdMaps, b: MlsdMaps, thresholds: DecodeOptions): boolean {
  const [p, q] = [a, b].map((m) => decodeSegments(m.scores, m.offsets, 160, thresholds));
  return p.length === q.length &&
    p.every((s, i) =>
      [s.x1 - q[i].x1, s.y1 - q[i].y1, s.x2 - q[i].x2, s.y2 - q[i].y2].every((d) => Math.abs(d) <= 0.01)
    );
}

function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

const mapsOf = (out: Record<string, Tensor>): MlsdMaps => ({
  scores: out.scores.data as Float32Array,
  offsets: out.offsets.data as Float32Array,
});

/** The task metric over the whole evaluation set. */
class TaskScorer {
  private readonly counts: MatchCounts[] = [];
  private correct = 0;
  private samples = 0;

  constructor(
    private readonly model: ZooModel,
    private readonly labels: Uint8Array | undefined,
    private readonly thresholds: DecodeOptions | undefined,
  ) {}

  add(index: number, out: Record<string, Tensor>, truth: Segment[] | undefined): void {
    this.samples++;
    if (this.model.task === "line-segments" && this.thresholds && truth) {
      const m = mapsOf(out);
      this.counts.push(matchSegments(decodeSegments(m.scores, m.offsets, 160, this.thresholds), truth));
    }
    if (this.labels) {
      if (argmax(Object.values(out)[0].data as Float32Array) === this.labels[index]) this.correct++;
    }
  }

  result(): TaskMetric | undefined {
    if (this.counts.length) {
      const s = f1Score(this.counts);
      return { samples: this.samples, f1: s.f1, precision: s.precision, recall: s.recall };
    }
    if (this.labels) return { samples: this.samples, top1: this.correct / this.samples };
    return undefined;
  }
}

// ---------------------------------------------------------------- float facts

/**
 * Multiply-accumulates of every Conv, ConvTranspose, Gemm and MatMul for one
 * sample, times 2: the engine runs the graph once with those nodes' inputs
 * and outputs as extra graph outputs, to read their shapes.
 */
function flopsPerSample(model: Model, input: Tensor): number {
  const g = model.graph;
  const layers = g.nodes.filter((n) => ["Conv", "ConvTranspose", "Gemm", "MatMul"].includes(n.opType));
  const inputName = g.inputs.find((i) => !g.initializers.has(i.name))!.name;
  const wanted = new Set<string>();
  for (const n of layers) {
    for (const name of [n.inputs[0], n.inputs[1], n.outputs[0]]) {
      if (!g.initializers.has(name) && name !== inputName) wanted.add(name);
    }
  }
  const outputs = [
    ...g.outputs,
    ...[...wanted].filter((w) => !g.outputs.some((o) => o.name === w)).map((name) => ({ name })),
  ];
  const engine = new Engine({ ...g, outputs });
  try {
    const values = engine.run({ [inputName]: input });
    const shapeOf = (name: string): readonly number[] =>
      g.initializers.get(name)?.shape ?? (name === inputName ? input.shape : values[name].shape);
    const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
    let macs = 0;
    for (const n of layers) {
      const [x, w, y] = [shapeOf(n.inputs[0]), shapeOf(n.inputs[1]), shapeOf(n.outputs[0])];
      if (n.opType === "Conv") macs += (size(y) * size(w)) / w[0];
      else if (n.opType === "ConvTranspose") macs += (size(x) * size(w)) / w[0];
      else if (n.opType === "Gemm") macs += size(y) * (n.attributes.get("transA") ? x[0] : x[1]);
      else macs += size(y) * x[x.length - 1]; // MatMul
    }
    return (2 * macs) / input.shape[0];
  } finally {
    engine.dispose();
  }
}

/** M-LSD's decoding thresholds with the best float F1 on the 100 validation images (seeds from 1,000). */
function mlsdThresholds(model: Model, input: ZooInput): ReturnType<typeof chooseThresholds> {
  const validation = lineImages(input, mlsdSeeds.validation, 100);
  const maps: MlsdMaps[] = [];
  for (let i = 0; i < validation.truth.length; i++) {
    maps.push(mapsOf(model.run({ [input.name]: rows(validation.input, i, 1) })));
  }
  return chooseThresholds(maps, validation.truth);
}

async function floatCell(
  model: ZooModel,
  bytes: Uint8Array,
  evalCount: number | undefined,
  split: Split,
): Promise<void> {
  const { ortNodeRun } = await import("../tests/ort.ts");
  const loaded = loadModel(bytes);
  const feed = feeding(model, evalCount, split);
  const inputName = feed.input.name;
  const inspection = inspectModel(loaded);
  const first = feed.evaluation.batch(0, 1).input;
  const facts: FloatFacts = {
    ops: Object.values(inspection.ops).reduce((a, b) => a + b, 0),
    parameters: inspection.parameters,
    flopsPerSample: flopsPerSample(loaded, first),
  };
  if (model.task === "line-segments") {
    const chosen = mlsdThresholds(loaded, feed.input);
    facts.thresholds = chosen.options;
    facts.validationF1 = chosen.score.f1;
  }
  emit({ step: "progress", at: "ort" });
  try {
    // One sample at a time in both.
    const comparer = new Comparer(model.task === "classifier", facts.thresholds);
    for (let i = 0; i < 4; i++) {
      const x = feed.evaluation.batch(i, 1).input;
      comparer.add(loaded.run({ [inputName]: x }), await ortNodeRun(bytes, { [inputName]: x }));
    }
    facts.ort = comparer.result();
  } catch (e) {
    facts.ortError = describe(e);
  }
  emit({ step: "progress", at: "metric" });
  const scorer = new TaskScorer(model, feed.evaluation.labels, facts.thresholds);
  let ms = 0;
  await forEachSample(
    feed.evaluation,
    feed.evaluation.count,
    feed.maxBatch,
    (x) => {
      const t0 = performance.now();
      const out = loaded.run({ [inputName]: x });
      ms += performance.now() - t0;
      return out;
    },
    (i, out, _x, truth) => scorer.add(i, out, truth),
  );
  facts.engineMsPerSample = ms / feed.evaluation.count;
  facts.metric = scorer.result();
  emit({ step: "float", facts });
}

// ---------------------------------------------------------------- one quantization

/** `cat FILE` (Deno lets a program read /proc only with --allow-all; the bench allows it to run cat). */
function readProc(file: string): string {
  const out = new Deno.Command("cat", { args: [file], stdout: "piped" }).outputSync();
  return new TextDecoder().decode(out.stdout);
}

/**
 * The process's CPU time so far (user + system, all threads; Linux's 100
 * ticks per second) and its peak resident set so far (VmHWM), in MiB.
 */
function processUse(): { cpuSeconds?: number; peakRssMiB?: number } {
  try {
    const stat = readProc(`/proc/${Deno.pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const hwm = readProc(`/proc/${Deno.pid}/status`).split("\n").find((l) => l.startsWith("VmHWM:"));
    return {
      cpuSeconds: (Number(fields[11]) + Number(fields[12])) / 100,
      peakRssMiB: hwm ? Number(hwm.split(/\s+/)[1]) / 1024 : undefined,
    };
  } catch {
    return {};
  }
}

/**
 * Where activation caches that exceed the memory budget go, as the command
 * line keeps them: a temporary file, unlinked as soon as it is open.
 */
const spill: SpillStore = {
  open(_count, recordBytes) {
    const path = Deno.makeTempFileSync({ prefix: "attnround-bench-cache-" });
    const file = Deno.openSync(path, { read: true, write: true });
    Deno.removeSync(path);
    return {
      write(index, bytes) {
        file.seekSync(index * recordBytes, Deno.SeekMode.Start);
        for (let done = 0; done < bytes.length;) done += file.writeSync(bytes.subarray(done));
      },
      read(index, into) {
        file.seekSync(index * recordBytes, Deno.SeekMode.Start);
        for (let done = 0; done < into.length;) {
          const n = file.readSync(into.subarray(done));
          if (!n) throw new Error(`spill file: record ${index} was never written`);
          done += n;
        }
      },
      close: () => file.close(),
    };
  },
};

/** The evaluation images a cell scores on: the test set, or the validation split that options are chosen on. */
export type Split = "test" | "validation";

interface CellOptions {
  setting: string;
  split: Split;
  /** Extra quantize options, `a=1,b.c=x`. */
  set: string;
  method: "attention" | "nearest";
  iterations: number;
  calibration: number;
  batchSize: number;
  evalCount?: number;
  compareCount: number;
  thresholds?: DecodeOptions;
}

async function quantizeCell(model: ZooModel, bytes: Uint8Array, o: CellOptions): Promise<void> {
  const [, w, a] = /^W(\d+)A(\d+)$/.exec(o.setting) ?? [];
  if (!w) throw new Error(`a setting is WnAm, got ${o.setting}`);
  const loaded = loadModel(bytes);
  const feed = feeding(model, o.evalCount, o.split);
  const inputName = feed.input.name;
  const calibration = feed.calibration(o.calibration);

  let at = "start", blocks: number | undefined;
  const blockStart: number[] = [];
  const cpu0 = processUse().cpuSeconds;
  const t0 = performance.now();
  let q: QuantizedModel | undefined;
  const facts: QuantizeFacts = {};
  try {
    const options = withSet<QuantizeOptionsInput>({
      weightBits: Number(w),
      activationBits: Number(a),
      rounding: o.method,
      iterations: o.iterations,
      batchSize: o.batchSize,
      spill,
      onProgress: (p) => {
        if (p.phase === "reconstruct" && blockStart[p.block!] === undefined) {
          blockStart[p.block!] = performance.now();
        }
        const where = p.phase === "reconstruct" ? `reconstruct block ${p.block! + 1}/${p.blocks}` : p.phase;
        blocks = p.blocks ?? blocks;
        if (where !== at) emit({ step: "progress", at: at = where });
      },
    }, o.set);
    q = await quantize(loaded, calibration, options);
    facts.blocks = blocks;
  } catch (e) {
    facts.error = describe(e);
    facts.at = at;
  }
  const t1 = performance.now();
  const use = processUse();
  facts.seconds = (t1 - t0) / 1000;
  if (cpu0 !== undefined && use.cpuSeconds !== undefined) facts.cpuSeconds = use.cpuSeconds - cpu0;
  facts.peakRssMiB = use.peakRssMiB;
  if (blockStart.length) {
    const ends = [...blockStart.slice(1), t1];
    facts.blockSeconds = blockStart.map((s, i) => (ends[i] - s) / 1000);
  }
  emit({ step: "quantize", facts });
  if (!q) return;
  // Chosen on the float model, as the float cell does, when the parent did not pass them.
  const thresholds = model.task === "line-segments"
    ? o.thresholds ?? mlsdThresholds(loaded, feed.input).options
    : undefined;

  // The task metric over the evaluation set; on its first samples, q.run against float, kept for the export check.
  const kept: { x: Tensor; out: Record<string, Tensor> }[] = [];
  try {
    emit({ step: "progress", at: "metric" });
    const comparer = new Comparer(model.task === "classifier", thresholds);
    const scorer = new TaskScorer(model, feed.evaluation.labels, thresholds);
    await forEachSample(
      feed.evaluation,
      feed.evaluation.count,
      feed.maxBatch,
      (x) => q!.run({ [inputName]: x }),
      (i, out, x, truth) => {
        scorer.add(i, out, truth);
        if (i < o.compareCount) kept.push({ x, out });
      },
    );
    for (const { x, out } of kept) comparer.add(out, loaded.run({ [inputName]: x }));
    emit({ step: "metric", metric: scorer.result(), float: comparer.result() });
  } catch (e) {
    emit({ step: "metric", error: describe(e) });
  }

  emit({ step: "progress", at: "export" });
  let runs = false;
  try {
    const { ortNodeRun } = await import("../tests/ort.ts");
    const exported = q.toOnnx();
    const comparer = new Comparer(model.task === "classifier", thresholds);
    for (const { x, out } of kept) {
      const theirs = await ortNodeRun(exported, { [inputName]: x });
      runs = true;
      comparer.add(theirs, out);
    }
    emit({ step: "export", runs, ort: comparer.result() });
  } catch (e) {
    emit({ step: "export", runs, error: describe(e) });
  }
}

// ---------------------------------------------------------------- main

if (import.meta.main) {
  const args = Deno.args;
  const model = selectModels(["--only", flagValue(args, "model")!])[0];
  const bytes = await Deno.readFile(`${zooDir(flagValue(args, "dir"))}/${model.file}`);
  const evalCount = flagValue(args, "eval") ? Number(flagValue(args, "eval")) : undefined;
  const split = (flagValue(args, "split") ?? "test") as Split;
  await init();
  if (args.includes("--float")) {
    try {
      await floatCell(model, bytes, evalCount, split);
    } catch (e) {
      emit({ step: "float", facts: { error: describe(e) } as FloatFacts });
    }
  } else {
    const thresholds = flagValue(args, "thresholds")?.split(",").map(Number);
    await quantizeCell(model, bytes, {
      setting: flagValue(args, "setting")!,
      split,
      set: flagValue(args, "set") ?? "",
      method: flagValue(args, "method") as CellOptions["method"],
      iterations: Number(flagValue(args, "iterations")),
      calibration: Number(flagValue(args, "calibration")),
      batchSize: Number(flagValue(args, "batch")),
      evalCount,
      compareCount: Number(flagValue(args, "compare") ?? 32),
      thresholds: thresholds && { scoreThreshold: thresholds[0], minLength: thresholds[1], topK: 200 },
    });
  }
}
