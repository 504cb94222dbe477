// Ops that move or reinterpret data without arithmetic: shapes, reshapes,
// transposes, concatenation, slicing, gathering, padding, constants.
import { attrInt, attrInts, attrString, attrTensor, type Node } from "../../graph/ir.ts";
import { Tensor } from "../../tensor.ts";
import { opError, opUnsupported, registerOps, required } from "../registry.ts";
import type { OpContext } from "../registry.ts";
import { type Value, WasmValue } from "../value.ts";
import { normalizeAxis, toNumbers } from "./util.ts";
import { gatherStrided, stridesOf } from "../../layout.ts";

function int64(values: number[]): Tensor {
  return new Tensor(BigInt64Array.from(values, (v) => BigInt(v)), [values.length]);
}

/** Same data under a new shape: float32 stays a view of the same wasm bytes. */
function reshaped(_ctx: OpContext, x: Value, shape: number[]): Value {
  return x instanceof WasmValue ? new WasmValue(x.ptr, shape) : new Tensor(x.data, shape, x.dtype);
}

function axesInput(ctx: OpContext, inputs: (Value | undefined)[], index: number, sinceOpset: number) {
  if (ctx.opset >= sinceOpset) return inputs[index] ? toNumbers(inputs[index]!) : undefined;
  return attrInts(ctx.node, "axes");
}

function reshapeTarget(node: Node, x: Value, spec: number[], allowZero: boolean): number[] {
  const size = x.data.length;
  const shape = spec.map((d, i) => (d === 0 && !allowZero ? x.shape[i] : d));
  const unknown = shape.indexOf(-1);
  if (unknown >= 0) {
    const rest = shape.reduce((a, d, i) => (i === unknown ? a : a * d), 1);
    shape[unknown] = rest === 0 ? 0 : size / rest;
  }
  if (shape.reduce((a, b) => a * b, 1) !== size || shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw opError(node, `cannot reshape [${x.shape}] to [${spec}]`);
  }
  return shape;
}

function transpose(ctx: OpContext, x: Value, perm: number[]): Value {
  const shape = perm.map((p) => x.shape[p]);
  const out = ctx.output(shape, x.dtype);
  const inStrides = stridesOf(x.shape);
  gatherStrided(x.data, out.data, shape, perm.map((p) => inStrides[p]));
  return out;
}

/** Copies a strided box of x: out[i] = x[start + Σ i_d·step_d·stride_d]. */
function sliceCopy(ctx: OpContext, x: Value, starts: number[], steps: number[], shape: number[]): Value {
  const out = ctx.output(shape, x.dtype);
  const inStrides = stridesOf(x.shape);
  const offset = starts.reduce((sum, s, d) => sum + s * inStrides[d], 0);
  gatherStrided(x.data, out.data, shape, steps.map((s, d) => s * inStrides[d]), offset);
  return out;
}

registerOps({
  Identity: (ctx, inputs) => [required(ctx.node, inputs, 0)],
  Dropout: (ctx, inputs) => {
    const x = required(ctx.node, inputs, 0);
    const training = ctx.opset >= 12
      ? inputs[2]?.data[0]
      : attrInt(ctx.node, "is_test", 1) === 0 && ctx.opset < 7;
    if (training) throw opUnsupported(ctx.node, "training mode is not supported");
    const mask = ctx.output(x.shape, "bool");
    (mask.data as Uint8Array).fill(1);
    return [x, mask];
  },
  Constant: (ctx) => {
    const node = ctx.node;
    const t = attrTensor(node, "value");
    if (t) return [t];
    const f = node.attributes.get("value_float"), fs = node.attributes.get("value_floats");
    const i = node.attributes.get("value_int"), is = node.attributes.get("value_ints");
    if (typeof f === "number") return [new Tensor(new Float32Array([f]), [])];
    if (Array.isArray(fs)) return [new Tensor(Float32Array.from(fs as number[]), [fs.length])];
    if (typeof i === "number") return [new Tensor(new BigInt64Array([BigInt(i)]), [])];
    if (Array.isArray(is)) return [int64(is as number[])];
    throw opError(node, "only tensor, float(s) and int(s) values are supported");
  },
  ConstantOfShape: (ctx, inputs) => {
    const shape = toNumbers(required(ctx.node, inputs, 0));
    const value = attrTensor(ctx.node, "value") ?? new Tensor(new Float32Array([0]), [1]);
    const out = ctx.output(shape, value.dtype);
    (out.data as Float32Array).fill(value.data[0] as number);
    return [out];
  },
  Shape: (ctx, inputs) => {
    const x = required(ctx.node, inputs, 0);
    const rank = x.shape.length;
    const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + rank : v, 0), rank);
    const start = clamp(attrInt(ctx.node, "start", 0)), end = clamp(attrInt(ctx.node, "end", rank));
    return [int64(x.shape.slice(start, end))];
  },
  Size: (
    ctx,
    inputs,
  ) => [new Tensor(new BigInt64Array([BigInt(required(ctx.node, inputs, 0).data.length)]), [])],
  Reshape: (ctx, inputs) => {
    const x = required(ctx.node, inputs, 0);
    const spec = ctx.opset < 5 ? attrInts(ctx.node, "shape", []) : toNumbers(required(ctx.node, inputs, 1));
    return [reshaped(ctx, x, reshapeTarget(ctx.node, x, spec, attrInt(ctx.node, "allowzero", 0) === 1))];
  },
  Flatten: (ctx, inputs) => {
    const x = required(ctx.node, inputs, 0);
    const rank = x.shape.length;
    let axis = attrInt(ctx.node, "axis", 1);
    if (axis < 0) axis += rank;
    if (axis < 0 || axis > rank) throw opError(ctx.node, `axis ${axis} out of range`);
    const outer = x.shape.slice(0, axis).reduce((a, b) => a * b, 1);
    return [reshaped(ctx, x, [outer, x.data.length / outer || 0])];
  },
  Squeeze: (ctx, inputs) => {
    const x = required(ctx.node, inputs, 0);
    const axes = axesInput(ctx, inputs, 1, 13)?.map((a) => normalizeAxis(ctx.node, a, x.shape.length));
    const shape = x.shape.filter((d, i) => (axes ? !axes.includes(i) : d !== 1));
    return [reshaped(ctx, x, shape)];
  },
  Unsqueeze: (ctx, inputs) => {
    const x = required(ctx.node, inputs, 0);
    const axesRaw = axesInput(ctx, inputs, 1, 13);
    if (!axesRaw) throw opError(ctx.node, "axes are required");
    const rank = x.shape.length + axesRaw.length;
    const axes = axesRaw.map((a) => normalizeAxis(ctx.node, a, rank));
    const shape: number[] = [];
    let j = 0;
    for (let i = 0; i < rank; i++) shape.push(axes.includes(i) ? 1 : x.shape[j++]);
    return [reshaped(ctx, x, shape)];
  },
  Transpose: (ctx, inputs) => {
    const x = required(ctx.node, inputs, 0);
    const perm = attrInts(ctx.node, "perm") ?? x.shape.map((_, i) => x.shape.length - 1 - i);
    return [transpose(ctx, x, perm)];
  },
  Concat: (ctx, inputs) => {
    const parts = inputs.filter((v): v is Value => v !== undefined);
    const rank = parts[0].shape.length;
    const axis = normalizeAxis(ctx.node, attrInt(ctx.node, "axis", 0), rank);
    const shape = [...parts[0].shape];
    shape[axis] = parts.reduce((a, p) => a + p.shape[axis], 0);
    const out = ctx.output(shape, parts[0].dtype);
    const od = out.data as Float32Array;
    const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
    const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
    let offset = 0;
    for (const p of parts) {
      const pd = p.data as Float32Array;
      const chunk = p.shape[axis] * inner;
      for (let o = 0; o < outer; o++) {
        od.set(pd.subarray(o * chunk, (o + 1) * chunk), o * shape[axis] * inner + offset);
      }
      offset += chunk;
    }
    return [out];
  },
  Split: (ctx, inputs) => {
    const x = required(ctx.node, inputs, 0);
    const axis = normalizeAxis(ctx.node, attrInt(ctx.node, "axis", 0), x.shape.length);
    let start = 0;
    return splitSizes(ctx, x, inputs).map((size) => {
      const starts = x.shape.map((_, d) => (d === axis ? start : 0));
      const shape = x.shape.map((dim, d) => (d === axis ? size : dim));
      start += size;
      return sliceCopy(ctx, x, starts, x.shape.map(() => 1), shape);
    });
  },
  Slice: (ctx, inputs) => {
    const x = required(ctx.node, inputs, 0);
    const box = sliceBox(ctx, x, inputs);
    return [sliceCopy(ctx, x, box.begin, box.step, box.shape)];
  },
  Gather: (ctx, inputs) => {
    const x = required(ctx.node, inputs, 0), idx = required(ctx.node, inputs, 1);
    const axis = normalizeAxis(ctx.node, attrInt(ctx.node, "axis", 0), x.shape.length);
    const shape = [...x.shape.slice(0, axis), ...idx.shape, ...x.shape.slice(axis + 1)];
    const out = ctx.output(shape, x.dtype);
    const xd = x.data as Float32Array, od = out.data as Float32Array;
    const indices = toNumbers(idx);
    const dim = x.shape[axis];
    const outer = x.shape.slice(0, axis).reduce((a, b) => a * b, 1);
    const inner = x.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
    let o = 0;
    for (let a = 0; a < outer; a++) {
      for (const raw of indices) {
        const i = raw < 0 ? raw + dim : raw;
        if (i < 0 || i >= dim) {
          throw opError(ctx.node, `index ${raw} is out of range for axis of size ${dim}`);
        }
        od.set(xd.subarray((a * dim + i) * inner, (a * dim + i + 1) * inner), o);
        o += inner;
      }
    }
    return [out];
  },
  Expand: (ctx, inputs) => {
    const x = required(ctx.node, inputs, 0);
    const target = toNumbers(required(ctx.node, inputs, 1));
    const rank = Math.max(target.length, x.shape.length);
    const padded = [...new Array(rank - x.shape.length).fill(1), ...x.shape];
    const t = [...new Array(rank - target.length).fill(1), ...target];
    const shape = padded.map((d, i) => (d === 1 ? t[i] : d));
    const starts = shape.map(() => 0);
    const steps = padded.map((d) => (d === 1 ? 0 : 1));
    return [sliceCopy(ctx, { shape: padded, dtype: x.dtype, data: x.data }, starts, steps, shape)];
  },
  Tile: (ctx, inputs) => {
    const x = required(ctx.node, inputs, 0);
    const repeats = toNumbers(required(ctx.node, inputs, 1));
    const shape = x.shape.map((d, i) => d * repeats[i]);
    const out = ctx.output(shape, x.dtype);
    const xd = x.data as Float32Array, od = out.data as Float32Array;
    const inStrides = stridesOf(x.shape), outStrides = stridesOf(shape);
    for (let i = 0; i < od.length; i++) {
      let src = 0, rest = i;
      for (let d = 0; d < shape.length; d++) {
        const c = Math.floor(rest / outStrides[d]);
        rest -= c * outStrides[d];
        src += (c % x.shape[d]) * inStrides[d];
      }
      od[i] = xd[src];
    }
    return [out];
  },
  Range: (ctx, inputs) => {
    const [start, limit, delta] = [0, 1, 2].map((i) => required(ctx.node, inputs, i));
    const s = Number(start.data[0]), l = Number(limit.data[0]), d = Number(delta.data[0]);
    const n = Math.max(Math.ceil((l - s) / d), 0);
    const out = ctx.output([n], start.dtype);
    for (let i = 0; i < n; i++) {
      const v = s + i * d;
      (out.data as Float32Array | BigInt64Array)[i] =
        (typeof out.data[0] === "bigint" ? BigInt(v) : v) as never;
    }
    return [out];
  },
  Pad: (ctx, inputs) => {
    const x = required(ctx.node, inputs, 0);
    const { pads, value } = padsOf(ctx, x, inputs);
    const mode = attrString(ctx.node, "mode", "constant");
    return [pad(ctx, x, pads, value, mode)];
  },
});

/** Split's output sizes along its axis: the split input or attribute, else num_outputs (or the output count) even parts. */
export function splitSizes(ctx: OpContext, x: Value, inputs: (Value | undefined)[]): number[] {
  const axis = normalizeAxis(ctx.node, attrInt(ctx.node, "axis", 0), x.shape.length);
  const count = ctx.node.outputs.length;
  const sizes = ctx.opset >= 13
    ? (inputs[1] ? toNumbers(inputs[1]) : undefined)
    : attrInts(ctx.node, "split");
  if (sizes) return sizes;
  const n = attrInt(ctx.node, "num_outputs", count);
  const each = Math.ceil(x.shape[axis] / n);
  return Array.from({ length: n }, (_, i) => Math.min(each, x.shape[axis] - i * each));
}

/** The box a Slice node reads: first element, step and extent per axis. */
export function sliceBox(
  ctx: OpContext,
  x: Value,
  inputs: (Value | undefined)[],
): { begin: number[]; step: number[]; shape: number[] } {
  const rank = x.shape.length;
  let starts: number[], ends: number[], axes: number[] | undefined, steps: number[] | undefined;
  if (ctx.opset < 10) {
    starts = attrInts(ctx.node, "starts", []);
    ends = attrInts(ctx.node, "ends", []);
    axes = attrInts(ctx.node, "axes");
  } else {
    starts = toNumbers(required(ctx.node, inputs, 1));
    ends = toNumbers(required(ctx.node, inputs, 2));
    axes = inputs[3] ? toNumbers(inputs[3]) : undefined;
    steps = inputs[4] ? toNumbers(inputs[4]) : undefined;
  }
  const begin = new Array<number>(rank).fill(0);
  const step = new Array<number>(rank).fill(1);
  const shape = [...x.shape];
  starts.forEach((s, i) => {
    const a = normalizeAxis(ctx.node, axes ? axes[i] : i, rank);
    const dim = x.shape[a];
    const st = steps ? steps[i] : 1;
    if (st === 0) throw opError(ctx.node, "slice step cannot be 0");
    let b = s < 0 ? s + dim : s, e = ends[i] < 0 ? ends[i] + dim : ends[i];
    if (st > 0) {
      b = Math.min(Math.max(b, 0), dim);
      e = Math.min(Math.max(e, 0), dim);
    } else {
      b = Math.min(Math.max(b, -1), dim - 1);
      e = Math.min(Math.max(e, -1), dim - 1);
    }
    begin[a] = b;
    step[a] = st;
    shape[a] = Math.max(0, Math.ceil((e - b) / st));
  });
  return { begin, step, shape };
}

/** A Pad node's pads (begin pads of every axis, then end pads) and constant value. */
export function padsOf(
  ctx: OpContext,
  x: Value,
  inputs: (Value | undefined)[],
): { pads: number[]; value: number } {
  const rank = x.shape.length;
  let pads: number[], value = 0;
  if (ctx.opset < 11) {
    pads = attrInts(ctx.node, "pads") ?? attrInts(ctx.node, "paddings", []);
    value = ctx.node.attributes.get("value") as number ?? 0;
  } else {
    pads = toNumbers(required(ctx.node, inputs, 1));
    if (inputs[2] && inputs[2].data.length > 0) value = Number(inputs[2].data[0]);
    const axes = inputs[3] ? toNumbers(inputs[3]).map((a) => normalizeAxis(ctx.node, a, rank)) : undefined;
    if (axes) {
      const full = new Array<number>(2 * rank).fill(0);
      axes.forEach((a, i) => {
        full[a] = pads[i];
        full[a + rank] = pads[i + axes.length];
      });
      pads = full;
    }
  }
  return { pads, value };
}

export function pad(ctx: OpContext, x: Value, pads: number[], value: number, mode: string): Value {
  const rank = x.shape.length;
  const shape = x.shape.map((d, i) => d + pads[i] + pads[i + rank]);
  if (shape.some((d) => d < 0)) throw opError(ctx.node, `pads [${pads}] remove more than [${x.shape}] holds`);
  const out = ctx.output(shape, x.dtype);
  const xd = x.data as Float32Array, od = out.data as Float32Array;
  const inStrides = stridesOf(x.shape), outStrides = stridesOf(shape);
  for (let i = 0; i < od.length; i++) {
    let src = 0, rest = i, inside = true;
    for (let d = 0; d < rank; d++) {
      let c = Math.floor(rest / outStrides[d]) - pads[d];
      rest %= outStrides[d];
      const n = x.shape[d];
      if (c < 0 || c >= n) {
        if (mode === "constant") {
          inside = false;
          break;
        } else if (mode === "edge") c = c < 0 ? 0 : n - 1;
        else if (mode === "reflect") {
          const period = 2 * (n - 1) || 1;
          c = ((c % period) + period) % period;
          if (c >= n) c = period - c;
        } else if (mode === "wrap") c = ((c % n) + n) % n;
        else throw opError(ctx.node, `pad mode "${mode}" is not supported`);
      }
      src += c * inStrides[d];
    }
    od[i] = inside ? xd[src] : (typeof od[0] === "bigint" ? BigInt(value) : value) as number;
  }
  return out;
}
