// Block reconstruction (SPEC §5): minimise the MSE between a block's
// quantized output and the float model's, over the latent weights of its
// layers (and its activation steps, LSQ), with Adam on mini-batches drawn from
// the cached calibration activations. A BlockTrainer advances any number of
// iterations at a time and its whole state (iteration, latents, Adam moments,
// steps, sampler position) can be saved and restored: a resumed run draws the
// same batches and noise and ends with the same weights.
//
// Each mini-batch is split into a fixed number of shards, whatever the number
// of threads (SPEC §13): the shards' losses and gradients are computed by a
// GraphRunner (workers, or this thread) and summed here in shard order, then
// Adam steps here. The result therefore depends on the shard count, never on
// the threads.
import { addGradients } from "../engine/autodiff.ts";
import { AttnroundError } from "../errors.ts";
import type { Graph } from "../graph/ir.ts";
import { WasmBuffer } from "../kernels/memory.ts";
import type { Feeds, GraphRunner } from "../engine/parallel/pool.ts";
import { adamStep } from "../kernels/quant-adam.ts";
import {
  adaroundForward,
  adaroundInit,
  adaroundRegularizer,
  attentionExpectedForward,
  attentionInit,
  attentionStochasticForward,
  roundingBackward,
} from "../kernels/quant-round.ts";
import { Tensor } from "../tensor.ts";
import type { BiasCorrection } from "./bias-correction.ts";
import type { ActivationCache } from "./cache.ts";
import type { ActivationQuantizer, WeightQuantizer } from "./layers.ts";
import { type QuantizeOptions, sigmaAt } from "./options.ts";
import { foldedStepCap } from "./deploy.ts";
import { dropRngName, LOSS, roundedInput, SHARD, stepName, TARGET, trainingGraph } from "./qgraph.ts";

/** Deterministic uniform integers (a splitmix32-style counter hash), the same in every runtime. */
export class SampleRng {
  constructor(public state: number) {}
  next(limit: number): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    z = (z ^ (z >>> 16)) >>> 0;
    return Math.floor((z / 4294967296) * limit);
  }
}

/** A 32-bit hash (FNV-1a) of the run seed and a label, for per-layer and per-block streams. */
export function seedFor(seed: number, label: string): number {
  let h = (seed ^ 0x811c9dc5) >>> 0;
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/**
 * Per packed output value, the weight that makes each output of a block count
 * alike in its loss: the loss becomes the mean over outputs of each output's
 * MSE over its float targets' mean square. Unweighed, a detector's box
 * offsets in pixels would outweigh its scores by millions.
 */
export function partWeights(targets: ActivationCache, sizes: readonly number[]): Float32Array {
  const squares = new Float64Array(sizes.length);
  for (let i = 0; i < targets.length; i++) {
    const t = targets.read(i);
    for (let part = 0, at = 0; part < sizes.length; at += sizes[part++]) {
      for (let k = at; k < at + sizes[part]; k++) squares[part] += t[k] * t[k];
    }
  }
  const total = sizes.reduce((a, b) => a + b, 0);
  const weights = new Float32Array(total);
  for (let part = 0, at = 0; part < sizes.length; at += sizes[part++]) {
    // An output that is zero on every sample is left at its plain MSE.
    const meanSquare = squares[part] / (targets.length * sizes[part]) || 1;
    weights.fill(Math.sqrt(total / (sizes.length * sizes[part] * meanSquare)), at, at + sizes[part]);
  }
  return weights;
}

/** Everything a trainer needs to continue where it stopped. */
export interface TrainerState {
  iteration: number;
  sampler: number;
  losses: number[];
  seconds: number;
  /** Per trained tensor (latents by weight name, steps by tensor name): value and Adam moments. */
  tensors: Record<string, { value: Float32Array; m1: Float32Array; m2: Float32Array }>;
}

interface Trained {
  name: string;
  size: number;
  shape: number[];
  value: WasmBuffer;
  m1: WasmBuffer;
  m2: WasmBuffer;
}

/**
 * Shards per mini-batch, whatever the number of threads. Eight keep two to
 * eight threads busy and runs of 4 samples at the default batch of 32.
 */
export const SHARDS = 8;

/** Shards of a mini-batch of `batch` samples when one run may hold `most`: SHARDS, or more, at most one per sample. */
export function shardCount(batch: number, most: number): number {
  return Math.max(1, Math.min(batch, Math.max(SHARDS, Math.ceil(batch / Math.max(1, most)))));
}

/** `batch` samples in `count` shards, as equal as they can be: [first sample, count] each. */
export function splitBatch(batch: number, count: number): [number, number][] {
  const shards: [number, number][] = [];
  for (let i = 0, first = 0; i < count; i++) {
    const size = Math.floor(batch / count) + (i < batch % count ? 1 : 0);
    shards.push([first, size]);
    first += size;
  }
  return shards;
}

/** Longest stretch of iterations without letting the event loop turn (timers, signals, messages), in ms. */
const EVENT_LOOP_MS = 100;

const ADAROUND_WARMUP = 0.2, ADAROUND_LAMBDA = 0.01, BETA_START = 20, BETA_END = 2;

export class BlockTrainer {
  readonly lossEvery: number;
  iteration = 0;
  losses: number[] = [];
  seconds = 0;
  /** The block's training graph with its gradients, and the outputs a run returns: the loss and those gradients. */
  private readonly graph: Graph;
  private readonly outputs: string[];
  private readonly gradients: Map<string, string>;
  /** The runner the graph is loaded in, and its handle there. */
  private loaded?: { runner: GraphRunner; handle: number };
  /**
   * Per layer: its latent, the float weight, scales and zero points it is
   * rounded against, and this iteration's rounded weight and its slope dŵ/dv
   * (in wasm); `input` names the rounded weight in the training graph.
   */
  private readonly latents: (Trained & {
    q: WeightQuantizer;
    input: string;
    seed: number;
    w: WasmBuffer;
    s: WasmBuffer;
    z: WasmBuffer;
    rounded: WasmBuffer;
    slope: WasmBuffer;
  })[];
  private readonly steps: (Trained & { a: ActivationQuantizer; dropSeed: number })[];
  private readonly owned: WasmBuffer[] = [];
  private readonly rounding: "attention" | "adaround";
  private readonly sampler: SampleRng;
  private readonly batch: number;
  /** The mini-batch's parts, [first sample, count]: one engine run each. */
  private readonly shards: [number, number][];
  /** Per trained graph input (rounded weight or step), its gradient summed over the shards. */
  private readonly sums = new Map<string, WasmBuffer>();
  /** The next iteration's shard inputs, gathered while this one ran, and the sampler's state before their draw. */
  private prefetched?: { iteration: number; jobs: Feeds[]; samplerBefore: number };

  constructor(
    private readonly block: Graph,
    private readonly blockIndex: number,
    private readonly blocks: number,
    layers: WeightQuantizer[],
    acts: ActivationQuantizer[],
    private readonly inputs: ActivationCache,
    private readonly targets: ActivationCache,
    private readonly o: QuantizeOptions,
    /** The most samples one engine run may hold (memory, or a model that runs sample by sample). */
    maxShard = Infinity,
    /** Values per sample of each output a block packs (packedParts), in packing order. */
    partSizes: number[] = [],
    /** The bias corrections of the block's corrected layers. */
    corrections: BiasCorrection[] = [],
  ) {
    this.rounding = o.rounding === "adaround" ? "adaround" : "attention";
    const graph = trainingGraph(
      block,
      layers,
      acts,
      o.activationDrop,
      o.exportForm === "deploy",
      partSizes.length > 1 ? partWeights(targets, partSizes) : undefined,
      corrections,
    );
    const wrt = [...layers.map(roundedInput), ...acts.map((a) => stepName(a.tensor))];
    const withGrads = addGradients(graph, LOSS, wrt);
    this.gradients = withGrads.gradients;
    this.graph = withGrads.graph;
    const outputs = new Set(this.graph.outputs.map((v) => v.name));
    this.outputs = [LOSS, ...[...this.gradients.values()].filter((name) => outputs.has(name))];
    this.lossEvery = Math.max(1, Math.round(o.iterations / 200));
    this.latents = layers.map((q) => {
      const m = q.rowsShape[0], size = q.rows.length;
      const t = this.trained(q.layer.weight, q.rowsShape);
      const w = this.zeroed(size), s = this.zeroed(m), z = this.zeroed(m);
      w.write(q.rows);
      s.write(q.scale);
      z.write(q.zero);
      if (this.rounding === "attention") attentionInit(w.ptr, m, size / m, s.ptr, z.ptr, t.value.ptr);
      else adaroundInit(w.ptr, m, size / m, s.ptr, t.value.ptr);
      const rounded = this.zeroed(size), slope = this.zeroed(size);
      return {
        ...t,
        q,
        input: roundedInput(q),
        seed: seedFor(o.seed, q.layer.weight),
        w,
        s,
        z,
        rounded,
        slope,
      };
    });
    this.steps = acts.map((a) => {
      const t = this.trained(a.tensor, [1]);
      t.value.f32()[0] = a.step;
      return { ...t, a, dropSeed: seedFor(o.seed, `${a.tensor} drop`) };
    });
    this.batch = Math.min(o.batchSize, inputs.length);
    this.shards = splitBatch(this.batch, shardCount(this.batch, maxShard));
    for (const l of this.latents) this.sums.set(l.input, this.zeroed(l.size));
    for (const a of this.steps) this.sums.set(stepName(a.name), this.zeroed(a.size));
    this.sampler = new SampleRng(seedFor(o.seed, `block ${blockIndex}`));
  }

  private zeroed(floats: number): WasmBuffer {
    const buffer = new WasmBuffer(floats);
    this.owned.push(buffer);
    return buffer;
  }

  private trained(name: string, shape: number[]): Trained {
    const size = shape.reduce((a, b) => a * b, 1);
    return { name, size, shape, value: this.zeroed(size), m1: this.zeroed(size), m2: this.zeroed(size) };
  }

  get done(): boolean {
    return this.iteration >= this.o.iterations;
  }

  /**
   * Runs up to `count` iterations on `runner`, fewer when `deadline`
   * (performance.now() ms) passes first, but at least one: a call always
   * gets on, even when starting its workers took its time. Lets the event
   * loop turn between iterations now and then, so that an AbortSignal can fire.
   */
  async advance(runner: GraphRunner, count: number, deadline = Infinity): Promise<void> {
    const o = this.o;
    const end = Math.min(o.iterations, this.iteration + count);
    const started = performance.now();
    if (this.loaded?.runner !== runner) this.loaded = { runner, handle: await runner.load(this.graph) };
    let turned = performance.now();
    for (let first = true; this.iteration < end && (first || performance.now() < deadline); first = false) {
      if (performance.now() - turned > EVENT_LOOP_MS) {
        await new Promise((resolve) => setTimeout(resolve, 0));
        turned = performance.now();
      }
      const it = this.iteration;
      if (o.signal?.aborted) {
        throw new AttnroundError(
          "ABORTED",
          `quantization aborted in block ${this.blockIndex + 1} at iteration ${it}`,
        );
      }
      const sigma = this.rounding === "attention" ? sigmaAt(o.attention, it, o.iterations) : 0;
      for (const l of this.latents) this.round(l, it, sigma);
      const { loss, gradient } = await this.lossAndGradients(it, it + 1 < end);
      if (it % this.lossEvery === 0) this.losses.push(loss);
      for (const l of this.latents) {
        const grad = gradient(l.input);
        if (grad === undefined) continue;
        // The rounded weight's gradient, summed over the shards, becomes the latent's (in place).
        roundingBackward(grad, l.slope.ptr, l.size, grad);
        if (this.rounding === "adaround" && it >= ADAROUND_WARMUP * o.iterations) {
          const progress = (it - ADAROUND_WARMUP * o.iterations) / ((1 - ADAROUND_WARMUP) * o.iterations);
          const beta = BETA_END + 0.5 * (BETA_START - BETA_END) * (1 + Math.cos(Math.PI * progress));
          adaroundRegularizer(l.value.ptr, l.size, beta, ADAROUND_LAMBDA, grad);
        }
        adamStep(l.value.ptr, grad, l.m1.ptr, l.m2.ptr, l.size, o.learningRate, 0.9, 0.999, 1e-8, it + 1);
      }
      for (const s of this.steps) {
        const grad = gradient(stepName(s.name));
        if (grad === undefined) continue;
        adamStep(
          s.value.ptr,
          grad,
          s.m1.ptr,
          s.m2.ptr,
          1,
          o.activationLearningRate,
          0.9,
          0.999,
          1e-8,
          it + 1,
        );
        const step = s.value.f32();
        step[0] = Math.min(Math.max(step[0], 1e-8), foldedStepCap(s.a) ?? Infinity);
      }
      this.iteration++;
      if (o.onProgress && (it % 10 === 0 || this.iteration === o.iterations)) {
        o.onProgress({
          phase: "reconstruct",
          block: this.blockIndex,
          blocks: this.blocks,
          iteration: this.iteration,
          iterations: o.iterations,
          loss,
        });
      }
    }
    this.seconds += (performance.now() - started) / 1000;
  }

  /**
   * One iteration's loss and gradients over the mini-batch `indices`: one run
   * per shard, the gradients summed in shard order, each weighted by its share
   * of the batch (the loss is a mean over samples). `gradient(input)` gives
   * the address of the summed gradient of a trained graph input (a rounded
   * weight or a step), or undefined when nothing depends on it.
   */
  private async lossAndGradients(it: number, prefetch: boolean) {
    const { runner, handle } = this.loaded!;
    const jobs = this.prefetched?.iteration === it ? this.prefetched.jobs : this.drawJobs();
    this.prefetched = undefined;
    const results = runner.run(handle, this.sharedFeeds(it), jobs, this.outputs);
    // The next iteration's samples do not depend on this one: gather them while the workers run.
    if (prefetch) {
      const samplerBefore = this.sampler.state;
      this.prefetched = { iteration: it + 1, jobs: this.drawJobs(), samplerBefore };
    }
    let loss = 0;
    const seen = new Set<string>();
    for (const [s, result] of results.entries()) {
      const out = await result;
      const share = this.shards[s][1] / this.batch;
      loss += share * (out[LOSS].data[0] as number);
      for (const [input, sum] of this.sums) {
        const grad = out[this.gradients.get(input) ?? ""];
        if (!grad) continue;
        const total = sum.f32(), g = grad.data as Float32Array;
        if (!seen.has(input)) total.fill(0);
        seen.add(input);
        for (let i = 0; i < total.length; i++) total[i] += share * g[i];
      }
    }
    const gradient = (input: string): number | undefined =>
      seen.has(input) ? this.sums.get(input)!.ptr : undefined;
    return { loss, gradient };
  }

  /** Draws a mini-batch and makes each shard's own inputs. */
  private drawJobs(): Feeds[] {
    const indices = new Int32Array(this.batch);
    for (let i = 0; i < this.batch; i++) indices[i] = this.sampler.next(this.inputs.length);
    return this.shards.map(([first, count]) => this.shardFeeds(indices, first, count));
  }

  /** One shard's own inputs: its samples of the block input and of the target, and where it lies in the batch. */
  private shardFeeds(indices: Int32Array, first: number, count: number): Feeds {
    const which = indices.subarray(first, first + count);
    const x = new Float32Array(count * this.inputs.sampleSize);
    const t = new Float32Array(count * this.targets.sampleSize);
    this.inputs.gather(which, x);
    this.targets.gather(which, t);
    const feeds: Feeds = {
      [this.block.inputs[0].name]: new Tensor(x, [count, ...this.inputs.sampleShape]),
      [TARGET]: new Tensor(t, [count, ...this.targets.sampleShape]),
    };
    if (this.steps.length > 0) {
      feeds[SHARD] = new Tensor(new BigInt64Array([BigInt(first), BigInt(this.batch)]), [2]);
    }
    return feeds;
  }

  /** The inputs every shard of iteration `it` shares: the rounded weights, the steps and QDrop's stream positions. */
  private sharedFeeds(it: number): Feeds {
    const feeds: Feeds = {};
    for (const l of this.latents) feeds[l.input] = new Tensor(l.rounded.read(), l.q.rowsShape);
    for (const s of this.steps) {
      feeds[stepName(s.name)] = new Tensor(s.value.read(), [1]);
      if (this.o.activationDrop > 0) {
        feeds[dropRngName(s.name)] = new Tensor(new BigInt64Array([BigInt(s.dropSeed), BigInt(it)]), [2]);
      }
    }
    return feeds;
  }

  /** Iteration `it`'s rounded weight of layer `l` and its slope dŵ/dv, once for all the shards. */
  private round(l: BlockTrainer["latents"][number], it: number, sigma: number): void {
    const q = l.q, m = q.rowsShape[0], k = l.size / m;
    if (this.rounding === "adaround") {
      adaroundForward(
        l.w.ptr,
        l.value.ptr,
        m,
        k,
        l.s.ptr,
        l.z.ptr,
        q.qmin,
        q.qmax,
        false,
        l.rounded.ptr,
        l.slope.ptr,
      );
    } else if (this.o.attention.variant === "expectation") {
      attentionExpectedForward(
        l.value.ptr,
        m,
        k,
        l.s.ptr,
        l.z.ptr,
        q.qmin,
        q.qmax,
        sigma,
        l.rounded.ptr,
        l.slope.ptr,
      );
    } else {
      // Iteration it reads the layer's Gaussian stream from element it·size on.
      attentionStochasticForward(
        l.value.ptr,
        m,
        k,
        l.s.ptr,
        l.z.ptr,
        q.qmin,
        q.qmax,
        sigma,
        l.seed,
        it * l.size,
        l.rounded.ptr,
        l.slope.ptr,
      );
    }
  }

  state(): TrainerState {
    const tensors: TrainerState["tensors"] = {};
    for (const t of [...this.latents, ...this.steps]) {
      tensors[t.name] = {
        value: t.value.read(),
        m1: t.m1.read(),
        m2: t.m2.read(),
      };
    }
    return {
      iteration: this.iteration,
      sampler: this.prefetched?.samplerBefore ?? this.sampler.state,
      losses: [...this.losses],
      seconds: this.seconds,
      tensors,
    };
  }

  restore(s: TrainerState): void {
    const invalid = (why: string) => {
      throw new AttnroundError("INVALID_DATA", `the saved state ${why}`);
    };
    const trained = [...this.latents, ...this.steps];
    for (const name of Object.keys(s.tensors)) {
      if (!trained.some((t) => t.name === name)) {
        invalid(`has values for "${name}", which this block does not train`);
      }
    }
    if (s.iteration > this.o.iterations) invalid(`is at iteration ${s.iteration} of ${this.o.iterations}`);
    if (s.losses.length !== Math.ceil(s.iteration / this.lossEvery)) {
      invalid(`has ${s.losses.length} losses for ${s.iteration} iterations`);
    }
    for (const t of trained) {
      const saved = Object.hasOwn(s.tensors, t.name) ? s.tensors[t.name] : undefined;
      if (!saved || [saved.value, saved.m1, saved.m2].some((v) => v.length !== t.size)) {
        invalid(`has no matching values for "${t.name}"`);
      }
      t.value.write(saved!.value);
      t.m1.write(saved!.m1);
      t.m2.write(saved!.m2);
    }
    this.iteration = s.iteration;
    this.sampler.state = s.sampler;
    this.prefetched = undefined;
    this.losses = [...s.losses];
    this.seconds = s.seconds;
  }

  /** Final hard-rounded weights (rows layout, by weight name); writes the learned steps back to the quantizers. */
  finish(): Map<string, Float32Array> {
    for (const s of this.steps) s.a.step = s.value.f32()[0];
    const weights = new Map<string, Float32Array>();
    for (const l of this.latents) {
      const q = l.q, m = q.rowsShape[0], k = l.size / m;
      const out = this.zeroed(l.size);
      if (this.rounding === "attention") {
        attentionStochasticForward(l.value.ptr, m, k, l.s.ptr, l.z.ptr, q.qmin, q.qmax, 0, 0, 0, out.ptr, 0);
      } else {
        adaroundForward(l.w.ptr, l.value.ptr, m, k, l.s.ptr, l.z.ptr, q.qmin, q.qmax, true, out.ptr, 0);
      }
      weights.set(l.name, out.read());
    }
    return weights;
  }

  dispose(): void {
    for (const buffer of this.owned) buffer.dispose();
    this.owned.length = 0;
    this.loaded?.runner.unload(this.loaded.handle);
    this.loaded = undefined;
  }
}
