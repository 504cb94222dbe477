import assert from "node:assert/strict";
import { init } from "../mod.ts";
import { matmul, matmulOutputShape, type MatmulParams, matmulReference } from "../src/kernels/matmul.ts";
import { randomFloats } from "./helpers.ts";
import { assertClose, fenced } from "./kernels-helpers.ts";

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

function check(p: MatmulParams, seed: number) {
  const out = matmulOutputShape(p);
  const as = randomFloats(size(p.aShape), seed), bs = randomFloats(size(p.bShape), seed + 1);
  const expected = new Float32Array(size(out));
  matmulReference(p, as, bs, expected);
  const a = fenced(as.length, as), b = fenced(bs.length, bs), y = fenced(expected.length);
  matmul(p, a.ptr, b.ptr, y.ptr);
  const actual = y.read();
  a.release("a"), b.release("b"), y.release("y");
  const k = p.aShape[p.aShape.length - 1];
  assertClose(actual, expected, 1e-4, 1e-5 * Math.sqrt(k + 1), `matmul [${p.aShape}] @ [${p.bShape}]`);
}

Deno.test("matmul output shapes follow numpy", () => {
  assert.deepEqual(matmulOutputShape({ aShape: [3, 4], bShape: [4, 5] }), [3, 5]);
  assert.deepEqual(matmulOutputShape({ aShape: [4], bShape: [4, 5] }), [5]);
  assert.deepEqual(matmulOutputShape({ aShape: [3, 4], bShape: [4] }), [3]);
  assert.deepEqual(matmulOutputShape({ aShape: [4], bShape: [4] }), []);
  assert.deepEqual(matmulOutputShape({ aShape: [2, 1, 3, 4], bShape: [5, 4, 6] }), [2, 5, 3, 6]);
  assert.throws(() => matmulOutputShape({ aShape: [3, 4], bShape: [5, 6] }), { code: "SHAPE_MISMATCH" });
  assert.throws(() => matmulOutputShape({ aShape: [2, 3, 4], bShape: [3, 4, 6] }), {
    code: "SHAPE_MISMATCH",
  });
});

Deno.test("matmul matches the reference with 1-D operands and broadcast batch dimensions", async () => {
  await init();
  const cases: [number[], number[]][] = [
    [[3, 4], [4, 5]],
    [[17, 33], [33, 9]],
    [[4], [4, 5]],
    [[3, 4], [4]],
    [[7], [7]],
    [[2, 3, 5, 7], [7, 4]],
    [[5, 7], [3, 7, 4]],
    [[2, 1, 3, 4], [5, 4, 6]],
    [[2, 3, 4], [2, 4, 6]],
    [[1, 3, 4], [2, 4, 6]],
    [[6, 5], [2, 3, 5, 1]],
    [[2, 3, 4], [4]],
    [[4], [2, 4, 3]],
    [[3, 0], [0, 2]],
    [[0, 3], [3, 2]],
  ];
  let seed = 1;
  for (const [aShape, bShape] of cases) {
    check({ aShape, bShape }, seed);
    seed += 2;
  }
});
