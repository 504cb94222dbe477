// Backward of the copying ops (Gather, GatherElements, GatherND, Expand, Tile,
// DepthToSpace, SpaceToDepth, Trilu, TopK, Pad in edge/reflect/wrap modes),
// CumSum and ScatterElements/ScatterND against float64 finite differences.
// The reference of a copying op is the map from output to input elements that
// the forward kernel itself computes on an input holding 1, 2, 3, …, so the
// gradient is checked against the forward's own semantics.
import { init } from "../mod.ts";
import { Engine } from "../src/engine/engine.ts";
import type { AttributeValue } from "../src/graph/ir.ts";
import { Tensor } from "../src/tensor.ts";
import { checkGradient, type Input, int64, uniform } from "./grad-helpers.ts";

const f64 = (v: Input) => v as Float64Array;

/** The input element (−1: none) each output element copies, by running the op on 1, 2, 3, …. */
function sourceMap(
  op: string,
  shape: number[],
  rest: (Tensor | undefined)[],
  attributes: Record<string, AttributeValue>,
  opset: number,
): Int32Array {
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
  const size = shape.reduce((a, b) => a * b, 1);
  const iota = Float32Array.from({ length: size }, (_, i) => i + 1);
  const y = engine.run({ x: new Tensor(iota, shape) }).y.data as Float32Array;
  engine.dispose();
  return Int32Array.from(y, (v) => v - 1);
}

function copyCase(
  name: string,
  op: string,
  shape: number[],
  rest: (Tensor | undefined)[] = [],
  attributes: Record<string, AttributeValue> = {},
  opset = 17,
  seed = 1,
): void {
  const from = sourceMap(op, shape, rest, attributes, opset);
  checkGradient({
    name,
    op,
    opset,
    attributes,
    inputs: [uniform(shape, seed), ...rest],
    reference: ([x]) => [Float64Array.from(from, (i) => (i >= 0 ? f64(x)[i] : 0))],
  }, seed);
}

Deno.test("Gather gradient: axes, negative and repeated indices, scalar and 2-D indices", async () => {
  await init();
  copyCase("Gather axis 0", "Gather", [4, 3], [int64([3, 0, 3])]);
  copyCase("Gather axis 1, negative index", "Gather", [2, 5, 3], [int64([-1, 2])], { axis: 1 }, 17, 2);
  copyCase(
    "Gather scalar index (a ViT's class token)",
    "Gather",
    [2, 5, 4],
    [
      new Tensor(new BigInt64Array([0n]), []),
    ],
    { axis: 1 },
    17,
    3,
  );
  copyCase(
    "Gather 2-D indices, axis -1",
    "Gather",
    [3, 4],
    [
      new Tensor(BigInt64Array.from([0n, 3n, 1n, 1n]), [2, 2]),
    ],
    { axis: -1 },
    17,
    4,
  );
});

Deno.test("GatherElements and GatherND gradients", async () => {
  await init();
  copyCase("GatherElements axis 1", "GatherElements", [3, 4], [
    new Tensor(BigInt64Array.from([0n, 3n, 3n, 1n, 2n, 0n]), [3, 2]),
  ], { axis: 1 });
  copyCase(
    "GatherElements axis 0, negative",
    "GatherElements",
    [3, 2, 2],
    [
      new Tensor(BigInt64Array.from([-1n, 0n, 1n, 1n]), [1, 2, 2]),
    ],
    { axis: 0 },
    17,
    2,
  );
  copyCase(
    "GatherND tuples of 2",
    "GatherND",
    [3, 4, 2],
    [
      new Tensor(BigInt64Array.from([0n, 1n, 2n, 3n, 0n, 1n]), [3, 2]),
    ],
    {},
    17,
    3,
  );
  copyCase(
    "GatherND batch_dims 1",
    "GatherND",
    [2, 3, 4],
    [
      new Tensor(BigInt64Array.from([1n, 2n, 0n, 2n]), [2, 2]),
    ],
    { batch_dims: 1 },
    17,
    4,
  );
});

Deno.test("Expand and Tile gradients: sums over the copies", async () => {
  await init();
  copyCase("Expand [3, 1] to [2, 3, 4]", "Expand", [3, 1], [int64([2, 3, 4])]);
  copyCase("Expand [1, 4] to [3, 1] (broadcast both ways)", "Expand", [1, 4], [int64([3, 1])], {}, 17, 2);
  copyCase("Tile [2, 3] × [2, 3]", "Tile", [2, 3], [int64([2, 3])], {}, 17, 3);
  copyCase("Tile [2, 1, 3] × [1, 4, 1]", "Tile", [2, 1, 3], [int64([1, 4, 1])], {}, 17, 4);
});

Deno.test("DepthToSpace (DCR, CRD) and SpaceToDepth gradients", async () => {
  await init();
  copyCase("DepthToSpace DCR", "DepthToSpace", [2, 8, 2, 3], [], { blocksize: 2 });
  copyCase("DepthToSpace CRD", "DepthToSpace", [1, 18, 2, 2], [], { blocksize: 3, mode: "CRD" }, 17, 2);
  copyCase("SpaceToDepth", "SpaceToDepth", [2, 3, 4, 6], [], { blocksize: 2 }, 17, 3);
});

Deno.test("Trilu gradient: upper and lower, with k", async () => {
  await init();
  copyCase("Trilu upper", "Trilu", [2, 4, 5]);
  copyCase("Trilu lower k -1", "Trilu", [4, 3], [int64([-1])], { upper: 0 }, 17, 2);
});

Deno.test("Pad gradient in edge, reflect and wrap modes, pads as input and as attribute", async () => {
  await init();
  let seed = 1;
  for (const mode of ["edge", "reflect", "wrap"]) {
    copyCase(`Pad ${mode}`, "Pad", [2, 3, 4], [int64([0, 1, 2, 0, 2, 3])], { mode }, 13, seed++);
    copyCase(
      `Pad ${mode} with axes (opset 18)`,
      "Pad",
      [3, 4],
      [int64([2, 1]), undefined, int64([-1])],
      {
        mode,
      },
      18,
      seed++,
    );
    copyCase(`Pad ${mode} (opset 2)`, "Pad", [3, 4], [], { mode, pads: [1, 2, 2, 1] }, 2, seed++);
  }
});

Deno.test("TopK gradient: values go back to where they came from", async () => {
  await init();
  const shape = [2, 5, 3], k = 2;
  for (const [axis, largest, seed] of [[1, 1, 1], [-1, 0, 2]]) {
    const a = (axis + 3) % 3, len = shape[a];
    const inner = shape.slice(a + 1).reduce((p, d) => p * d, 1);
    const outer = shape.slice(0, a).reduce((p, d) => p * d, 1);
    checkGradient({
      name: `TopK axis ${axis} largest ${largest}`,
      op: "TopK",
      attributes: { axis, largest },
      outputs: 2,
      differentiable: 1,
      inputs: [uniform(shape, seed), int64([k])],
      reference: ([x]) => {
        const xd = f64(x), y = new Float64Array(outer * k * inner);
        for (let o = 0; o < outer; o++) {
          for (let i = 0; i < inner; i++) {
            const at = (j: number) => (o * len + j) * inner + i;
            const order = Array.from({ length: len }, (_, j) => j)
              .sort((p, q) => (largest ? xd[at(q)] - xd[at(p)] : xd[at(p)] - xd[at(q)]));
            for (let j = 0; j < k; j++) y[(o * k + j) * inner + i] = xd[at(order[j])];
          }
        }
        return [y];
      },
    }, seed);
  }
});

Deno.test("CumSum gradient: exclusive, reverse, negative axis", async () => {
  await init();
  const shape = [2, 4, 3];
  let seed = 1;
  for (const exclusive of [0, 1]) {
    for (const reverse of [0, 1]) {
      for (const axis of [1, -1]) {
        const a = (axis + 3) % 3, len = shape[a];
        const inner = shape.slice(a + 1).reduce((p, d) => p * d, 1);
        checkGradient({
          name: `CumSum axis ${axis} exclusive ${exclusive} reverse ${reverse}`,
          op: "CumSum",
          attributes: { exclusive, reverse },
          inputs: [uniform(shape, seed), int64([axis])],
          reference: ([x]) => {
            const xd = f64(x), y = new Float64Array(xd.length);
            for (let i = 0; i < xd.length; i++) {
              const j = Math.floor(i / inner) % len, base = i - j * inner;
              for (let m = 0; m < len; m++) {
                const counts = reverse ? (exclusive ? m > j : m >= j) : (exclusive ? m < j : m <= j);
                if (counts) y[i] += xd[base + m * inner];
              }
            }
            return [y];
          },
        }, seed++);
      }
    }
  }
});

/** y = x with updates written (none) or added (add) at the given flat offsets. */
function scatterReference(offsets: number[], reduction: string) {
  return ([x, , u]: Input[]) => {
    const y = Float64Array.from(f64(x));
    offsets.forEach((o, k) => (y[o] = reduction === "add" ? y[o] + f64(u)[k] : f64(u)[k]));
    return [y];
  };
}

Deno.test("ScatterElements and ScatterND gradients: data and updates, reduction none and add", async () => {
  await init();
  for (const reduction of ["none", "add"]) {
    // [3, 4], axis 1: rows 0..2 written at columns 1, 3 / 0, 2 / 3, 3 (the repeat only with add).
    const columns = reduction === "add" ? [1, 3, 0, 2, 3, 3] : [1, 3, 0, 2, 3, 1];
    checkGradient({
      name: `ScatterElements axis 1 reduction ${reduction}`,
      op: "ScatterElements",
      opset: 18,
      attributes: { axis: 1, reduction },
      inputs: [
        uniform([3, 4], 1),
        new Tensor(BigInt64Array.from(columns, BigInt), [3, 2]),
        uniform([3, 2], 2),
      ],
      reference: scatterReference(columns.map((c, i) => Math.floor(i / 2) * 4 + c), reduction),
    });
    // [3, 2] data, two row updates: rows 2 and 0 (0 twice with add).
    const rows = reduction === "add" ? [2, 0, 0] : [2, 0];
    checkGradient({
      name: `ScatterND rows reduction ${reduction}`,
      op: "ScatterND",
      opset: 18,
      attributes: { reduction },
      inputs: [
        uniform([3, 2], 3),
        new Tensor(BigInt64Array.from(rows, BigInt), [rows.length, 1]),
        uniform([rows.length, 2], 4),
      ],
      reference: scatterReference(rows.flatMap((r) => [2 * r, 2 * r + 1]), reduction),
    });
  }
});
