// Selection and data movement by index, as plain TypeScript loops: arg/top-k
// selection, gather/scatter, cumulative sums, triangular masks, Hardmax,
// depth/space shuffles, one-hot, NonZero, EyeLike.
import { attrInt, attrString, type Node } from "../../graph/ir.ts";
import { opError, opUnsupported, registerOps, required } from "../registry.ts";
import type { OpRun } from "../registry.ts";
import type { Value } from "../value.ts";
import { aroundAxis, copyElement, normalizeAxis, product, setter, toNumbers } from "./util.ts";
import { stridesOf } from "../../layout.ts";
import { dtypeFromOnnx } from "../../onnx/tensor-proto.ts";

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

export function wrapIndex(node: Node, raw: number, dim: number): number {
  const i = raw < 0 ? raw + dim : raw;
  if (i < 0 || i >= dim) throw opError(node, `index ${raw} is out of range for an axis of size ${dim}`);
  return i;
}

/** For every element of `shape`, its flat offset with the coordinate on `axis` dropped to 0. */
export function offsetsWithoutAxis(
  shape: readonly number[],
  axis: number,
  into: readonly number[],
): Int32Array {
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
export function tupleOffsets(node: Node, data: Value, indices: Value, batchDims: number) {
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

registerOps({
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
  DepthToSpace: depthSpace(true),
  SpaceToDepth: depthSpace(false),
  TopK: topK,
  OneHot: oneHot,
  NonZero: nonZero,
  EyeLike: eyeLike,
}, {
  ScatterElements: (node) =>
    reductions[attrString(node, "reduction", "none")] ? undefined : "unknown reduction",
  ScatterND: (node) => reductions[attrString(node, "reduction", "none")] ? undefined : "unknown reduction",
  EyeLike: (node) => {
    const code = attrInt(node, "dtype");
    return code === undefined || dtypeFromOnnx(code) ? undefined : `dtype ${code} is not supported`;
  },
});
