// The quantizer op that reconstruction inserts into a block (domain
// "attnround"), with its backward beside it (the weights' rounding runs
// outside the graph, once per iteration: reconstruct.ts):
// - FakeQuantActivation: LSQ fake quantization with a learned step; in
//   training graphs optionally with QDrop (each value skips the quantizer with
//   probability `drop`, drawn afresh every iteration from a Philox stream);
// - QuantizeBias: a bias on the int32 grid of the input step × the weight
//   scales (deploy form); its tiny dependence on the step is not followed.
// And, forward only, the search that sets an activation quantizer's first
// step (SearchActivationScale), an op so that calibration runs its searches
// on the threads (quantize.ts); and the deploy form's quantized Add as
// onnxruntime computes it (RuntimeQuantizedAdd, for q.run: deploy.ts).
import { attrFloat, attrInt } from "../graph/ir.ts";
import {
  opError,
  registerGradients,
  registerOps,
  required,
  TRAINING_DOMAIN,
  wasmInput,
} from "../engine/registry.ts";
import { type Value, WasmValue } from "../engine/value.ts";
import {
  type Drop,
  dropBelow,
  fakeQuantValue,
  lsqBackward,
  lsqForward,
  lsqGradScale,
  NO_DROP,
  searchActivationScale,
} from "../kernels/quant.ts";
import { philoxBlocksWasm } from "../kernels/random.ts";
import { biasLevels, runtimeAdd } from "./deploy.ts";

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

registerOps(
  {
    /**
     * inputs: values float32 [n], count int64 [] (how many of them are samples),
     * bits int64 []; output: [scale, zero] of the activation quantizer the
     * error search finds for those samples.
     */
    SearchActivationScale: (ctx, inputs) => {
      const node = ctx.node;
      const values = wasmInput(node, inputs, 0);
      const count = Number(required(node, inputs, 1).data[0]),
        bits = Number(required(node, inputs, 2).data[0]);
      if (!(count >= 0 && count <= values.size)) {
        throw opError(node, `count ${count} is not within the ${values.size} values`);
      }
      const out = ctx.outputF32([2]);
      const q = searchActivationScale(values.ptr, count, bits);
      out.data.set([q.scale, q.zero]);
      return [out];
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
    /**
     * inputs: sum (the float Add), step [1] of its quantizer, and the Add's two
     * quantized inputs; attributes zero, qmin, qmax (the sum's quantizer) and
     * stepA, zeroA, stepB, zeroB (the inputs'). Output: the quantized sum,
     * from the inputs' levels as onnxruntime's QLinearAdd computes it when
     * they have one shape, else the sum fake-quantized.
     */
    RuntimeQuantizedAdd: (ctx, inputs) => {
      const node = ctx.node;
      const sum = wasmInput(node, inputs, 0), step = wasmInput(node, inputs, 1).data[0];
      const a = wasmInput(node, inputs, 2), b = wasmInput(node, inputs, 3);
      const zero = attrInt(node, "zero", 0),
        qmin = attrInt(node, "qmin", 0),
        qmax = attrInt(node, "qmax", 255);
      const y = ctx.outputF32(sum.shape);
      if (a.size !== sum.size || b.size !== sum.size) {
        for (let i = 0; i < sum.size; i++) y.data[i] = fakeQuantValue(sum.data[i], step, zero, qmin, qmax);
        return [y];
      }
      const gridA = { step: attrFloat(node, "stepA", 1), zero: attrInt(node, "zeroA", 0) };
      const gridB = { step: attrFloat(node, "stepB", 1), zero: attrInt(node, "zeroB", 0) };
      const levels = (v: Float32Array, g: typeof gridA) => v.map((x) => Math.round(x / g.step) + g.zero);
      runtimeAdd(
        levels(a.data, gridA),
        gridA,
        levels(b.data, gridB),
        gridB,
        { step, zero },
        qmin,
        qmax,
        y.data,
      );
      for (let i = 0; i < y.size; i++) y.data[i] = Math.fround(Math.fround(y.data[i] - zero) * step);
      return [y];
    },
    /** inputs: bias [m], input step [1], weight scales [m]; output: the bias on the int32 grid. */
    QuantizeBias: (ctx, inputs) => {
      const node = ctx.node;
      const bias = wasmInput(node, inputs, 0), step = wasmInput(node, inputs, 1);
      const scale = wasmInput(node, inputs, 2);
      const out = ctx.outputF32(bias.shape);
      out.data.set(biasLevels(bias.data, step.data[0], scale.data).values);
      return [out];
    },
  },
  {},
  TRAINING_DOMAIN,
);

function zeros(ctx: { outputF32(shape: readonly number[]): WasmValue }, like: WasmValue): WasmValue {
  const z = ctx.outputF32(like.shape);
  z.data.fill(0);
  return z;
}

registerGradients({
  QuantizeBias: (ctx, inputs) =>
    inputs.map((v, i) => (ctx.wants(i) && v ? zeros(ctx, v as WasmValue) : undefined)),
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
