// Backward of Softmax and LogSoftmax, and of the normalisations that compute
// their statistics from the input itself: LayerNormalization (with its Mean
// and InvStdDev outputs), InstanceNormalization, MeanVarianceNormalization
// and LRN. Plain TypeScript, statistics in float64.
import { attrFloat, attrInt, attrInts } from "../../graph/ir.ts";
import { opError, type OpGrad, registerGradients } from "../registry.ts";
import { WasmValue } from "../value.ts";
import { floatInput, zeroGradients } from "./grad-util.ts";
import { broadcastIndex, normalizeAxis, product } from "./util.ts";

/**
 * Softmax: dx = y·(dy − Σ dy·y); LogSoftmax: dx = dy − exp(y)·Σ dy, the sums
 * along the axis (before opset 13, over the input flattened to 2-D at it).
 */
const softmaxGrad = (log: boolean): OpGrad => (ctx, inputs, outputs, [dy]) => {
  if (!dy) return zeroGradients(ctx, inputs);
  const x = floatInput(ctx.node, inputs, 0);
  if (!ctx.wants(0)) return [undefined];
  const y = outputs[0];
  if (!(y instanceof WasmValue)) throw opError(ctx.node, "the gradient needs the forward output");
  const rank = x.shape.length, modern = ctx.opset >= 13;
  const axis = normalizeAxis(ctx.node, attrInt(ctx.node, "axis", modern ? -1 : 1), rank);
  const outer = product(x.shape.slice(0, axis));
  const len = modern ? x.shape[axis] : product(x.shape.slice(axis));
  const inner = modern ? product(x.shape.slice(axis + 1)) : 1;
  const dx = ctx.outputF32(x.shape);
  const yd = y.data, gd = dy.data, dxd = dx.data;
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * len * inner + i;
      let sum = 0;
      for (let j = 0; j < len; j++) {
        const at = base + j * inner;
        sum += log ? gd[at] : gd[at] * yd[at];
      }
      for (let j = 0; j < len; j++) {
        const at = base + j * inner;
        dxd[at] = log ? gd[at] - Math.exp(yd[at]) * sum : yd[at] * (gd[at] - sum);
      }
    }
  }
  return [dx];
};

interface Groups {
  /** Number of groups, each `size` contiguous elements normalised together. */
  count: number;
  size: number;
  eps: number;
  /** Scale per parameter slot, and the slot of element i of group k. */
  scale: ArrayLike<number>;
  slot: (k: number, i: number) => number;
}

/** Per parameter slot: Σ dy·x̂ (the scale's gradient) and Σ dy (the bias'). */
interface ParamSums {
  dScale: Float64Array;
  dBias: Float64Array;
}

/**
 * y = (x − mean)·r·scale + bias per group, r = 1/√(var + ε). With
 * g = dy·scale: dx = r·(g − mean(g) − x̂·mean(g·x̂)). `dMean` and `dInv`
 * are gradients of the mean and of r themselves (LayerNormalization's
 * optional outputs): ∂mean/∂x = 1/n, ∂r/∂x = −r²·x̂/n.
 */
function normalizeGrad(
  x: Float32Array,
  dy: Float32Array | undefined,
  groups: Groups,
  dx: Float32Array | undefined,
  sums: ParamSums | undefined,
  dMean?: Float32Array,
  dInv?: Float32Array,
): void {
  const { count, size, eps, scale, slot } = groups;
  const xhat = new Float64Array(size), g = new Float64Array(size);
  for (let k = 0; k < count; k++) {
    const base = k * size;
    let mean = 0;
    for (let i = 0; i < size; i++) mean += x[base + i];
    mean /= size;
    let variance = 0;
    for (let i = 0; i < size; i++) variance += (x[base + i] - mean) ** 2;
    const r = 1 / Math.sqrt(variance / size + eps);
    let gMean = 0, gxMean = 0;
    for (let i = 0; i < size; i++) {
      const p = slot(k, i), d = dy ? dy[base + i] : 0;
      xhat[i] = (x[base + i] - mean) * r;
      g[i] = d * scale[p];
      gMean += g[i];
      gxMean += g[i] * xhat[i];
      if (sums) {
        sums.dScale[p] += d * xhat[i];
        sums.dBias[p] += d;
      }
    }
    if (!dx) continue;
    gMean /= size;
    gxMean /= size;
    const fromMean = dMean ? dMean[k] / size : 0, fromInv = dInv ? (dInv[k] * r * r) / size : 0;
    for (let i = 0; i < size; i++) {
      dx[base + i] = r * (g[i] - gMean - xhat[i] * gxMean) + fromMean - fromInv * xhat[i];
    }
  }
}

/** out[index[i]] += values[i]: per-position sums summed to a broadcast parameter's shape. */
function sumInto(out: WasmValue | undefined, values: Float64Array, index: Int32Array): void {
  if (!out) return;
  const sums = new Float64Array(out.size);
  for (let i = 0; i < values.length; i++) sums[index[i]] += values[i];
  out.data.set(sums);
}

/** LayerNormalization over the axes from `axis` on, scale and bias broadcast to them. */
const layerNormGrad: OpGrad = (ctx, inputs, _outputs, [dy, dMean, dInv]) => {
  const node = ctx.node;
  if (!dy && !dMean && !dInv) return zeroGradients(ctx, inputs);
  const x = floatInput(node, inputs, 0), scale = floatInput(node, inputs, 1), bias = inputs[2];
  const axis = normalizeAxis(node, attrInt(node, "axis", -1), x.shape.length);
  const normalized = x.shape.slice(axis), size = product(normalized);
  const dx = ctx.wants(0) ? ctx.outputF32(x.shape) : undefined;
  const dScale = ctx.wants(1) ? ctx.outputF32(scale.shape) : undefined;
  const dBias = bias && ctx.wants(2) ? ctx.outputF32(bias.shape) : undefined;
  // Parameter slots are the normalised positions; sums go to the parameters' own shapes after.
  const sIndex = broadcastIndex(scale.shape, normalized);
  const sd = scale.data;
  const sums = dScale || dBias
    ? { dScale: new Float64Array(size), dBias: new Float64Array(size) }
    : undefined;
  normalizeGrad(
    x.data,
    dy?.data,
    {
      count: product(x.shape.slice(0, axis)),
      size,
      eps: attrFloat(node, "epsilon", 1e-5),
      scale: Float64Array.from(sIndex, (j) => sd[j]),
      slot: (_, i) => i,
    },
    dx?.data,
    sums,
    dMean?.data,
    dInv?.data,
  );
  if (sums) {
    sumInto(dScale, sums.dScale, sIndex);
    if (bias) sumInto(dBias, sums.dBias, broadcastIndex(bias.shape, normalized));
  }
  return [dx, dScale, dBias].slice(0, inputs.length);
};

/** InstanceNormalization: one group per (image, channel) plane, scale and bias per channel. */
const instanceNormGrad: OpGrad = (ctx, inputs, _outputs, [dy]) => {
  const node = ctx.node;
  if (!dy) return zeroGradients(ctx, inputs);
  const x = floatInput(node, inputs, 0),
    scale = floatInput(node, inputs, 1),
    bias = floatInput(node, inputs, 2);
  const [n, c] = x.shape;
  const dx = ctx.wants(0) ? ctx.outputF32(x.shape) : undefined;
  const dScale = ctx.wants(1) ? ctx.outputF32(scale.shape) : undefined;
  const dBias = ctx.wants(2) ? ctx.outputF32(bias.shape) : undefined;
  const sums = dScale || dBias ? { dScale: new Float64Array(c), dBias: new Float64Array(c) } : undefined;
  normalizeGrad(
    x.data,
    dy.data,
    {
      count: n * c,
      size: product(x.shape.slice(2)),
      eps: attrFloat(node, "epsilon", 1e-5),
      scale: scale.data,
      slot: (k) => k % c,
    },
    dx?.data,
    sums,
  );
  dScale?.data.set(sums!.dScale);
  dBias?.data.set(sums!.dBias);
  return [dx, dScale, dBias];
};

/**
 * MeanVarianceNormalization y = (x − mean)/d over `axes`, d = σ + 1e-9 with σ
 * the biased standard deviation: dx = (dy − mean(dy))/d − (x − mean)·A/(d²·σ),
 * A = mean(dy·(x − mean)) (∂σ/∂x = (x − mean)/(n·σ)).
 */
const mvnGrad: OpGrad = (ctx, inputs, _outputs, [dy]) => {
  const node = ctx.node;
  if (!dy) return zeroGradients(ctx, inputs);
  const x = floatInput(node, inputs, 0);
  if (!ctx.wants(0)) return [undefined];
  const axes = new Set(attrInts(node, "axes", [0, 2, 3]).map((a) => normalizeAxis(node, a, x.shape.length)));
  const kept = x.shape.map((d, i) => (axes.has(i) ? 1 : d));
  const slot = broadcastIndex(kept, x.shape);
  const slots = product(kept), count = x.size / Math.max(slots, 1);
  const dx = ctx.outputF32(x.shape);
  const xd = x.data, gd = dy.data, dxd = dx.data;
  const mean = new Float64Array(slots), variance = new Float64Array(slots);
  for (let i = 0; i < xd.length; i++) mean[slot[i]] += xd[i] / count;
  for (let i = 0; i < xd.length; i++) variance[slot[i]] += (xd[i] - mean[slot[i]]) ** 2 / count;
  const gMean = new Float64Array(slots), a = new Float64Array(slots);
  for (let i = 0; i < xd.length; i++) {
    gMean[slot[i]] += gd[i] / count;
    a[slot[i]] += (gd[i] * (xd[i] - mean[slot[i]])) / count;
  }
  for (let i = 0; i < xd.length; i++) {
    const s = slot[i], sigma = Math.sqrt(variance[s]), d = sigma + 1e-9;
    const spread = sigma > 0 ? ((xd[i] - mean[s]) * a[s]) / (d * d * sigma) : 0;
    dxd[i] = (gd[i] - gMean[s]) / d - spread;
  }
  return [dx];
};

/**
 * LRN y_c = x_c·D_c^−β, D_c = bias + (α/size)·Σ x_k² over the channels k of
 * c's window [c − before, c + after]: dx_j = dy_j·D_j^−β −
 * 2β(α/size)·x_j·Σ dy_c·x_c·D_c^(−β−1) over the windows c that hold j.
 */
const lrnGrad: OpGrad = (ctx, inputs, _outputs, [dy]) => {
  const node = ctx.node;
  if (!dy) return zeroGradients(ctx, inputs);
  const x = floatInput(node, inputs, 0);
  if (!ctx.wants(0)) return [undefined];
  const size = attrInt(node, "size");
  if (size === undefined) throw opError(node, "size is required");
  const alpha = attrFloat(node, "alpha", 1e-4), beta = attrFloat(node, "beta", 0.75);
  const bias = attrFloat(node, "bias", 1);
  const [n, c] = x.shape, inner = product(x.shape.slice(2));
  const before = Math.floor((size - 1) / 2), after = Math.ceil((size - 1) / 2);
  const dx = ctx.outputF32(x.shape);
  const xd = x.data, gd = dy.data, dxd = dx.data;
  const denominator = new Float64Array(c), weighted = new Float64Array(c);
  for (let img = 0; img < n; img++) {
    for (let i = 0; i < inner; i++) {
      const at = (ch: number) => (img * c + ch) * inner + i;
      for (let ch = 0; ch < c; ch++) {
        let sum = 0;
        for (let k = Math.max(0, ch - before); k <= Math.min(c - 1, ch + after); k++) sum += xd[at(k)] ** 2;
        denominator[ch] = bias + (alpha / size) * sum;
        weighted[ch] = gd[at(ch)] * xd[at(ch)] * denominator[ch] ** (-beta - 1);
      }
      for (let j = 0; j < c; j++) {
        let sum = 0;
        for (let ch = Math.max(0, j - after); ch <= Math.min(c - 1, j + before); ch++) sum += weighted[ch];
        dxd[at(j)] = gd[at(j)] * denominator[j] ** -beta - 2 * beta * (alpha / size) * xd[at(j)] * sum;
      }
    }
  }
  return [dx];
};

registerGradients({
  Softmax: softmaxGrad(false),
  LogSoftmax: softmaxGrad(true),
  LayerNormalization: layerNormGrad,
  InstanceNormalization: instanceNormGrad,
  MeanVarianceNormalization: mvnGrad,
  LRN: lrnGrad,
});
