// Backward of the elementwise ops in elementwise.ts: the broadcasting
// arithmetic (Add, Sub, Mul, Div), whose operand gradients are summed back to
// each operand's shape, and the activations (Relu, LeakyRelu, Clip, Sigmoid,
// HardSigmoid, HardSwish): dx = dy · f'(x). The work runs on the wasm binary,
// unary, reduceToShape and unaryGrad kernels.
import { attrFloat } from "../../graph/ir.ts";
import { reduceToShape } from "../../kernels/binary-grad.ts";
import { binary } from "../../kernels/binary.ts";
import { unaryGrad, type UnaryGradParams } from "../../kernels/unary-grad.ts";
import { unary } from "../../kernels/unary.ts";
import { type GradContext, type OpGrad, registerGradients } from "../registry.ts";
import { type Value, WasmValue } from "../value.ts";
import { floatInput, scratchParts, sumToShape, zeroGradients } from "./grad-util.ts";

const same = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((d, i) => d === b[i]);

/** Add (sign 1) and Sub (sign -1): dy summed to each operand's shape. */
const addGrad = (sign: number): OpGrad => (ctx, inputs, _outputs, [dy]) => {
  if (!dy) return zeroGradients(ctx, inputs);
  const a = floatInput(ctx.node, inputs, 0), b = floatInput(ctx.node, inputs, 1);
  return [
    ctx.wants(0) ? sumToShape(ctx, dy, a.shape) : undefined,
    ctx.wants(1) ? sumToShape(ctx, dy, b.shape, sign) : undefined,
  ];
};

/** out = scale · Σ (src of dy's shape) over the axes `out` was broadcast along. */
function sumInto(from: readonly number[], src: number, out: WasmValue, scale = 1): void {
  reduceToShape({ from, to: out.shape, scale }, src, out.ptr);
}

/** Mul: dA = Σ dy·B, dB = Σ dy·A, each summed to its operand's shape. */
const mulGrad: OpGrad = (ctx, inputs, _outputs, [dy]) => {
  if (!dy) return zeroGradients(ctx, inputs);
  const a = floatInput(ctx.node, inputs, 0), b = floatInput(ctx.node, inputs, 1);
  const da = ctx.wants(0) ? ctx.outputF32(a.shape) : undefined;
  const db = ctx.wants(1) ? ctx.outputF32(b.shape) : undefined;
  const summed = (da && !same(a.shape, dy.shape)) || (db && !same(b.shape, dy.shape));
  const [temp] = scratchParts(ctx, [summed ? dy.size * 4 : 0]);
  for (const [grad, other] of [[da, b], [db, a]] as const) {
    if (!grad) continue;
    const full = same(grad.shape, dy.shape);
    binary(
      { op: "mul", aShape: dy.shape, bShape: other.shape, outShape: dy.shape },
      dy.ptr,
      other.ptr,
      full ? grad.ptr : temp,
    );
    if (!full) sumInto(dy.shape, temp, grad);
  }
  return [da, db];
};

/** Div: u = dy / B; dA = Σ u, dB = -Σ u·A / B, each summed to its operand's shape. */
const divGrad: OpGrad = (ctx, inputs, _outputs, [dy]) => {
  if (!dy) return zeroGradients(ctx, inputs);
  const a = floatInput(ctx.node, inputs, 0), b = floatInput(ctx.node, inputs, 1);
  const da = ctx.wants(0) ? ctx.outputF32(a.shape) : undefined;
  const db = ctx.wants(1) ? ctx.outputF32(b.shape) : undefined;
  const uInPlace = da !== undefined && same(a.shape, dy.shape);
  const [uScratch, t] = scratchParts(ctx, [uInPlace ? 0 : dy.size * 4, db ? dy.size * 4 : 0]);
  const u = uInPlace ? da.ptr : uScratch;
  const full = dy.shape;
  binary({ op: "div", aShape: full, bShape: b.shape, outShape: full }, dy.ptr, b.ptr, u);
  if (da && !uInPlace) sumInto(full, u, da);
  if (db) {
    binary({ op: "mul", aShape: full, bShape: a.shape, outShape: full }, u, a.ptr, t);
    binary({ op: "div", aShape: full, bShape: b.shape, outShape: full }, t, b.ptr, t);
    sumInto(full, t, db, -1);
  }
  return [da, db];
};

/** An activation whose derivative unaryGrad knows: dx = dy · f'(x). */
function activationGrad(params: (ctx: GradContext) => Omit<UnaryGradParams, "length">): OpGrad {
  return (ctx, inputs, outputs, [dy]) => {
    if (!dy) return zeroGradients(ctx, inputs);
    const x = floatInput(ctx.node, inputs, 0);
    const p = { ...params(ctx), length: x.size };
    const dx = ctx.wants(0) ? ctx.outputF32(x.shape) : undefined;
    if (!dx) return [undefined];
    let y = outputs[0] instanceof WasmValue ? outputs[0].ptr : x.ptr;
    if (p.op === "sigmoid" && !(outputs[0] instanceof WasmValue)) {
      // The forward output was not kept: recompute it.
      [y] = scratchParts(ctx, [x.size * 4]);
      unary({ op: "sigmoid", length: x.size }, x.ptr, y);
    }
    unaryGrad(p, x.ptr, y, dy.ptr, dx.ptr);
    return [dx];
  };
}

/** Clip's bounds as the forward reads them: attributes before opset 11, optional inputs after. */
function clipBounds(ctx: GradContext, inputs: (Value | undefined)[]): [number, number] {
  if (ctx.opset < 11) {
    return [
      attrFloat(ctx.node, "min", -3.4028234663852886e38),
      attrFloat(ctx.node, "max", 3.4028234663852886e38),
    ];
  }
  return [
    inputs[1] ? Number(inputs[1].data[0]) : -Infinity,
    inputs[2] ? Number(inputs[2].data[0]) : Infinity,
  ];
}

/** Clip: dx = dy where min ≤ x ≤ max; the bounds (inputs from opset 11) get dy summed where x lies beyond them. */
const clipGrad: OpGrad = (ctx, inputs, _outputs, [dy]) => {
  if (!dy) return zeroGradients(ctx, inputs);
  const x = floatInput(ctx.node, inputs, 0);
  const [lo, hi] = clipBounds(ctx, inputs);
  const dx = ctx.wants(0) ? ctx.outputF32(x.shape) : undefined;
  const dBounds = [1, 2].map((
    i,
  ) => (ctx.wants(i) && inputs[i] ? ctx.outputF32(inputs[i]!.shape) : undefined));
  if (dx) unaryGrad({ op: "clip", length: x.size, min: lo, max: hi }, x.ptr, x.ptr, dy.ptr, dx.ptr);
  if (dBounds[0] || dBounds[1]) {
    // Bounds are scalars, rarely trained: a plain loop.
    const xd = x.data, gd = dy.data;
    let below = 0, above = 0;
    for (let i = 0; i < xd.length; i++) {
      if (xd[i] < lo) below += gd[i];
      else if (xd[i] > hi) above += gd[i];
    }
    if (dBounds[0]) dBounds[0].data[0] = below;
    if (dBounds[1]) dBounds[1].data[0] = above;
  }
  return [dx, ...dBounds].slice(0, inputs.length);
};

registerGradients({
  Add: addGrad(1),
  Sub: addGrad(-1),
  Mul: mulGrad,
  Div: divGrad,
  Relu: activationGrad(() => ({ op: "relu" })),
  LeakyRelu: activationGrad((ctx) => ({ op: "leakyRelu", alpha: attrFloat(ctx.node, "alpha", 0.01) })),
  Sigmoid: activationGrad(() => ({ op: "sigmoid" })),
  HardSigmoid: activationGrad((ctx) => ({
    op: "hardSigmoid",
    alpha: attrFloat(ctx.node, "alpha", 0.2),
    beta: attrFloat(ctx.node, "beta", 0.5),
  })),
  HardSwish: activationGrad(() => ({ op: "hardSwish" })),
  Clip: clipGrad,
});
