// Backward of the broadcasting ops that elementwise-grad.ts leaves out: Pow,
// Mod, the variadic Max, Min, Sum and Mean, Where, and Cast between float types.
// Each operand's gradient is the output gradient (times a local derivative)
// summed back over the axes the operand was broadcast along. Plain
// TypeScript, accumulating in float64.
import { attrInt } from "../../graph/ir.ts";
import { type GradContext, type OpGrad, registerGradients } from "../registry.ts";
import { type Value, WasmValue } from "../value.ts";
import { constantGradients, zeroGradients } from "./grad-util.ts";
import { broadcastIndex } from "./util.ts";

/** ∂y[i]/∂(input k), given for each input the element index[k][i] that output i reads. */
type Local = (k: number, i: number) => number;

/**
 * Gradients of the wanted float inputs of a broadcasting op whose output has
 * dy's shape: input k gets Σ dy[i]·local(k, i) over the output elements i.
 * `derivative` is called once the gradients are allocated, so that it may
 * take views of wasm memory.
 */
function broadcastGrads(
  ctx: GradContext,
  inputs: (Value | undefined)[],
  dy: WasmValue,
  derivative: (index: Int32Array[], data: (ArrayLike<unknown> | undefined)[]) => Local,
): (WasmValue | undefined)[] {
  const wanted = inputs.map((v, k) => v !== undefined && v.dtype === "float32" && ctx.wants(k));
  const grads = inputs.map((v, k) => (wanted[k] ? ctx.outputF32(v!.shape) : undefined));
  const index = inputs.map((v) => (v ? broadcastIndex(v.shape, dy.shape) : new Int32Array(0)));
  const local = derivative(index, inputs.map((v) => v?.data));
  const gd = dy.data;
  grads.forEach((g, k) => {
    if (!g) return;
    const sums = new Float64Array(g.size), at = index[k];
    for (let i = 0; i < gd.length; i++) sums[at[i]] += gd[i] * local(k, i);
    g.data.set(sums);
  });
  return grads;
}

/**
 * Pow y = a^b: da = b·a^(b−1), db = y·ln a. Where ln a does not exist
 * (a ≤ 0) db is taken as 0, as it is in the limit a → 0⁺ for b > 0.
 */
const powGrad: OpGrad = (ctx, inputs, _outputs, [dy]) => {
  if (!dy) return zeroGradients(ctx, inputs);
  return broadcastGrads(ctx, inputs, dy, ([ia, ib], [ad, bd]) => (k, i) => {
    const x = Number(ad![ia[i]]), e = Number(bd![ib[i]]);
    if (k === 0) return e === 0 ? 0 : e * x ** (e - 1);
    return x > 0 ? x ** e * Math.log(x) : 0;
  });
};

/**
 * Mod y = a − b·q with q = trunc(a/b) (fmod) or floor(a/b): da = 1, db = −q,
 * q being constant between its jumps.
 */
const modGrad: OpGrad = (ctx, inputs, _outputs, [dy]) => {
  if (!dy) return zeroGradients(ctx, inputs);
  const round = attrInt(ctx.node, "fmod", 0) === 1 ? Math.trunc : Math.floor;
  return broadcastGrads(ctx, inputs, dy, ([ia, ib], [ad, bd]) => (k, i) => {
    if (k === 0) return 1;
    return -round(Number(ad![ia[i]]) / Number(bd![ib[i]]));
  });
};

/** Max and Min: each output element's gradient goes to the first input that holds the extreme. */
const extremeGrad = (larger: boolean): OpGrad => (ctx, inputs, _outputs, [dy]) => {
  if (!dy) return zeroGradients(ctx, inputs);
  const present = inputs.map((v, k) => (v ? k : -1)).filter((k) => k >= 0);
  return broadcastGrads(ctx, inputs, dy, (index, data) => {
    // Which input wins each output element.
    const chosen = new Int32Array(dy.size);
    for (let j = 0; j < dy.size; j++) {
      let best = present[0], value = Number(data[best]![index[best][j]]);
      for (const q of present.slice(1)) {
        const v = Number(data[q]![index[q][j]]);
        if (larger ? v > value : v < value) {
          best = q;
          value = v;
        }
      }
      chosen[j] = best;
    }
    return (k, i) => (chosen[i] === k ? 1 : 0);
  });
};

/** Sum and Mean (scale 1/n): dy summed to each input's shape. */
const sumGrad = (mean: boolean): OpGrad => (ctx, inputs, _outputs, [dy]) => {
  if (!dy) return zeroGradients(ctx, inputs);
  const scale = mean ? 1 / inputs.filter((v) => v !== undefined).length : 1;
  return broadcastGrads(ctx, inputs, dy, () => () => scale);
};

/** Where(condition, x, y): dy goes to x where the condition holds, to y elsewhere. */
const whereGrad: OpGrad = (ctx, inputs, _outputs, [dy]) => {
  if (!dy) return zeroGradients(ctx, inputs);
  return broadcastGrads(
    ctx,
    inputs,
    dy,
    ([ic], [cd]) => (k, i) => ((k === 1) === Boolean(cd![ic[i]]) ? 1 : 0),
  );
};

/** Cast and CastLike between float types: the gradient passes through; other inputs get none. */
const castGrad: OpGrad = (ctx, inputs, _outputs, [dy]) => {
  const x = inputs[0];
  const rest = constantGradients(ctx, inputs);
  if (!x || !ctx.wants(0)) return [undefined, ...rest];
  if (dy) return [new WasmValue(dy.ptr, x.shape), ...rest];
  const dx = ctx.outputF32(x.shape);
  dx.data.fill(0);
  return [dx, ...rest];
};

registerGradients({
  Pow: powGrad,
  Mod: modGrad,
  Max: extremeGrad(true),
  Min: extremeGrad(false),
  Sum: sumGrad(false),
  Mean: sumGrad(true),
  Where: whereGrad,
  Cast: castGrad,
  CastLike: castGrad,
});
