// Backward of Resize and Upsample in every mode the forward runs (nearest,
// linear, cubic, antialiased, tf_crop_and_resize). The forward resizes one
// axis at a time, each output position a weighted sum of a few input taps;
// the backward replays the same axes in reverse and sends each output
// gradient back to its taps with the same weights. Plain TypeScript.
import { type OpGrad, registerGradients } from "../registry.ts";
import { constantGradients, floatInput } from "./grad-util.ts";
import { type AxisTaps, axisTaps, options, target } from "./resize.ts";
import { product } from "./util.ts";

interface Pass {
  inLen: number;
  outLen: number;
  outer: number;
  inner: number;
  taps: AxisTaps;
}

const resizeGrad: OpGrad = (ctx, inputs, _outputs, [dy]) => {
  const x = floatInput(ctx.node, inputs, 0);
  // roi and scales are float inputs, constants in practice: the output does not move with them.
  const rest = constantGradients(ctx, inputs);
  if (!ctx.wants(0)) return [undefined, ...rest];
  const o = options(ctx.node, ctx.opset);
  const { outShape, scales, roi } = target(ctx, x, inputs);
  // The forward's passes, in its order.
  const passes: Pass[] = [];
  const shape = [...x.shape];
  for (let a = 0; a < shape.length; a++) {
    const inLen = shape[a], outLen = outShape[a];
    const cropped = o.transform === "tf_crop_and_resize" && (roi[a][0] !== 0 || roi[a][1] !== 1);
    if (outLen === inLen && scales[a] === 1 && !cropped) continue;
    const taps = axisTaps(inLen, outLen, scales[a], roi[a], o);
    passes.push({
      inLen,
      outLen,
      outer: product(shape.slice(0, a)),
      inner: product(shape.slice(a + 1)),
      taps,
    });
    shape[a] = outLen;
  }
  const dx = ctx.outputF32(x.shape);
  if (!dy) {
    dx.data.fill(0);
    return [dx, ...rest];
  }
  let g: Float32Array | Float64Array = dy.data;
  for (let k = passes.length - 1; k >= 0; k--) {
    const { inLen, outLen, outer, inner, taps } = passes[k];
    const prev = new Float64Array(outer * inLen * inner);
    for (let p = 0; p < outer; p++) {
      for (let q = 0; q < outLen; q++) {
        // Positions outside a crop box took the extrapolation value: nothing flows back.
        if (taps.outside[q]) continue;
        const src = (p * outLen + q) * inner;
        for (let t = 0; t < taps.width; t++) {
          const w = taps.weight[q * taps.width + t];
          if (w === 0) continue;
          const dst = (p * inLen + taps.index[q * taps.width + t]) * inner;
          for (let i = 0; i < inner; i++) prev[dst + i] += w * g[src + i];
        }
      }
    }
    g = prev;
  }
  dx.data.set(g);
  return [dx, ...rest];
};

registerGradients({ Resize: resizeGrad, Upsample: resizeGrad });
