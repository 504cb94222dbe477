// Finite-difference checks of the registered op backwards (OpGrad).
//
// For an op node and random inputs, the forward runs through the registered
// kernel (as the engine runs it) and the backward through the registered
// OpGrad, with a GradContext stub that allocates in wasm memory. The loss is a
// random linear functional L = Σ r·y of the outputs, so dL/dy = r; the
// analytic gradient of each float input is compared with central finite
// differences of L computed by a float64 reference forward of the op, at the
// same (float32-rounded) inputs.
import assert from "node:assert/strict";
import { newHostTensor } from "../src/engine/engine.ts";
import "../src/engine/ops/index.ts";
import { type GradContext, gradientFor, kernelFor, type OpContext } from "../src/engine/registry.ts";
import { sizeOf, type Value, WasmValue } from "../src/engine/value.ts";
import type { AttributeValue, Node } from "../src/graph/ir.ts";
import { Tensor } from "../src/tensor.ts";
import { alloc, free } from "../src/wasm.ts";
import { randomFloats } from "./helpers.ts";

export type Input = Float64Array | Tensor | undefined;

export interface GradCase {
  /** What the case is, for failure messages. */
  name: string;
  op: string;
  attributes?: Record<string, AttributeValue>;
  opset?: number;
  /** Forward inputs. float32 ones are differentiated, unless listed in `fixed`. */
  inputs: (Tensor | undefined)[];
  fixed?: number[];
  /** Forward outputs of the node (default 1); only the first `differentiable` get a loss term. */
  outputs?: number;
  differentiable?: number;
  /** The op in float64: float32 inputs arrive as Float64Array, the others as given. One array per output. */
  reference: (inputs: Input[]) => Float64Array[];
  /** Relative tolerance (default 1e-3); the absolute one is 1e-4 of the gradient's largest magnitude. */
  rtol?: number;
}

const STEP = 1e-6;

/** Uniform floats in [lo, hi), float32. */
export function uniform(shape: readonly number[], seed: number, lo = -1, hi = 1): Tensor {
  const r = randomFloats(sizeOf(shape), seed);
  return new Tensor(r.map((v) => lo + ((v + 1) / 2) * (hi - lo)), shape);
}

/** Floats with |v| in [gap, 1): away from a kink at 0 by more than the finite-difference step. */
export function awayFromZero(shape: readonly number[], seed: number, gap = 0.02): Tensor {
  const r = randomFloats(sizeOf(shape), seed);
  return new Tensor(r.map((v) => Math.sign(v || 1) * (gap + Math.abs(v) * (1 - gap))), shape);
}

export function int64(values: number[]): Tensor {
  return new Tensor(BigInt64Array.from(values, BigInt), [values.length]);
}

interface Stub {
  ctx: GradContext;
  scratchCalls: () => number;
  release: () => void;
}

function stubContext(node: Node, opset: number, wants: (i: number) => boolean): Stub {
  const owned: number[] = [];
  let scratchCalls = 0;
  const outputF32 = (shape: readonly number[]) => {
    const ptr = alloc(Math.max(sizeOf(shape) * 4, 16));
    owned.push(ptr);
    return new WasmValue(ptr, shape);
  };
  const ctx: GradContext = {
    node,
    opset,
    outputF32,
    output: (shape, dtype) => (dtype === "float32" ? outputF32(shape) : newHostTensor(shape, dtype)),
    scratch: (bytes) => {
      scratchCalls++;
      const ptr = alloc(Math.max(bytes, 16));
      owned.push(ptr);
      return ptr;
    },
    wants,
  };
  return { ctx, scratchCalls: () => scratchCalls, release: () => owned.forEach(free) };
}

function toEngine(t: Tensor | undefined, owned: number[]): Value | undefined {
  if (!t || t.dtype !== "float32") return t;
  const ptr = alloc(Math.max(t.size * 4, 16));
  owned.push(ptr);
  const v = new WasmValue(ptr, t.shape);
  v.data.set(t.data as Float32Array);
  return v;
}

function asF64(inputs: (Tensor | undefined)[]): Input[] {
  return inputs.map((t) => (t && t.dtype === "float32" ? Float64Array.from(t.data as Float32Array) : t));
}

/** L = Σ r·y over the differentiable outputs. */
function loss(c: GradCase, inputs: Input[], r: Float64Array[]): number {
  const ys = c.reference(inputs);
  let sum = 0;
  r.forEach((rk, k) => {
    assert.equal(ys[k].length, rk.length, `${c.name}: reference output ${k} has ${ys[k].length} elements`);
    for (let i = 0; i < rk.length; i++) sum += rk[i] * ys[k][i];
  });
  return sum;
}

/**
 * Runs the case's forward and registered backward, and checks every
 * differentiated input's gradient against central differences in float64.
 * Also checks that unwanted gradients are left out, that no input is written,
 * that the backward asks for scratch at most once, and that the comparison
 * would catch a 1% error in the largest gradient element.
 */
export function checkGradient(c: GradCase, seed = 1): void {
  const opset = c.opset ?? 17;
  const outputs = c.outputs ?? 1, differentiable = c.differentiable ?? outputs;
  const names = c.inputs.map((t, i) => (t ? `in${i}` : ""));
  const outNames = Array.from({ length: outputs }, (_, k) => `out${k}`);
  const node: Node = {
    name: c.name,
    opType: c.op,
    domain: "",
    inputs: names,
    outputs: outNames,
    attributes: new Map(Object.entries(c.attributes ?? {})),
  };
  const trained = c.inputs.map((t, i) => t?.dtype === "float32" && !(c.fixed ?? []).includes(i));
  const owned: number[] = [];
  const values = c.inputs.map((t) => toEngine(t, owned));
  const forward = stubContext(node, opset, () => true);
  const grad = gradientFor(node);
  assert.ok(grad, `${c.name}: ${c.op} has no registered gradient`);
  try {
    const ys = kernelFor(node)!(forward.ctx as OpContext, values);
    const r = ys.slice(0, differentiable).map((y, k) =>
      Float64Array.from(randomFloats(sizeOf(y.shape), seed * 7919 + k))
    );
    const dys = ys.map((y, k) => {
      if (k >= differentiable) return undefined;
      return toEngine(new Tensor(Float32Array.from(r[k]), y.shape), owned) as WasmValue;
    });
    const snapshot = values.map((v) => v?.data.slice());

    const all = stubContext(node, opset, (i) => trained[i]);
    const grads = grad(all.ctx, values, ys, dys);
    assert.ok(
      all.scratchCalls() <= 1,
      `${c.name}: the backward asked for scratch ${all.scratchCalls()} times`,
    );
    values.forEach((v, i) => assert.deepEqual(v?.data, snapshot[i], `${c.name}: input ${i} was written`));
    assert.equal(grads.length, c.inputs.length, `${c.name}: one gradient per input`);

    const x64 = asF64(c.inputs);
    const base = loss(c, x64, r);
    assert.ok(Number.isFinite(base), `${c.name}: the reference loss is not finite`);
    for (let i = 0; i < c.inputs.length; i++) {
      if (!trained[i]) {
        assert.equal(grads[i], undefined, `${c.name}: input ${i} was not wanted but got a gradient`);
        continue;
      }
      const g = grads[i];
      assert.ok(g instanceof WasmValue, `${c.name}: no gradient for input ${i}`);
      assert.deepEqual([...g.shape], [...c.inputs[i]!.shape], `${c.name}: gradient ${i} shape`);
      const analytic = g.data.slice();
      const xi = x64[i] as Float64Array;
      const numeric = new Float64Array(xi.length);
      for (let j = 0; j < xi.length; j++) {
        const v = xi[j];
        xi[j] = v + STEP;
        const up = loss(c, x64, r);
        xi[j] = v - STEP;
        const down = loss(c, x64, r);
        xi[j] = v;
        numeric[j] = (up - down) / (2 * STEP);
      }
      compare(`${c.name}: d/d input ${i}`, analytic, numeric, c.rtol ?? 1e-3);
    }

    // Each wanted input alone: the same gradient, and nothing for the others.
    const first = trained.indexOf(true), last = trained.lastIndexOf(true);
    if (first !== last) {
      const one = stubContext(node, opset, (i) => i === last);
      const only = grad(one.ctx, values, ys, dys);
      only.forEach((v, i) => {
        if (i !== last) assert.equal(v, undefined, `${c.name}: input ${i} was not wanted but got a gradient`);
      });
      assert.deepEqual(only[last]!.data, grads[last]!.data, `${c.name}: gradient ${last} alone differs`);
      one.release();
    }
    all.release();
  } finally {
    forward.release();
    owned.forEach(free);
  }
}

function compare(what: string, analytic: Float32Array, numeric: Float64Array, rtol: number): void {
  let scale = 0;
  for (const v of numeric) scale = Math.max(scale, Math.abs(v));
  const atol = 1e-4 * scale + 1e-7;
  const worst = (a: ArrayLike<number>) => {
    let w = 0, at = -1;
    for (let j = 0; j < numeric.length; j++) {
      const e = Math.abs(a[j] - numeric[j]) / (atol + rtol * Math.abs(numeric[j]));
      if (!(e <= w)) {
        w = e;
        at = j;
      }
    }
    return { w, at };
  };
  const { w, at } = worst(analytic);
  assert.ok(
    w <= 1,
    `${what}: element ${at} is ${analytic[at]}, finite differences give ${numeric[at]} (${
      w.toFixed(2)
    }× the tolerance)`,
  );
  // The check must be able to fail: 1% off on the largest element is caught.
  if (scale > 0) {
    const big = numeric.findIndex((v) => Math.abs(v) === scale);
    const wrong = Float64Array.from(analytic);
    wrong[big] *= 1.01;
    assert.ok(worst(wrong).w > 1, `${what}: the tolerance would not notice a 1% error`);
  }
}
