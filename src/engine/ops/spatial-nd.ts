// Convolution, transposed convolution and pooling over any number of spatial
// axes: nn.ts hands every input of rank 5 or more (3-D volumes and up) over to
// these, and keeps its own kernels for 1-D and 2-D. Conv and ConvTranspose go
// through im2col / col2im and the wasm GEMM; pooling loops directly.
import { attrFloat, attrInt, attrInts } from "../../graph/ir.ts";
import { gemmAt } from "../../kernels/gemm.ts";
import type { OpContext } from "../registry.ts";
import { type Value, WasmValue } from "../value.ts";
import { product } from "./util.ts";
import { stridesOf } from "../../layout.ts";
import { opError, opUnsupported, required, wasmInput } from "../registry.ts";
import { type SpatialGeometry, spatialGeometry, transposedGeometry } from "./geometry.ts";
import { FUSED_MAX, FUSED_MIN } from "../fuse.ts";

/** Steps a row-major multi-index; false once it wraps around. */
function advance(index: number[], dims: readonly number[]): boolean {
  for (let d = dims.length - 1; d >= 0; d--) {
    if (++index[d] < dims[d]) return true;
    index[d] = 0;
  }
  return false;
}

/**
 * For kernel tap k and position p of a sliding window, the flat offset into a
 * grid of `grid` of coordinate p·stride − pad + k·dilation on every axis, or −1
 * when that falls outside the grid. Laid out [k][p].
 */
function windowOffsets(
  grid: readonly number[],
  positions: readonly number[],
  g: Pick<SpatialGeometry, "kernel" | "strides" | "dilations" | "pads">,
): Int32Array {
  const n = grid.length, taps = product(g.kernel), count = product(positions);
  const gridStrides = stridesOf(grid);
  const table = new Int32Array(taps * count);
  const k = new Array<number>(n).fill(0);
  for (let t = 0; t < taps; t++, advance(k, g.kernel)) {
    const p = new Array<number>(n).fill(0);
    for (let i = 0; i < count; i++, advance(p, positions)) {
      let offset = 0;
      for (let d = 0; d < n && offset >= 0; d++) {
        const c = p[d] * g.strides[d] - g.pads[d] + k[d] * g.dilations[d];
        offset = c < 0 || c >= grid[d] ? -1 : offset + c * gridStrides[d];
      }
      table[t * count + i] = offset;
    }
  }
  return table;
}

/** Conv over 3 or more spatial axes, with the bias and any fused Relu/Clip. */
export function convNd(ctx: OpContext, inputs: (Value | undefined)[]): Value[] {
  const node = ctx.node;
  const x = wasmInput(node, inputs, 0), w = wasmInput(node, inputs, 1);
  const bias = inputs[2] ? wasmInput(node, inputs, 2) : undefined;
  const group = attrInt(node, "group", 1);
  const [n, c] = x.shape, m = w.shape[0];
  if (c !== w.shape[1] * group || m % group !== 0) {
    throw opError(node, `weight [${w.shape}] does not fit input [${x.shape}] with group ${group}`);
  }
  const g = spatialGeometry(node, x.shape, attrInts(node, "kernel_shape") ?? w.shape.slice(2));
  const spatial = x.shape.slice(2);
  const cg = c / group, mg = m / group, taps = product(g.kernel), p = product(g.out);
  const kk = cg * taps, inPlane = product(spatial);
  const offsets = windowOffsets(spatial, g.out, g);
  const y = ctx.outputF32([n, m, ...g.out]);
  const col = ctx.scratch(kk * p * 4);
  for (let img = 0; img < n; img++) {
    for (let gi = 0; gi < group; gi++) {
      // im2col: col[ci·taps + t, position]
      const colData = new WasmValue(col, [kk * p]).data, xd = x.data;
      for (let ci = 0; ci < cg; ci++) {
        const plane = (img * c + gi * cg + ci) * inPlane;
        for (let t = 0; t < taps; t++) {
          const row = (ci * taps + t) * p;
          for (let i = 0; i < p; i++) {
            const o = offsets[t * p + i];
            colData[row + i] = o < 0 ? 0 : xd[plane + o];
          }
        }
      }
      gemmAt(
        { transA: false, transB: false, m: mg, n: p, k: kk, lda: kk, ldb: p, ldc: p, accumulate: false },
        w.ptr + gi * mg * kk * 4,
        col,
        y.ptr + (img * m + gi * mg) * p * 4,
      );
    }
  }
  const lo = attrFloat(node, FUSED_MIN, -Infinity), hi = attrFloat(node, FUSED_MAX, Infinity);
  finishChannels(y, bias, n, m, p, lo, hi);
  return [y];
}

/** Adds the per-channel bias, then clamps to [lo, hi] (a fused Relu or Clip). */
function finishChannels(
  y: WasmValue,
  bias: WasmValue | undefined,
  n: number,
  m: number,
  p: number,
  lo: number,
  hi: number,
): void {
  if (!bias && lo === -Infinity && hi === Infinity) return;
  const yd = y.data, bd = bias?.data;
  for (let img = 0; img < n; img++) {
    for (let ch = 0; ch < m; ch++) {
      const b = bd ? bd[ch] : 0, base = (img * m + ch) * p;
      for (let i = 0; i < p; i++) {
        const v = yd[base + i] + b;
        yd[base + i] = v < lo ? lo : v > hi ? hi : v;
      }
    }
  }
}

/** ConvTranspose over 3 or more spatial axes: GEMM into columns, then col2im scatters them. */
export function convTransposeNd(ctx: OpContext, inputs: (Value | undefined)[]): Value[] {
  const node = ctx.node;
  const x = wasmInput(node, inputs, 0), w = wasmInput(node, inputs, 1);
  const bias = inputs[2] ? wasmInput(node, inputs, 2) : undefined;
  const group = attrInt(node, "group", 1);
  const [n, c] = x.shape;
  if (w.shape[0] !== c || c % group !== 0) {
    throw opError(node, `weight [${w.shape}] does not fit input [${x.shape}] with group ${group}`);
  }
  const mg = w.shape[1], m = mg * group, cg = c / group;
  const spatial = x.shape.slice(2);
  const g = transposedGeometry(node, spatial, attrInts(node, "kernel_shape") ?? w.shape.slice(2));
  const taps = product(g.kernel), p = product(spatial), outPlane = product(g.out), kk = mg * taps;
  // Input position i with tap t lands on output offset targets[t·p + i] (or nowhere).
  const targets = windowOffsets(g.out, spatial, g);
  const y = ctx.outputF32([n, m, ...g.out]);
  const col = ctx.scratch(kk * p * 4);
  y.data.fill(0);
  for (let img = 0; img < n; img++) {
    for (let gi = 0; gi < group; gi++) {
      // col[co·taps + t, i] = Σ_ci W[ci, co, t] · x[ci, i]
      gemmAt(
        { transA: true, transB: false, m: kk, n: p, k: cg, lda: kk, ldb: p, ldc: p, accumulate: false },
        w.ptr + gi * cg * kk * 4,
        x.ptr + (img * c + gi * cg) * p * 4,
        col,
      );
      const colData = new WasmValue(col, [kk * p]).data, yd = y.data;
      for (let co = 0; co < mg; co++) {
        const plane = (img * m + gi * mg + co) * outPlane;
        for (let t = 0; t < taps; t++) {
          const row = (co * taps + t) * p;
          for (let i = 0; i < p; i++) {
            const o = targets[t * p + i];
            if (o >= 0) yd[plane + o] += colData[row + i];
          }
        }
      }
    }
  }
  finishChannels(y, bias, n, m, outPlane, -Infinity, Infinity);
  return [y];
}

/** MaxPool / AveragePool over 3 or more spatial axes; MaxPool's optional indices are row-major. */
export function poolNd(kind: "max" | "average", ctx: OpContext, inputs: (Value | undefined)[]): Value[] {
  const node = ctx.node;
  const x = required(node, inputs, 0);
  const kernel = attrInts(node, "kernel_shape");
  if (!kernel) throw opError(node, "kernel_shape is required");
  if (attrInt(node, "storage_order", 0) !== 0) {
    throw opUnsupported(node, "storage_order=1 is defined for 2-D pooling only");
  }
  const g = spatialGeometry(node, x.shape, kernel, attrInt(node, "ceil_mode", 0) === 1);
  const [n, c] = x.shape, spatial = x.shape.slice(2);
  const taps = product(kernel), p = product(g.out), inPlane = product(spatial);
  const offsets = windowOffsets(spatial, g.out, g);
  const divisors = kind === "average" && attrInt(node, "count_include_pad", 0) === 1
    ? paddedWindowSizes(spatial, g)
    : undefined;
  const y = ctx.output([n, c, ...g.out], x.dtype);
  const wantIndices = kind === "max" && node.outputs.length > 1 && node.outputs[1] !== "";
  const indices = wantIndices ? ctx.output([n, c, ...g.out], "int64") : undefined;
  const xd = x.data as Float32Array, yd = y.data as Float32Array;
  const id = indices?.data as BigInt64Array | undefined;
  for (let plane = 0; plane < n * c; plane++) {
    const xBase = plane * inPlane, yBase = plane * p;
    for (let i = 0; i < p; i++) {
      let acc = kind === "max" ? -Infinity : 0, count = 0, best = -1;
      for (let t = 0; t < taps; t++) {
        const o = offsets[t * p + i];
        if (o < 0) continue;
        const v = xd[xBase + o];
        if (kind === "average") {
          acc += v;
          count++;
        } else if (v > acc || best < 0) {
          acc = v;
          best = o;
        }
      }
      yd[yBase + i] = kind === "max" ? acc : acc / (divisors ? divisors[i] : count);
      if (id) id[yBase + i] = BigInt(xBase + best);
    }
  }
  return indices ? [y, indices] : [y];
}

/** Per output position, how many window taps fall inside the padded input (count_include_pad). */
function paddedWindowSizes(spatial: readonly number[], g: SpatialGeometry): Int32Array {
  const n = spatial.length;
  const perAxis = spatial.map((len, d) =>
    Array.from({ length: g.out[d] }, (_, o) => {
      let count = 0;
      for (let k = 0; k < g.kernel[d]; k++) {
        const at = o * g.strides[d] - g.pads[d] + k * g.dilations[d];
        if (at >= -g.pads[d] && at < len + g.pads[d + n]) count++;
      }
      return count;
    })
  );
  const sizes = new Int32Array(product(g.out));
  const o = new Array<number>(n).fill(0);
  for (let i = 0; i < sizes.length; i++, advance(o, g.out)) {
    sizes[i] = o.reduce((a, od, d) => a * perAxis[d][od], 1);
  }
  return sizes;
}
