// Backward of Resize and Upsample against float64 finite differences. Resize
// is affine in its input, y = A·x + c (c: tf_crop_and_resize's extrapolation
// value): the reference applies the A and c that the forward kernel itself
// gives on zero and on unit vectors, so every mode and coordinate
// transformation is checked against the forward's own semantics.
import { init } from "../mod.ts";
import { Engine } from "../src/engine/engine.ts";
import type { AttributeValue } from "../src/graph/ir.ts";
import { Tensor } from "../src/tensor.ts";
import { checkGradient, type Input, int64, uniform } from "./grad-helpers.ts";

const floats = (values: number[]) => new Tensor(Float32Array.from(values), [values.length]);

/** c is the forward of zero; column j of A the forward of the j-th unit vector, minus c. */
function forwardMatrix(
  op: string,
  shape: number[],
  rest: (Tensor | undefined)[],
  attributes: Record<string, AttributeValue>,
  opset: number,
): { rows: number; columns: number; a: Float64Array; c: Float32Array } {
  const names = rest.map((t, i) => (t ? `in${i + 1}` : ""));
  const engine = new Engine({
    nodes: [{
      name: op,
      opType: op,
      domain: "",
      inputs: ["x", ...names],
      outputs: ["y"],
      attributes: new Map(Object.entries(attributes)),
    }],
    initializers: new Map(rest.flatMap((t, i) => (t ? [[names[i], t] as [string, Tensor]] : []))),
    inputs: [{ name: "x" }],
    outputs: [{ name: "y" }],
    opset,
  });
  const columns = shape.reduce((p, d) => p * d, 1);
  const run = (x: Float32Array) => engine.run({ x: new Tensor(x, shape) }).y.data as Float32Array;
  const c = run(new Float32Array(columns)), rows = c.length;
  const a = new Float64Array(rows * columns);
  for (let j = 0; j < columns; j++) {
    const e = new Float32Array(columns);
    e[j] = 1;
    run(e).forEach((v, i) => (a[i * columns + j] = v - c[i]));
  }
  engine.dispose();
  return { rows, columns, a, c };
}

function resizeCase(
  name: string,
  shape: number[],
  rest: (Tensor | undefined)[],
  attributes: Record<string, AttributeValue>,
  opset = 13,
  op = "Resize",
  seed = 1,
  fixed = rest.map((_, i) => i + 1),
): void {
  const { rows, columns, a, c } = forwardMatrix(op, shape, rest, attributes, opset);
  checkGradient({
    name,
    op,
    opset,
    attributes,
    inputs: [uniform(shape, seed), ...rest],
    // roi and scales are float inputs, constants in practice.
    fixed,
    reference: ([x]: Input[]) => {
      const xd = x as Float64Array, y = Float64Array.from(c);
      for (let i = 0; i < rows; i++) {
        for (let j = 0; j < columns; j++) y[i] += a[i * columns + j] * xd[j];
      }
      return [y];
    },
  }, seed);
}

Deno.test("Resize nearest gradient: nearest modes and coordinate transformations, up and down", async () => {
  await init();
  const x = [1, 2, 3, 4];
  resizeCase("nearest ×2, half_pixel, round_prefer_floor", x, [undefined, floats([1, 1, 2, 2])], {
    mode: "nearest",
  });
  resizeCase(
    "nearest ×2, asymmetric, floor",
    x,
    [undefined, floats([1, 1, 2, 2])],
    {
      mode: "nearest",
      coordinate_transformation_mode: "asymmetric",
      nearest_mode: "floor",
    },
    13,
    "Resize",
    2,
  );
  resizeCase(
    "nearest ×1.5 × 0.5, align_corners, round_prefer_ceil",
    [1, 2, 4, 4],
    [
      undefined,
      floats([1, 1, 1.5, 0.5]),
    ],
    {
      mode: "nearest",
      coordinate_transformation_mode: "align_corners",
      nearest_mode: "round_prefer_ceil",
    },
    13,
    "Resize",
    3,
  );
  resizeCase(
    "nearest to sizes, tf_half_pixel_for_nn, ceil",
    [1, 2, 3, 5],
    [
      undefined,
      undefined,
      int64([1, 2, 7, 3]),
    ],
    {
      mode: "nearest",
      coordinate_transformation_mode: "tf_half_pixel_for_nn",
      nearest_mode: "ceil",
    },
    13,
    "Resize",
    4,
  );
});

Deno.test("Resize linear and cubic gradients: coordinate transformations, antialias, crop, axes", async () => {
  await init();
  let seed = 1;
  for (
    const transform of [
      "half_pixel",
      "pytorch_half_pixel",
      "align_corners",
      "asymmetric",
      "half_pixel_symmetric",
    ]
  ) {
    resizeCase(
      `linear ×2 ${transform}`,
      [1, 2, 3, 4],
      [undefined, floats([1, 1, 2, 2])],
      {
        mode: "linear",
        coordinate_transformation_mode: transform,
      },
      19,
      "Resize",
      seed++,
    );
    resizeCase(
      `linear to sizes 5×3 ${transform}`,
      [1, 1, 4, 6],
      [undefined, undefined, int64([1, 1, 5, 3])],
      {
        mode: "linear",
        coordinate_transformation_mode: transform,
      },
      19,
      "Resize",
      seed++,
    );
  }
  resizeCase(
    "cubic ×1.5",
    [1, 1, 4, 4],
    [undefined, floats([1, 1, 1.5, 1.5])],
    { mode: "cubic" },
    13,
    "Resize",
    20,
  );
  resizeCase(
    "cubic exclude_outside, A −0.5",
    [1, 1, 4, 5],
    [undefined, floats([1, 1, 2, 0.8])],
    {
      mode: "cubic",
      exclude_outside: 1,
      cubic_coeff_a: -0.5,
    },
    13,
    "Resize",
    21,
  );
  resizeCase(
    "linear antialiased downsample",
    [1, 1, 6, 8],
    [undefined, floats([1, 1, 0.5, 0.6])],
    {
      mode: "linear",
      antialias: 1,
    },
    18,
    "Resize",
    22,
  );
  resizeCase(
    "linear tf_crop_and_resize with roi and extrapolation",
    [1, 1, 4, 4],
    [
      floats([0, 0, -0.2, 0.1, 1, 1, 0.9, 1.3]),
      undefined,
      int64([1, 1, 5, 3]),
    ],
    {
      mode: "linear",
      coordinate_transformation_mode: "tf_crop_and_resize",
      extrapolation_value: 0.5,
    },
    13,
    "Resize",
    23,
  );
  resizeCase(
    "linear with axes (opset 18)",
    [2, 3, 4],
    [undefined, floats([1.5, 2])],
    {
      mode: "linear",
      axes: [-2, 2],
    },
    18,
    "Resize",
    24,
  );
});

Deno.test("Resize (opset 10) and Upsample (opsets 7 and 9) gradients", async () => {
  await init();
  resizeCase("Resize opset 10 nearest", [1, 2, 2, 3], [floats([1, 1, 2, 3])], { mode: "nearest" }, 10);
  resizeCase(
    "Resize opset 10 linear",
    [1, 2, 2, 3],
    [floats([1, 1, 2, 1.5])],
    { mode: "linear" },
    10,
    "Resize",
    2,
  );
  resizeCase(
    "Upsample opset 9 nearest",
    [1, 2, 2, 3],
    [floats([1, 1, 2, 2])],
    { mode: "nearest" },
    9,
    "Upsample",
    3,
  );
  resizeCase(
    "Upsample opset 7 bilinear",
    [1, 1, 3, 3],
    [],
    { mode: "bilinear", scales: [1, 1, 2, 2] },
    7,
    "Upsample",
    4,
  );
});
