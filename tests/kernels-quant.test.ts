// Quantizers (src/kernels/quant.ts): nearest fake quantization and LSQ against
// their float32 references bit for bit, the Lp clipping search against a
// brute-force search, LSQ's backward against finite differences of its
// straight-through rule, and the edge cases (all-zero rows, NaN, clamping).
import assert from "node:assert/strict";
import { init } from "../mod.ts";
import {
  dropBelow,
  fakeQuantNearest,
  fakeQuantNearestReference,
  fakeQuantValue,
  lsqBackward,
  lsqBackwardReference,
  lsqForward,
  lsqForwardReference,
  lsqGradScale,
  quantLevels,
  roundHalfEven,
  scaleCandidatesReference,
  searchActivationScale,
  searchWeightScales,
} from "../src/kernels/quant.ts";
import { randomFloats } from "./helpers.ts";
import { fenced, randomInts } from "./kernels-helpers.ts";

function bits(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

/** Weights with the shapes of real ones: Gaussian-ish rows with an outlier or two, per-row magnitudes. */
function weights(m: number, k: number, seed: number): Float32Array {
  const u = randomFloats(m * k * 3, seed);
  const w = new Float32Array(m * k);
  for (let c = 0; c < m; c++) {
    const magnitude = 0.01 * 2 ** (8 * Math.abs(u[c]));
    for (let j = 0; j < k; j++) {
      const i = c * k + j;
      // Sum of three uniforms (bell-shaped), a heavy tail on 2 % of the values.
      const bell = (u[i] + u[m * k + i] + u[2 * m * k + i]) / 3;
      w[i] = magnitude * (Math.abs(u[2 * m * k + i]) > 0.98 ? bell * 6 : bell);
    }
  }
  return w;
}

/** searchWeightScales on a fresh fenced copy of w; returns scale and zero. */
function search(w: Float32Array, m: number, k: number, b: number, symmetric: boolean, options = {}) {
  const x = fenced(m * k, w), scale = fenced(m), zero = fenced(m);
  try {
    searchWeightScales(x.ptr, m, k, b, symmetric, scale.ptr, zero.ptr, options);
    assert.deepEqual(x.read(), w, "the weight is left as it was");
    return { scale: scale.read(), zero: zero.read() };
  } finally {
    x.release("w"), scale.release("scale"), zero.release("zero");
  }
}

Deno.test("fakeQuantNearest equals the float32 reference bit for bit (ties to even, clamping, tails)", async () => {
  await init();
  const rand = randomInts(11);
  for (let trial = 0; trial < 40; trial++) {
    const m = rand(1, 6), k = rand(1, 41), b = rand(2, 8), symmetric = trial % 2 === 0;
    const { qmin, qmax } = quantLevels(b, symmetric);
    const scale = new Float32Array(m), zero = new Float32Array(m);
    for (let c = 0; c < m; c++) {
      scale[c] = 0.01 * rand(1, 100);
      zero[c] = symmetric ? 0 : rand(qmin, qmax);
    }
    const w = randomFloats(m * k, trial + 100);
    for (let i = 0; i < m * k; i++) {
      const c = Math.floor(i / k);
      // A third of the values sit exactly on a tie (n + ½)·s, some far outside the range.
      if (i % 3 === 0) w[i] = (rand(-2 * qmax, 2 * qmax) + 0.5) * scale[c];
      else w[i] *= scale[c] * (qmax - qmin) * (i % 3 === 1 ? 0.6 : 1.5);
    }
    const expected = new Float32Array(m * k);
    fakeQuantNearestReference(w, m, k, scale, zero, qmin, qmax, expected);
    const x = fenced(m * k, w), s = fenced(m, scale), z = fenced(m, zero), y = fenced(m * k);
    fakeQuantNearest(x.ptr, m, k, s.ptr, z.ptr, qmin, qmax, y.ptr);
    assert.deepEqual(bits(y.read()), bits(expected), `trial ${trial}: m ${m}, k ${k}, ${b} bits`);
    // In place.
    fakeQuantNearest(x.ptr, m, k, s.ptr, z.ptr, qmin, qmax, x.ptr);
    assert.deepEqual(bits(x.read()), bits(expected), `trial ${trial} in place`);
    x.release("w"), s.release("scale"), z.release("zero"), y.release("out");
  }
});

Deno.test("fakeQuantNearest: ties round to even, the range clamps, NaN stays NaN", async () => {
  await init();
  const w = new Float32Array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 100, -100, NaN, 1.49999988, 0]);
  // round(-0.5) is -0, and -0 + z (= +0) is +0.
  const expected = [0, 2, 2, 0, -2, -2, 7, -8, NaN, 1, 0];
  const x = fenced(w.length, w), s = fenced(1, Float32Array.of(1)), z = fenced(1, Float32Array.of(0));
  const y = fenced(w.length);
  fakeQuantNearest(x.ptr, 1, w.length, s.ptr, z.ptr, -8, 7, y.ptr);
  const out = y.read();
  for (let i = 0; i < w.length; i++) assert.ok(Object.is(out[i], expected[i]), `q(${w[i]}) = ${out[i]}`);
  x.release("w"), s.release("s"), z.release("z"), y.release("y");
  assert.equal(roundHalfEven(-0.5), -0);
  assert.equal(roundHalfEven(2.5), 2);
  assert.equal(roundHalfEven(-3.5), -4);
});

Deno.test("searchWeightScales picks the brute-force Lp optimum among its candidates", async () => {
  await init();
  let exact = 0, rows = 0;
  for (
    const [m, k, b, symmetric, p] of [
      [16, 75, 4, true, 2.4],
      [16, 75, 4, false, 2.4],
      [8, 9, 2, true, 2.4],
      [8, 9, 2, false, 2.4],
      [6, 300, 8, true, 2.4],
      [6, 33, 3, false, 2],
      [4, 64, 5, true, 3.5],
    ] as const
  ) {
    const w = weights(m, k, m * k + b);
    const candidates = 100;
    const got = search(w, m, k, b, symmetric, { p, candidates });
    const { qmin, qmax } = quantLevels(b, symmetric);
    for (let c = 0; c < m; c++) {
      const row = w.subarray(c * k, c * k + k);
      const all = scaleCandidatesReference(row, b, symmetric, { p, candidates })!;
      const best = all.reduce((a, x) => (x.error < a.error ? x : a));
      const chosen = all.find((x) => x.scale === got.scale[c] && x.zero === got.zero[c]);
      assert.ok(chosen, `row ${c}: scale ${got.scale[c]}, zero ${got.zero[c]} is not a candidate`);
      // float32 polynomials (pow) against Math.pow: near-ties may go either way.
      assert.ok(
        chosen.error <= best.error * (1 + 1e-5),
        `row ${c}: error ${chosen.error} > best ${best.error}`,
      );
      if (chosen === best) exact++;
      rows++;
      assert.ok(
        Number.isInteger(got.zero[c]) && got.zero[c] >= 0 && got.zero[c] <= qmax,
        `zero ${got.zero[c]}`,
      );
      assert.equal(
        fakeQuantValue(0, got.scale[c], got.zero[c], qmin, qmax),
        0,
        `row ${c}: 0 is representable`,
      );
    }
  }
  assert.ok(exact >= rows - 2, `${exact} of ${rows} rows agree exactly with the brute force`);
});

Deno.test("the 100 candidate ratios come within 2 % of a 4000-point search over the scale", async () => {
  await init();
  const m = 8, k = 144;
  for (const [b, symmetric] of [[4, true], [3, false], [8, true]] as const) {
    const w = weights(m, k, 7 + b);
    const got = search(w, m, k, b, symmetric);
    const { qmin, qmax } = quantLevels(b, symmetric);
    for (let c = 0; c < m; c++) {
      const row = w.subarray(c * k, c * k + k);
      const err = (s: number, z: number) =>
        row.reduce((e, v) => e + Math.abs(v - fakeQuantValue(v, s, z, qmin, qmax)) ** 2.4, 0);
      let lo = 0, hi = 0;
      for (const v of row) (lo = Math.min(lo, v)), (hi = Math.max(hi, v));
      let best = Infinity;
      for (let i = 1; i <= 4000; i++) {
        const r = i / 4000;
        if (symmetric) best = Math.min(best, err(Math.fround((r * Math.max(-lo, hi)) / qmax), 0));
        else {
          const s = Math.fround((r * (hi - lo)) / qmax);
          best = Math.min(best, err(s, Math.min(Math.max(roundHalfEven((-r * lo) / s), 0), qmax)));
        }
      }
      const chosen = err(got.scale[c], got.zero[c]);
      assert.ok(chosen <= best * 1.02, `${b} bits, row ${c}: ${chosen} vs fine-grid best ${best}`);
    }
  }
});

Deno.test("searchWeightScales: all-zero and tiny rows get scale 1, constant rows are exact, k = 1 works", async () => {
  await init();
  const k = 5;
  const rows = [
    [0, 0, 0, 0, 0],
    [-0, 0, -0, 0, 0],
    [1e-35, -1e-36, 0, 0, 0],
    [0.25, 0.25, 0.25, 0.25, 0.25],
    [-3, -3, -3, -3, -3],
    [1, -1, 0.5, 2, -2],
  ];
  const w = Float32Array.from(rows.flat());
  for (const symmetric of [true, false]) {
    const { qmin, qmax } = quantLevels(4, symmetric);
    const { scale, zero } = search(w, rows.length, k, 4, symmetric);
    for (let c = 0; c < rows.length; c++) {
      assert.ok(scale[c] > 0 && Number.isFinite(scale[c]), `row ${c}: scale ${scale[c]}`);
      assert.ok(Number.isFinite(zero[c]), `row ${c}: zero ${zero[c]}`);
    }
    assert.deepEqual([scale[0], zero[0], scale[1], zero[1], scale[2], zero[2]], [1, 0, 1, 0, 1, 0]);
    // A constant row is reproduced exactly (its value is a level at r = 1).
    for (const c of [3, 4]) {
      const v = rows[c][0];
      assert.equal(fakeQuantValue(v, scale[c], zero[c], qmin, qmax), v, `row ${c}, symmetric ${symmetric}`);
    }
    const single = search(Float32Array.of(-0.75), 1, 1, 3, symmetric);
    const lv = quantLevels(3, symmetric);
    assert.equal(fakeQuantValue(-0.75, single.scale[0], single.zero[0], lv.qmin, lv.qmax), -0.75);
  }
  assert.deepEqual(search(new Float32Array(0), 0, 7, 4, true).scale, new Float32Array(0));
});

Deno.test("the scale searches refuse NaN and ±Infinity, naming the channel", async () => {
  await init();
  for (const bad of [NaN, Infinity, -Infinity]) {
    const w = randomFloats(4 * 7, 3);
    w[2 * 7 + 5] = bad;
    assert.throws(() => search(w, 4, 7, 4, true), (e: { code: string; message: string }) => {
      assert.equal(e.code, "INVALID_DATA");
      assert.match(e.message, /channel 2 /);
      return true;
    });
    const x = fenced(9, Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8, bad));
    assert.throws(() => searchActivationScale(x.ptr, 9, 8), { code: "INVALID_DATA" });
    x.release("x");
  }
  assert.throws(() => search(randomFloats(4, 1), 1, 4, 1, true), { code: "INVALID_ARGUMENT" });
  assert.throws(() => search(randomFloats(4, 1), 1, 4, 4, true, { candidates: 0 }), {
    code: "INVALID_ARGUMENT",
  });
});

Deno.test("searchActivationScale: unsigned levels, zero point 0 for non-negative tensors, 0 representable", async () => {
  await init();
  const n = 5000;
  const relu = randomFloats(n, 5).map((v) => Math.max(0, v * 3));
  const signed = randomFloats(n, 6).map((v) => v * 3 + 1);
  for (const [name, xs] of [["relu", relu], ["signed", signed]] as const) {
    for (const b of [2, 4, 8]) {
      const x = fenced(n, xs);
      const q = searchActivationScale(x.ptr, n, b);
      x.release("x");
      assert.equal(q.qmin, 0);
      assert.equal(q.qmax, 2 ** b - 1);
      if (name === "relu") assert.equal(q.zero, 0);
      else assert.ok(q.zero > 0 && q.zero < q.qmax, `zero ${q.zero}`);
      assert.equal(fakeQuantValue(0, q.scale, q.zero, q.qmin, q.qmax), 0);
      const all = scaleCandidatesReference(xs, b, false)!;
      const best = all.reduce((a, c) => (c.error < a.error ? c : a));
      const chosen = all.find((c) => c.scale === q.scale && c.zero === q.zero);
      assert.ok(
        chosen && chosen.error <= best.error * (1 + 1e-5),
        `${name}, ${b} bits: ${JSON.stringify(q)}`,
      );
    }
  }
});

Deno.test("lsqForward and lsqBackward equal their references (dx bit for bit, dL/ds to 1e-12)", async () => {
  await init();
  const rand = randomInts(21);
  for (let trial = 0; trial < 20; trial++) {
    const n = rand(1, 300), b = rand(2, 8);
    const { qmin, qmax } = quantLevels(b, false);
    const zero = trial % 2 ? 0 : rand(qmin, qmax), scale = 0.001 * rand(1, 500);
    const xs = randomFloats(n, trial).map((v) =>
      v * scale * (qmax + 4) + (trial % 3 === 0 ? 0 : scale * 0.5)
    );
    const dys = randomFloats(n, trial + 50);
    const x = fenced(n, xs), dy = fenced(n, dys), y = fenced(n), dx = fenced(n);
    lsqForward(x.ptr, n, scale, zero, qmin, qmax, y.ptr);
    assert.deepEqual(
      bits(y.read()),
      bits(lsqForwardReference(xs, scale, zero, qmin, qmax)),
      `trial ${trial}`,
    );
    const dScale = lsqBackward(x.ptr, dy.ptr, n, scale, zero, qmin, qmax, dx.ptr);
    const ref = lsqBackwardReference(xs, dys, scale, zero, qmin, qmax);
    assert.deepEqual(bits(dx.read()), bits(ref.dx), `trial ${trial}: dx`);
    const g = 1 / Math.sqrt(n * qmax);
    assert.equal(lsqGradScale(n, qmax), g);
    assert.ok(
      Math.abs(dScale - g * ref.sum) <= 1e-12 * (1 + Math.abs(g * ref.sum)),
      `${dScale} vs ${g * ref.sum}`,
    );
    // Without dx, and with an explicit gradient scale.
    assert.equal(lsqBackward(x.ptr, dy.ptr, n, scale, zero, qmin, qmax, 0, 1) * g, dScale);
    x.release("x"), dy.release("dy"), y.release("y"), dx.release("dx");
  }
});

Deno.test("QDrop: dropped values keep x, pass dy through and add nothing to dL/ds (vs the references)", async () => {
  await init();
  const rand = randomInts(22);
  for (let trial = 0; trial < 12; trial++) {
    const n = rand(1, 300), p = [0, 0.25, 0.5, 1][trial % 4];
    const { qmin, qmax } = quantLevels(4, false);
    const zero = rand(qmin, qmax), scale = 0.01 * rand(1, 50);
    const xs = randomFloats(n, trial).map((v) => v * scale * (qmax + 4));
    const dys = randomFloats(n, trial + 70);
    const words = Uint32Array.from({ length: n }, () => rand(0, 2 ** 32 - 1));
    const drop = { words: words, below: dropBelow(p) };
    const x = fenced(n, xs), dy = fenced(n, dys), y = fenced(n), dx = fenced(n);
    const w = fenced(n, new Float32Array(words.buffer));
    lsqForward(x.ptr, n, scale, zero, qmin, qmax, y.ptr, { words: w.ptr, below: drop.below });
    const refY = lsqForwardReference(xs, scale, zero, qmin, qmax, drop);
    assert.deepEqual(bits(y.read()), bits(refY), `trial ${trial}`);
    const kept = words.filter((v) => v >= drop.below).length;
    if (p === 1) assert.deepEqual(bits(refY), bits(xs));
    const dScale = lsqBackward(x.ptr, dy.ptr, n, scale, zero, qmin, qmax, dx.ptr, 1, {
      words: w.ptr,
      below: drop.below,
    });
    const ref = lsqBackwardReference(xs, dys, scale, zero, qmin, qmax, drop);
    assert.deepEqual(bits(dx.read()), bits(ref.dx), `trial ${trial}: dx`);
    assert.ok(Math.abs(dScale - ref.sum) <= 1e-12 * (1 + Math.abs(ref.sum)), `${dScale} vs ${ref.sum}`);
    if (kept === 0) assert.equal(dScale, 0);
    x.release("x"), dy.release("dy"), y.release("y"), dx.release("dx"), w.release("words");
  }
});

Deno.test("lsqBackward is the derivative of LSQ's straight-through surrogate (central differences, float64)", async () => {
  await init();
  const n = 400, qmin = 0, qmax = 15, zero = 3, s0 = 0.05;
  // Inputs spread over the range and beyond it on both sides.
  const xs = randomFloats(n, 77).map((v) => v * s0 * 14 + s0 * 4.5);
  const dys = randomFloats(n, 78);
  // Surrogate: u = x/s + z; inside [qmin, qmax] the level is u + c with the
  // rounding offset c frozen at s0; outside it is the bound. Its exact
  // derivatives are LSQ's: dŷ/dx = 1 inside, dŷ/ds = c inside, bound - z outside.
  const offset = Array.from(xs, (x) => roundHalfEven(Math.fround(x / s0)) - Math.fround(x / s0));
  const surrogate = (x: number, s: number, c: number) => {
    const u = x / s + zero;
    return s * ((u < qmin ? qmin : u > qmax ? qmax : u + c) - zero);
  };
  const loss = (s: number) => xs.reduce((l, x, i) => l + dys[i] * surrogate(x, s, offset[i]), 0);
  // Skip inputs within 1e-3 levels of the range's ends, where the surrogate has a kink.
  const keep = Array.from(xs, (x) => {
    const u = Math.fround(x / s0) + zero;
    return Math.abs(u - qmin) > 1e-3 && Math.abs(u - qmax) > 1e-3;
  });
  const dysKept = dys.map((d, i) => (keep[i] ? d : 0));
  const x = fenced(n, xs), dy = fenced(n, dysKept), dx = fenced(n);
  const dScale = lsqBackward(x.ptr, dy.ptr, n, s0, zero, qmin, qmax, dx.ptr, 1);
  const h = 1e-7;
  const lossKept = (s: number) =>
    xs.reduce((l, v, i) => l + (keep[i] ? dysKept[i] * surrogate(v, s, offset[i]) : 0), 0);
  const fdScale = (lossKept(s0 + h) - lossKept(s0 - h)) / (2 * h);
  assert.ok(
    Math.abs(dScale - fdScale) <= 1e-4 * (1 + Math.abs(fdScale)),
    `dL/ds ${dScale}, finite differences ${fdScale}`,
  );
  const dxs = dx.read();
  let inside = 0, outside = 0;
  for (let i = 0; i < n; i++) {
    if (!keep[i]) continue;
    const hx = 1e-6 * s0;
    const fd = (dys[i] * (surrogate(xs[i] + hx, s0, offset[i]) - surrogate(xs[i] - hx, s0, offset[i]))) /
      (2 * hx);
    assert.ok(
      Math.abs(dxs[i] - fd) <= 1e-6 * (1 + Math.abs(fd)),
      `dx[${i}] = ${dxs[i]}, finite differences ${fd}`,
    );
    if (dxs[i] === 0) outside++;
    else inside++;
  }
  assert.ok(
    inside > 100 && outside > 50,
    `inside ${inside}, outside ${outside}: both branches are exercised`,
  );
  assert.ok(Number.isFinite(loss(s0)));
  x.release("x"), dy.release("dy"), dx.release("dx");
});

Deno.test("lsq kernels reject a non-positive scale and a zero point outside the levels", async () => {
  await init();
  assert.throws(() => lsqForward(0, 4, 0, 0, 0, 15, 0), { code: "INVALID_ARGUMENT" });
  assert.throws(() => lsqForward(0, 4, NaN, 0, 0, 15, 0), { code: "INVALID_ARGUMENT" });
  assert.throws(() => lsqBackward(0, 0, 4, 0.1, 16, 0, 15, 0), { code: "INVALID_ARGUMENT" });
  assert.throws(() => fakeQuantNearest(0, 1, 4, 0, 0, 5, 5, 0), { code: "INVALID_ARGUMENT" });
});
