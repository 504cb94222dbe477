// Pointwise ops as plain TypeScript loops: activations and math functions
// beyond the wasm kernels' set, logic, PRelu and CastLike. None is a hot path
// in the CNNs this engine is for.
import { attrFloat, attrInt, type Node } from "../../graph/ir.ts";
import type { DType } from "../../tensor.ts";
import { registerOps, required } from "../registry.ts";
import type { OpRun } from "../registry.ts";
import type { Value } from "../value.ts";
import { castInto } from "./elementwise.ts";
import { broadcastIndex, broadcastShapes, setter } from "./util.ts";
import { roundHalfEven } from "../../kernels/quant.ts";

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

export const SELU_ALPHA = 1.67326319217681884765625, SELU_GAMMA = 1.05070102214813232421875;

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
  CastLike: castLike,
});
