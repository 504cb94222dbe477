// Block reconstruction (SPEC §5): minimise the MSE between a block's
// quantized output and the float model's, over the latent weights of its
// layers (and its activation steps, LSQ), with Adam on mini-batches drawn from
// the cached calibration activations.
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
import { latentName, LOSS, rngName, SIGMA, stepName, TARGET, trainingGraph } from "./qgraph.ts";

/** Deterministic uniform integers (splitmix32 → xorshift-multiply), the same in every runtime. */
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

/** A 32-bit hash of the run seed and a label, for per-layer streams. */
export function seedFor(seed: number, label: string): number {
  let h = (seed ^ 0x811c9dc5) >>> 0;
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

interface Trained {
  q: WeightQuantizer;
  latent: number;
  m1: number;
  m2: number;
  size: number;
  seed: number;
}

export interface BlockResult {
  /** Final fake-quantized weights, rows layout, per layer (by weight name). */
  weights: Map<string, Float32Array>;
  /** Loss every `lossEvery` iterations. */
  losses: number[];
  lossEvery: number;
  msPerIteration: number;
}

const ADAROUND_WARMUP = 0.2, ADAROUND_LAMBDA = 0.01, BETA_START = 20, BETA_END = 2;

export function reconstructBlock(args: {
  block: Graph;
  blockIndex: number;
  blocks: number;
  layers: WeightQuantizer[];
  acts: ActivationQuantizer[];
  inputs: ActivationCache;
  targets: ActivationCache;
  options: QuantizeOptions;
}): BlockResult {
  const { block, layers, acts, inputs, targets, options: o } = args;
  const rounding = o.rounding === "adaround" ? "adaround" : "attention";
  const graph = trainingGraph(block, layers, acts, rounding, o.attention.variant);
  const wrt = [...layers.map((l) => latentName(l.layer.weight)), ...acts.map((a) => stepName(a.tensor))];
  const { graph: withGrads, gradients } = addGradients(graph, LOSS, wrt);
  const engine = new Engine(withGrads);
  const owned: number[] = [];
  const allocZeroed = (floats: number) => {
    const ptr = alloc(floats * 4);
    owned.push(ptr);
    f32(ptr, floats).fill(0);
    return ptr;
  };
  try {
    const trained: Trained[] = layers.map((q) => {
      const size = q.rows.length, m = q.rowsShape[0], k = size / m;
      const latent = allocZeroed(size), w = allocZeroed(size), s = allocZeroed(m), z = allocZeroed(m);
      f32(w, size).set(q.rows);
      f32(s, m).set(q.scale);
      f32(z, m).set(q.zero);
      if (rounding === "attention") attentionInit(w, m, k, s, z, latent);
      else adaroundInit(w, m, k, s, latent);
      return {
        q,
        latent,
        m1: allocZeroed(size),
        m2: allocZeroed(size),
        size,
        seed: seedFor(o.seed, q.layer.weight),
      };
    });
    const steps = acts.map((a) => {
      const ptr = allocZeroed(1);
      f32(ptr, 1)[0] = a.step;
      return { a, ptr, m1: allocZeroed(1), m2: allocZeroed(1) };
    });
    const batch = Math.min(o.batchSize, inputs.length);
    const inputName = block.inputs[0].name;
    const x = allocZeroed(batch * inputs.sampleSize), t = allocZeroed(batch * targets.sampleSize);
    const rng = new SampleRng(seedFor(o.seed, `block ${args.blockIndex}`));
    const indices = new Int32Array(batch);
    const losses: number[] = [];
    const lossEvery = Math.max(1, Math.round(o.iterations / 200));
    const start = performance.now();
    for (let it = 0; it < o.iterations; it++) {
      if (o.signal?.aborted) {
        throw new AttnroundError(
          "ABORTED",
          `quantization aborted in block ${args.blockIndex + 1} at iteration ${it}`,
        );
      }
      for (let i = 0; i < batch; i++) indices[i] = rng.next(inputs.length);
      inputs.gather(indices, x);
      targets.gather(indices, t);
      const feeds: Record<string, WasmValue | Tensor> = {
        [inputName]: new WasmValue(x, [batch, ...inputs.sampleShape]),
        [TARGET]: new WasmValue(t, [batch, ...targets.sampleShape]),
        [SIGMA]: new Tensor(
          new Float32Array([rounding === "attention" ? sigmaAt(o.attention, it, o.iterations) : 0]),
          [],
        ),
      };
      for (const l of trained) {
        feeds[latentName(l.q.layer.weight)] = new WasmValue(l.latent, l.q.rowsShape);
        if (rounding === "attention") {
          feeds[rngName(l.q.layer.weight)] = new Tensor(
            new BigInt64Array([BigInt(l.seed), BigInt(it) * BigInt(l.size)]),
            [2],
          );
        }
      }
      for (const s of steps) feeds[stepName(s.a.tensor)] = new WasmValue(s.ptr, [1]);
      const out = engine.runInPlace(feeds);
      const loss = out[LOSS].data[0] as number;
      if (it % lossEvery === 0) losses.push(loss);
      for (const l of trained) {
        const grad = out[gradients.get(latentName(l.q.layer.weight))!] as WasmValue | undefined;
        if (!grad) continue;
        if (rounding === "adaround" && it >= ADAROUND_WARMUP * o.iterations) {
          const progress = (it - ADAROUND_WARMUP * o.iterations) / ((1 - ADAROUND_WARMUP) * o.iterations);
          const beta = BETA_END + 0.5 * (BETA_START - BETA_END) * (1 + Math.cos(Math.PI * progress));
          adaroundRegularizer(l.latent, l.size, beta, ADAROUND_LAMBDA, grad.ptr);
        }
        adamStep(l.latent, grad.ptr, l.m1, l.m2, l.size, o.learningRate, 0.9, 0.999, 1e-8, it + 1);
      }
      for (const s of steps) {
        const grad = out[gradients.get(stepName(s.a.tensor))!] as WasmValue | undefined;
        if (!grad) continue;
        adamStep(s.ptr, grad.ptr, s.m1, s.m2, 1, o.activationLearningRate, 0.9, 0.999, 1e-8, it + 1);
        const step = f32(s.ptr, 1);
        step[0] = Math.max(step[0], 1e-8);
      }
      if (o.onProgress && (it % 10 === 0 || it === o.iterations - 1)) {
        o.onProgress({
          phase: "reconstruct",
          block: args.blockIndex,
          blocks: args.blocks,
          iteration: it + 1,
          iterations: o.iterations,
          loss,
        });
      }
    }
    const msPerIteration = o.iterations > 0 ? (performance.now() - start) / o.iterations : 0;
    for (const s of steps) s.a.step = f32(s.ptr, 1)[0];
    const weights = new Map<string, Float32Array>();
    for (const l of trained) {
      const m = l.q.rowsShape[0], k = l.size / m;
      const w = allocZeroed(l.size), s = allocZeroed(m), z = allocZeroed(m), out = allocZeroed(l.size);
      f32(w, l.size).set(l.q.rows);
      f32(s, m).set(l.q.scale);
      f32(z, m).set(l.q.zero);
      if (rounding === "attention") {
        attentionStochasticForward(l.latent, m, k, s, z, l.q.qmin, l.q.qmax, 0, 0, 0, out, 0);
      } else adaroundForward(w, l.latent, m, k, s, z, l.q.qmin, l.q.qmax, true, out, 0);
      weights.set(l.q.layer.weight, f32(out, l.size).slice());
    }
    return { weights, losses, lossEvery, msPerIteration };
  } finally {
    for (const ptr of owned) free(ptr);
    engine.dispose();
  }
}
