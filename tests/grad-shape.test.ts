// Backward of the data-movement ops against float64 finite differences.
import { init } from "../mod.ts";
import { Tensor } from "../src/tensor.ts";
import { checkGradient, type Input, int64, uniform } from "./grad-helpers.ts";

const f64 = (v: Input) => v as Float64Array;
const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let step = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = step;
    step *= shape[i];
  }
  return s;
}

/** Calls fn with every multi-index of `shape`, in row-major order. */
function each(shape: readonly number[], fn: (index: number[], flat: number) => void): void {
  const index = new Array<number>(shape.length).fill(0);
  for (let flat = 0; flat < sizeOf(shape); flat++) {
    fn(index, flat);
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
  }
}

const flatAt = (index: number[], strides: number[]) => index.reduce((o, v, d) => o + v * strides[d], 0);

Deno.test("Identity, Reshape, Flatten, Squeeze, Unsqueeze, Dropout pass the gradient through", async () => {
  await init();
  const x = uniform([2, 3, 1, 4], 1);
  const copy = ([v]: Input[]) => [Float64Array.from(f64(v))];
  checkGradient({ name: "Identity", op: "Identity", inputs: [x], reference: copy });
  checkGradient({ name: "Reshape", op: "Reshape", inputs: [x, int64([6, -1])], reference: copy });
  checkGradient({
    name: "Flatten axis 2",
    op: "Flatten",
    attributes: { axis: 2 },
    inputs: [x],
    reference: copy,
  });
  checkGradient({ name: "Squeeze", op: "Squeeze", opset: 13, inputs: [x, int64([2])], reference: copy });
  checkGradient({ name: "Squeeze (opset 11)", op: "Squeeze", opset: 11, inputs: [x], reference: copy });
  checkGradient({
    name: "Unsqueeze",
    op: "Unsqueeze",
    opset: 13,
    inputs: [x, int64([0, 5])],
    reference: copy,
  });
  checkGradient({
    name: "Dropout (inference), with a ratio input",
    op: "Dropout",
    opset: 13,
    outputs: 2,
    differentiable: 1,
    inputs: [x, new Tensor(new Float32Array([0.3]), [])],
    reference: copy,
  });
});

function transposeCase(shape: number[], perm: number[] | undefined, seed: number): void {
  const p = perm ?? shape.map((_, i) => shape.length - 1 - i);
  const outShape = p.map((a) => shape[a]);
  const inStrides = stridesOf(shape);
  checkGradient({
    name: `Transpose [${shape}] perm ${perm ? `[${perm}]` : "default"}`,
    op: "Transpose",
    attributes: perm ? { perm } : {},
    inputs: [uniform(shape, seed)],
    reference: ([x]) => {
      const y = new Float64Array(sizeOf(shape));
      each(outShape, (index, flat) => {
        y[flat] = f64(x)[index.reduce((o, v, d) => o + v * inStrides[p[d]], 0)];
      });
      return [y];
    },
  }, seed);
}

Deno.test("Transpose gradient", async () => {
  await init();
  transposeCase([2, 3, 4, 5], [0, 2, 3, 1], 1);
  transposeCase([2, 3, 4, 5], [3, 1, 0, 2], 2);
  transposeCase([3, 5, 7], undefined, 3);
  transposeCase([4, 6], [1, 0], 4);
  transposeCase([2, 3, 4], [0, 1, 2], 5);
});

function concatCase(shapes: number[][], axis: number, seed: number): void {
  const rank = shapes[0].length, a = axis < 0 ? axis + rank : axis;
  const out = [...shapes[0]];
  out[a] = shapes.reduce((s, sh) => s + sh[a], 0);
  checkGradient({
    name: `Concat axis ${axis} of ${shapes.map((s) => `[${s}]`).join(", ")}`,
    op: "Concat",
    attributes: { axis },
    inputs: shapes.map((s, i) => uniform(s, seed + i)),
    reference: (parts) => {
      const y = new Float64Array(sizeOf(out));
      const outStrides = stridesOf(out);
      let offset = 0;
      parts.forEach((part, i) => {
        each(shapes[i], (index, flat) => {
          const at = [...index];
          at[a] += offset;
          y[flatAt(at, outStrides)] = f64(part)[flat];
        });
        offset += shapes[i][a];
      });
      return [y];
    },
  }, seed);
}

Deno.test("Concat gradient", async () => {
  await init();
  concatCase([[2, 3, 4], [2, 5, 4], [2, 1, 4]], 1, 1);
  concatCase([[3, 2], [4, 2]], 0, 2);
  concatCase([[2, 3, 2, 3], [2, 3, 2, 5]], -1, 3);
  concatCase([[5]], 0, 4);
});

function splitCase(
  name: string,
  shape: number[],
  axis: number,
  sizes: number[],
  extra: {
    opset?: number;
    attributes?: Record<string, number | number[]>;
    splitInput?: boolean;
    differentiable?: number;
  },
  seed: number,
): void {
  const inputs: (Tensor | undefined)[] = [uniform(shape, seed)];
  if (extra.splitInput) inputs.push(int64(sizes));
  checkGradient({
    name,
    op: "Split",
    opset: extra.opset ?? 13,
    attributes: { axis, ...extra.attributes },
    outputs: sizes.length,
    differentiable: extra.differentiable,
    inputs,
    reference: ([x]) => {
      const xStrides = stridesOf(shape);
      let offset = 0;
      return sizes.map((size) => {
        const part = shape.map((d, i) => (i === axis ? size : d));
        const y = new Float64Array(sizeOf(part));
        each(part, (index, flat) => {
          const at = [...index];
          at[axis] += offset;
          y[flat] = f64(x)[flatAt(at, xStrides)];
        });
        offset += size;
        return y;
      });
    },
  }, seed);
}

Deno.test("Split gradient: split input, attribute, num_outputs, outputs without gradient", async () => {
  await init();
  splitCase("Split sizes input", [2, 6, 3], 1, [1, 3, 2], { splitInput: true }, 1);
  splitCase("Split attribute (opset 11)", [5, 4], 0, [2, 3], { opset: 11, attributes: { split: [2, 3] } }, 2);
  splitCase("Split even (opset 13)", [2, 3, 6], 2, [2, 2, 2], {}, 3);
  splitCase("Split num_outputs uneven (opset 18)", [7, 2], 0, [3, 3, 1], {
    opset: 18,
    attributes: { num_outputs: 3 },
  }, 4);
  splitCase("Split, the last output without gradient", [2, 6, 3], 1, [1, 3, 2], {
    splitInput: true,
    differentiable: 2,
  }, 5);
});

function sliceCase(
  name: string,
  shape: number[],
  box: { starts: number[]; ends: number[]; axes?: number[]; steps?: number[] },
  opset: number,
  seed: number,
): void {
  // The box along every axis, for the reference: begin and step, and the extent.
  const begin = shape.map(() => 0), step = shape.map(() => 1), out = [...shape];
  box.starts.forEach((s, i) => {
    const a = box.axes ? (box.axes[i] + shape.length) % shape.length : i;
    const dim = shape[a], st = box.steps ? box.steps[i] : 1;
    let b = s < 0 ? s + dim : s, e = box.ends[i] < 0 ? box.ends[i] + dim : box.ends[i];
    b = st > 0 ? Math.min(Math.max(b, 0), dim) : Math.min(Math.max(b, -1), dim - 1);
    e = st > 0 ? Math.min(Math.max(e, 0), dim) : Math.min(Math.max(e, -1), dim - 1);
    begin[a] = b;
    step[a] = st;
    out[a] = Math.max(0, Math.ceil((e - b) / st));
  });
  const inputs: (Tensor | undefined)[] = [uniform(shape, seed)];
  const attributes: Record<string, number[]> = {};
  if (opset >= 10) {
    inputs.push(int64(box.starts), int64(box.ends), box.axes ? int64(box.axes) : undefined);
    if (box.steps) inputs.push(int64(box.steps));
  } else {
    attributes.starts = box.starts;
    attributes.ends = box.ends;
    if (box.axes) attributes.axes = box.axes;
  }
  const xStrides = stridesOf(shape);
  checkGradient({
    name,
    op: "Slice",
    opset,
    attributes,
    inputs,
    reference: ([x]) => {
      const y = new Float64Array(sizeOf(out));
      each(out, (index, flat) => {
        y[flat] = f64(x)[index.reduce((o, v, d) => o + (begin[d] + v * step[d]) * xStrides[d], 0)];
      });
      return [y];
    },
  }, seed);
}

Deno.test("Slice gradient: axes, negative indices, steps (also negative), attributes before opset 10", async () => {
  await init();
  sliceCase("Slice one axis", [3, 8, 5], { starts: [2], ends: [7], axes: [1] }, 13, 1);
  sliceCase("Slice all axes, clamped ends", [4, 6], { starts: [1, -4], ends: [100, -1] }, 13, 2);
  sliceCase(
    "Slice steps 2 and 3",
    [7, 9, 4],
    { starts: [0, 1], ends: [7, 9], axes: [0, 1], steps: [2, 3] },
    13,
    3,
  );
  sliceCase(
    "Slice negative step",
    [5, 6],
    { starts: [-1, 4], ends: [-100, 0], axes: [0, 1], steps: [-1, -2] },
    13,
    4,
  );
  sliceCase("Slice attributes (opset 9)", [4, 5, 6], { starts: [1, 2], ends: [3, 6], axes: [0, 2] }, 9, 5);
});

function padCase(
  name: string,
  shape: number[],
  pads: number[],
  opset: number,
  seed: number,
  value = 0.5,
): void {
  const rank = shape.length;
  const out = shape.map((d, i) => d + pads[i] + pads[i + rank]);
  const inputs: (Tensor | undefined)[] = [uniform(shape, seed)];
  const attributes: Record<string, number | number[] | string> = { mode: "constant" };
  if (opset >= 11) inputs.push(int64(pads), new Tensor(new Float32Array([value]), []));
  else Object.assign(attributes, { pads, value });
  const xStrides = stridesOf(shape);
  checkGradient({
    name,
    op: "Pad",
    opset,
    attributes,
    inputs,
    reference: ([x, , v]) => {
      const y = new Float64Array(sizeOf(out));
      const constant = v ? f64(v)[0] : value;
      each(out, (index, flat) => {
        const src = index.map((v, d) => v - pads[d]);
        const inside = src.every((v, d) => v >= 0 && v < shape[d]);
        y[flat] = inside ? f64(x)[flatAt(src, xStrides)] : constant;
      });
      return [y];
    },
  }, seed);
}

Deno.test("Pad (constant) gradient: asymmetric, negative pads, the value input, attributes before opset 11", async () => {
  await init();
  padCase("Pad asymmetric", [2, 3, 4, 5], [0, 0, 1, 2, 0, 1, 2, 0], 13, 1);
  padCase("Pad negative (crop)", [3, 6, 5], [0, -2, 1, 1, -1, -2], 13, 2);
  padCase("Pad attributes (opset 2)", [4, 5], [1, 0, 2, 3], 2, 3);
});
