// The quantizer ops that reconstruction inserts into a block (domain
// "attnround"), each with its backward beside it:
// - AttentionRound: latent v (levels) → ŵ, stochastic or expectation (SPEC §4);
// - AdaRound: float weight w and latent α → ŵ (rectified sigmoid, soft);
// - FakeQuantActivation: LSQ fake quantization with a learned step; in
//   training graphs optionally with QDrop (each value skips the quantizer with
//   probability `drop`, drawn afresh every iteration from a Philox stream).
// Weights are in rows layout [R, k]: R channels of one scale each.
import { attrFloat, attrInt, attrString } from "../graph/ir.ts";
import { registerGradients, registerOps, required, TRAINING_DOMAIN, wasmInput } from "../engine/registry.ts";
import { type Value, WasmValue } from "../engine/value.ts";
import { type Drop, dropBelow, lsqBackward, lsqForward, lsqGradScale, NO_DROP } from "../kernels/quant.ts";
import { philoxBlocksWasm } from "../kernels/random.ts";
import {
  adaroundForward,
  attentionExpectedForward,
  attentionStochasticForward,
  roundingBackward,
} from "../kernels/quant-round.ts";

/**
 * Where a training run's part of the mini-batch starts, and how large the whole
 * mini-batch is, in elements of `x` (from the SHARD input [first sample, batch
 * size]; without it, x is the whole mini-batch). QDrop's stream and LSQ's
 * gradient scale follow the whole mini-batch, so a split one trains alike.
 */
function shardOf(x: WasmValue, shard: Value | undefined): { offset: number; total: number } {
  if (!shard) return { offset: 0, total: x.size };
  const [first, batch] = Array.from(shard.data as BigInt64Array, Number);
  const perSample = x.shape[0] > 0 ? x.size / x.shape[0] : 0;
  return { offset: first * perSample, total: batch * perSample };
}

function rows(v: WasmValue): [number, number] {
  const r = v.shape[0];
  return [r, r > 0 ? v.size / r : 0];
}

registerOps(
  {
    /** inputs: v [R, …], scale [R], zero [R], sigma [], rng int64 [2] (seed, counter); outputs: ŵ, dŵ/dv. */
    AttentionRound: (ctx, inputs) => {
      const node = ctx.node;
      const v = wasmInput(node, inputs, 0),
        scale = wasmInput(node, inputs, 1),
        zero = wasmInput(node, inputs, 2);
      const sigma = wasmInput(node, inputs, 3);
      const rng = required(node, inputs, 4).data as BigInt64Array;
      const wHat = ctx.outputF32(v.shape), slope = ctx.outputF32(v.shape);
      const [m, k] = rows(v);
      const qmin = attrInt(node, "qmin", 0), qmax = attrInt(node, "qmax", 0);
      const s = sigma.data[0];
      if (attrString(node, "variant", "stochastic") === "expectation") {
        attentionExpectedForward(v.ptr, m, k, scale.ptr, zero.ptr, qmin, qmax, s, wHat.ptr, slope.ptr);
      } else {
        const seed = Number(rng[0]), counter = Number(rng[1]);
        attentionStochasticForward(
          v.ptr,
          m,
          k,
          scale.ptr,
          zero.ptr,
          qmin,
          qmax,
          s,
          seed,
          counter,
          wHat.ptr,
          slope.ptr,
        );
      }
      return [wHat, slope];
    },
    /** inputs: w [R, …] (float), α (same shape), scale [R], zero [R]; outputs: ŵ, dŵ/dα. */
    AdaRound: (ctx, inputs) => {
      const node = ctx.node;
      const w = wasmInput(node, inputs, 0), alpha = wasmInput(node, inputs, 1);
      const scale = wasmInput(node, inputs, 2), zero = wasmInput(node, inputs, 3);
      const wHat = ctx.outputF32(w.shape), slope = ctx.outputF32(w.shape);
      const [m, k] = rows(w);
      const qmin = attrInt(node, "qmin", 0), qmax = attrInt(node, "qmax", 0);
      adaroundForward(w.ptr, alpha.ptr, m, k, scale.ptr, zero.ptr, qmin, qmax, false, wHat.ptr, slope.ptr);
      return [wHat, slope];
    },
    /**
     * inputs: x, step [1], and with attribute drop > 0 rng int64 [2] (seed,
     * iteration); attributes zero, qmin, qmax, drop. outputs: y, and with drop
     * the drop words (one u32 per value, Philox block (0, iteration) on of key
     * (seed, 0), rounded up to whole blocks).
     */
    FakeQuantActivation: (ctx, inputs) => {
      const node = ctx.node;
      const x = wasmInput(node, inputs, 0), step = wasmInput(node, inputs, 1);
      const y = ctx.outputF32(x.shape);
      const p = attrFloat(node, "drop", 0);
      const { offset } = shardOf(x, inputs[3]);
      let drop: Drop = NO_DROP, words: WasmValue | undefined;
      if (p > 0) {
        const [seed, iteration] = Array.from(required(node, inputs, 2).data as BigInt64Array, Number);
        // One word per element of the whole mini-batch: this shard's start at element `offset`.
        const first = Math.floor(offset / 4), blocks = Math.ceil((offset + x.size) / 4) - first;
        words = ctx.outputF32([blocks * 4]);
        philoxBlocksWasm([seed, 0], [first, iteration, 0, 0], blocks, words.ptr);
        drop = { words: words.ptr + (offset % 4) * 4, below: dropBelow(p) };
      }
      lsqForward(
        x.ptr,
        x.size,
        step.data[0],
        attrInt(node, "zero", 0),
        attrInt(node, "qmin", 0),
        attrInt(node, "qmax", 255),
        y.ptr,
        drop,
      );
      return words ? [y, words] : [y];
    },
  },
  {},
  TRAINING_DOMAIN,
);

function latentGrad(
  ctx: { outputF32(shape: readonly number[]): WasmValue },
  slope: WasmValue,
  dWHat: WasmValue,
): WasmValue {
  const d = ctx.outputF32(slope.shape);
  roundingBackward(dWHat.ptr, slope.ptr, slope.size, d.ptr);
  return d;
}

registerGradients({
  AttentionRound: (ctx, _inputs, [, slope], [dWHat]) => [
    ctx.wants(0) && dWHat ? latentGrad(ctx, slope as WasmValue, dWHat) : undefined,
  ],
  AdaRound: (ctx, _inputs, [, slope], [dWHat]) => [
    undefined,
    ctx.wants(1) && dWHat ? latentGrad(ctx, slope as WasmValue, dWHat) : undefined,
  ],
  FakeQuantActivation: (ctx, inputs, [, words], [dy]) => {
    const node = ctx.node;
    const x = inputs[0] as WasmValue, step = inputs[1] as WasmValue;
    if (!dy) return [undefined, undefined];
    const dx = ctx.outputF32(x.shape);
    const dStep = ctx.wants(1) ? ctx.outputF32(step.shape) : undefined;
    const qmax = attrInt(node, "qmax", 255);
    const { offset, total } = shardOf(x, inputs[3]);
    const g = lsqBackward(
      x.ptr,
      dy.ptr,
      x.size,
      step.data[0],
      attrInt(node, "zero", 0),
      attrInt(node, "qmin", 0),
      qmax,
      dx.ptr,
      lsqGradScale(total, qmax),
      words
        ? { words: (words as WasmValue).ptr + (offset % 4) * 4, below: dropBelow(attrFloat(node, "drop", 0)) }
        : NO_DROP,
    );
    if (dStep) dStep.data[0] = g;
    return [ctx.wants(0) ? dx : undefined, dStep];
  },
}, TRAINING_DOMAIN);
