// Adam (src/kernels/quant-adam.ts): bit for bit against the float32 reference
// over many steps, close to a float64 Adam as torch.optim.Adam defines it, and
// a working optimiser on a quadratic.
import assert from "node:assert/strict";
import { init } from "../mod.ts";
import { adamConstants, adamStep, adamStepReference } from "../src/kernels/quant-adam.ts";
import { randomFloats } from "./helpers.ts";
import { fenced } from "./kernels-helpers.ts";

function bits(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

Deno.test("adamStep equals the float32 reference bit for bit over 60 steps (every tail length)", async () => {
  await init();
  for (const n of [1, 2, 3, 4, 5, 7, 8, 33, 1000]) {
    const param = randomFloats(n, n), m = new Float32Array(n), v = new Float32Array(n);
    const p = fenced(n, param), pm = fenced(n, m), pv = fenced(n, v);
    for (let step = 1; step <= 60; step++) {
      // Gradients over many magnitudes, zeros included.
      const grad = randomFloats(n, 1000 * n + step).map((
        u,
        i,
      ) => (i % 11 === 0 ? 0 : u * 10 ** ((i % 7) - 4)));
      const g = fenced(n, grad);
      adamStep(p.ptr, g.ptr, pm.ptr, pv.ptr, n, 1e-3, 0.9, 0.999, 1e-8, step);
      g.release("grad");
      adamStepReference(param, grad, m, v, 1e-3, 0.9, 0.999, 1e-8, step);
    }
    assert.deepEqual(bits(p.read()), bits(param), `n ${n}: param`);
    assert.deepEqual(bits(pm.read()), bits(m), `n ${n}: m`);
    assert.deepEqual(bits(pv.read()), bits(v), `n ${n}: v`);
    p.release("param"), pm.release("m"), pv.release("v");
  }
});

Deno.test("adamStep follows float64 Adam (torch.optim.Adam's formula) within 1e-5 of the step", async () => {
  await init();
  const n = 257, lr = 0.01, beta1 = 0.8, beta2 = 0.99, eps = 1e-6;
  const start = randomFloats(n, 5);
  const p = fenced(n, start), pm = fenced(n, new Float32Array(n)), pv = fenced(n, new Float32Array(n));
  const param = Float64Array.from(start), m = new Float64Array(n), v = new Float64Array(n);
  for (let t = 1; t <= 25; t++) {
    const grad = randomFloats(n, t + 99);
    const g = fenced(n, grad);
    adamStep(p.ptr, g.ptr, pm.ptr, pv.ptr, n, lr, beta1, beta2, eps, t);
    g.release("grad");
    for (let i = 0; i < n; i++) {
      m[i] = beta1 * m[i] + (1 - beta1) * grad[i];
      v[i] = beta2 * v[i] + (1 - beta2) * grad[i] ** 2;
      const denom = Math.sqrt(v[i]) / Math.sqrt(1 - beta2 ** t) + eps;
      param[i] -= ((lr / (1 - beta1 ** t)) * m[i]) / denom;
    }
  }
  const actual = p.read();
  for (let i = 0; i < n; i++) {
    assert.ok(Math.abs(actual[i] - param[i]) <= 1e-5 * lr * 25 + 1e-7 * Math.abs(param[i]), `param[${i}]`);
  }
  p.release("param"), pm.release("m"), pv.release("v");
});

Deno.test("adamStep minimises a quadratic; its constants fold the bias corrections", async () => {
  await init();
  const n = 10, target = Float32Array.from({ length: n }, (_, i) => i - 4.5);
  const p = fenced(n, new Float32Array(n)),
    pm = fenced(n, new Float32Array(n)),
    pv = fenced(n, new Float32Array(n));
  for (let t = 1; t <= 2000; t++) {
    const g = fenced(n, p.read().map((xi, i) => 2 * (xi - target[i])));
    adamStep(p.ptr, g.ptr, pm.ptr, pv.ptr, n, 0.05, 0.9, 0.999, 1e-8, t);
    g.release("grad");
  }
  const x = p.read();
  for (let i = 0; i < n; i++) assert.ok(Math.abs(x[i] - target[i]) < 1e-2, `x[${i}] = ${x[i]}`);
  p.release("param"), pm.release("m"), pv.release("v");
  const [b1, c1, b2, c2, stepSize, invSqrtBias2, eps] = adamConstants(0.1, 0.9, 0.999, 1e-8, 1);
  assert.deepEqual([b1, c1, b2, c2, eps], [0.9, 0.1, 0.999, 0.001, 1e-8].map(Math.fround));
  assert.equal(stepSize, Math.fround(0.1 / (1 - 0.9)));
  assert.equal(invSqrtBias2, Math.fround(1 / Math.sqrt(1 - 0.999)));
  // Large step counts: β^t by squaring reaches 0 without NaN.
  const late = adamConstants(0.1, 0.9, 0.999, 1e-8, 1e7);
  assert.equal(late[4], Math.fround(0.1));
  assert.equal(late[5], 1);
});

Deno.test("adamStep rejects bad hyperparameters and step numbers", async () => {
  await init();
  assert.throws(() => adamStep(0, 0, 0, 0, 4, 1e-3, 1, 0.999, 1e-8, 1), { code: "INVALID_ARGUMENT" });
  assert.throws(() => adamStep(0, 0, 0, 0, 4, 1e-3, 0.9, 0.999, 0, 1), { code: "INVALID_ARGUMENT" });
  assert.throws(() => adamStep(0, 0, 0, 0, 4, 1e-3, 0.9, 0.999, 1e-8, 0), { code: "INVALID_ARGUMENT" });
  assert.throws(() => adamStep(0, 0, 0, 0, 4, -1, 0.9, 0.999, 1e-8, 1), { code: "INVALID_ARGUMENT" });
});
