// Elementwise ops: numpy-broadcasting binary arithmetic, unary activations,
// Clip, Cast. Works on any numeric dtype; int64 stays exact as bigint.
import { attrFloat, attrInt } from "../../graph/ir.ts";
import type { DType, TensorData } from "../../tensor.ts";
import { opError, registerOps, required } from "../registry.ts";
import type { OpContext } from "../registry.ts";
import { binary as binaryKernel, type BinaryOp } from "../../kernels/binary.ts";
import { erfReference, unary as unaryKernel, type UnaryParams } from "../../kernels/unary.ts";
import { type Value, WasmValue } from "../value.ts";
import { broadcastIndex, broadcastShapes } from "./util.ts";
import { dtypeFromOnnx } from "../../onnx/tensor-proto.ts";

type NumFn = (a: number, b: number) => number;
type BigFn = (a: bigint, b: bigint) => bigint;

const truncDiv = (a: number, b: number) => Math.trunc(a / b);

/** A broadcasting arithmetic op: the wasm kernel on float32, plain loops on other dtypes. */
function binary(op: BinaryOp, num: NumFn, big?: BigFn, intNum: NumFn = num) {
  return (ctx: OpContext, inputs: (Value | undefined)[]) => {
    const a = required(ctx.node, inputs, 0);
    const b = required(ctx.node, inputs, 1);
    if (a instanceof WasmValue && b instanceof WasmValue) {
      const outShape = broadcastShapes(ctx.node, [a.shape, b.shape]);
      const y = ctx.outputF32(outShape);
      binaryKernel({ op, aShape: a.shape, bShape: b.shape, outShape }, a.ptr, b.ptr, y.ptr);
      return [y];
    }
    return [broadcastBinary(ctx, a, b, a.dtype, big, isInt(a.dtype) ? intNum : num)];
  };
}

function isInt(dtype: DType): boolean {
  return dtype !== "float32" && dtype !== "float64";
}

const isBig = (dtype: DType) => dtype === "int64" || dtype === "uint64";

/** out = fn(a, b) with broadcasting; int64 operands use `big` when given, exact. */
function broadcastBinary(
  ctx: OpContext,
  a: Value,
  b: Value,
  outType: DType,
  big: BigFn | undefined,
  num: NumFn,
): Value {
  const shape = broadcastShapes(ctx.node, [a.shape, b.shape]);
  const out = ctx.output(shape, outType);
  const ad = a.data, bd = b.data, od = out.data;
  const size = od.length;
  const ia = ad.length === size ? undefined : broadcastIndex(a.shape, shape);
  const ib = bd.length === size ? undefined : broadcastIndex(b.shape, shape);
  if (big && isBig(a.dtype) && isBig(b.dtype) && isBig(outType)) {
    const x = ad as BigInt64Array, y = bd as BigInt64Array, o = od as BigInt64Array;
    for (let i = 0; i < size; i++) o[i] = big(x[ia ? ia[i] : i], y[ib ? ib[i] : i]);
  } else if (isBig(outType)) {
    const o = od as BigInt64Array;
    for (let i = 0; i < size; i++) {
      const v = num(Number(ad[ia ? ia[i] : i]), Number(bd[ib ? ib[i] : i]));
      o[i] = BigInt(Number.isFinite(v) ? Math.trunc(v) : 0);
    }
  } else {
    const o = od as Float32Array;
    for (let i = 0; i < size; i++) o[i] = num(Number(ad[ia ? ia[i] : i]), Number(bd[ib ? ib[i] : i]));
  }
  return out;
}

function compare(fn: (a: number, b: number) => boolean) {
  return (ctx: OpContext, inputs: (Value | undefined)[]) => {
    const a = required(ctx.node, inputs, 0), b = required(ctx.node, inputs, 1);
    return [broadcastBinary(ctx, a, b, "bool", undefined, (x, y) => fn(Number(x), Number(y)) ? 1 : 0)];
  };
}

function variadic(num: NumFn, big?: BigFn) {
  return (ctx: OpContext, inputs: (Value | undefined)[]) => {
    const present = inputs.filter((v): v is Value => v !== undefined);
    if (present.length === 0) throw opError(ctx.node, "needs at least one input");
    let acc = present[0];
    if (present.length === 1) {
      const out = ctx.output(acc.shape, acc.dtype);
      (out.data as Float32Array).set(acc.data as Float32Array);
      return [out];
    }
    for (let i = 1; i < present.length; i++) {
      acc = broadcastBinary(ctx, acc, present[i], acc.dtype, big, num);
    }
    return [acc];
  };
}

/** An elementwise function: the wasm kernel on float32 when it has one, a plain loop otherwise. */
function unary(fn: (x: number) => number, kernel?: Omit<UnaryParams, "length">) {
  return (ctx: OpContext, inputs: (Value | undefined)[]) => {
    const x = required(ctx.node, inputs, 0);
    if (kernel && x instanceof WasmValue) {
      const y = ctx.outputF32(x.shape);
      unaryKernel({ ...kernel, length: x.size }, x.ptr, y.ptr);
      return [y];
    }
    const out = ctx.output(x.shape, x.dtype);
    const xd = x.data as Float32Array, od = out.data as Float32Array;
    for (let i = 0; i < xd.length; i++) od[i] = fn(xd[i]);
    return [out];
  };
}

registerOps({
  Add: binary("add", (a, b) => a + b, (a, b) => a + b),
  Sub: binary("sub", (a, b) => a - b, (a, b) => a - b),
  Mul: binary("mul", (a, b) => a * b, (a, b) => a * b),
  Div: binary("div", (a, b) => a / b, (a, b) => a / b, truncDiv),
  Pow: (ctx, inputs) => {
    const a = required(ctx.node, inputs, 0), b = required(ctx.node, inputs, 1);
    return [broadcastBinary(ctx, a, b, a.dtype, undefined, Math.pow)];
  },
  Mod: (ctx, inputs) => {
    const a = required(ctx.node, inputs, 0), b = required(ctx.node, inputs, 1);
    const fmod = attrInt(ctx.node, "fmod", 0) === 1;
    const fn = fmod ? (x: number, y: number) => x % y : (x: number, y: number) => {
      const r = x % y;
      return r !== 0 && (r < 0) !== (y < 0) ? r + y : r;
    };
    const bigFn = fmod ? (x: bigint, y: bigint) => x % y : (x: bigint, y: bigint) => {
      const r = x % y;
      return r !== 0n && (r < 0n) !== (y < 0n) ? r + y : r;
    };
    return [broadcastBinary(ctx, a, b, a.dtype, bigFn, fn)];
  },
  Max: variadic(Math.max, (a, b) => (a > b ? a : b)),
  Min: variadic(Math.min, (a, b) => (a < b ? a : b)),
  Sum: variadic((a, b) => a + b, (a, b) => a + b),
  Mean: (ctx, inputs) => {
    const present = inputs.filter((v): v is Value => v !== undefined);
    const [sum] = variadic((a, b) => a + b)(ctx, present);
    const out = ctx.output(sum.shape, sum.dtype);
    const sd = sum.data as Float32Array, od = out.data as Float32Array;
    for (let i = 0; i < od.length; i++) od[i] = sd[i] / present.length;
    return [out];
  },
  Equal: compare((a, b) => a === b),
  Less: compare((a, b) => a < b),
  Greater: compare((a, b) => a > b),
  LessOrEqual: compare((a, b) => a <= b),
  GreaterOrEqual: compare((a, b) => a >= b),
  Where: (ctx, inputs) => {
    const c = required(ctx.node, inputs, 0),
      x = required(ctx.node, inputs, 1),
      y = required(ctx.node, inputs, 2);
    const shape = broadcastShapes(ctx.node, [c.shape, x.shape, y.shape]);
    const out = ctx.output(shape, x.dtype);
    const ic = broadcastIndex(c.shape, shape),
      ix = broadcastIndex(x.shape, shape),
      iy = broadcastIndex(y.shape, shape);
    const cd = c.data,
      xd = x.data as Float32Array,
      yd = y.data as Float32Array,
      od = out.data as Float32Array;
    for (let i = 0; i < od.length; i++) od[i] = cd[ic[i]] ? xd[ix[i]] : yd[iy[i]];
    return [out];
  },
  Relu: unary((x) => (x > 0 ? x : x === x ? 0 : x), { op: "relu" }),
  LeakyRelu: (ctx, inputs) => {
    const alpha = attrFloat(ctx.node, "alpha", 0.01);
    return unary((x) => (x >= 0 ? x : alpha * x), { op: "leakyRelu", alpha })(ctx, inputs);
  },
  Sigmoid: unary((x) => 1 / (1 + Math.exp(-x)), { op: "sigmoid" }),
  HardSigmoid: (ctx, inputs) => {
    const alpha = attrFloat(ctx.node, "alpha", 0.2), beta = attrFloat(ctx.node, "beta", 0.5);
    return unary((x) => Math.max(0, Math.min(1, alpha * x + beta)), { op: "hardSigmoid", alpha, beta })(
      ctx,
      inputs,
    );
  },
  HardSwish: unary((x) => x * Math.max(0, Math.min(1, x / 6 + 0.5)), { op: "hardSwish" }),
  Sqrt: unary(Math.sqrt, { op: "sqrt" }),
  Exp: unary(Math.exp, { op: "exp" }),
  Log: unary(Math.log),
  Tanh: unary(Math.tanh, { op: "tanh" }),
  Erf: unary(erfReference, { op: "erf" }),
  Neg: unary((x) => -x, { op: "neg" }),
  Abs: unary(Math.abs, { op: "abs" }),
  Reciprocal: unary((x) => 1 / x, { op: "reciprocal" }),
  Floor: unary(Math.floor),
  Ceil: unary(Math.ceil),
  Clip: (ctx, inputs) => {
    const x = required(ctx.node, inputs, 0);
    let lo = -Infinity, hi = Infinity;
    if (ctx.opset < 11) {
      lo = attrFloat(ctx.node, "min", -3.4028234663852886e38);
      hi = attrFloat(ctx.node, "max", 3.4028234663852886e38);
    } else {
      if (inputs[1]) lo = Number(inputs[1].data[0]);
      if (inputs[2]) hi = Number(inputs[2].data[0]);
    }
    if (x.dtype === "int64" || x.dtype === "uint64") {
      const out = ctx.output(x.shape, x.dtype);
      const xd = x.data as BigInt64Array, od = out.data as BigInt64Array;
      for (let i = 0; i < xd.length; i++) {
        const v = Number(xd[i]);
        od[i] = v < lo ? BigInt(lo) : v > hi ? BigInt(hi) : xd[i];
      }
      return [out];
    }
    return unary((v) => (v < lo ? lo : v > hi ? hi : v), { op: "clip", min: lo, max: hi })(ctx, inputs);
  },
  Cast: (ctx, inputs) => {
    const x = required(ctx.node, inputs, 0);
    const to = castTarget(ctx, attrInt(ctx.node, "to", 1));
    const out = ctx.output(x.shape, to);
    castInto(x.data, out.data, to);
    return [out];
  },
}, {
  Cast: (node) => {
    const to = attrInt(node, "to", 1);
    return dtypeFromOnnx(to) ? undefined : `casting to ONNX data type ${to} is not supported`;
  },
});

function castTarget(ctx: OpContext, code: number): DType {
  const t = dtypeFromOnnx(code);
  if (!t) throw opError(ctx.node, `casting to ONNX data type ${code} is not supported`);
  return t;
}

export function castInto(src: TensorData, dst: TensorData, to: DType): void {
  const big = to === "int64" || to === "uint64";
  for (let i = 0; i < src.length; i++) {
    const v = src[i];
    if (big) {
      const n = typeof v === "bigint" ? v : BigInt(Math.trunc(Number.isFinite(v) ? v : 0));
      (dst as BigInt64Array)[i] = n;
    } else if (to === "bool") {
      (dst as Uint8Array)[i] = v ? 1 : 0;
    } else {
      const n = Number(v);
      (dst as Float32Array)[i] = to === "float32" || to === "float64" ? n : Math.trunc(n);
    }
  }
}
