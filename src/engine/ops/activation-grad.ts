// Backward of the elementwise functions that elementwise-grad.ts leaves out
// (Tanh, Erf, Sqrt, Exp, Log, the trigonometric family, Softplus, Elu, …) and
// of PRelu: dx = dy · f'(x), with f' evaluated in float64 from the forward
// input. Plain TypeScript loops: none of these is a hot path next to the
// convolutions and matrix products around them.
import { attrFloat, type Node } from "../../graph/ir.ts";
import { type OpGrad, registerGradients } from "../registry.ts";
import type { Value } from "../value.ts";
import { floatInput, zeroGradients } from "./grad-util.ts";
import { broadcastIndex } from "./util.ts";
import { SELU_ALPHA, SELU_GAMMA } from "./pointwise.ts";

/** f'(x), given the node (for attributes) once per run. */
type Derivative = (node: Node) => (x: number) => number;

function elementwiseGrad(derivative: Derivative): OpGrad {
  return (ctx, inputs, _outputs, [dy]) => {
    if (!dy) return zeroGradients(ctx, inputs);
    const x = floatInput(ctx.node, inputs, 0);
    if (!ctx.wants(0)) return [undefined];
    const dx = ctx.outputF32(x.shape);
    const f = derivative(ctx.node);
    const xd = x.data, gd = dy.data, dxd = dx.data;
    for (let i = 0; i < xd.length; i++) dxd[i] = gd[i] * f(xd[i]);
    return [dx];
  };
}

const fixed = (f: (x: number) => number): Derivative => () => f;

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

const derivatives: Record<string, Derivative> = {
  Tanh: fixed((x) => 1 - Math.tanh(x) ** 2),
  Erf: fixed((x) => TWO_OVER_SQRT_PI * Math.exp(-x * x)),
  Sqrt: fixed((x) => 0.5 / Math.sqrt(x)),
  Exp: fixed(Math.exp),
  Log: fixed((x) => 1 / x),
  Neg: fixed(() => -1),
  Abs: fixed((x) => Math.sign(x)),
  Reciprocal: fixed((x) => -1 / (x * x)),
  Sin: fixed(Math.cos),
  Cos: fixed((x) => -Math.sin(x)),
  Tan: fixed((x) => 1 + Math.tan(x) ** 2),
  Asin: fixed((x) => 1 / Math.sqrt(1 - x * x)),
  Acos: fixed((x) => -1 / Math.sqrt(1 - x * x)),
  Atan: fixed((x) => 1 / (1 + x * x)),
  Sinh: fixed(Math.cosh),
  Cosh: fixed(Math.sinh),
  Asinh: fixed((x) => 1 / Math.sqrt(x * x + 1)),
  Acosh: fixed((x) => 1 / Math.sqrt(x * x - 1)),
  Atanh: fixed((x) => 1 / (1 - x * x)),
  // Softplus' derivative is the sigmoid.
  Softplus: fixed((x) => 1 / (1 + Math.exp(-x))),
  Softsign: fixed((x) => 1 / (1 + Math.abs(x)) ** 2),
  Elu: (node) => {
    const alpha = attrFloat(node, "alpha", 1);
    return (x) => (x < 0 ? alpha * Math.exp(x) : 1);
  },
  Selu: (node) => {
    const alpha = attrFloat(node, "alpha", SELU_ALPHA), gamma = attrFloat(node, "gamma", SELU_GAMMA);
    return (x) => gamma * (x > 0 ? 1 : alpha * Math.exp(x));
  },
  Celu: (node) => {
    const alpha = attrFloat(node, "alpha", 1);
    return (x) => (x > 0 ? 1 : Math.exp(x / alpha));
  },
  ThresholdedRelu: (node) => {
    const alpha = attrFloat(node, "alpha", 1);
    return (x) => (x > alpha ? 1 : 0);
  },
  Shrink: (node) => {
    const lambd = attrFloat(node, "lambd", 0.5);
    return (x) => (x < -lambd || x > lambd ? 1 : 0);
  },
};

/**
 * PRelu y = x < 0 ? slope·x : x, the slope broadcast to x (before opset 7 a
 * 1-D slope holds one value per channel): dx = dy·(x < 0 ? slope : 1), and
 * dslope = Σ dy·x over the negative x, summed to the slope's shape.
 */
const preluGrad: OpGrad = (ctx, inputs, _outputs, [dy]) => {
  if (!dy) return zeroGradients(ctx, inputs);
  const x = floatInput(ctx.node, inputs, 0), slope = inputs[1] as Value;
  const perChannel = ctx.opset < 7 && slope.shape.length === 1 && x.shape.length > 2 &&
    slope.shape[0] === x.shape[1];
  const slopeShape = perChannel ? [slope.shape[0], ...x.shape.slice(2).map(() => 1)] : slope.shape;
  const dx = ctx.wants(0) ? ctx.outputF32(x.shape) : undefined;
  const ds = ctx.wants(1) ? ctx.outputF32(slope.shape) : undefined;
  const index = broadcastIndex(slopeShape, x.shape);
  const xd = x.data, sd = slope.data as Float32Array, gd = dy.data;
  if (dx) {
    const dxd = dx.data;
    for (let i = 0; i < xd.length; i++) dxd[i] = xd[i] < 0 ? gd[i] * sd[index[i]] : gd[i];
  }
  if (ds) {
    const sums = new Float64Array(ds.size);
    for (let i = 0; i < xd.length; i++) if (xd[i] < 0) sums[index[i]] += gd[i] * xd[i];
    ds.data.set(sums);
  }
  return [dx, ds];
};

registerGradients({
  ...Object.fromEntries(Object.entries(derivatives).map(([op, d]) => [op, elementwiseGrad(d)])),
  PRelu: preluGrad,
});
