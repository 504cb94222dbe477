// The Gaussian stream (src/kernels/random.ts): Philox known answers, the wasm
// normals against a float64 reference, statistics of 10^6 samples, and the
// counter-based properties a resumable run relies on.
import assert from "node:assert/strict";
import { init } from "../mod.ts";
import { erfReference } from "../src/kernels/unary.ts";
import { gaussianFill, gaussianReference, philox4x32, philoxBlocksWasm } from "../src/kernels/random.ts";
import { alloc, free, u8 } from "../src/wasm.ts";
import { fenced } from "./kernels-helpers.ts";

/** gaussianFill into a fenced wasm buffer; returns a copy. */
function fill(seed: number, counter: number, count: number): Float32Array {
  const out = fenced(count);
  gaussianFill(seed, counter, count, out.ptr);
  const values = out.read();
  out.release(`gaussianFill(${seed}, ${counter}, ${count})`);
  return values;
}

function bits(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

/** FNV-1a over the bytes of a float32 array, as 8 hex digits. */
function fnv(a: Float32Array): string {
  let h = 0x811c9dc5;
  for (const byte of new Uint8Array(a.buffer, a.byteOffset, a.byteLength)) {
    h = Math.imul(h ^ byte, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, "0");
}

const hex = (words: ArrayLike<number>) =>
  Array.from(words, (w) => (w >>> 0).toString(16).padStart(8, "0")).join(" ");

// Random123's tests/kat_vectors, the three `philox4x32 10` lines: counter, key, result.
const kat: [number[], number[], string][] = [
  [[0, 0, 0, 0], [0, 0], "6627e8d5 e169c58d bc57ac4c 9b00dbd8"],
  [
    [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
    [0xffffffff, 0xffffffff],
    "408f276d 41c83b0e a20bc7c6 6d5451fd",
  ],
  [
    [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
    [0xa4093822, 0x299f31d0],
    "d16cfe09 94fdcceb 5001e420 24126ea1",
  ],
];

Deno.test("Philox4x32-10 matches the Random123 known-answer vectors, in TypeScript and in wasm", async () => {
  await init();
  const out = alloc(64);
  try {
    for (const [ctr, key, expected] of kat) {
      assert.equal(hex(philox4x32(ctr, key)), expected, `philox4x32(${hex(ctr)}; ${hex(key)})`);
      philoxBlocksWasm(key, ctr, 1, out);
      assert.equal(
        hex(new Uint32Array(u8(out, 16).slice().buffer)),
        expected,
        `wasm (${hex(ctr)}; ${hex(key)})`,
      );
    }
  } finally {
    free(out);
  }
});

Deno.test("wasm Philox blocks equal the TypeScript ones, across the carry into the counter's second word", async () => {
  await init();
  const count = 23;
  const out = alloc(count * 16);
  try {
    for (const first of [0, 2 ** 32 - 5, 3 * 2 ** 32 + 17, 2 ** 51 - count]) {
      philoxBlocksWasm(
        [0x1234567, 0x89abcdef],
        [first % 2 ** 32, Math.floor(first / 2 ** 32), 5, 0xffffffff],
        count,
        out,
      );
      const words = new Uint32Array(u8(out, count * 16).slice().buffer);
      for (let i = 0; i < count; i++) {
        const b = first + i;
        const expected = philox4x32([b % 2 ** 32, Math.floor(b / 2 ** 32), 5, 0xffffffff], [
          0x1234567,
          0x89abcdef,
        ]);
        assert.equal(hex(words.subarray(4 * i, 4 * i + 4)), hex(expected), `block ${b}`);
      }
    }
  } finally {
    free(out);
  }
});

Deno.test("gaussianFill matches the float64 Box–Muller reference within 1e-6", async () => {
  await init();
  for (
    const [seed, counter, count] of [[0, 0, 100_000], [7, 13, 1001], [0xffffffff, 2 ** 34 - 6, 40], [
      3,
      2 ** 53 - 37,
      37,
    ]]
  ) {
    const actual = fill(seed, counter, count);
    const expected = gaussianReference(seed, counter, count);
    for (let i = 0; i < count; i++) {
      const e = expected[i];
      assert.ok(
        Math.abs(actual[i] - e) <= 1e-6 * Math.max(1, Math.abs(e)),
        `seed ${seed}, element ${counter + i}: ${actual[i]}, expected ${e}`,
      );
    }
  }
});

Deno.test("gaussianFill is bit-identical across calls and runtimes (golden hash)", async () => {
  await init();
  const a = fill(12345, 0, 100_000);
  assert.deepEqual(bits(fill(12345, 0, 100_000)), bits(a));
  // The same digest under Deno and Node: the generator has no runtime-dependent step.
  assert.equal(fnv(a), "575ceffa");
  assert.equal(fnv(fill(1, 2 ** 40 + 3, 9999)), "5c91e616");
});

Deno.test("element i depends only on (seed, counter + i): every slice equals the tail of a longer fill", async () => {
  await init();
  const seed = 99;
  for (const c of [0, 1, 5, 16, 1000, 2 ** 32 * 4 + 2]) {
    for (const n of [0, 1, 3, 4, 15, 16, 17, 33, 100]) {
      const slice = fill(seed, c, n);
      for (const k of [1, 2, 3, 4, 7, 16, 17]) {
        if (k > c) continue;
        const longer = fill(seed, c - k, n + k);
        assert.deepEqual(
          bits(slice),
          bits(longer.subarray(k)),
          `fill(${c}, ${n}) vs tail of fill(${c - k}, ${n + k})`,
        );
      }
    }
  }
  // Filling in pieces gives the stream filled at once.
  const whole = fill(seed, 3, 5000);
  const parts = new Float32Array(5000);
  for (let at = 0, step = 1; at < 5000; at += step, step = (step * 7) % 61 + 1) {
    const n = Math.min(step, 5000 - at);
    parts.set(fill(seed, 3 + at, n), at);
  }
  assert.deepEqual(bits(parts), bits(whole));
});

Deno.test("different seeds give different, uncorrelated streams", async () => {
  await init();
  const n = 100_000;
  const streams = [0, 1, 2, 0x80000000, 0xffffffff].map((seed) => fill(seed, 0, n));
  for (let a = 0; a < streams.length; a++) {
    for (let b = a + 1; b < streams.length; b++) {
      let same = 0, dot = 0;
      for (let i = 0; i < n; i++) {
        if (streams[a][i] === streams[b][i]) same++;
        dot += streams[a][i] * streams[b][i];
      }
      assert.ok(same < 10, `seeds ${a}, ${b}: ${same} equal elements`);
      assert.ok(Math.abs(dot / n) < 5 / Math.sqrt(n), `seeds ${a}, ${b}: correlation ${dot / n}`);
    }
  }
});

const Phi = (x: number) => 0.5 * (1 + erfReference(x / Math.SQRT2));

Deno.test("10^6 normals: moments, tails, lag correlations and Kolmogorov–Smirnov against Φ", async () => {
  await init();
  const n = 1_000_000;
  const z = fill(2024, 77, n);
  let s1 = 0, s2 = 0, s4 = 0;
  for (const x of z) {
    s1 += x;
    s2 += x * x;
    s4 += x ** 4;
  }
  const mean = s1 / n, variance = s2 / n - mean * mean, kurtosis = s4 / n / (s2 / n) ** 2;
  // Five standard errors: a correct generator fails this about once in 10^6 seeds.
  assert.ok(Math.abs(mean) < 5 / Math.sqrt(n), `mean ${mean}`);
  assert.ok(Math.abs(variance - 1) < 5 * Math.sqrt(2 / n), `variance ${variance}`);
  assert.ok(Math.abs(kurtosis - 3) < 5 * Math.sqrt(24 / n), `kurtosis ${kurtosis}`);
  for (const t of [0.5, 1, 2, 3, 4]) {
    let count = 0;
    for (const x of z) if (Math.abs(x) > t) count++;
    const p = 2 * (1 - Phi(t));
    const se = Math.sqrt((p * (1 - p)) / n);
    assert.ok(Math.abs(count / n - p) < 5 * se + 1 / n, `P(|z| > ${t}) = ${count / n}, expected ${p}`);
  }
  for (const lag of [1, 2, 3, 4, 5, 16]) {
    let dot = 0;
    for (let i = 0; i + lag < n; i++) dot += z[i] * z[i + lag];
    assert.ok(Math.abs(dot / (n - lag)) < 5 / Math.sqrt(n), `lag-${lag} correlation ${dot / (n - lag)}`);
  }
  const sorted = Float64Array.from(z).sort();
  let d = 0;
  for (let i = 0; i < n; i++) {
    const f = Phi(sorted[i]);
    d = Math.max(d, (i + 1) / n - f, f - i / n);
  }
  // Critical value of the KS statistic at the 0.1 % level: 1.949 / sqrt(n).
  assert.ok(d < 1.949 / Math.sqrt(n), `KS statistic ${d}`);
});

Deno.test("gaussianFill rejects bad seeds and positions past 2^53", async () => {
  await init();
  for (
    const [seed, counter, count] of [[-1, 0, 1], [2 ** 32, 0, 1], [0.5, 0, 1], [0, -1, 1], [
      0,
      2 ** 53 - 1,
      2,
    ], [0, 1.5, 1]]
  ) {
    assert.throws(() => gaussianFill(seed, counter, count, 0), { code: "INVALID_ARGUMENT" });
  }
});
