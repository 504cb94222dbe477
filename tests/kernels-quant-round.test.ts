// Rounding modes (src/kernels/quant-round.ts): attention (stochastic and
// expectation) and AdaRound, each forward against its reference, each backward
// against central differences of a float64 forward, and the stochastic mode's
// law: level k is drawn with probability Φ((k + ½ - v)/σ) - Φ((k - ½ - v)/σ).
import assert from "node:assert/strict";
import { init } from "../mod.ts";
import { quantLevels, searchWeightScales } from "../src/kernels/quant.ts";
import {
  adaroundForward,
  adaroundForwardReference,
  adaroundInit,
  adaroundInitReference,
  adaroundRegularizer,
  adaroundRegularizerReference,
  attentionExpectedForward,
  attentionExpectedReference,
  attentionInit,
  attentionStochasticForward,
  attentionStochasticReference,
  expectedLevel,
  rectifiedSigmoid,
  roundingBackward,
} from "../src/kernels/quant-round.ts";
import { gaussianFill } from "../src/kernels/random.ts";
import { erfReference } from "../src/kernels/unary.ts";
import { randomFloats } from "./helpers.ts";
import { type Fenced, fenced, randomInts } from "./kernels-helpers.ts";

const Phi = (x: number) => 0.5 * (1 + erfReference(x / Math.SQRT2));

function bits(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

/** Fenced wasm copies of the given arrays; `done` checks the fences and frees them. */
function buffers(arrays: Record<string, Float32Array | number>) {
  const all: Record<string, Fenced> = {};
  for (const [name, a] of Object.entries(arrays)) {
    all[name] = typeof a === "number" ? fenced(a) : fenced(a.length, a);
  }
  return {
    ...all,
    done() {
      for (const [name, b] of Object.entries(all)) b.release(name);
    },
  } as Record<string, Fenced> & { done(): void };
}

/** A random per-channel grid: scales, integer zero points within the levels. */
function grid(m: number, b: number, symmetric: boolean, seed: number) {
  const rand = randomInts(seed);
  const { qmin, qmax } = quantLevels(b, symmetric);
  const scale = Float32Array.from({ length: m }, () => 0.001 * rand(1, 200));
  const zero = Float32Array.from({ length: m }, () => (symmetric ? 0 : rand(qmin, qmax)));
  return { qmin, qmax, scale, zero };
}

/** Latents spread over the level range and a little beyond it. */
function latents(m: number, k: number, qmin: number, qmax: number, seed: number): Float32Array {
  const mid = (qmin + qmax) / 2, half = (qmax - qmin) / 2 + 2;
  return randomFloats(m * k, seed).map((u) => mid + u * half);
}

Deno.test("attentionInit writes v = w / s + z", async () => {
  await init();
  const m = 3, k = 7;
  const { scale, zero } = grid(m, 4, false, 1);
  const w = randomFloats(m * k, 2);
  const b = buffers({ w, scale, zero, v: m * k });
  attentionInit(b.w.ptr, m, k, b.scale.ptr, b.zero.ptr, b.v.ptr);
  const expected = w.map((x, i) =>
    Math.fround(Math.fround(x / scale[Math.floor(i / k)]) + zero[Math.floor(i / k)])
  );
  assert.deepEqual(bits(b.v.read()), bits(expected));
  b.done();
});

Deno.test("stochastic attention round equals its reference with the stream's normals, and says what it used", async () => {
  await init();
  const rand = randomInts(5);
  for (let trial = 0; trial < 24; trial++) {
    const m = rand(1, 5), k = rand(1, 1100), b = rand(2, 8), symmetric = trial % 2 === 0;
    const { qmin, qmax, scale, zero } = grid(m, b, symmetric, trial);
    const v = latents(m, k, qmin, qmax, trial + 7);
    const sigma = [0, 0.05, 0.5, 1, 2.5][trial % 5];
    const seed = rand(0, 1000) * 4_000_007, counter = rand(0, 10) * 2 ** rand(0, 40) + rand(0, 9);
    const n = m * k;
    const bufs = buffers({ v, scale, zero, wHat: n, grad: n, eps: n });
    const used = attentionStochasticForward(
      bufs.v.ptr,
      m,
      k,
      bufs.scale.ptr,
      bufs.zero.ptr,
      qmin,
      qmax,
      sigma,
      seed >>> 0,
      counter,
      bufs.wHat.ptr,
      bufs.grad.ptr,
    );
    assert.equal(used, sigma > 0 ? n : 0);
    gaussianFill(seed >>> 0, counter, n, bufs.eps.ptr);
    const ref = attentionStochasticReference(v, m, k, scale, zero, qmin, qmax, sigma, bufs.eps.read());
    assert.deepEqual(bits(bufs.wHat.read()), bits(ref.wHat), `trial ${trial}: ŵ`);
    assert.deepEqual(bits(bufs.grad.read()), bits(ref.grad), `trial ${trial}: grad`);
    // Without a grad buffer, the same ŵ.
    attentionStochasticForward(
      bufs.v.ptr,
      m,
      k,
      bufs.scale.ptr,
      bufs.zero.ptr,
      qmin,
      qmax,
      sigma,
      seed >>> 0,
      counter,
      bufs.eps.ptr,
      0,
    );
    assert.deepEqual(bits(bufs.eps.read()), bits(ref.wHat), `trial ${trial}: ŵ without grad`);
    bufs.done();
  }
});

Deno.test("stochastic attention round draws level k with probability Φ((k+½-v)/σ) - Φ((k-½-v)/σ)", async () => {
  await init();
  const n = 200_000;
  const qmin = -8, qmax = 7;
  let counter = 0;
  for (
    const [v, sigma] of [[0.3, 0.5], [2.5, 0.5], [-1.2, 1], [0, 1.5], [6.6, 0.8], [-7.9, 2], [3.2, 0.05]]
  ) {
    const b = buffers({
      v: new Float32Array(n).fill(v),
      scale: Float32Array.of(1),
      zero: Float32Array.of(0),
      wHat: n,
      grad: n,
    });
    counter += attentionStochasticForward(
      b.v.ptr,
      1,
      n,
      b.scale.ptr,
      b.zero.ptr,
      qmin,
      qmax,
      sigma,
      42,
      counter,
      b.wHat.ptr,
      b.grad.ptr,
    );
    const counts = new Map<number, number>();
    for (const q of b.wHat.read()) counts.set(q, (counts.get(q) ?? 0) + 1);
    let total = 0;
    for (let level = qmin; level <= qmax; level++) {
      const vf = Math.fround(v);
      const upper = level === qmax ? 1 : Phi((level + 0.5 - vf) / sigma);
      const lower = level === qmin ? 0 : Phi((level - 0.5 - vf) / sigma);
      const p = upper - lower;
      const seen = counts.get(level) ?? 0;
      total += seen;
      // Five binomial standard errors, plus the float32 rounding of v + σε.
      const bound = 5 * Math.sqrt((p * (1 - p)) / n) + 2 / n;
      assert.ok(
        Math.abs(seen / n - p) <= bound,
        `v ${v}, σ ${sigma}: level ${level} seen ${seen / n}, expected ${p}`,
      );
    }
    assert.equal(total, n, "every sample is a level in [qmin, qmax]");
    b.done();
  }
  // Levels two and three steps away are reached (the paper's point), at their Gaussian rates.
  assert.ok(counter === 7 * n);
});

Deno.test("stochastic attention round: σ = 0 is round-to-nearest, far latents clamp with zero gradient", async () => {
  await init();
  const v = Float32Array.of(-20, -8.6, -8.4, -0.5, 0.5, 1.5, 2.49, 6.6, 7.4, 7.6, 30);
  const b = buffers({
    v,
    scale: Float32Array.of(0.5),
    zero: Float32Array.of(0),
    wHat: v.length,
    grad: v.length,
  });
  const used = attentionStochasticForward(
    b.v.ptr,
    1,
    v.length,
    b.scale.ptr,
    b.zero.ptr,
    -8,
    7,
    0,
    9,
    123,
    b.wHat.ptr,
    b.grad.ptr,
  );
  assert.equal(used, 0);
  assert.deepEqual(Array.from(b.wHat.read(), (x) => x / 0.5 + 0), [-8, -8, -8, 0, 0, 2, 2, 7, 7, 7, 7]);
  assert.deepEqual(Array.from(b.grad.read()), [0, 0, 0, 0.5, 0.5, 0.5, 0.5, 0.5, 0, 0, 0]);
  b.done();
});

Deno.test("stochastic attention backward is the straight-through rule (central differences of its surrogate)", async () => {
  await init();
  const m = 4, k = 50, n = m * k, sigma = 0.7, seed = 3, counter = 1000;
  const { qmin, qmax, scale, zero } = grid(m, 3, true, 8);
  const v = latents(m, k, qmin, qmax, 9);
  const dw = randomFloats(n, 10);
  const b = buffers({ v, scale, zero, wHat: n, grad: n, dw, dv: n, eps: n });
  attentionStochasticForward(
    b.v.ptr,
    m,
    k,
    b.scale.ptr,
    b.zero.ptr,
    qmin,
    qmax,
    sigma,
    seed,
    counter,
    b.wHat.ptr,
    b.grad.ptr,
  );
  roundingBackward(b.dw.ptr, b.grad.ptr, n, b.dv.ptr);
  gaussianFill(seed, counter, n, b.eps.ptr);
  const eps = b.eps.read(), dv = b.dv.read();
  // Surrogate of one element: t = v + σε, level t + c with the rounding offset c
  // frozen inside [qmin, qmax], the bound outside; ŵ = s·(level - z).
  let inside = 0;
  for (let i = 0; i < n; i++) {
    const c = Math.floor(i / k);
    const t0 = Math.fround(v[i] + Math.fround(Math.fround(sigma) * eps[i]));
    if (Math.abs(t0 - qmin) < 1e-3 || Math.abs(t0 - qmax) < 1e-3) continue;
    const offset = Math.round(t0) - t0;
    const f = (x: number) => {
      const t = x + sigma * eps[i];
      return scale[c] * ((t < qmin ? qmin : t > qmax ? qmax : t + offset) - zero[c]);
    };
    const h = 1e-5;
    const fd = (dw[i] * (f(v[i] + h) - f(v[i] - h))) / (2 * h);
    assert.ok(
      Math.abs(dv[i] - fd) <= 1e-5 * (1 + Math.abs(fd)),
      `element ${i}: dv ${dv[i]}, finite differences ${fd}`,
    );
    if (dv[i] !== 0) inside++;
  }
  assert.ok(inside > 50 && inside < n - 20, `${inside} of ${n} inside: both branches are exercised`);
  b.done();
});

/** Whether v is within `margin` of a point where a level enters or leaves the ±4σ window. */
function nearWindowEdge(v: number, sigma: number, margin: number): boolean {
  const r = 4 * sigma;
  const a = v - r, b = v + r;
  return Math.abs(a - Math.round(a)) < margin || Math.abs(b - Math.round(b)) < margin;
}

Deno.test("expectation attention round: forward within 2e-6 levels of float64, slope = Var/σ² by finite differences", async () => {
  await init();
  for (
    const [sigma, b, symmetric] of [[0.5, 4, true], [0.2, 3, false], [1, 2, true], [2.5, 4, false], [
      0.13,
      8,
      true,
    ]] as const
  ) {
    const m = 3, k = 37, n = m * k;
    const { qmin, qmax, scale, zero } = grid(m, b, symmetric, Math.round(sigma * 100));
    const v = latents(m, k, qmin, qmax, b);
    const bufs = buffers({ v, scale, zero, wHat: n, grad: n });
    attentionExpectedForward(
      bufs.v.ptr,
      m,
      k,
      bufs.scale.ptr,
      bufs.zero.ptr,
      qmin,
      qmax,
      sigma,
      bufs.wHat.ptr,
      bufs.grad.ptr,
    );
    const wHat = bufs.wHat.read(), grad = bufs.grad.read();
    const ref = attentionExpectedReference(v, m, k, scale, zero, qmin, qmax, sigma);
    let checked = 0;
    for (let i = 0; i < n; i++) {
      const c = Math.floor(i / k), s = scale[c];
      if (nearWindowEdge(v[i], sigma, 1e-4)) continue;
      const what = `σ ${sigma}, v ${v[i]}`;
      assert.ok(
        Math.abs(wHat[i] - ref.wHat[i]) <= 2e-6 * s * (1 + Math.abs(v[i])),
        `${what}: ŵ ${wHat[i]} vs ${ref.wHat[i]}`,
      );
      // The float64 forward's central difference (h = 1e-5 levels).
      const h = 1e-5;
      const fd =
        (s * (expectedLevel(v[i] + h, sigma, qmin, qmax).q - expectedLevel(v[i] - h, sigma, qmin, qmax).q)) /
        (2 * h);
      assert.ok(
        Math.abs(ref.grad[i] - fd) <= 1e-6 * s,
        `${what}: reference slope ${ref.grad[i]} vs finite differences ${fd}`,
      );
      assert.ok(
        Math.abs(grad[i] - fd) <= 2e-5 * s * (1 + Math.abs(fd / s)),
        `${what}: slope ${grad[i]} vs finite differences ${fd}`,
      );
      checked++;
    }
    assert.ok(checked > n * 0.9, `${checked} of ${n} checked`);
    bufs.done();
  }
});

Deno.test("expectation attention round: σ → 0 is round-to-nearest, far latents clamp, NaN stays NaN", async () => {
  await init();
  const v = Float32Array.of(-20, -8.6, -0.4, 0.6, 1.5, 2.5, 6.6, 30, NaN);
  const nearest = [-8, -8, -0, 1, 2, 2, 7, 7];
  for (const sigma of [0, 1e-3, 0.1]) {
    const b = buffers({
      v,
      scale: Float32Array.of(1),
      zero: Float32Array.of(0),
      wHat: v.length,
      grad: v.length,
    });
    attentionExpectedForward(
      b.v.ptr,
      1,
      v.length,
      b.scale.ptr,
      b.zero.ptr,
      -8,
      7,
      sigma,
      b.wHat.ptr,
      b.grad.ptr,
    );
    const wHat = b.wHat.read(), grad = b.grad.read();
    for (let i = 0; i < nearest.length; i++) {
      assert.ok(Math.abs(wHat[i] - nearest[i]) < 1e-6, `σ ${sigma}: q(${v[i]}) = ${wHat[i]}`);
      assert.ok(Math.abs(grad[i]) < 1e-6, `σ ${sigma}: slope(${v[i]}) = ${grad[i]}`);
    }
    assert.ok(Number.isNaN(wHat[8]), "NaN latent");
    b.done();
  }
  // Beyond the range by more than 4σ only the bound remains; just inside, the slope is small but not 0.
  assert.deepEqual(expectedLevel(7 + 4 * 0.5 + 0.01, 0.5, -8, 7), { q: 7, variance: 0 });
  assert.ok(expectedLevel(7.5, 0.5, -8, 7).variance > 0);
});

Deno.test("adaroundInit: h(α) reproduces the rounding rest, α within 2e-6 of float64", async () => {
  await init();
  const m = 5, k = 29, n = m * k;
  const { scale } = grid(m, 4, true, 4);
  const w = randomFloats(n, 12).map((u, i) => u * scale[Math.floor(i / k)] * 9);
  const b = buffers({ w, scale, alpha: n });
  adaroundInit(b.w.ptr, m, k, b.scale.ptr, b.alpha.ptr);
  const alpha = b.alpha.read(), ref = adaroundInitReference(w, m, k, scale);
  for (let i = 0; i < n; i++) {
    const x = Math.fround(w[i] / scale[Math.floor(i / k)]);
    assert.ok(Math.abs(alpha[i] - ref[i]) <= 2e-6, `α[${i}] = ${alpha[i]}, expected ${ref[i]}`);
    assert.ok(Math.abs(rectifiedSigmoid(alpha[i]).h - (x - Math.floor(x))) <= 1e-6, `h(α[${i}])`);
  }
  b.done();
});

Deno.test("adaroundForward: soft ŵ equals w at initialisation; soft/hard against float64; dŵ/dα by finite differences", async () => {
  await init();
  const m = 4, k = 41, n = m * k;
  for (const [b, symmetric] of [[4, true], [2, false], [8, true]] as const) {
    const { qmin, qmax, scale, zero } = grid(m, b, symmetric, b);
    const w = randomFloats(n, b).map((u, i) => u * scale[Math.floor(i / k)] * (qmax - qmin) * 0.7);
    const bufs = buffers({ w, scale, zero, alpha: n, wHat: n, grad: n });
    adaroundInit(bufs.w.ptr, m, k, bufs.scale.ptr, bufs.alpha.ptr);
    adaroundForward(
      bufs.w.ptr,
      bufs.alpha.ptr,
      m,
      k,
      bufs.scale.ptr,
      bufs.zero.ptr,
      qmin,
      qmax,
      false,
      bufs.wHat.ptr,
      0,
    );
    const init0 = bufs.wHat.read();
    for (let i = 0; i < n; i++) {
      const s = scale[Math.floor(i / k)], z = zero[Math.floor(i / k)];
      const inRange = w[i] / s + z >= qmin && w[i] / s + z <= qmax;
      if (inRange) {
        assert.ok(
          Math.abs(init0[i] - w[i]) <= 2e-6 * s * (1 + Math.abs(w[i] / s)),
          `ŵ ${init0[i]} vs w ${w[i]}`,
        );
      }
    }
    // Move α around (both clamps of h, and beyond) and compare.
    const alpha = randomFloats(n, b + 1).map((u) => u * 8);
    const a = fenced(n, alpha);
    for (const hard of [false, true]) {
      adaroundForward(
        bufs.w.ptr,
        a.ptr,
        m,
        k,
        bufs.scale.ptr,
        bufs.zero.ptr,
        qmin,
        qmax,
        hard,
        bufs.wHat.ptr,
        bufs.grad.ptr,
      );
      const wHat = bufs.wHat.read(), grad = bufs.grad.read();
      const ref = adaroundForwardReference(w, alpha, m, k, scale, zero, qmin, qmax, hard);
      for (let i = 0; i < n; i++) {
        const s = scale[Math.floor(i / k)];
        if (hard) assert.equal(wHat[i], Math.fround(ref.wHat[i]), `hard ŵ[${i}]`);
        else {assert.ok(
            Math.abs(wHat[i] - ref.wHat[i]) <= 1e-6 * s * (qmax - qmin),
            `soft ŵ[${i}] ${wHat[i]} vs ${ref.wHat[i]}`,
          );}
        if (hard) {
          assert.equal(grad[i], 0);
          continue;
        }
        // Central differences of the float64 forward in α (skipping the clamps' kinks).
        const h = 1e-5;
        const r = rectifiedSigmoid(alpha[i]);
        if (Math.abs(r.raw) < 1e-4 || Math.abs(r.raw - 1) < 1e-4) continue;
        // (In float64 throughout: α ± h would not survive a float32 round trip.)
        const c = Math.floor(i / k), floorX = Math.floor(Math.fround(w[i] / scale[c]));
        const one = (x: number) => {
          const t = floorX + rectifiedSigmoid(x).h + zero[c];
          return scale[c] * (Math.min(Math.max(t, qmin), qmax) - zero[c]);
        };
        const fd = (one(alpha[i] + h) - one(alpha[i] - h)) / (2 * h);
        assert.ok(Math.abs(grad[i] - fd) <= 1e-5 * s, `dŵ/dα[${i}] = ${grad[i]}, finite differences ${fd}`);
      }
    }
    a.release("moved alpha");
    bufs.done();
  }
});

Deno.test("adaroundRegularizer: R within 1e-5 relative, dR/dα by finite differences, accumulates into dα", async () => {
  await init();
  const n = 203;
  const alpha = randomFloats(n, 31).map((u) => u * 6);
  alpha[0] = 0; // h = ½, where |2h - 1| has its kink
  for (const beta of [20, 8, 2]) {
    const start = randomFloats(n, 32);
    const b = buffers({ alpha, dAlpha: start });
    const lambda = 0.01;
    const r = adaroundRegularizer(b.alpha.ptr, n, beta, lambda, b.dAlpha.ptr);
    const ref = adaroundRegularizerReference(alpha, beta);
    assert.ok(Math.abs(r - ref.r) <= 1e-5 * Math.abs(ref.r), `β ${beta}: R ${r} vs ${ref.r}`);
    const d = b.dAlpha.read();
    for (let i = 0; i < n; i++) {
      const raw = rectifiedSigmoid(alpha[i]).raw;
      if (Math.abs(raw) < 1e-4 || Math.abs(raw - 1) < 1e-4) continue;
      const h = 1e-6;
      // In float64: α ± h would not survive a float32 round trip.
      const f = (x: number) => 1 - Math.abs(2 * rectifiedSigmoid(x).h - 1) ** beta;
      const fd = (f(alpha[i] + h) - f(alpha[i] - h)) / (2 * h);
      const added = d[i] - start[i];
      assert.ok(
        Math.abs(added - lambda * fd) <= 1e-6 * (1 + Math.abs(lambda * fd)),
        `β ${beta}, α ${alpha[i]}: ${added} vs ${lambda * fd}`,
      );
    }
    // Without a gradient buffer only R is computed.
    assert.equal(adaroundRegularizer(b.alpha.ptr, n, beta, lambda, 0), r);
    b.done();
  }
  assert.throws(() => adaroundRegularizer(0, 1, 1, 1, 0), { code: "INVALID_ARGUMENT" });
});

Deno.test("roundingBackward multiplies (or accumulates) the forward's derivative", async () => {
  await init();
  for (const n of [0, 1, 3, 4, 9, 64]) {
    const dw = randomFloats(n, n), grad = randomFloats(n, n + 1), start = randomFloats(n, n + 2);
    const b = buffers({ dw, grad, dv: start });
    roundingBackward(b.dw.ptr, b.grad.ptr, n, b.dv.ptr, true);
    assert.deepEqual(
      bits(b.dv.read()),
      bits(start.map((s, i) => Math.fround(s + Math.fround(dw[i] * grad[i])))),
    );
    roundingBackward(b.dw.ptr, b.grad.ptr, n, b.dv.ptr);
    assert.deepEqual(bits(b.dv.read()), bits(dw.map((x, i) => Math.fround(x * grad[i]))));
    b.done();
  }
});

Deno.test("rounding kernels reject bad ranges, σ and seeds", async () => {
  await init();
  assert.throws(() => attentionExpectedForward(0, 1, 1, 0, 0, 0, 0, 0.5, 0, 0), { code: "INVALID_ARGUMENT" });
  assert.throws(() => attentionExpectedForward(0, 1, 1, 0, 0, -8, 7, -1, 0, 0), { code: "INVALID_ARGUMENT" });
  assert.throws(() => attentionStochasticForward(0, 1, 1, 0, 0, -8, 7, NaN, 0, 0, 0, 0), {
    code: "INVALID_ARGUMENT",
  });
  assert.throws(() => attentionStochasticForward(0, 1, 1, 0, 0, -8, 7, 0.5, -1, 0, 0, 0), {
    code: "INVALID_ARGUMENT",
  });
  assert.throws(() => attentionStochasticForward(0, 1, 4, 0, 0, -8, 7, 0.5, 0, 2 ** 53 - 2, 0, 0), {
    code: "INVALID_ARGUMENT",
  });
  assert.throws(() => adaroundForward(0, 0, -1, 1, 0, 0, -8, 7, false, 0, 0), { code: "INVALID_ARGUMENT" });
});

/** FNV-1a over the bytes of float arrays, as 8 hex digits. */
function fnv(...arrays: (Float32Array | Float64Array)[]): string {
  let h = 0x811c9dc5;
  for (const a of arrays) {
    for (const byte of new Uint8Array(a.buffer, a.byteOffset, a.byteLength)) {
      h = Math.imul(h ^ byte, 0x01000193);
    }
  }
  return (h >>> 0).toString(16).padStart(8, "0");
}

Deno.test("the transcendental kernels (search, expectation, AdaRound) are bit-identical across runtimes (golden hash)", async () => {
  await init();
  const m = 8, k = 203, n = m * k;
  const w = randomFloats(n, 2718).map((u, i) => u * 0.01 * (1 + (i % 13)));
  const b = buffers({ w, scale: m, zero: m, v: n, wHat: n, grad: n, alpha: n, dAlpha: new Float32Array(n) });
  searchWeightScales(b.w.ptr, m, k, 3, false, b.scale.ptr, b.zero.ptr);
  attentionInit(b.w.ptr, m, k, b.scale.ptr, b.zero.ptr, b.v.ptr);
  attentionExpectedForward(b.v.ptr, m, k, b.scale.ptr, b.zero.ptr, 0, 7, 0.6, b.wHat.ptr, b.grad.ptr);
  const expected = [b.scale.read(), b.zero.read(), b.wHat.read(), b.grad.read()];
  attentionStochasticForward(
    b.v.ptr,
    m,
    k,
    b.scale.ptr,
    b.zero.ptr,
    0,
    7,
    0.6,
    77,
    2 ** 35,
    b.wHat.ptr,
    b.grad.ptr,
  );
  const stochastic = [b.wHat.read(), b.grad.read()];
  adaroundInit(b.w.ptr, m, k, b.scale.ptr, b.alpha.ptr);
  // Move α off its initial values, with both clamps of h reached.
  const alpha = b.alpha.read().map((a, i) => a + (((i * 37) % 13) - 6) / 2);
  const a2 = fenced(n, alpha);
  adaroundForward(b.w.ptr, a2.ptr, m, k, b.scale.ptr, b.zero.ptr, 0, 7, false, b.wHat.ptr, b.grad.ptr);
  const r = adaroundRegularizer(a2.ptr, n, 13.5, 0.01, b.dAlpha.ptr);
  const ada = [b.alpha.read(), b.wHat.read(), b.grad.read(), b.dAlpha.read(), Float64Array.of(r)];
  // The same digests under Deno and Node: nothing here depends on the runtime.
  assert.deepEqual([fnv(...expected), fnv(...stochastic), fnv(...ada)], ["cd26a13a", "29db36ce", "3084aea1"]);
  a2.release("alpha");
  b.done();
});
