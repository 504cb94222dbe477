// Backward of the ops where each output element is a copy of one input
// element: Gather, GatherElements and GatherND (indices are constants: they
// get no gradient), Expand, Tile, DepthToSpace, SpaceToDepth, Trilu, TopK's
// values, and Pad in edge, reflect and wrap modes. Their gradient scatters dy
// back, adding where several outputs read the same element. Also CumSum
// (a reversed cumulative sum of dy) and ScatterElements/ScatterND (data and
// updates). Plain TypeScript.
import { attrInt, attrString, type Node } from "../../graph/ir.ts";
import { type GradContext, type OpGrad, opUnsupported, registerGradients } from "../registry.ts";
import type { Value, WasmValue } from "../value.ts";
import { constantGradients, floatInput } from "./grad-util.ts";
import { padsOf } from "./shape.ts";
import { broadcastIndex, normalizeAxis, product, toNumbers } from "./util.ts";
import { offsetsWithoutAxis, tupleOffsets, wrapIndex } from "./indexing.ts";
import { stridesOf } from "../../layout.ts";

/** For every element of the output (of shape `out`), the input element it copies (−1: none). */
type Sources = (
  ctx: GradContext,
  x: WasmValue,
  inputs: (Value | undefined)[],
  out: readonly number[],
  outputs: (Value | undefined)[],
) => Int32Array;

/** dx[source[i]] += dy[i]; integer inputs (indices, shapes, repeats) get no gradient. */
function copyGrad(sources: Sources): OpGrad {
  return (ctx, inputs, outputs, [dy]) => {
    const x = floatInput(ctx.node, inputs, 0);
    const rest = constantGradients(ctx, inputs);
    if (!ctx.wants(0)) return [undefined, ...rest];
    const dx = ctx.outputF32(x.shape);
    const sums = new Float64Array(x.size);
    if (dy) {
      const from = sources(ctx, x, inputs, dy.shape, outputs), gd = dy.data;
      for (let i = 0; i < from.length; i++) if (from[i] >= 0) sums[from[i]] += gd[i];
    }
    dx.data.set(sums);
    return [dx, ...rest];
  };
}

const gatherSources: Sources = (ctx, x, inputs) => {
  const node = ctx.node;
  const axis = normalizeAxis(node, attrInt(node, "axis", 0), x.shape.length);
  const indices = toNumbers(inputs[1]!).map((raw) => wrapIndex(node, raw, x.shape[axis]));
  const outer = product(x.shape.slice(0, axis)), dim = x.shape[axis];
  const inner = product(x.shape.slice(axis + 1));
  const from = new Int32Array(outer * indices.length * inner);
  let o = 0;
  for (let a = 0; a < outer; a++) {
    for (const i of indices) {
      for (let k = 0; k < inner; k++) from[o++] = (a * dim + i) * inner + k;
    }
  }
  return from;
};

/** The elements of `x` that GatherElements/ScatterElements address with `indices` along the node's axis. */
function elementOffsets(node: Node, x: Value, indices: Value): Int32Array {
  const axis = normalizeAxis(node, attrInt(node, "axis", 0), x.shape.length);
  const base = offsetsWithoutAxis(indices.shape, axis, x.shape), step = stridesOf(x.shape)[axis];
  const id = toNumbers(indices);
  return base.map((b, i) => b + wrapIndex(node, id[i], x.shape[axis]) * step);
}

const gatherNDSources: Sources = (ctx, x, inputs) => {
  const { offsets, slice } = tupleOffsets(ctx.node, x, inputs[1]!, attrInt(ctx.node, "batch_dims", 0));
  const from = new Int32Array(offsets.length * slice);
  for (let t = 0; t < offsets.length; t++) {
    for (let s = 0; s < slice; s++) from[t * slice + s] = offsets[t] + s;
  }
  return from;
};

/** For every element of `shape`, the flat offset of coordinate c·(d's map) in `x`. */
function mapCoordinates(
  shape: readonly number[],
  xShape: readonly number[],
  map: (c: number, d: number) => number,
): Int32Array {
  const strides = stridesOf(shape), xStrides = stridesOf(xShape);
  const from = new Int32Array(product(shape));
  for (let i = 0; i < from.length; i++) {
    let rest = i, src = 0;
    for (let d = 0; d < shape.length; d++) {
      const c = Math.floor(rest / strides[d]);
      rest -= c * strides[d];
      const m = map(c, d);
      if (m < 0) {
        src = -1;
        break;
      }
      src += m * xStrides[d];
    }
    from[i] = src;
  }
  return from;
}

const tileSources: Sources = (_ctx, x, _inputs, out) =>
  mapCoordinates(out, x.shape, (c, d) => c % x.shape[d]);

const expandSources: Sources = (_ctx, x, _inputs, out) => broadcastIndex(x.shape, out);

/** Pad in edge, reflect or wrap mode (constant mode is in shape-grad.ts). */
const padSources: Sources = (ctx, x, inputs, out) => {
  const { pads } = padsOf(ctx, x, inputs);
  const mode = attrString(ctx.node, "mode", "constant");
  return mapCoordinates(out, x.shape, (at, d) => {
    const n = x.shape[d];
    const c = at - pads[d];
    if (c >= 0 && c < n) return c;
    if (mode === "edge") return c < 0 ? 0 : n - 1;
    if (mode === "reflect") {
      const period = 2 * (n - 1) || 1;
      const r = ((c % period) + period) % period;
      return r >= n ? period - r : r;
    }
    if (mode === "wrap") return ((c % n) + n) % n;
    return -1;
  });
};

/** DepthToSpace (DCR or CRD) and SpaceToDepth, the forward's index map between [N, C, H, W] layouts. */
const depthSpaceSources = (toSpace: boolean): Sources => (ctx, x, _inputs, out) => {
  const b = attrInt(ctx.node, "blocksize", 1);
  const crd = attrString(ctx.node, "mode", "DCR") === "CRD";
  const space = toSpace ? out : x.shape;
  const [n, cs, hs, ws] = space;
  const from = new Int32Array(product(space));
  const hd = hs / b, wd = ws / b;
  let s = 0;
  for (let img = 0; img < n; img++) {
    for (let ch = 0; ch < cs; ch++) {
      for (let r = 0; r < hs; r++) {
        for (let col = 0; col < ws; col++, s++) {
          const i = r % b, j = col % b;
          const depthCh = crd ? (ch * b + i) * b + j : (i * b + j) * cs + ch;
          const d = ((img * cs * b * b + depthCh) * hd + Math.floor(r / b)) * wd + Math.floor(col / b);
          // Output element (s for DepthToSpace, d for SpaceToDepth) copies the other.
          if (toSpace) from[s] = d;
          else from[d] = s;
        }
      }
    }
  }
  return from;
};

const triluSources: Sources = (ctx, x, inputs) => {
  const k = inputs[1] ? toNumbers(inputs[1])[0] : 0, upper = attrInt(ctx.node, "upper", 1) === 1;
  const rows = x.shape[x.shape.length - 2], cols = x.shape[x.shape.length - 1];
  return Int32Array.from({ length: x.size }, (_, i) => {
    const col = i % cols, row = Math.floor(i / cols) % rows;
    return (upper ? col - row >= k : col - row <= k) ? i : -1;
  });
};

/** TopK's values: the elements the indices output names along the axis. */
const topKSources: Sources = (ctx, x, _inputs, _out, outputs) => {
  const indices = outputs[1];
  if (!indices) throw opUnsupported(ctx.node, "the gradient of TopK needs its indices output");
  const axis = normalizeAxis(ctx.node, attrInt(ctx.node, "axis", -1), x.shape.length);
  const base = offsetsWithoutAxis(indices.shape, axis, x.shape), step = stridesOf(x.shape)[axis];
  const id = toNumbers(indices);
  return base.map((b, i) => b + id[i] * step);
};

/** CumSum: dx is the cumulative sum of dy in the other direction, exclusive when the forward was. */
const cumSumGrad: OpGrad = (ctx, inputs, _outputs, [dy]) => {
  const x = floatInput(ctx.node, inputs, 0);
  if (!ctx.wants(0)) return [undefined, undefined];
  const dx = ctx.outputF32(x.shape);
  const sums = new Float64Array(x.size);
  if (dy) {
    const axis = normalizeAxis(ctx.node, toNumbers(inputs[1]!)[0], x.shape.length);
    const exclusive = attrInt(ctx.node, "exclusive", 0) === 1,
      reverse = attrInt(ctx.node, "reverse", 0) === 1;
    const outer = product(x.shape.slice(0, axis)), len = x.shape[axis];
    const inner = product(x.shape.slice(axis + 1));
    const gd = dy.data;
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        let sum = 0;
        for (let step = 0; step < len; step++) {
          const j = reverse ? step : len - 1 - step, at = (o * len + j) * inner + i;
          if (!exclusive) sum += gd[at];
          sums[at] = sum;
          if (exclusive) sum += gd[at];
        }
      }
    }
  }
  dx.data.set(sums);
  return [dx, undefined];
};

/**
 * ScatterElements and ScatterND with reduction none or add: data's gradient
 * is dy, zero where "none" overwrote it; each update's gradient is dy where
 * it landed (with repeated indices under "none", only the last one landed).
 */
const scatterGrad = (nd: boolean): OpGrad => (ctx, inputs, _outputs, [dy]) => {
  const node = ctx.node;
  const reduction = attrString(node, "reduction", "none");
  if (reduction !== "none" && reduction !== "add") {
    throw opUnsupported(node, `the gradient of reduction "${reduction}" is not implemented`);
  }
  const x = floatInput(node, inputs, 0), indices = inputs[1]!, updates = inputs[2]!;
  const dx = ctx.wants(0) ? ctx.outputF32(x.shape) : undefined;
  const du = ctx.wants(2) ? ctx.outputF32(updates.shape) : undefined;
  if (!dx && !du) return [undefined, undefined, undefined];
  let offsets: Int32Array, slice = 1;
  if (nd) ({ offsets, slice } = tupleOffsets(node, x, indices, 0));
  else offsets = elementOffsets(node, x, indices);
  const g = dy ? Float64Array.from(dy.data) : new Float64Array(x.size);
  const landed = new Int32Array(x.size).fill(-1);
  for (let k = 0; k < offsets.length; k++) {
    for (let s = 0; s < slice; s++) landed[offsets[k] + s] = k * slice + s;
  }
  if (du) {
    const sums = new Float64Array(du.size);
    for (let k = 0; k < offsets.length; k++) {
      for (let s = 0; s < slice; s++) {
        const at = offsets[k] + s;
        if (reduction === "add" || landed[at] === k * slice + s) sums[k * slice + s] = g[at];
      }
    }
    du.data.set(sums);
  }
  if (dx) {
    if (reduction === "none") { for (let i = 0; i < g.length; i++) if (landed[i] >= 0) g[i] = 0; }
    dx.data.set(g);
  }
  return [dx, undefined, du];
};

registerGradients({
  Gather: copyGrad(gatherSources),
  GatherElements: copyGrad((ctx, x, inputs) => elementOffsets(ctx.node, x, inputs[1]!)),
  GatherND: copyGrad(gatherNDSources),
  Expand: copyGrad(expandSources),
  Tile: copyGrad(tileSources),
  DepthToSpace: copyGrad(depthSpaceSources(true)),
  SpaceToDepth: copyGrad(depthSpaceSources(false)),
  Trilu: copyGrad(triluSources),
  TopK: copyGrad(topKSources),
  CumSum: cumSumGrad,
  ScatterElements: scatterGrad(false),
  Scatter: scatterGrad(false),
  ScatterND: scatterGrad(true),
});

/** Pad's edge, reflect and wrap modes, for shape-grad.ts. */
export const padModeGrad: OpGrad = copyGrad(padSources);
