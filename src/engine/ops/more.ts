// Less common ops, as plain TypeScript loops: more activations and math
// functions, logic, arg/top-k selection, gather/scatter by index, cumulative
// sums, triangular masks, normalisations, depth/space shuffles, one-hot,
// NonZero, CastLike, EyeLike. None is a hot path in the CNNs this engine is for.
import { dtypeFromOnnx } from "../../graph/from-onnx.ts";
import { attrFloat, attrInt, attrInts, attrString, type Node } from "../../graph/ir.ts";
import type { DType, TensorData } from "../../tensor.ts";
import { registerOps } from "../registry.ts";
import type { OpRun } from "../registry.ts";
import type { Value } from "../value.ts";
import { castInto } from "./elementwise.ts";
import { roundHalfEven } from "./nn.ts";
import {
  broadcastIndex,
  broadcastShapes,
  normalizeAxis,
  opError,
  opUnsupported,
  required,
  stridesOf,
  toNumbers,
} from "./util.ts";

const product = (xs: readonly number[]) => xs.reduce((a, b) => a * b, 1);

/** Writes numbers into any typed array; 64-bit integer arrays take them truncated, as bigints. */
function setter(data: TensorData): (i: number, v: number) => void {
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    return (i, v) => (data[i] = BigInt(Math.trunc(v)));
  }
  return (i, v) => ((data as Float32Array)[i] = v);
}

/** Copies element `from` of one array to element `to` of another of the same type (bigints stay exact). */
function copyElement(src: TensorData, from: number, dst: TensorData, to: number): void {
  (dst as Float32Array)[to] = (src as Float32Array)[from];
}

/** y = fn(x) elementwise; `attrs` reads the node's attributes once per run. */
function unary<A>(attrs: (node: Node) => A, fn: (x: number, a: A) => number, outType?: DType): OpRun {
  return (ctx, inputs) => {
    const x = required(ctx.node, inputs, 0);
    const a = attrs(ctx.node);
    const out = ctx.output(x.shape, outType ?? x.dtype);
    const xd = x.data, set = setter(out.data);
    for (let i = 0; i < xd.length; i++) set(i, fn(Number(xd[i]), a));
    return [out];
  };
}

const plain = (fn: (x: number) => number, outType?: DType) => unary(() => undefined, (x) => fn(x), outType);

/** out = fn(a, b) with numpy broadcasting. */
function binary(fn: (a: number, b: number) => number, outType?: DType): OpRun {
  return (ctx, inputs) => {
    const a = required(ctx.node, inputs, 0), b = required(ctx.node, inputs, 1);
    const shape = broadcastShapes(ctx.node, [a.shape, b.shape]);
    const out = ctx.output(shape, outType ?? a.dtype);
    const ia = broadcastIndex(a.shape, shape), ib = broadcastIndex(b.shape, shape);
    const ad = a.data, bd = b.data, set = setter(out.data);
    for (let i = 0; i < ia.length; i++) set(i, fn(Number(ad[ia[i]]), Number(bd[ib[i]])));
    return [out];
  };
}

/** outer × len × inner view of a tensor around one axis. */
function aroundAxis(shape: readonly number[], axis: number) {
  return { outer: product(shape.slice(0, axis)), len: shape[axis], inner: product(shape.slice(axis + 1)) };
}

function argExtreme(largest: boolean): OpRun {
  return (ctx, inputs) => {
    const node = ctx.node;
    const x = required(node, inputs, 0);
    const axis = normalizeAxis(node, attrInt(node, "axis", 0), x.shape.length);
    const keep = attrInt(node, "keepdims", 1) === 1, last = attrInt(node, "select_last_index", 0) === 1;
    const shape = keep ? x.shape.map((d, i) => (i === axis ? 1 : d)) : x.shape.filter((_, i) => i !== axis);
    const out = ctx.output(shape, "int64");
    const { outer, len, inner } = aroundAxis(x.shape, axis);
    const xd = x.data, od = out.data as BigInt64Array;
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        let best = 0, bestValue = Number(xd[o * len * inner + i]);
        for (let j = 1; j < len; j++) {
          const v = Number(xd[(o * len + j) * inner + i]);
          const better = largest ? v > bestValue : v < bestValue;
          if (better || (last && v === bestValue)) {
            best = j;
            bestValue = v;
          }
        }
        od[o * inner + i] = BigInt(best);
      }
    }
    return [out];
  };
}

function wrapIndex(node: Node, raw: number, dim: number): number {
  const i = raw < 0 ? raw + dim : raw;
  if (i < 0 || i >= dim) throw opError(node, `index ${raw} is out of range for an axis of size ${dim}`);
  return i;
}

/** For every element of `shape`, its flat offset with the coordinate on `axis` dropped to 0. */
function offsetsWithoutAxis(shape: readonly number[], axis: number, into: readonly number[]): Int32Array {
  const intoStrides = stridesOf(into), strides = stridesOf(shape);
  const offsets = new Int32Array(product(shape));
  for (let i = 0; i < offsets.length; i++) {
    let rest = i, offset = 0;
    for (let d = 0; d < shape.length; d++) {
      const c = Math.floor(rest / strides[d]);
      rest -= c * strides[d];
      if (d !== axis) offset += c * intoStrides[d];
    }
    offsets[i] = offset;
  }
  return offsets;
}

const gatherElements: OpRun = (ctx, inputs) => {
  const node = ctx.node;
  const x = required(node, inputs, 0), idx = required(node, inputs, 1);
  const axis = normalizeAxis(node, attrInt(node, "axis", 0), x.shape.length);
  const out = ctx.output(idx.shape, x.dtype);
  const base = offsetsWithoutAxis(idx.shape, axis, x.shape), step = stridesOf(x.shape)[axis];
  const xd = x.data, id = toNumbers(idx), od = out.data;
  for (let i = 0; i < id.length; i++) {
    copyElement(xd, base[i] + wrapIndex(node, id[i], x.shape[axis]) * step, od, i);
  }
  return [out];
};

type Reduction = (old: number, update: number) => number;
const reductions: Record<string, Reduction | undefined> = {
  none: (_, u) => u,
  add: (a, u) => a + u,
  mul: (a, u) => a * u,
  max: Math.max,
  min: Math.min,
};

function reductionOf(node: Node): Reduction {
  const name = attrString(node, "reduction", "none");
  const r = reductions[name];
  if (!r) throw opUnsupported(node, `reduction "${name}" is not supported`);
  return r;
}

/** Applies `updates` at flat offsets of a copy of `x`: none copies exactly, reductions go through numbers. */
function scatterInto(
  x: Value,
  out: Value,
  offsets: ArrayLike<number>,
  slice: number,
  updates: Value,
  r: Reduction,
  exact: boolean,
) {
  const od = out.data, ud = updates.data, set = setter(od);
  (od as Float32Array).set(x.data as Float32Array);
  for (let k = 0; k < offsets.length; k++) {
    for (let s = 0; s < slice; s++) {
      const at = offsets[k] + s, from = k * slice + s;
      if (exact) copyElement(ud, from, od, at);
      else set(at, r(Number(od[at]), Number(ud[from])));
    }
  }
}

const scatterElements: OpRun = (ctx, inputs) => {
  const node = ctx.node;
  const [x, idx, updates] = [0, 1, 2].map((i) => required(node, inputs, i));
  const axis = normalizeAxis(node, attrInt(node, "axis", 0), x.shape.length);
  const reduction = attrString(node, "reduction", "none");
  const r = reductionOf(node);
  const out = ctx.output(x.shape, x.dtype);
  const base = offsetsWithoutAxis(idx.shape, axis, x.shape), step = stridesOf(x.shape)[axis];
  const offsets = toNumbers(idx).map((v, i) => base[i] + wrapIndex(node, v, x.shape[axis]) * step);
  scatterInto(x, out, offsets, 1, updates, r, reduction === "none");
  return [out];
};

/** Flat offsets (into data of rank b + m + rest) that each index tuple of a GatherND/ScatterND selects. */
function tupleOffsets(node: Node, data: Value, indices: Value, batchDims: number) {
  const m = indices.shape[indices.shape.length - 1];
  if (m > data.shape.length - batchDims) {
    throw opError(node, `index tuples of length ${m} are too long for data [${data.shape}]`);
  }
  const batch = product(data.shape.slice(0, batchDims));
  const slice = product(data.shape.slice(batchDims + m));
  const perBatch = product(data.shape.slice(batchDims));
  const dataStrides = stridesOf(data.shape.slice(batchDims));
  const id = toNumbers(indices);
  const tuples = product(indices.shape.slice(0, -1));
  const perBatchTuples = tuples / batch;
  const offsets = new Int32Array(tuples);
  for (let t = 0; t < tuples; t++) {
    let offset = Math.floor(t / perBatchTuples) * perBatch;
    for (let j = 0; j < m; j++) {
      offset += wrapIndex(node, id[t * m + j], data.shape[batchDims + j]) * dataStrides[j];
    }
    offsets[t] = offset;
  }
  return { offsets, slice, m };
}

const gatherND: OpRun = (ctx, inputs) => {
  const node = ctx.node;
  const x = required(node, inputs, 0), idx = required(node, inputs, 1);
  const b = attrInt(node, "batch_dims", 0);
  const { offsets, slice, m } = tupleOffsets(node, x, idx, b);
  const out = ctx.output([...idx.shape.slice(0, -1), ...x.shape.slice(b + m)], x.dtype);
  const xd = x.data, od = out.data;
  for (let t = 0; t < offsets.length; t++) {
    for (let s = 0; s < slice; s++) copyElement(xd, offsets[t] + s, od, t * slice + s);
  }
  return [out];
};

const scatterND: OpRun = (ctx, inputs) => {
  const node = ctx.node;
  const [x, idx, updates] = [0, 1, 2].map((i) => required(node, inputs, i));
  const r = reductionOf(node);
  const out = ctx.output(x.shape, x.dtype);
  const { offsets, slice } = tupleOffsets(node, x, idx, 0);
  scatterInto(x, out, offsets, slice, updates, r, attrString(node, "reduction", "none") === "none");
  return [out];
};

const trilu: OpRun = (ctx, inputs) => {
  const node = ctx.node;
  const x = required(node, inputs, 0);
  const k = inputs[1] ? toNumbers(inputs[1])[0] : 0, upper = attrInt(node, "upper", 1) === 1;
  const rank = x.shape.length;
  if (rank < 2) throw opError(node, `input [${x.shape}] needs at least 2 dimensions`);
  const out = ctx.output(x.shape, x.dtype);
  const rows = x.shape[rank - 2], cols = x.shape[rank - 1];
  const xd = x.data, od = out.data, zero = setter(od);
  for (let i = 0; i < xd.length; i++) {
    const col = i % cols, row = Math.floor(i / cols) % rows;
    const keep = upper ? col - row >= k : col - row <= k;
    if (keep) copyElement(xd, i, od, i);
    else zero(i, 0);
  }
  return [out];
};

const cumSum: OpRun = (ctx, inputs) => {
  const node = ctx.node;
  const x = required(node, inputs, 0);
  const axis = normalizeAxis(node, toNumbers(required(node, inputs, 1))[0], x.shape.length);
  const exclusive = attrInt(node, "exclusive", 0) === 1, reverse = attrInt(node, "reverse", 0) === 1;
  const out = ctx.output(x.shape, x.dtype);
  const { outer, len, inner } = aroundAxis(x.shape, axis);
  const xd = x.data, set = setter(out.data);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let sum = 0;
      for (let step = 0; step < len; step++) {
        const j = reverse ? len - 1 - step : step;
        const at = (o * len + j) * inner + i;
        const v = Number(xd[at]);
        if (!exclusive) sum += v;
        set(at, sum);
        if (exclusive) sum += v;
      }
    }
  }
  return [out];
};

const hardmax: OpRun = (ctx, inputs) => {
  const node = ctx.node;
  const x = required(node, inputs, 0);
  const rank = x.shape.length;
  const axis = normalizeAxis(node, attrInt(node, "axis", ctx.opset >= 13 ? -1 : 1), rank);
  // Before opset 13 the input is coerced to 2-D at `axis`.
  const { outer, len, inner } = ctx.opset >= 13
    ? aroundAxis(x.shape, axis)
    : { outer: product(x.shape.slice(0, axis)), len: product(x.shape.slice(axis)), inner: 1 };
  const out = ctx.output(x.shape, x.dtype);
  const xd = x.data, set = setter(out.data);
  // Outputs may reuse arena memory: every element is written.
  for (let i = 0; i < xd.length; i++) set(i, 0);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let best = 0;
      for (let j = 1; j < len; j++) {
        if (Number(xd[(o * len + j) * inner + i]) > Number(xd[(o * len + best) * inner + i])) best = j;
      }
      set((o * len + best) * inner + i, 1);
    }
  }
  return [out];
};

const instanceNormalization: OpRun = (ctx, inputs) => {
  const node = ctx.node;
  const [x, scale, bias] = [0, 1, 2].map((i) => required(node, inputs, i));
  const eps = attrFloat(node, "epsilon", 1e-5);
  const [n, c] = x.shape, inner = product(x.shape.slice(2));
  const out = ctx.output(x.shape, x.dtype);
  const xd = x.data as Float32Array, od = out.data as Float32Array;
  const sd = scale.data as Float32Array, bd = bias.data as Float32Array;
  for (let plane = 0; plane < n * c; plane++) {
    const base = plane * inner, ch = plane % c;
    let mean = 0;
    for (let i = 0; i < inner; i++) mean += xd[base + i];
    mean /= inner;
    let variance = 0;
    for (let i = 0; i < inner; i++) variance += (xd[base + i] - mean) ** 2;
    const s = sd[ch] / Math.sqrt(variance / inner + eps);
    for (let i = 0; i < inner; i++) od[base + i] = (xd[base + i] - mean) * s + bd[ch];
  }
  return [out];
};

const meanVarianceNormalization: OpRun = (ctx, inputs) => {
  const node = ctx.node;
  const x = required(node, inputs, 0);
  const axes = new Set(attrInts(node, "axes", [0, 2, 3]).map((a) => normalizeAxis(node, a, x.shape.length)));
  const kept = x.shape.map((d, i) => (axes.has(i) ? 1 : d));
  const out = ctx.output(x.shape, x.dtype);
  const xd = x.data as Float32Array, od = out.data as Float32Array;
  // index[i] is the statistics slot of element i.
  const index = broadcastIndex(kept, x.shape);
  const slots = product(kept), count = xd.length / slots;
  const mean = new Float64Array(slots), squares = new Float64Array(slots);
  for (let i = 0; i < xd.length; i++) mean[index[i]] += xd[i] / count;
  for (let i = 0; i < xd.length; i++) squares[index[i]] += (xd[i] - mean[index[i]]) ** 2 / count;
  // As the ONNX function body: (X − E[X]) / (√Var[X] + 1e-9).
  for (let i = 0; i < xd.length; i++) {
    od[i] = (xd[i] - mean[index[i]]) / (Math.sqrt(squares[index[i]]) + 1e-9);
  }
  return [out];
};

const lrn: OpRun = (ctx, inputs) => {
  const node = ctx.node;
  const x = required(node, inputs, 0);
  const size = attrInt(node, "size");
  if (size === undefined) throw opError(node, "size is required");
  const alpha = attrFloat(node, "alpha", 1e-4), beta = attrFloat(node, "beta", 0.75);
  const bias = attrFloat(node, "bias", 1);
  const [n, c] = x.shape, inner = product(x.shape.slice(2));
  const out = ctx.output(x.shape, x.dtype);
  const xd = x.data as Float32Array, od = out.data as Float32Array;
  const before = Math.floor((size - 1) / 2), after = Math.ceil((size - 1) / 2);
  for (let img = 0; img < n; img++) {
    for (let ch = 0; ch < c; ch++) {
      const lo = Math.max(0, ch - before), hi = Math.min(c - 1, ch + after);
      for (let i = 0; i < inner; i++) {
        let sum = 0;
        for (let k = lo; k <= hi; k++) sum += xd[(img * c + k) * inner + i] ** 2;
        const at = (img * c + ch) * inner + i;
        od[at] = xd[at] / (bias + (alpha / size) * sum) ** beta;
      }
    }
  }
  return [out];
};

/** DepthToSpace (DCR or CRD) and SpaceToDepth, as index maps between [N, C, H, W] layouts. */
function depthSpace(toSpace: boolean): OpRun {
  return (ctx, inputs) => {
    const node = ctx.node;
    const x = required(node, inputs, 0);
    const b = attrInt(node, "blocksize");
    if (!b || x.shape.length !== 4) throw opError(node, `needs blocksize and a 4-D input (got [${x.shape}])`);
    const crd = attrString(node, "mode", "DCR") === "CRD";
    const [n, c, h, w] = x.shape;
    if (toSpace ? c % (b * b) !== 0 : h % b !== 0 || w % b !== 0) {
      throw opError(node, `input [${x.shape}] does not divide by blocksize ${b}`);
    }
    // The space-side tensor is [n, cs, hs, ws]; the depth side has cs·b² channels.
    const [cs, hs, ws] = toSpace ? [c / (b * b), h * b, w * b] : [c, h, w];
    const out = ctx.output(toSpace ? [n, cs, hs, ws] : [n, c * b * b, h / b, w / b], x.dtype);
    const xd = x.data, od = out.data;
    const hd = hs / b, wdd = ws / b;
    let s = 0;
    for (let img = 0; img < n; img++) {
      for (let ch = 0; ch < cs; ch++) {
        for (let y = 0; y < hs; y++) {
          for (let xx = 0; xx < ws; xx++, s++) {
            const i = y % b, j = xx % b;
            const depthCh = crd ? (ch * b + i) * b + j : (i * b + j) * cs + ch;
            const d = ((img * cs * b * b + depthCh) * hd + Math.floor(y / b)) * wdd + Math.floor(xx / b);
            if (toSpace) copyElement(xd, d, od, s);
            else copyElement(xd, s, od, d);
          }
        }
      }
    }
    return [out];
  };
}

const topK: OpRun = (ctx, inputs) => {
  const node = ctx.node;
  const x = required(node, inputs, 0);
  const k = ctx.opset >= 10 ? toNumbers(required(node, inputs, 1))[0] : attrInt(node, "k", 0);
  const axis = normalizeAxis(node, attrInt(node, "axis", -1), x.shape.length);
  const largest = attrInt(node, "largest", 1) === 1;
  if (k < 0 || k > x.shape[axis]) {
    throw opError(node, `k ${k} is out of range for axis of size ${x.shape[axis]}`);
  }
  const shape = x.shape.map((d, i) => (i === axis ? k : d));
  const values = ctx.output(shape, x.dtype), indices = ctx.output(shape, "int64");
  const { outer, len, inner } = aroundAxis(x.shape, axis);
  const xd = x.data, vd = values.data, id = indices.data as BigInt64Array;
  const order = Array.from({ length: len }, (_, j) => j);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const at = (j: number) => (o * len + j) * inner + i;
      // Ties keep the lower index first (Array.prototype.sort is stable).
      order.sort((p, q) => p - q);
      order.sort((p, q) => {
        const a = Number(xd[at(p)]), b = Number(xd[at(q)]);
        return largest ? b - a : a - b;
      });
      for (let j = 0; j < k; j++) {
        const dst = (o * k + j) * inner + i;
        copyElement(xd, at(order[j]), vd, dst);
        id[dst] = BigInt(order[j]);
      }
    }
  }
  return [values, indices];
};

const oneHot: OpRun = (ctx, inputs) => {
  const node = ctx.node;
  const [idx, depthIn, values] = [0, 1, 2].map((i) => required(node, inputs, i));
  const depth = Math.trunc(toNumbers(depthIn)[0]);
  const rank = idx.shape.length + 1;
  const axis = normalizeAxis(node, attrInt(node, "axis", -1), rank);
  const shape = [...idx.shape.slice(0, axis), depth, ...idx.shape.slice(axis)];
  const out = ctx.output(shape, values.dtype);
  const id = toNumbers(idx), od = out.data, vd = values.data;
  const { len, inner } = aroundAxis(shape, axis);
  for (let i = 0; i < od.length; i++) copyElement(vd, 0, od, i);
  for (let p = 0; p < id.length; p++) {
    const hot = id[p] < 0 ? id[p] + depth : id[p];
    if (hot < 0 || hot >= depth) continue; // out of range: all "off"
    const o = Math.floor(p / inner), i = p % inner;
    copyElement(vd, 1, od, (o * len + hot) * inner + i);
  }
  return [out];
};

/**
 * NonZero's output size depends on the data. It is an int64 host tensor, so it
 * takes no room in the engine's arena; a float32 op downstream whose size
 * follows it fails with a clear error when a later run at the same input shapes
 * needs more room than the planning run did.
 */
const nonZero: OpRun = (ctx, inputs) => {
  const x = required(ctx.node, inputs, 0);
  const xd = x.data, rank = x.shape.length, strides = stridesOf(x.shape);
  const hits: number[] = [];
  for (let i = 0; i < xd.length; i++) if (Number(xd[i]) !== 0) hits.push(i);
  const out = ctx.output([rank, hits.length], "int64");
  const od = out.data as BigInt64Array;
  hits.forEach((flat, j) => {
    let rest = flat;
    for (let d = 0; d < rank; d++) {
      od[d * hits.length + j] = BigInt(Math.floor(rest / strides[d]));
      rest %= strides[d];
    }
  });
  return [out];
};

const eyeLike: OpRun = (ctx, inputs) => {
  const node = ctx.node;
  const x = required(node, inputs, 0);
  if (x.shape.length !== 2) throw opError(node, `input [${x.shape}] must be 2-D`);
  const code = attrInt(node, "dtype");
  const dtype = code === undefined ? x.dtype : dtypeFromOnnx(code);
  if (!dtype) throw opUnsupported(node, `dtype ${code} is not supported`);
  const k = attrInt(node, "k", 0), [rows, cols] = x.shape;
  const out = ctx.output(x.shape, dtype);
  const set = setter(out.data);
  for (let i = 0; i < out.data.length; i++) set(i, 0);
  for (let r = 0; r < rows; r++) if (r + k >= 0 && r + k < cols) set(r * cols + r + k, 1);
  return [out];
};

const castLike: OpRun = (ctx, inputs) => {
  const x = required(ctx.node, inputs, 0), like = required(ctx.node, inputs, 1);
  const out = ctx.output(x.shape, like.dtype);
  castInto(x.data, out.data, like.dtype);
  return [out];
};

const prelu: OpRun = (ctx, inputs) => {
  const x = required(ctx.node, inputs, 0), slope = required(ctx.node, inputs, 1);
  const run = binary((v, s) => (v < 0 ? s * v : v), x.dtype);
  // Before opset 7 a 1-D slope holds one value per channel (axis 1), not per last-axis position.
  if (ctx.opset < 7 && slope.shape.length === 1 && x.shape.length > 2 && slope.shape[0] === x.shape[1]) {
    // A view of the slope under a new shape; its data is read only after the output exists.
    const perChannel: Value = {
      shape: [slope.shape[0], ...x.shape.slice(2).map(() => 1)],
      dtype: slope.dtype,
      get data() {
        return slope.data;
      },
    };
    return run(ctx, [x, perChannel]);
  }
  return run(ctx, inputs);
};

const SELU_ALPHA = 1.67326319217681884765625, SELU_GAMMA = 1.05070102214813232421875;

registerOps({
  PRelu: prelu,
  Elu: unary((n) => attrFloat(n, "alpha", 1), (x, a) => (x < 0 ? a * (Math.exp(x) - 1) : x)),
  Selu: unary(
    (n) => ({ alpha: attrFloat(n, "alpha", SELU_ALPHA), gamma: attrFloat(n, "gamma", SELU_GAMMA) }),
    (x, { alpha, gamma }) => gamma * (x > 0 ? x : alpha * Math.exp(x) - alpha),
  ),
  Celu: unary(
    (n) => attrFloat(n, "alpha", 1),
    (x, a) => Math.max(0, x) + Math.min(0, a * (Math.exp(x / a) - 1)),
  ),
  Softplus: plain((x) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)))),
  Softsign: plain((x) => x / (1 + Math.abs(x))),
  ThresholdedRelu: unary((n) => attrFloat(n, "alpha", 1), (x, a) => (x > a ? x : 0)),
  Shrink: unary(
    (n) => ({ bias: attrFloat(n, "bias", 0), lambd: attrFloat(n, "lambd", 0.5) }),
    (x, { bias, lambd }) => (x < -lambd ? x + bias : x > lambd ? x - bias : 0),
  ),
  Round: plain(roundHalfEven),
  Sign: plain(Math.sign),
  Sin: plain(Math.sin),
  Cos: plain(Math.cos),
  Tan: plain(Math.tan),
  Asin: plain(Math.asin),
  Acos: plain(Math.acos),
  Atan: plain(Math.atan),
  Sinh: plain(Math.sinh),
  Cosh: plain(Math.cosh),
  Asinh: plain(Math.asinh),
  Acosh: plain(Math.acosh),
  Atanh: plain(Math.atanh),
  Not: plain((x) => (x ? 0 : 1), "bool"),
  And: binary((a, b) => (a && b ? 1 : 0), "bool"),
  Or: binary((a, b) => (a || b ? 1 : 0), "bool"),
  Xor: binary((a, b) => (!a !== !b ? 1 : 0), "bool"),
  IsNaN: plain((x) => (Number.isNaN(x) ? 1 : 0), "bool"),
  IsInf: unary(
    (n) => ({ neg: attrInt(n, "detect_negative", 1) === 1, pos: attrInt(n, "detect_positive", 1) === 1 }),
    (x, { neg, pos }) => ((pos && x === Infinity) || (neg && x === -Infinity) ? 1 : 0),
    "bool",
  ),
  ArgMax: argExtreme(true),
  ArgMin: argExtreme(false),
  GatherElements: gatherElements,
  ScatterElements: scatterElements,
  // Scatter (opsets 9–10) is ScatterElements under its old name.
  Scatter: scatterElements,
  GatherND: gatherND,
  ScatterND: scatterND,
  Trilu: trilu,
  CumSum: cumSum,
  Hardmax: hardmax,
  InstanceNormalization: instanceNormalization,
  MeanVarianceNormalization: meanVarianceNormalization,
  LRN: lrn,
  DepthToSpace: depthSpace(true),
  SpaceToDepth: depthSpace(false),
  TopK: topK,
  OneHot: oneHot,
  NonZero: nonZero,
  EyeLike: eyeLike,
  CastLike: castLike,
}, {
  ScatterElements: (node) =>
    reductions[attrString(node, "reduction", "none")] ? undefined : "unknown reduction",
  ScatterND: (node) => reductions[attrString(node, "reduction", "none")] ? undefined : "unknown reduction",
  EyeLike: (node) => {
    const code = attrInt(node, "dtype");
    return code === undefined || dtypeFromOnnx(code) ? undefined : `dtype ${code} is not supported`;
  },
});
