// Block reconstruction (SPEC §5): minimise the MSE between a block's
// quantized output and the float model's, over the latent weights of its
// layers (and its activation steps, LSQ), with Adam on mini-batches drawn from
// the cached calibration activations. A BlockTrainer advances any number of
// iterations at a time and its whole state (iteration, latents, Adam moments,
// steps, sampler position) can be saved and restored: a resumed run draws the
// same batches and noise and ends with the same weights.
import { addGradients } from "../engine/autodiff.ts";
import { Engine } from "../engine/engine.ts";
import { WasmValue } from "../engine/value.ts";
import { AttnroundError } from "../errors.ts";
import type { Graph } from "../graph/ir.ts";
import { adamStep } from "../kernels/quant-adam.ts";
import {
  adaroundForward,
  adaroundInit,
  adaroundRegularizer,
  attentionInit,
  attentionStochasticForward,
} from "../kernels/quant-round.ts";
import { Tensor } from "../tensor.ts";
import { alloc, f32, free } from "../wasm.ts";
import type { ActivationCache } from "./cache.ts";
import type { ActivationQuantizer, WeightQuantizer } from "./layers.ts";
import { type QuantizeOptions, sigmaAt } from "./options.ts";
import { dropRngName, latentName, LOSS, rngName, SIGMA, stepName, TARGET, trainingGraph } from "./qgraph.ts";

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
  value: number;
  m1: number;
  m2: number;
}

const ADAROUND_WARMUP = 0.2, ADAROUND_LAMBDA = 0.01, BETA_START = 20, BETA_END = 2;

export class BlockTrainer {
  readonly lossEvery: number;
  iteration = 0;
  losses: number[] = [];
  seconds = 0;
  private readonly engine: Engine;
  private readonly gradients: Map<string, string>;
  /** Per layer: its latent, and the float weight, scales and zero points it is rounded against (in wasm). */
  private readonly latents:
    (Trained & { q: WeightQuantizer; seed: number; w: number; s: number; z: number })[];
  private readonly steps: (Trained & { a: ActivationQuantizer; dropSeed: number })[];
  private readonly owned: number[] = [];
  private readonly rounding: "attention" | "adaround";
  private readonly sampler: SampleRng;
  private readonly x: number;
  private readonly t: number;
  private readonly batch: number;

  constructor(
    private readonly block: Graph,
    private readonly blockIndex: number,
    private readonly blocks: number,
    layers: WeightQuantizer[],
    acts: ActivationQuantizer[],
    private readonly inputs: ActivationCache,
    private readonly targets: ActivationCache,
    private readonly o: QuantizeOptions,
  ) {
    this.rounding = o.rounding === "adaround" ? "adaround" : "attention";
    const graph = trainingGraph(block, layers, acts, this.rounding, o.attention.variant, o.activationDrop);
    const wrt = [...layers.map((l) => latentName(l.layer.weight)), ...acts.map((a) => stepName(a.tensor))];
    const withGrads = addGradients(graph, LOSS, wrt);
    this.gradients = withGrads.gradients;
    this.engine = new Engine(withGrads.graph);
    this.lossEvery = Math.max(1, Math.round(o.iterations / 200));
    this.latents = layers.map((q) => {
      const m = q.rowsShape[0], size = q.rows.length;
      const t = this.trained(q.layer.weight, q.rowsShape);
      const w = this.zeroed(size), s = this.zeroed(m), z = this.zeroed(m);
      f32(w, size).set(q.rows);
      f32(s, m).set(q.scale);
      f32(z, m).set(q.zero);
      if (this.rounding === "attention") attentionInit(w, m, size / m, s, z, t.value);
      else adaroundInit(w, m, size / m, s, t.value);
      return { ...t, q, seed: seedFor(o.seed, q.layer.weight), w, s, z };
    });
    this.steps = acts.map((a) => {
      const t = this.trained(a.tensor, [1]);
      f32(t.value, 1)[0] = a.step;
      return { ...t, a, dropSeed: seedFor(o.seed, `${a.tensor} drop`) };
    });
    this.batch = Math.min(o.batchSize, inputs.length);
    this.x = this.zeroed(this.batch * inputs.sampleSize);
    this.t = this.zeroed(this.batch * targets.sampleSize);
    this.sampler = new SampleRng(seedFor(o.seed, `block ${blockIndex}`));
  }

  private zeroed(floats: number): number {
    const ptr = alloc(Math.max(floats, 1) * 4);
    this.owned.push(ptr);
    f32(ptr, floats).fill(0);
    return ptr;
  }

  private trained(name: string, shape: number[]): Trained {
    const size = shape.reduce((a, b) => a * b, 1);
    return { name, size, shape, value: this.zeroed(size), m1: this.zeroed(size), m2: this.zeroed(size) };
  }

  get done(): boolean {
    return this.iteration >= this.o.iterations;
  }

  /** Runs up to `count` iterations, fewer when `deadline` (performance.now() ms) passes first. */
  advance(count: number, deadline = Infinity): void {
    const o = this.o;
    const end = Math.min(o.iterations, this.iteration + count);
    const indices = new Int32Array(this.batch);
    const started = performance.now();
    while (this.iteration < end && performance.now() < deadline) {
      const it = this.iteration;
      if (o.signal?.aborted) {
        throw new AttnroundError(
          "ABORTED",
          `quantization aborted in block ${this.blockIndex + 1} at iteration ${it}`,
        );
      }
      for (let i = 0; i < this.batch; i++) indices[i] = this.sampler.next(this.inputs.length);
      this.inputs.gather(indices, this.x);
      this.targets.gather(indices, this.t);
      const sigma = this.rounding === "attention" ? sigmaAt(o.attention, it, o.iterations) : 0;
      const feeds: Record<string, WasmValue | Tensor> = {
        [this.block.inputs[0].name]: new WasmValue(this.x, [this.batch, ...this.inputs.sampleShape]),
        [TARGET]: new WasmValue(this.t, [this.batch, ...this.targets.sampleShape]),
        [SIGMA]: new Tensor(new Float32Array([sigma]), []),
      };
      for (const l of this.latents) {
        feeds[latentName(l.name)] = new WasmValue(l.value, l.shape);
        if (this.rounding === "attention") {
          // Iteration it reads the layer's Gaussian stream from element it·size on.
          feeds[rngName(l.name)] = new Tensor(
            new BigInt64Array([BigInt(l.seed), BigInt(it) * BigInt(l.size)]),
            [2],
          );
        }
      }
      for (const s of this.steps) {
        feeds[stepName(s.name)] = new WasmValue(s.value, [1]);
        if (o.activationDrop > 0) {
          feeds[dropRngName(s.name)] = new Tensor(new BigInt64Array([BigInt(s.dropSeed), BigInt(it)]), [2]);
        }
      }
      const out = this.engine.runInPlace(feeds);
      const loss = out[LOSS].data[0] as number;
      if (it % this.lossEvery === 0) this.losses.push(loss);
      for (const l of this.latents) {
        const grad = out[this.gradients.get(latentName(l.name))!] as WasmValue | undefined;
        if (!grad) continue;
        if (this.rounding === "adaround" && it >= ADAROUND_WARMUP * o.iterations) {
          const progress = (it - ADAROUND_WARMUP * o.iterations) / ((1 - ADAROUND_WARMUP) * o.iterations);
          const beta = BETA_END + 0.5 * (BETA_START - BETA_END) * (1 + Math.cos(Math.PI * progress));
          adaroundRegularizer(l.value, l.size, beta, ADAROUND_LAMBDA, grad.ptr);
        }
        adamStep(l.value, grad.ptr, l.m1, l.m2, l.size, o.learningRate, 0.9, 0.999, 1e-8, it + 1);
      }
      for (const s of this.steps) {
        const grad = out[this.gradients.get(stepName(s.name))!] as WasmValue | undefined;
        if (!grad) continue;
        adamStep(s.value, grad.ptr, s.m1, s.m2, 1, o.activationLearningRate, 0.9, 0.999, 1e-8, it + 1);
        const step = f32(s.value, 1);
        step[0] = Math.max(step[0], 1e-8);
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

  state(): TrainerState {
    const tensors: TrainerState["tensors"] = {};
    for (const t of [...this.latents, ...this.steps]) {
      tensors[t.name] = {
        value: f32(t.value, t.size).slice(),
        m1: f32(t.m1, t.size).slice(),
        m2: f32(t.m2, t.size).slice(),
      };
    }
    return {
      iteration: this.iteration,
      sampler: this.sampler.state,
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
      f32(t.value, t.size).set(saved!.value);
      f32(t.m1, t.size).set(saved!.m1);
      f32(t.m2, t.size).set(saved!.m2);
    }
    this.iteration = s.iteration;
    this.sampler.state = s.sampler;
    this.losses = [...s.losses];
    this.seconds = s.seconds;
  }

  /** Final hard-rounded weights (rows layout, by weight name); writes the learned steps back to the quantizers. */
  finish(): Map<string, Float32Array> {
    for (const s of this.steps) s.a.step = f32(s.value, 1)[0];
    const weights = new Map<string, Float32Array>();
    for (const l of this.latents) {
      const q = l.q, m = q.rowsShape[0], k = l.size / m;
      const out = this.zeroed(l.size);
      if (this.rounding === "attention") {
        attentionStochasticForward(l.value, m, k, l.s, l.z, q.qmin, q.qmax, 0, 0, 0, out, 0);
      } else {
        adaroundForward(l.w, l.value, m, k, l.s, l.z, q.qmin, q.qmax, true, out, 0);
      }
      weights.set(l.name, f32(out, l.size).slice());
    }
    return weights;
  }

  dispose(): void {
    for (const ptr of this.owned) free(ptr);
    this.owned.length = 0;
    this.engine.dispose();
  }
}
