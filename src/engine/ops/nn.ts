// Neural-network ops: convolutions, matrix products, normalisation, pooling,
// softmax, reductions, and (de)quantization.
import { attrFloat, attrInt, attrInts, attrString, type Node } from "../../graph/ir.ts";
import type { DType } from "../../tensor.ts";
import { gemmAt } from "../../kernels/gemm.ts";
import { globalAveragePool } from "../../kernels/pool.ts";
import { convTranspose2d, convTranspose2dWorkspaceBytes } from "../../kernels/conv-transpose2d.ts";
import { lsqForward, roundHalfEven } from "../../kernels/quant.ts";
import { type Activation, conv2d, type Conv2dParams, conv2dWorkspaceBytes } from "../../kernels/conv2d.ts";
import { opError, opUnsupported, registerOps, required, wasmInput } from "../registry.ts";
import type { OpContext } from "../registry.ts";
import { type Value, WasmValue } from "../value.ts";
import { broadcastIndex, broadcastShapes, normalizeAxis, toNumbers } from "./util.ts";
import { convNd, convTransposeNd, poolNd } from "./spatial-nd.ts";
import { as2d, convParams, spatialGeometry } from "./geometry.ts";
import { FUSED_ACTIVATION, FUSED_DEQUANTIZE, FUSED_MAX, FUSED_MIN } from "../fuse.ts";
import { stridesOf } from "../../layout.ts";

function conv(ctx: OpContext, inputs: (Value | undefined)[]): Value[] {
  if ((inputs[0]?.shape.length ?? 0) > 4) return convNd(ctx, inputs);
  const node = ctx.node;
  const x = wasmInput(node, inputs, 0), w = wasmInput(node, inputs, 1);
  const bias = inputs[2] as WasmValue | undefined;
  const geometry = convParams(node, x, w);
  const spatialOut = x.shape.length === 4 ? [geometry.outH, geometry.outW] : [geometry.outW];
  const y = ctx.outputF32([geometry.n, geometry.m, ...spatialOut]);
  const p: Conv2dParams = {
    ...geometry,
    activation: attrString(node, FUSED_ACTIVATION, "none") as Activation,
    clipMin: attrFloat(node, FUSED_MIN, -Infinity),
    clipMax: attrFloat(node, FUSED_MAX, Infinity),
  };
  conv2d(p, x.ptr, w.ptr, bias?.ptr ?? 0, y.ptr, ctx.scratch(conv2dWorkspaceBytes(p)));
  return [y];
}

function convTranspose(ctx: OpContext, inputs: (Value | undefined)[]): Value[] {
  if ((inputs[0]?.shape.length ?? 0) > 4) return convTransposeNd(ctx, inputs);
  const node = ctx.node;
  const x = wasmInput(node, inputs, 0), w = wasmInput(node, inputs, 1);
  const bias = inputs[2] ? wasmInput(node, inputs, 2) : undefined;
  const p = convParams(node, x, w, true);
  const y = ctx.outputF32([p.n, p.m, ...(x.shape.length === 4 ? [p.outH, p.outW] : [p.outW])]);
  convTranspose2d(p, x.ptr, w.ptr, bias?.ptr ?? 0, y.ptr, ctx.scratch(convTranspose2dWorkspaceBytes(p)));
  return [y];
}

function matmul(ctx: OpContext, inputs: (Value | undefined)[]): Value[] {
  const node = ctx.node;
  const a = wasmInput(node, inputs, 0), b = wasmInput(node, inputs, 1);
  const aShape = a.shape.length === 1 ? [1, a.shape[0]] : [...a.shape];
  const bShape = b.shape.length === 1 ? [b.shape[0], 1] : [...b.shape];
  const [m, k] = aShape.slice(-2), [kb, n] = bShape.slice(-2);
  if (k !== kb) throw opError(node, `inner dimensions differ: [${a.shape}] × [${b.shape}]`);
  const batch = broadcastShapes(node, [aShape.slice(0, -2), bShape.slice(0, -2)]);
  const outShape = [...batch, m, n];
  if (a.shape.length === 1) outShape.splice(outShape.length - 2, 1);
  if (b.shape.length === 1) outShape.splice(outShape.length - 1, 1);
  const y = ctx.outputF32(outShape);
  const ia = broadcastIndex(aShape.slice(0, -2), batch), ib = broadcastIndex(bShape.slice(0, -2), batch);
  for (let i = 0; i < ia.length; i++) {
    gemmAt(
      { transA: false, transB: false, m, n, k, lda: k, ldb: n, ldc: n, accumulate: false },
      a.ptr + ia[i] * m * k * 4,
      b.ptr + ib[i] * k * n * 4,
      y.ptr + i * m * n * 4,
    );
  }
  return [y];
}

function gemm(ctx: OpContext, inputs: (Value | undefined)[]): Value[] {
  const node = ctx.node;
  const a = wasmInput(node, inputs, 0), b = wasmInput(node, inputs, 1), c = inputs[2];
  const transA = attrInt(node, "transA", 0) === 1, transB = attrInt(node, "transB", 0) === 1;
  const alpha = attrFloat(node, "alpha", 1), beta = attrFloat(node, "beta", 1);
  const [m, k] = transA ? [a.shape[1], a.shape[0]] : [a.shape[0], a.shape[1]];
  const [kb, n] = transB ? [b.shape[1], b.shape[0]] : [b.shape[0], b.shape[1]];
  if (k !== kb) throw opError(node, `inner dimensions differ: [${a.shape}] and [${b.shape}]`);
  const y = ctx.outputF32([m, n]);
  gemmAt(
    { transA, transB, m, n, k, lda: a.shape[1], ldb: b.shape[1], ldc: n, accumulate: false },
    a.ptr,
    b.ptr,
    y.ptr,
  );
  const yd = y.data;
  if (alpha !== 1) { for (let i = 0; i < yd.length; i++) yd[i] *= alpha; }
  if (c && beta !== 0) {
    const index = broadcastIndex(c.shape, [m, n]);
    const cd = c.data as Float32Array;
    for (let i = 0; i < yd.length; i++) yd[i] += beta * cd[index[i]];
  }
  return [y];
}

/** Training mode: BatchNormalization's training_mode from opset 14, more than one output before it. */
function batchNormTraining(node: Node, opset: number): boolean {
  return opset >= 14 ? attrInt(node, "training_mode", 0) === 1 : node.outputs.slice(1).some((o) => o !== "");
}

/**
 * BatchNormalization. Training mode normalises with the batch's own per-channel
 * mean and (biased) variance, and also returns the running mean and variance
 * updated with `momentum` (and, before opset 14, the batch mean and variance).
 */
function batchNormalization(ctx: OpContext, inputs: (Value | undefined)[]): Value[] {
  const node = ctx.node;
  const x = wasmInput(node, inputs, 0);
  const params = [1, 2, 3, 4].map((i) => wasmInput(node, inputs, i));
  const eps = attrFloat(node, "epsilon", 1e-5);
  const training = batchNormTraining(node, ctx.opset);
  const c = x.shape[1] ?? 1, inner = x.shape.slice(2).reduce((a, b) => a * b, 1), n = x.shape[0];
  const y = ctx.outputF32(x.shape);
  const stats = training ? node.outputs.slice(1).map(() => ctx.outputF32([c])) : [];
  const [scale, bias, runningMean, runningVar] = params.map((p) => p.data);
  const xd = x.data, yd = y.data;
  let mean: ArrayLike<number> = runningMean, variance: ArrayLike<number> = runningVar;
  if (training) {
    const batchMean = new Float64Array(c), batchVar = new Float64Array(c), count = n * inner;
    for (let ch = 0; ch < c; ch++) {
      let sum = 0;
      for (let img = 0; img < n; img++) {
        const base = (img * c + ch) * inner;
        for (let i = 0; i < inner; i++) sum += xd[base + i];
      }
      const m = sum / count;
      let squares = 0;
      for (let img = 0; img < n; img++) {
        const base = (img * c + ch) * inner;
        for (let i = 0; i < inner; i++) squares += (xd[base + i] - m) ** 2;
      }
      batchMean[ch] = m;
      batchVar[ch] = squares / count;
    }
    const momentum = attrFloat(node, "momentum", 0.9);
    const values = [
      (ch: number) => runningMean[ch] * momentum + batchMean[ch] * (1 - momentum),
      (ch: number) => runningVar[ch] * momentum + batchVar[ch] * (1 - momentum),
      (ch: number) => batchMean[ch],
      (ch: number) => batchVar[ch],
    ];
    stats.forEach((out, k) => {
      const od = out.data;
      for (let ch = 0; ch < c; ch++) od[ch] = values[k](ch);
    });
    mean = batchMean;
    variance = batchVar;
  }
  for (let img = 0; img < n; img++) {
    for (let ch = 0; ch < c; ch++) {
      const s = scale[ch] / Math.sqrt(variance[ch] + eps);
      const t = bias[ch] - mean[ch] * s;
      const base = (img * c + ch) * inner;
      for (let i = 0; i < inner; i++) yd[base + i] = xd[base + i] * s + t;
    }
  }
  return [y, ...stats];
}

function pool(kind: "max" | "average") {
  return (ctx: OpContext, inputs: (Value | undefined)[]): Value[] => {
    if ((inputs[0]?.shape.length ?? 0) > 4) return poolNd(kind, ctx, inputs);
    const node = ctx.node;
    const x = required(node, inputs, 0);
    const rank = x.shape.length;
    if (rank !== 3 && rank !== 4) {
      throw opUnsupported(node, `only 1-D and 2-D pooling is supported (input [${x.shape}])`);
    }
    const kernel = attrInts(node, "kernel_shape");
    if (!kernel) throw opError(node, "kernel_shape is required");
    const geo = spatialGeometry(node, x.shape, kernel, attrInt(node, "ceil_mode", 0) === 1);
    const g = as2d(geo);
    const includePad = attrInt(node, "count_include_pad", 0) === 1;
    const [n, c] = x.shape;
    const [h, w] = rank === 4 ? [x.shape[2], x.shape[3]] : [1, x.shape[2]];
    const [outH, outW] = g.out;
    const y = ctx.output([n, c, ...geo.out], x.dtype);
    const wantIndices = kind === "max" && node.outputs.length > 1 && node.outputs[1] !== "";
    const indices = wantIndices ? ctx.output([n, c, ...geo.out], "int64") : undefined;
    const xd = x.data as Float32Array,
      yd = y.data as Float32Array,
      id = indices?.data as BigInt64Array | undefined;
    const storageColumnMajor = attrInt(node, "storage_order", 0) === 1;
    for (let plane = 0; plane < n * c; plane++) {
      const xBase = plane * h * w, yBase = plane * outH * outW;
      for (let oy = 0; oy < outH; oy++) {
        for (let ox = 0; ox < outW; ox++) {
          let acc = kind === "max" ? -Infinity : 0, count = 0, best = -1;
          for (let ki = 0; ki < g.kernel[0]; ki++) {
            const iy = oy * g.strides[0] - g.pads[0] + ki * g.dilations[0];
            for (let kj = 0; kj < g.kernel[1]; kj++) {
              const ix = ox * g.strides[1] - g.pads[1] + kj * g.dilations[1];
              const inside = iy >= 0 && iy < h && ix >= 0 && ix < w;
              if (kind === "max") {
                if (inside && (xd[xBase + iy * w + ix] > acc || best < 0)) {
                  acc = xd[xBase + iy * w + ix];
                  best = storageColumnMajor ? ix * h + iy : iy * w + ix;
                }
              } else if (inside) {
                acc += xd[xBase + iy * w + ix];
                count++;
              } else if (includePad && iy < h + g.pads[2] && ix < w + g.pads[3]) {
                count++;
              }
            }
          }
          yd[yBase + oy * outW + ox] = kind === "max" ? acc : acc / count;
          if (id) id[yBase + oy * outW + ox] = BigInt(plane * h * w + best);
        }
      }
    }
    return indices ? [y, indices] : [y];
  };
}

function globalPool(kind: "max" | "average") {
  return (ctx: OpContext, inputs: (Value | undefined)[]): Value[] => {
    const x = wasmInput(ctx.node, inputs, 0);
    const [n, c] = x.shape;
    const inner = x.shape.slice(2).reduce((a, b) => a * b, 1);
    const y = ctx.outputF32([n, c, ...x.shape.slice(2).map(() => 1)]);
    if (kind === "average" && inner > 0) {
      globalAveragePool({ n, c, size: inner }, x.ptr, y.ptr);
      return [y];
    }
    const xd = x.data, yd = y.data;
    for (let plane = 0; plane < n * c; plane++) {
      let acc = kind === "max" ? -Infinity : 0;
      for (let i = 0; i < inner; i++) {
        const v = xd[plane * inner + i];
        acc = kind === "max" ? Math.max(acc, v) : acc + v;
      }
      yd[plane] = kind === "max" ? acc : acc / inner;
    }
    return [y];
  };
}

function softmax(log: boolean) {
  return (ctx: OpContext, inputs: (Value | undefined)[]): Value[] => {
    const x = wasmInput(ctx.node, inputs, 0);
    const rank = x.shape.length;
    const axis = normalizeAxis(ctx.node, attrInt(ctx.node, "axis", ctx.opset >= 13 ? -1 : 1), rank);
    // Before opset 13 the input is coerced to 2-D at `axis`; from 13 the op runs along one axis.
    const outer = x.shape.slice(0, axis).reduce((a, b) => a * b, 1);
    const len = ctx.opset >= 13 ? x.shape[axis] : x.shape.slice(axis).reduce((a, b) => a * b, 1);
    const inner = ctx.opset >= 13 ? x.shape.slice(axis + 1).reduce((a, b) => a * b, 1) : 1;
    const y = ctx.outputF32(x.shape);
    const xd = x.data, yd = y.data;
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        const base = o * len * inner + i;
        let max = -Infinity;
        for (let j = 0; j < len; j++) max = Math.max(max, xd[base + j * inner]);
        let sum = 0;
        for (let j = 0; j < len; j++) sum += Math.exp(xd[base + j * inner] - max);
        for (let j = 0; j < len; j++) {
          const v = xd[base + j * inner] - max;
          yd[base + j * inner] = log ? v - Math.log(sum) : Math.exp(v) / sum;
        }
      }
    }
    return [y];
  };
}

type Reducer = {
  init: number;
  step: (acc: number, v: number) => number;
  finish: (acc: number, n: number) => number;
};

const reducers: Record<string, Reducer & { axesInputSince: number }> = {
  ReduceMean: { init: 0, step: (a, v) => a + v, finish: (a, n) => a / n, axesInputSince: 18 },
  ReduceSum: { init: 0, step: (a, v) => a + v, finish: (a) => a, axesInputSince: 13 },
  ReduceMax: { init: -Infinity, step: Math.max, finish: (a) => a, axesInputSince: 18 },
  ReduceMin: { init: Infinity, step: Math.min, finish: (a) => a, axesInputSince: 18 },
  ReduceProd: { init: 1, step: (a, v) => a * v, finish: (a) => a, axesInputSince: 18 },
  ReduceSumSquare: { init: 0, step: (a, v) => a + v * v, finish: (a) => a, axesInputSince: 18 },
  ReduceL2: { init: 0, step: (a, v) => a + v * v, finish: (a) => Math.sqrt(a), axesInputSince: 18 },
  ReduceL1: { init: 0, step: (a, v) => a + Math.abs(v), finish: (a) => a, axesInputSince: 18 },
};

function reduce(r: Reducer & { axesInputSince: number }) {
  return (ctx: OpContext, inputs: (Value | undefined)[]): Value[] => {
    const node = ctx.node;
    const x = required(node, inputs, 0);
    const rank = x.shape.length;
    const keep = attrInt(node, "keepdims", 1) === 1;
    let axes = ctx.opset >= r.axesInputSince
      ? (inputs[1] ? toNumbers(inputs[1]) : undefined)
      : attrInts(node, "axes");
    if (!axes || axes.length === 0) {
      if (attrInt(node, "noop_with_empty_axes", 0) === 1) return [x];
      axes = x.shape.map((_, i) => i);
    }
    const reduced = new Set(axes.map((a) => normalizeAxis(node, a, rank)));
    const kept = x.shape.map((d, i) => (reduced.has(i) ? 1 : d));
    const y = ctx.output(keep ? kept : x.shape.filter((_, i) => !reduced.has(i)), x.dtype);
    const yd = y.data as Float32Array, xd = x.data as Float32Array;
    const acc = new Float64Array(yd.length).fill(r.init);
    const index = broadcastIndex(kept, x.shape);
    // broadcastIndex maps each input element to its reduced position.
    for (let i = 0; i < xd.length; i++) acc[index[i]] = r.step(acc[index[i]], xd[i]);
    const count = xd.length / Math.max(yd.length, 1);
    for (let i = 0; i < yd.length; i++) yd[i] = r.finish(acc[i], count);
    return [y];
  };
}

function layerNormalization(ctx: OpContext, inputs: (Value | undefined)[]): Value[] {
  const node = ctx.node;
  const x = wasmInput(node, inputs, 0);
  const rank = x.shape.length;
  const axis = normalizeAxis(node, attrInt(node, "axis", -1), rank);
  const eps = attrFloat(node, "epsilon", 1e-5);
  const outer = x.shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = x.shape.slice(axis).reduce((a, b) => a * b, 1);
  const statShape = x.shape.map((d, i) => (i < axis ? d : 1));
  const y = ctx.outputF32(x.shape);
  const wantMean = node.outputs.length > 1 && node.outputs[1] !== "";
  const wantInv = node.outputs.length > 2 && node.outputs[2] !== "";
  const meanOut = wantMean ? ctx.outputF32(statShape) : undefined;
  const invOut = wantInv ? ctx.outputF32(statShape) : undefined;
  const scale = wasmInput(node, inputs, 1);
  const bias = inputs[2] as WasmValue | undefined;
  const sIndex = broadcastIndex(scale.shape, x.shape.slice(axis));
  const bIndex = bias ? broadcastIndex(bias.shape, x.shape.slice(axis)) : undefined;
  const xd = x.data, yd = y.data, sd = scale.data, bd = bias?.data;
  for (let o = 0; o < outer; o++) {
    let mean = 0;
    for (let i = 0; i < inner; i++) mean += xd[o * inner + i];
    mean /= inner;
    let variance = 0;
    for (let i = 0; i < inner; i++) variance += (xd[o * inner + i] - mean) ** 2;
    const inv = 1 / Math.sqrt(variance / inner + eps);
    for (let i = 0; i < inner; i++) {
      yd[o * inner + i] = (xd[o * inner + i] - mean) * inv * sd[sIndex[i]] + (bd ? bd[bIndex![i]] : 0);
    }
    if (meanOut) meanOut.data[o] = mean;
    if (invOut) invOut.data[o] = inv;
  }
  return [y, ...(meanOut ? [meanOut] : []), ...(invOut ? [invOut] : [])];
}

const quantRange: Partial<Record<DType, [number, number]>> = {
  uint4: [0, 15],
  int4: [-8, 7],
  uint2: [0, 3],
  int2: [-2, 1],
  uint8: [0, 255],
  int8: [-128, 127],
  uint16: [0, 65535],
  int16: [-32768, 32767],
  int32: [-2147483648, 2147483647],
};

/** Per-tensor or per-axis parameter lookup: the index into scale/zero-point for element i. */
function paramIndex(node: Node, x: Value, param: Value): (i: number) => number {
  if (param.data.length === 1) return () => 0;
  const axis = normalizeAxis(node, attrInt(node, "axis", 1), x.shape.length);
  const inner = stridesOf(x.shape)[axis], dim = x.shape[axis];
  if (param.data.length !== dim) {
    throw opError(node, `per-axis parameters have ${param.data.length} values for axis of size ${dim}`);
  }
  return (i) => Math.floor(i / inner) % dim;
}

function quantizeLinear(ctx: OpContext, inputs: (Value | undefined)[]): Value[] {
  const node = ctx.node;
  const x = required(node, inputs, 0), scale = required(node, inputs, 1), zp = inputs[2];
  const outType: DType = zp?.dtype ?? quantizedTypes[attrInt(node, "output_dtype", 0)] ?? "uint8";
  const range = quantRange[outType];
  if (!range) throw opError(node, `quantizing to ${outType} is not supported`);
  if (attrInt(node, FUSED_DEQUANTIZE, 0) === 1) {
    // Quantize and dequantize in one wasm pass: s·(clamp(round(x / s) + z) − z), the same float32 values.
    if (!(x instanceof WasmValue)) throw opError(node, "a fused quantizer needs a float32 input");
    const y = ctx.outputF32(x.shape);
    lsqForward(x.ptr, x.size, Number(scale.data[0]), zp ? Number(zp.data[0]) : 0, range[0], range[1], y.ptr);
    return [y];
  }
  const y = ctx.output(x.shape, outType);
  const at = paramIndex(node, x, scale);
  const xd = x.data as Float32Array,
    sd = scale.data as Float32Array,
    zd = zp?.data,
    yd = y.data as Int32Array;
  for (let i = 0; i < xd.length; i++) {
    const j = at(i);
    // x / scale rounds to float32 first, as in the ONNX reference and onnxruntime.
    const q = roundHalfEven(Math.fround(xd[i] / sd[j])) + (zd ? Number(zd[j]) : 0);
    yd[i] = Math.min(Math.max(q, range[0]), range[1]);
  }
  return [y];
}

function dequantizeLinear(ctx: OpContext, inputs: (Value | undefined)[]): Value[] {
  const node = ctx.node;
  const x = required(node, inputs, 0), scale = required(node, inputs, 1), zp = inputs[2];
  const y = ctx.outputF32(x.shape);
  const at = paramIndex(node, x, scale);
  const xd = x.data, sd = scale.data as Float32Array, zd = zp?.data, yd = y.data;
  for (let i = 0; i < xd.length; i++) {
    const j = at(i);
    yd[i] = (Number(xd[i]) - (zd ? Number(zd[j]) : 0)) * sd[j];
  }
  return [y];
}

/** QuantizeLinear's output_dtype codes (ONNX DataType) the engine quantizes to. */
const quantizedTypes: Record<number, DType> = {
  2: "uint8",
  3: "int8",
  4: "uint16",
  5: "int16",
  21: "uint4",
  22: "int4",
  25: "uint2",
  26: "int2",
};

/**
 * What the (de)quantizers do not implement, said at load: blocked quantization
 * (opset 21 block_size), and QuantizeLinear's output_dtype other than the
 * integer types above when no zero point gives the type.
 */
function quantizeCheck(node: Node): string | undefined {
  if (attrInt(node, "block_size", 0) > 0) return "blocked quantization (block_size) is not supported";
  const outputType = attrInt(node, "output_dtype", 0);
  if (
    node.opType === "QuantizeLinear" && outputType !== 0 && !quantizedTypes[outputType] && !node.inputs[2]
  ) {
    return `output_dtype ${outputType} without a zero point is not supported`;
  }
  return undefined;
}

registerOps({
  Conv: conv,
  ConvTranspose: convTranspose,
  MatMul: matmul,
  Gemm: gemm,
  BatchNormalization: batchNormalization,
  MaxPool: pool("max"),
  AveragePool: pool("average"),
  GlobalAveragePool: globalPool("average"),
  GlobalMaxPool: globalPool("max"),
  Softmax: softmax(false),
  LogSoftmax: softmax(true),
  LayerNormalization: layerNormalization,
  QuantizeLinear: quantizeLinear,
  DequantizeLinear: dequantizeLinear,
  ...Object.fromEntries(Object.entries(reducers).map(([name, r]) => [name, reduce(r)])),
}, {
  BatchNormalization: (node, opset) => {
    if (node.outputs.length > (opset >= 14 ? 3 : 5)) return `has ${node.outputs.length} outputs`;
    const extra = node.outputs.slice(1).some((o) => o !== "");
    return extra && !batchNormTraining(node, opset)
      ? "the running mean and variance outputs need training_mode=1"
      : undefined;
  },
  QuantizeLinear: quantizeCheck,
  DequantizeLinear: quantizeCheck,
});
