// Backward of QuantizeLinear and DequantizeLinear, so that a Q/DQ pair left in
// a model (a partly quantized export) does not stop the gradient: rounding
// passes it straight through, as the activation quantizers of reconstruction
// do, and clipping stops it. Quantize: dx = dy/scale where x was not clipped;
// Dequantize: d(integers) = dy·scale. The pair gives dx = dy inside the range.
// Scales and zero points are constants here: they get no gradient.
import { attrInt, type Node } from "../../graph/ir.ts";
import { type OpGrad, registerGradients } from "../registry.ts";
import type { Value } from "../value.ts";
import { constantGradients } from "./grad-util.ts";
import { normalizeAxis } from "./util.ts";

/** For element i of x, its index into a per-tensor or per-axis scale and zero point. */
function paramIndex(node: Node, x: Value, param: Value): (i: number) => number {
  if (param.data.length === 1) return () => 0;
  const axis = normalizeAxis(node, attrInt(node, "axis", 1), x.shape.length);
  const inner = x.shape.slice(axis + 1).reduce((a, b) => a * b, 1), dim = x.shape[axis];
  return (i) => Math.floor(i / inner) % dim;
}

function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const quantizeGrad: OpGrad = (ctx, inputs, outputs, [dy]) => {
  const rest = constantGradients(ctx, inputs);
  const x = inputs[0]!, scale = inputs[1]!, zero = inputs[2];
  if (!ctx.wants(0)) return [undefined, ...rest];
  const dx = ctx.outputF32(x.shape);
  if (!dy) {
    dx.data.fill(0);
    return [dx, ...rest];
  }
  const at = paramIndex(ctx.node, x, scale);
  const xd = x.data as Float32Array, sd = scale.data as Float32Array, zd = zero?.data;
  const yd = outputs[0]!.data, gd = dy.data, dxd = dx.data;
  for (let i = 0; i < xd.length; i++) {
    const j = at(i);
    // Not clipped: the stored integer is the rounded value itself (as the forward rounds it).
    const q = roundHalfEven(Math.fround(xd[i] / sd[j])) + (zd ? Number(zd[j]) : 0);
    dxd[i] = Number(yd[i]) === q ? gd[i] / sd[j] : 0;
  }
  return [dx, ...rest];
};

const dequantizeGrad: OpGrad = (ctx, inputs, _outputs, [dy]) => {
  const rest = constantGradients(ctx, inputs);
  const x = inputs[0]!, scale = inputs[1]!;
  if (!ctx.wants(0)) return [undefined, ...rest];
  const dx = ctx.outputF32(x.shape);
  if (!dy) {
    dx.data.fill(0);
    return [dx, ...rest];
  }
  const at = paramIndex(ctx.node, x, scale);
  const sd = scale.data as Float32Array, gd = dy.data, dxd = dx.data;
  for (let i = 0; i < dxd.length; i++) dxd[i] = gd[i] * sd[at(i)];
  return [dx, ...rest];
};

registerGradients({ QuantizeLinear: quantizeGrad, DequantizeLinear: dequantizeGrad });
