// Resize and Upsample: nearest, (multi)linear and cubic interpolation, every
// coordinate transformation mode, antialiasing, and tf_crop_and_resize's roi
// and extrapolation value. All of them are separable, so the op runs one axis
// at a time: each output position on an axis reads a few input positions
// ("taps") with weights, as in the ONNX reference implementation.
import { AttnroundError } from "../../errors.ts";
import { attrFloat, attrInt, attrInts, attrString, type Node } from "../../graph/ir.ts";
import { opError, registerOps, required, wasmInput } from "../registry.ts";
import type { OpContext } from "../registry.ts";
import type { Value } from "../value.ts";
import { normalizeAxis, toNumbers } from "./util.ts";

const transforms = [
  "half_pixel",
  "half_pixel_symmetric",
  "pytorch_half_pixel",
  "align_corners",
  "asymmetric",
  "tf_half_pixel_for_nn",
  "tf_crop_and_resize",
];
const nearestModes = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"];

export interface Options {
  mode: "nearest" | "linear" | "cubic";
  transform: string;
  nearestMode: string;
  cubicA: number;
  excludeOutside: boolean;
  antialias: boolean;
  extrapolation: number;
}

/** The taps of one axis: output position o reads index[o·width + t] with weight[o·width + t]. */
export interface AxisTaps {
  width: number;
  index: Int32Array;
  weight: Float64Array;
  /** tf_crop_and_resize: output positions outside the input, which take the extrapolation value. */
  outside: Uint8Array;
}

export function options(node: Node, opset: number): Options {
  const legacy = node.opType === "Upsample" || opset < 11;
  const raw = attrString(node, "mode", "nearest");
  return {
    mode: raw === "cubic" ? "cubic" : raw === "nearest" ? "nearest" : "linear",
    // Upsample and opset-10 Resize map coordinates asymmetrically and pick the nearest pixel by flooring.
    transform: legacy ? "asymmetric" : attrString(node, "coordinate_transformation_mode", "half_pixel"),
    nearestMode: legacy ? "floor" : attrString(node, "nearest_mode", "round_prefer_floor"),
    cubicA: attrFloat(node, "cubic_coeff_a", -0.75),
    excludeOutside: attrInt(node, "exclude_outside", 0) === 1,
    antialias: attrInt(node, "antialias", 0) === 1,
    extrapolation: attrFloat(node, "extrapolation_value", 0),
  };
}

/** Input coordinate of output position o, or undefined outside a tf_crop_and_resize box. */
function sourceCoordinate(
  o: number,
  inLen: number,
  outLen: number,
  scale: number,
  roi: [number, number],
  transform: string,
): number | undefined {
  // ONNX measures the resized length before flooring: inLen·scale.
  const resized = inLen * scale;
  switch (transform) {
    case "half_pixel":
      return (o + 0.5) / scale - 0.5;
    case "half_pixel_symmetric": {
      const offset = (inLen / 2) * (1 - outLen / resized);
      return offset + (o + 0.5) / scale - 0.5;
    }
    case "pytorch_half_pixel":
      return outLen > 1 ? (o + 0.5) / scale - 0.5 : 0;
    case "align_corners":
      return outLen > 1 ? (o * (inLen - 1)) / (resized - 1) : 0;
    case "asymmetric":
      return o / scale;
    case "tf_half_pixel_for_nn":
      return (o + 0.5) / scale;
    case "tf_crop_and_resize": {
      const [start, end] = roi;
      const x = resized > 1
        ? start * (inLen - 1) + (o * (end - start) * (inLen - 1)) / (resized - 1)
        : 0.5 * (start + end) * (inLen - 1);
      return x < 0 || x > inLen - 1 ? undefined : x;
    }
  }
  throw new AttnroundError("INTERNAL", `coordinate mode ${transform} has no mapping`);
}

/** Cubic convolution kernel with parameter a (Keys). */
function cubicKernel(x: number, a: number): number {
  x = Math.abs(x);
  if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}

/**
 * Weights of the taps at base + 1 − n/2 … base + n/2 for a point at base + ratio,
 * ratio in (0, 1]. Antialiasing stretches the kernel by 1/scale when downsampling.
 */
function coefficients(ratio: number, scale: number, o: Options): number[] {
  if (o.mode === "nearest") {
    if (ratio === 1) return [0, 1];
    const m = o.nearestMode;
    const up = m === "ceil" ||
      (m === "round_prefer_ceil" ? ratio >= 0.5 : m === "round_prefer_floor" && ratio > 0.5);
    return up ? [0, 1] : [1, 0];
  }
  const s = o.antialias ? Math.min(scale, 1) : 1;
  const reach = o.mode === "linear" ? 1 : 2;
  const start = Math.floor(-reach / s) + 1;
  const weights: number[] = [];
  for (let i = start; i < 2 - start; i++) {
    const d = s * (i - ratio);
    weights.push(o.mode === "linear" ? Math.max(0, 1 - Math.abs(d)) : cubicKernel(d, o.cubicA));
  }
  if (!o.antialias) return weights;
  const sum = weights.reduce((a, b) => a + b, 0);
  return weights.map((w) => w / sum);
}

export function axisTaps(
  inLen: number,
  outLen: number,
  scale: number,
  roi: [number, number],
  o: Options,
): AxisTaps {
  const width = coefficients(0.5, scale, o).length;
  const index = new Int32Array(outLen * width);
  const weight = new Float64Array(outLen * width);
  const outside = new Uint8Array(outLen);
  for (let p = 0; p < outLen; p++) {
    const x = sourceCoordinate(p, inLen, outLen, scale, roi, o.transform);
    if (x === undefined) {
      outside[p] = 1;
      continue;
    }
    // The taps prefer the left neighbour: an integral x is base + 1 with base = x − 1.
    let base = Math.floor(x), ratio = x - base;
    if (ratio === 0) {
      base--;
      ratio = 1;
    }
    const w = coefficients(ratio, scale, o);
    const first = base + 1 - width / 2;
    let kept = 0;
    for (let t = 0; t < width; t++) {
      const i = first + t;
      const inside = i >= 0 && i < inLen;
      if (o.excludeOutside && !inside) w[t] = 0;
      kept += w[t];
      // Outside the input the edge value repeats.
      index[p * width + t] = Math.min(Math.max(i, 0), inLen - 1);
    }
    for (let t = 0; t < width; t++) weight[p * width + t] = o.excludeOutside ? w[t] / kept : w[t];
  }
  return { width, index, weight, outside };
}

interface Target {
  outShape: number[];
  scales: number[];
  /** Per axis [start, end] of the tf_crop_and_resize box, in normalized input coordinates. */
  roi: [number, number][];
}

export function target(ctx: OpContext, x: Value, inputs: (Value | undefined)[]): Target {
  const node = ctx.node;
  const rank = x.shape.length;
  let scales: number[] | undefined, sizes: number[] | undefined, roiIn: number[] | undefined;
  if (node.opType === "Upsample") {
    scales = ctx.opset >= 9 ? toNumbers(required(node, inputs, 1)) : attrInts(node, "scales");
  } else if (ctx.opset < 11) {
    scales = toNumbers(required(node, inputs, 1));
  } else {
    const given = (i: number) => inputs[i] !== undefined && inputs[i]!.data.length > 0;
    if (given(1)) roiIn = toNumbers(inputs[1]!);
    if (given(2)) scales = toNumbers(inputs[2]!);
    if (given(3)) sizes = toNumbers(inputs[3]!);
  }
  const axesAttr = attrInts(node, "axes");
  const axes = axesAttr ? axesAttr.map((a) => normalizeAxis(node, a, rank)) : x.shape.map((_, i) => i);
  const given = sizes ?? scales;
  if (!given) throw opError(node, "needs scales or sizes");
  if (given.length !== axes.length) {
    throw opError(node, `${sizes ? "sizes" : "scales"} has ${given.length} values for ${axes.length} axes`);
  }
  const outShape = [...x.shape];
  const fullScales = x.shape.map(() => 1);
  const roi = x.shape.map((): [number, number] => [0, 1]);
  if (roiIn) {
    if (roiIn.length !== 2 * axes.length) {
      throw opError(node, `roi has ${roiIn.length} values, expected ${2 * axes.length}`);
    }
    axes.forEach((a, i) => (roi[a] = [roiIn![i], roiIn![i + axes.length]]));
  }
  if (sizes) {
    const policy = attrString(node, "keep_aspect_ratio_policy", "stretch");
    let ratio: number | undefined;
    if (policy !== "stretch") {
      const ratios = axes.map((a, i) => sizes![i] / x.shape[a]);
      ratio = policy === "not_larger" ? Math.min(...ratios) : Math.max(...ratios);
    }
    axes.forEach((a, i) => {
      outShape[a] = ratio === undefined ? sizes![i] : Math.round(x.shape[a] * ratio);
      fullScales[a] = ratio ?? sizes![i] / x.shape[a];
    });
  } else {
    axes.forEach((a, i) => {
      if (!(scales![i] > 0)) throw opError(node, `scale ${scales![i]} must be positive`);
      fullScales[a] = scales![i];
      outShape[a] = Math.floor(x.shape[a] * scales![i]);
    });
  }
  return { outShape, scales: fullScales, roi };
}

function resize(ctx: OpContext, inputs: (Value | undefined)[]): Value[] {
  const node = ctx.node;
  const x = wasmInput(node, inputs, 0);
  const o = options(node, ctx.opset);
  const { outShape, scales, roi } = target(ctx, x, inputs);
  const y = ctx.outputF32(outShape);
  let shape = [...x.shape];
  let current: Float32Array | Float64Array = x.data;
  for (let a = 0; a < shape.length; a++) {
    const inLen = shape[a], outLen = outShape[a];
    const cropped = o.transform === "tf_crop_and_resize" && (roi[a][0] !== 0 || roi[a][1] !== 1);
    if (outLen === inLen && scales[a] === 1 && !cropped) continue;
    const taps = axisTaps(inLen, outLen, scales[a], roi[a], o);
    const outer = shape.slice(0, a).reduce((p, d) => p * d, 1);
    const inner = shape.slice(a + 1).reduce((p, d) => p * d, 1);
    const next = new Float64Array(outer * outLen * inner);
    for (let p = 0; p < outer; p++) {
      for (let q = 0; q < outLen; q++) {
        const dst = (p * outLen + q) * inner;
        if (taps.outside[q]) {
          next.fill(o.extrapolation, dst, dst + inner);
          continue;
        }
        for (let t = 0; t < taps.width; t++) {
          const w = taps.weight[q * taps.width + t];
          if (w === 0) continue;
          const src = (p * inLen + taps.index[q * taps.width + t]) * inner;
          for (let i = 0; i < inner; i++) next[dst + i] += w * current[src + i];
        }
      }
    }
    shape[a] = outLen;
    shape = [...shape];
    current = next;
  }
  y.data.set(current);
  return [y];
}

function resizeCheck(node: Node, opset: number): string | undefined {
  const o = options(node, opset);
  const mode = attrString(node, "mode", "nearest");
  if (!["nearest", "linear", "bilinear", "cubic"].includes(mode)) {
    return `mode "${mode}" is not supported (nearest, linear and cubic are)`;
  }
  if (!transforms.includes(o.transform)) return `coordinate mode "${o.transform}" is not supported`;
  if (!nearestModes.includes(o.nearestMode)) return `nearest mode "${o.nearestMode}" is not supported`;
  const policy = attrString(node, "keep_aspect_ratio_policy", "stretch");
  if (!["stretch", "not_larger", "not_smaller"].includes(policy)) {
    return `keep_aspect_ratio_policy "${policy}" is not supported`;
  }
  if (o.antialias && o.mode === "nearest") return "antialias applies to linear and cubic modes only";
  return undefined;
}

registerOps({ Resize: resize, Upsample: resize }, { Resize: resizeCheck, Upsample: resizeCheck });
