// quantize(): calibration data → weight and activation quantizers → block by
// block reconstruction (float targets, quantized inputs) → a QuantizedModel
// that runs the simulated-quantized graph, with a report and a fidelity check.
//
// QuantizationRun does the same in slices (advance) and saves its state as
// bytes between them (state / resume), for runtimes with a CPU budget per
// request. The caches of block inputs are not saved: a resumed run rebuilds
// them by replaying the finished blocks, which is deterministic, so it ends
// with the same model as an uninterrupted run.
//
// The forward passes and the reconstruction's shards run on a GraphRunner
// (workers, SPEC §13), one for each call (start, advance, result) that ends
// with it, so that no worker outlives the call that started it.
import { AttnroundError, isOptions } from "../errors.ts";
import type { Graph } from "../graph/ir.ts";
import { WasmBuffer, wasmHeapBytes } from "../kernels/memory.ts";
import { fakeQuantNearest, quantLevels } from "../kernels/quant.ts";
import { Model } from "../model.ts";
import { Engine } from "../engine/engine.ts";
import { TRAINING_DOMAIN } from "../engine/registry.ts";
import { type GraphRunner, runJobs, withRunner } from "../engine/parallel/pool.ts";
import { Tensor } from "../tensor.ts";
import { ActivationCache } from "./cache.ts";
import { type BiasCorrection, biasCorrections, correctableLayers, correctedBias } from "./bias-correction.ts";
import { preflight, type RunPlan, samplesFitting, threadsFitting } from "./preflight.ts";
import { type CalibrationInput, type CalibrationSet, collectCalibration } from "./calibration.ts";
import {
  type ActivationQuantizer,
  planActivationQuantizers,
  planWeightQuantizers,
  type WeightQuantizer,
} from "./layers.ts";
import {
  type ProgressEvent,
  type QuantizeOptions,
  type QuantizeOptionsInput,
  type QuantizeSettings,
  resolveOptions,
  type RuntimeOptions,
  settingsOf,
} from "./options.ts";
import { type Block } from "../graph/partition.ts";
import { type DeployLayers, quantizedGraph, quantizersRead } from "./qgraph.ts";
import { foldedStepCap, planOutputQuantizers } from "./deploy.ts";
import "./ops.ts";
import { BlockTrainer, shardCount, type TrainerState } from "./reconstruct.ts";
import { blockGraph, packedParts } from "../graph/subgraph.ts";
import {
  canonicalBytes,
  type CheckedState,
  checkSavedState,
  decodeState,
  encodeState,
  fingerprint,
} from "./state.ts";
import {
  checkExport,
  type Fidelity,
  measureFidelity,
  type QuantizationReport,
  QuantizedModel,
} from "./quantized-model.ts";
import { fromRows } from "../layout.ts";
import { allocateMixedPrecision } from "./mixed-plan.ts";
import type { MixedAllocation } from "./mixed.ts";

/** Samples used to initialise the activation steps. */
const STEP_INIT_SAMPLES = 256;
/** Values the activation-step search looks at, per quantizer. */
const SEARCH_VALUES = 1 << 18;
const STATE_VERSION = 2;

/** Runs `graph` over every sample of `source` into `sink`, `chunk` samples per run (whatever the threads). */
async function runChunks(
  runner: GraphRunner,
  graph: Graph,
  source: ActivationCache,
  sink: ActivationCache,
  chunk: number,
): Promise<void> {
  const input = graph.inputs[0].name, output = graph.outputs[0].name;
  const handle = await runner.load(graph);
  try {
    await runJobs(
      runner,
      handle,
      Math.ceil(source.length / chunk),
      (j) => {
        const first = j * chunk, n = Math.min(chunk, source.length - first);
        const x = new Float32Array(n * source.sampleSize);
        source.gather(Array.from({ length: n }, (_, i) => first + i), x);
        return { [input]: new Tensor(x, [n, ...source.sampleShape]) };
      },
      [output],
      (j, out) => sink.write(j * chunk, out[output].data as Float32Array),
    );
  } finally {
    runner.unload(handle);
  }
}

/** One activation step search (quant/ops.ts): SEARCH_VALUES values of which `count` are samples, and the bits. */
const SEARCH_GRAPH: Graph = {
  nodes: [{
    name: "search",
    opType: "SearchActivationScale",
    domain: TRAINING_DOMAIN,
    inputs: ["values", "count", "bits"],
    outputs: ["scale_zero"],
    attributes: new Map(),
  }],
  initializers: new Map(),
  inputs: [{ name: "values", dtype: "float32" }, { name: "count", dtype: "int64" }, {
    name: "bits",
    dtype: "int64",
  }],
  outputs: [{ name: "scale_zero" }],
  opset: 13,
};

/**
 * Steps of the activation quantizers from the float model's activations (Lp
 * search). The search costs candidates × values: a strided subsample of at
 * most SEARCH_VALUES values per quantizer sets the step as well as millions
 * would, so only that subsample is kept as the samples stream through. The
 * forward passes and then the searches (one per quantizer, all of the same
 * shape) run on the threads. The same passes measure the channel means of
 * the `means` tensors (bias correction), returned by tensor.
 */
async function initActivationSteps(
  runner: GraphRunner,
  plan: RunPlan,
  acts: ActivationQuantizer[],
  calib: CalibrationSet,
  means: { tensor: string; axis: number }[] = [],
): Promise<Map<string, Float64Array>> {
  if (acts.length === 0 && means.length === 0) return new Map();
  const channelSums = new Map<string, { sums: Float64Array; values: number }>();
  const { graph } = plan;
  const outputs = [...new Set([...acts.map((a) => a.tensor), ...means.map((m) => m.tensor)])];
  const stepsGraph = { ...graph, outputs: outputs.map((name) => ({ name })) };
  const count = Math.min(STEP_INIT_SAMPLES, calib.count);
  const sampleSize = calib.data.length / calib.count;
  const feed = (start: number, n: number) => ({
    [graph.inputs[0].name]: new Tensor(calib.data.slice(start * sampleSize, (start + n) * sampleSize), [
      n,
      ...calib.sampleShape,
    ]),
  });
  // Every quantized tensor stays alive to the end of the run: fewer samples fit than in a plain forward pass.
  const probe = new Engine(stepsGraph);
  let chunk: number;
  try {
    chunk = samplesFitting(plan, probe.plannedMemory(feed(0, 1)).arenaBytes);
  } finally {
    probe.dispose();
  }
  const picked = acts.map(() => ({ values: new Float32Array(SEARCH_VALUES), stride: 0, at: 0, index: 0 }));
  const handle = await runner.load(stepsGraph);
  try {
    await runJobs(
      runner,
      handle,
      Math.ceil(count / chunk),
      (j) => {
        return feed(j * chunk, Math.min(chunk, count - j * chunk));
      },
      outputs,
      (j, out) => {
        const n = Math.min(chunk, count - j * chunk);
        for (const { tensor, axis } of means) addChannelSums(out[tensor], axis, channelSums, tensor);
        acts.forEach((a, i) => {
          const c = out[a.tensor].data as Float32Array, p = picked[i];
          if (j === 0) p.stride = Math.ceil(((c.length / n) * count) / SEARCH_VALUES);
          for (; p.at < c.length; p.at += p.stride) {
            const v = c[p.at];
            if (!Number.isFinite(v)) {
              throw new AttnroundError(
                "INVALID_DATA",
                `the float model's activations at "${a.tensor}" hold NaN or ±Infinity on the calibration data: check the data and the layers before it`,
              );
            }
            p.values[p.index++] = v;
          }
          p.at -= c.length;
        });
      },
    );
  } finally {
    runner.unload(handle);
  }
  const channelMeans = new Map(
    [...channelSums].map((
      [tensor, { sums, values }],
    ) => [tensor, sums.map((v) => v / (values / sums.length))]),
  );
  if (acts.length === 0) return channelMeans;
  const search = await runner.load(SEARCH_GRAPH);
  const int64 = (v: number) => new Tensor(new BigInt64Array([BigInt(v)]), []);
  try {
    await runJobs(
      runner,
      search,
      acts.length,
      (i) => ({
        values: new Tensor(picked[i].values, [SEARCH_VALUES]),
        count: int64(picked[i].index),
        bits: int64(acts[i].bits),
      }),
      ["scale_zero"],
      (i, out) => {
        const [step, zero] = out.scale_zero.data as Float32Array;
        Object.assign(acts[i], { step, zero, ...quantLevels(acts[i].bits, false) });
        // A folded Relu or Clip bounds the step (deploy form).
        acts[i].step = Math.min(step, foldedStepCap(acts[i]) ?? Infinity);
      },
    );
  } finally {
    runner.unload(search);
  }
  return channelMeans;
}

/** Adds a tensor's values to its per-channel sums along `axis` (float64, in the order they come). */
function addChannelSums(
  t: Tensor,
  axis: number,
  into: Map<string, { sums: Float64Array; values: number }>,
  key: string,
): void {
  const channels = t.shape[axis], inner = t.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const entry = into.get(key) ?? { sums: new Float64Array(channels), values: 0 };
  into.set(key, entry);
  const d = t.data as Float32Array;
  for (let i = 0; i < d.length; i += inner) {
    let s = 0;
    for (let j = i; j < i + inner; j++) s += d[j];
    entry.sums[(i / inner) % channels] += s;
  }
  entry.values += d.length;
}

function nearestRows(q: WeightQuantizer): Float32Array {
  const m = q.rowsShape[0], size = q.rows.length;
  const w = WasmBuffer.from(q.rows), s = WasmBuffer.from(q.scale), z = WasmBuffer.from(q.zero);
  try {
    fakeQuantNearest(w.ptr, m, size / m, s.ptr, z.ptr, q.qmin, q.qmax, w.ptr);
    return w.read();
  } finally {
    w.dispose(), s.dispose(), z.dispose();
  }
}

function originalLayout(q: WeightQuantizer, rows: Float32Array): Tensor {
  return new Tensor(fromRows(rows, q.layer.weightShape, q.layer.channelAxis), q.layer.weightShape);
}

/** Calibration samples held back for the fidelity check. */
function holdoutOf(o: QuantizeOptions, calib: CalibrationSet): number {
  return Math.min(o.holdout, Math.floor(calib.count / 4));
}

/** Threads a run uses: as many as asked and its memory budget holds (threadsFitting), for its shards' size. */
function threadsFor(plan: RunPlan, o: QuantizeOptions, trainCount: number): number {
  const batch = Math.max(1, Math.min(o.batchSize, trainCount));
  const shard = Math.ceil(batch / shardCount(batch, plan.trainingSamples));
  return threadsFitting(plan, o.threads, shard, o.memoryBudget);
}

interface SavedState {
  version: number;
  fingerprint: string;
  settings: QuantizeSettings;
  block: number;
  steps: Record<string, number>;
  finalRows: Record<string, Float32Array>;
  reports: QuantizationReport["blocks"];
  trainer?: TrainerState;
}

/** What a resumed run takes besides its saved settings: the caller's runtime hooks. */
export type RunCallbacks = RuntimeOptions;

export class QuantizationRun {
  private block = 0;
  private trainer?: BlockTrainer;
  private floatIn: ActivationCache;
  private quantIn: ActivationCache;
  private targets?: ActivationCache;
  private readonly finalRows = new Map<string, Float32Array>();
  /** With biasCorrection, each corrected layer's correction, by weight name (set by calibrate). */
  private readonly corrections = new Map<string, BiasCorrection>();
  private readonly reports: QuantizationReport["blocks"] = [];
  private readonly trainCount: number;
  private readonly started = performance.now();
  private finished?: QuantizedModel;
  /** Largest total of the activation caches alive at once, in bytes. */
  private peakCacheBytes = 0;
  /** The workers its calls share while sharing() runs. */
  private shared?: GraphRunner;

  private constructor(
    private readonly model: Model,
    private readonly calib: CalibrationSet,
    private readonly o: QuantizeOptions,
    private readonly weights: WeightQuantizer[],
    private readonly acts: ActivationQuantizer[],
    private readonly plan: RunPlan,
    private readonly fingerprint: string,
    /** Threads its work runs on. */
    private readonly threads: number,
    /** The mixed-precision allocation, if one was asked for. */
    private readonly mixed?: MixedAllocation,
  ) {
    this.trainCount = calib.count - this.holdout;
    this.floatIn = this.cache(calib.sampleShape);
    this.floatIn.write(0, calib.data.subarray(0, this.trainCount * this.sampleSize));
    this.quantIn = this.floatIn;
  }

  /** A cache for one tensor of every training sample: in memory, or in a spill file when the plan says so. */
  private cache(sampleShape: readonly number[]): ActivationCache {
    return new ActivationCache(sampleShape, this.trainCount, {
      spill: this.plan.spill ? this.o.spill : undefined,
    });
  }

  private get holdout(): number {
    return holdoutOf(this.o, this.calib);
  }

  private get sampleSize(): number {
    return this.calib.data.length / this.calib.count;
  }

  /** Prepares a run: checks options and data, plans the quantizers and blocks, sets the activation steps. */
  static async start(
    model: Model,
    calibration: CalibrationInput,
    options: QuantizeOptionsInput = {},
  ): Promise<QuantizationRun> {
    const run = await QuantizationRun.prepare(model, calibration, options);
    await run.calibrate();
    return run;
  }

  /** @internal The run's plan, before any work on its data (its activation steps are not set). */
  static async prepare(
    model: Model,
    calibration: CalibrationInput,
    options: QuantizeOptionsInput,
  ): Promise<QuantizationRun> {
    if (!(model instanceof Model)) {
      throw new AttnroundError(
        "INVALID_ARGUMENT",
        "quantize takes a Model, as loadModel(onnxBytes) returns it",
      );
    }
    const o = resolveOptions(options);
    checkExport(model, o);
    if (model.graph.inputs.length !== 1) {
      throw new AttnroundError(
        "UNSUPPORTED_MODEL",
        `quantize supports models with one input; this one has ${model.graph.inputs.length}`,
      );
    }
    const calib = await collectCalibration(calibration, model.graph.inputs[0]);
    if (o.signal?.aborted) throw new AttnroundError("ABORTED", "quantization aborted before it started");
    let mixed: ReturnType<typeof allocateMixedPrecision> | undefined;
    if (o.mixedPrecision) {
      const held = holdoutOf(o, calib), per = calib.data.length / calib.count;
      const samples = new Tensor(calib.data.slice((calib.count - held) * per), [held, ...calib.sampleShape]);
      mixed = allocateMixedPrecision(model, o, samples);
    }
    const weights = planWeightQuantizers(model.graph, o, mixed?.bits);
    const acts = planActivationQuantizers(weights, o);
    if (o.exportForm === "deploy") planOutputQuantizers(model.graph, weights, acts);
    const plan = preflight(model.graph, calib, weights, acts, o);
    const threads = threadsFor(plan, o, calib.count - holdoutOf(o, calib));
    const print = fingerprint(canonicalBytes(settingsOf(o)), calib.data, ...weights.map((q) => q.rows));
    return new QuantizationRun(model, calib, o, weights, acts, plan, print, threads, mixed?.report);
  }

  /**
   * @internal Sets the activation quantizers' steps from the float model's
   * activations, and with biasCorrection the corrected layers' input means.
   */
  async calibrate(): Promise<void> {
    this.o.onProgress?.({ phase: "calibrate" });
    const corrected = this.o.biasCorrection ? correctableLayers(this.plan.graph, this.weights) : [];
    const inputs = new Map(corrected.map((l) => [l.input, { tensor: l.input, axis: l.axis }]));
    const means = await this.work((runner) =>
      initActivationSteps(runner, this.plan, this.acts, this.calib, [...inputs.values()])
    );
    for (const c of biasCorrections(corrected, means)) this.corrections.set(c.q.layer.weight, c);
  }

  /** The layers' final weights (their own layout) and, where corrected, their biases, by tensor name. */
  private finalTensors(
    layers: WeightQuantizer[],
    biases = this.correctedBiases(layers),
  ): Map<string, Tensor> {
    const out = new Map(
      layers.map((q) => [q.layer.weight, originalLayout(q, this.finalRows.get(q.layer.weight)!)]),
    );
    for (const [name, values] of biases) {
      out.set(name, new Tensor(values, [values.length]));
    }
    return out;
  }

  /** The corrected layers' biases for their final weights, by bias name. */
  private correctedBiases(layers: WeightQuantizer[]): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const q of layers) {
      const c = this.corrections.get(q.layer.weight);
      if (c) out.set(c.bias.name, correctedBias(c, this.finalRows.get(q.layer.weight)!));
    }
    return out;
  }

  /**
   * Runs `use` on the run's workers: those of an enclosing sharing() call, or
   * else ones started for it, which end when it settles.
   */
  private work<T>(use: (runner: GraphRunner) => Promise<T>): Promise<T> {
    return this.shared ? use(this.shared) : withRunner(this.threads, use);
  }

  /** @internal Runs `use`, every call it makes on this run sharing one set of workers that ends when it settles. */
  sharing<T>(use: () => Promise<T>): Promise<T> {
    return withRunner(this.threads, async (runner) => {
      this.shared = runner;
      try {
        return await use();
      } finally {
        this.shared = undefined;
      }
    });
  }

  /** Continues a run from `state()` bytes, with the same model and calibration data. */
  static async resume(
    model: Model,
    calibration: CalibrationInput,
    state: Uint8Array,
    callbacks: RunCallbacks = {},
  ): Promise<QuantizationRun> {
    if (!(model instanceof Model)) {
      throw new AttnroundError(
        "INVALID_ARGUMENT",
        "resume takes a Model, as loadModel(onnxBytes) returns it",
      );
    }
    if (!(state instanceof Uint8Array)) {
      throw new AttnroundError("INVALID_ARGUMENT", "resume takes the bytes that run.state() returned");
    }
    const extra = isOptions(callbacks)
      ? Object.keys(callbacks ?? {}).find((k) => !["onProgress", "signal", "spill", "threads"].includes(k))
      : "";
    if (extra !== undefined) {
      throw new AttnroundError(
        "INVALID_ARGUMENT",
        `resume takes { onProgress, signal, spill, threads } beside the state${
          extra ? `, not "${extra}"` : ""
        }: the settings come from the state`,
      );
    }
    const saved = checkSavedState(decodeState(state), STATE_VERSION);
    try {
      resolveOptions(saved.settings as QuantizeOptionsInput);
    } catch (e) {
      if (!(e instanceof AttnroundError)) throw e;
      throw new AttnroundError(
        "INVALID_DATA",
        `the saved quantization state has invalid settings: ${e.message}`,
      );
    }
    const run = await QuantizationRun.prepare(model, calibration, { ...saved.settings, ...callbacks });
    if (run.fingerprint !== saved.fingerprint) {
      run.dispose();
      throw new AttnroundError(
        "INVALID_DATA",
        "the saved state belongs to another model, calibration set or settings: resume with the ones it was made with",
      );
    }
    try {
      await run.sharing(async () => {
        await run.calibrate();
        await run.restore(saved);
      });
    } catch (e) {
      run.dispose();
      throw e;
    }
    return run;
  }

  /** Takes over a checked state's progress: its fields are checked against this run first. */
  private async restore(saved: CheckedState): Promise<void> {
    const invalid = (why: string) => {
      throw new AttnroundError("INVALID_DATA", `the saved quantization state is invalid: ${why}`);
    };
    const blocks = this.plan.blocks.length;
    if (saved.block > blocks) invalid(`it is at block ${saved.block} of a run of ${blocks}`);
    if (saved.reports.length !== saved.block) {
      invalid(`it has ${saved.reports.length} block reports for ${saved.block} finished blocks`);
    }
    saved.reports.forEach((r, i) => {
      if (r.index !== this.plan.blocks[i].index) invalid(`report ${i} is of block ${r.index}`);
    });
    const tensors = new Set(this.acts.map((a) => a.tensor));
    for (const tensor of new Set([...tensors, ...Object.keys(saved.steps)])) {
      if (!tensors.has(tensor) || !Object.hasOwn(saved.steps, tensor)) {
        invalid(`its activation steps do not match the run's (at "${tensor}")`);
      }
    }
    const finished = new Map(
      this.weights.filter((q) =>
        this.plan.blocks.slice(0, saved.block).some((b) => b.nodes.includes(q.layer.node))
      )
        .map((q) => [q.layer.weight, q.rows.length]),
    );
    for (const weight of new Set([...finished.keys(), ...Object.keys(saved.finalRows)])) {
      const rows = Object.hasOwn(saved.finalRows, weight) ? saved.finalRows[weight] : undefined;
      if (!finished.has(weight) || rows?.length !== finished.get(weight)) {
        invalid(`its final weights do not match the finished blocks' (at "${weight}")`);
      }
    }
    if (saved.trainer && saved.block >= blocks) invalid("it has a trainer after the last block");

    for (const a of this.acts) a.step = saved.steps[a.tensor];
    for (const [name, rows] of Object.entries(saved.finalRows)) this.finalRows.set(name, rows);
    this.reports.push(...(saved.reports as QuantizationReport["blocks"]));
    // Rebuild the block inputs by replaying the finished blocks.
    await this.work(async (runner) => {
      while (this.block < saved.block) {
        await this.enterBlock(runner, false);
        await this.finishBlock(runner);
      }
      if (saved.trainer) await this.enterBlock(runner);
    });
    if (saved.trainer) {
      if (!this.trainer) invalid(`it has a trainer for block ${this.block + 1}, which is not reconstructed`);
      this.trainer!.restore(saved.trainer as TrainerState);
    }
  }

  get done(): boolean {
    return this.block >= this.plan.blocks.length;
  }

  /** Progress as a fraction of the reconstruction iterations of all blocks. */
  get progress(): number {
    const perBlock = Math.max(this.o.iterations, 1);
    return Math.min(
      1,
      (this.block * perBlock + (this.trainer?.iteration ?? 0)) / (this.plan.blocks.length * perBlock),
    );
  }

  /**
   * Works until the run is finished or the limit is reached (checked between
   * iterations; at least one iteration is made); resolves to whether it is
   * finished. Its workers end with it.
   */
  advance(limit: { milliseconds?: number } = {}): Promise<boolean> {
    const deadline = performance.now() + (limit.milliseconds ?? Infinity);
    return this.work(async (runner) => {
      for (let first = true; !this.done && (first || performance.now() < deadline); first = false) {
        if (this.o.signal?.aborted) {
          throw new AttnroundError("ABORTED", `quantization aborted in block ${this.block + 1}`);
        }
        if (!this.targets) await this.enterBlock(runner);
        if (this.trainer && !this.trainer.done) {
          await this.trainer.advance(runner, this.o.iterations, deadline);
          if (!this.trainer.done) break;
        }
        await this.finishBlock(runner);
      }
      return this.done;
    });
  }

  /** The run's state as bytes; `QuantizationRun.resume` continues from it. */
  state(): Uint8Array {
    const settings = settingsOf(this.o);
    const saved: SavedState = {
      version: STATE_VERSION,
      fingerprint: this.fingerprint,
      settings,
      block: this.block,
      steps: Object.fromEntries(this.acts.map((a) => [a.tensor, a.step])),
      finalRows: Object.fromEntries(this.finalRows),
      reports: this.reports,
      trainer: this.trainer?.state(),
    };
    return encodeState(saved);
  }

  /** The quantized model, once `advance` has resolved to true; checks its fidelity first. */
  async result(): Promise<QuantizedModel> {
    if (!this.done) {
      throw new AttnroundError(
        "INVALID_ARGUMENT",
        "the run is not finished: call advance() until it returns true",
      );
    }
    if (this.finished) return this.finished;
    const graph = this.plan.graph, biases = this.correctedBiases(this.weights);
    const quantized = new QuantizedModel(
      this.model,
      quantizedGraph(graph, this.finalTensors(this.weights, biases), this.acts, this.deploy(this.weights)),
      this.weights,
      this.finalRows,
      this.acts,
      biases,
    );
    let fidelity: Fidelity | undefined;
    if (this.holdout > 0) {
      this.o.onProgress?.({ phase: "evaluate" } as ProgressEvent);
      const held = new Tensor(this.calib.data.slice(this.trainCount * this.sampleSize), [
        this.holdout,
        ...this.calib.sampleShape,
      ]);
      fidelity = await this.work((runner) =>
        measureFidelity(runner, graph, quantized.graph, held, this.plan.forwardSamples)
      );
    }
    quantized.report = quantized.buildReport(
      this.o,
      this.reports,
      fidelity,
      (performance.now() - this.started) / 1000,
      {
        peakCacheBytes: this.peakCacheBytes,
        wasmHeapBytes: wasmHeapBytes(),
        forwardSamples: this.plan.forwardSamples,
        trainingSamples: this.plan.trainingSamples,
        sampleBySample: this.plan.sampleBySample,
      },
      this.mixed,
    );
    this.finished = quantized;
    this.disposeCaches();
    return quantized;
  }

  private current(): { block: Block; graph: Graph; layers: WeightQuantizer[]; acts: ActivationQuantizer[] } {
    const block = this.plan.blocks[this.block];
    const layers = this.weights.filter((q) => block.nodes.includes(q.layer.node));
    const acts = quantizersRead(block.nodes, layers, this.acts, this.o.exportForm === "deploy");
    return { block, graph: blockGraph(this.plan.graph, block), layers, acts };
  }

  /** In the deploy form, the layers whose arithmetic the simulated graph follows. */
  private deploy(layers: WeightQuantizer[]): DeployLayers | undefined {
    return this.o.exportForm === "deploy" ? { layers, rows: this.finalRows } : undefined;
  }

  /** Float targets of the current block, and (with `train`) its trainer when it is reconstructed. */
  private async enterBlock(runner: GraphRunner, train = true): Promise<void> {
    const { block, graph, layers, acts } = this.current();
    const parts = packedParts(block);
    const floatEngine = new Engine({
      ...graph,
      outputs: [...graph.outputs, ...parts.map((name) => ({ name }))],
    });
    let partSizes: number[];
    try {
      const probe = floatEngine.run({
        [block.inputs[0]]: new Tensor(new Float32Array(this.floatIn.sampleSize), [
          1,
          ...this.floatIn.sampleShape,
        ]),
      });
      this.targets = this.cache(probe[graph.outputs[0].name].shape.slice(1));
      partSizes = parts.map((name) => probe[name].size);
    } finally {
      floatEngine.dispose();
    }
    await runChunks(runner, graph, this.floatIn, this.targets, this.plan.forwardSamples);
    const reconstructed = this.o.rounding !== "nearest" && this.o.iterations > 0 &&
      (layers.length > 0 || acts.length > 0);
    if (train && reconstructed) {
      this.trainer = new BlockTrainer(
        graph,
        block.index,
        this.plan.blocks.length,
        layers,
        acts,
        this.quantIn,
        this.targets,
        this.o,
        this.plan.trainingSamples,
        partSizes,
        layers.flatMap((q) => this.corrections.get(q.layer.weight) ?? []),
      );
    }
  }

  /** Fixes the current block's weights, runs the quantized block to make the next block's inputs. */
  private async finishBlock(runner: GraphRunner): Promise<void> {
    if (!this.targets) await this.enterBlock(runner);
    const { block, graph, layers, acts } = this.current();
    const trained = this.trainer?.finish();
    for (const q of layers) {
      if (!this.finalRows.has(q.layer.weight)) {
        this.finalRows.set(q.layer.weight, trained?.get(q.layer.weight) ?? nearestRows(q));
      }
    }
    const quantOut = this.cache(this.targets!.sampleShape);
    await runChunks(
      runner,
      quantizedGraph(graph, this.finalTensors(layers), acts, this.deploy(layers)),
      this.quantIn,
      quantOut,
      this.plan.forwardSamples,
    );
    const live = new Set([this.floatIn, this.quantIn, this.targets!, quantOut]);
    this.peakCacheBytes = Math.max(this.peakCacheBytes, [...live].reduce((n, c) => n + c.byteLength, 0));
    if (this.reports.length <= this.block) {
      this.reports.push({
        index: block.index,
        layers: layers.map((q) => q.layer.name),
        losses: this.trainer?.losses ?? [],
        lossEvery: this.trainer?.lossEvery ?? 1,
        msPerIteration: this.trainer && this.trainer.iteration > 0
          ? (1000 * this.trainer.seconds) / this.trainer.iteration
          : 0,
      });
    }
    this.trainer?.dispose();
    this.trainer = undefined;
    if (this.quantIn !== this.floatIn) this.quantIn.dispose();
    this.floatIn.dispose();
    this.floatIn = this.targets!;
    this.quantIn = quantOut;
    this.targets = undefined;
    this.block++;
  }

  private disposeCaches(): void {
    this.trainer?.dispose();
    this.targets?.dispose();
    if (this.quantIn !== this.floatIn) this.quantIn.dispose();
    this.floatIn.dispose();
  }

  /** Frees the run's memory without finishing it. */
  dispose(): void {
    this.disposeCaches();
  }
}

/**
 * Quantizes `model` on `calibration` (SPEC §3–§6). A single calibration tensor
 * is read in place, not copied: leave its data unchanged while the run lasts.
 */
export async function quantize(
  model: Model,
  calibration: CalibrationInput,
  options: QuantizeOptionsInput = {},
): Promise<QuantizedModel> {
  const run = await QuantizationRun.prepare(model, calibration, options);
  try {
    // One set of workers for the whole run.
    return await run.sharing(async () => {
      await run.calibrate();
      await run.advance();
      return await run.result();
    });
  } catch (e) {
    run.dispose();
    throw e;
  }
}
