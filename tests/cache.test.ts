import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";
import { init } from "../mod.ts";
import { ActivationCache, floatBitsFromHalf, halfFromFloatBits } from "../src/quant/cache.ts";
import { detectRuntime } from "../src/cli/runtime.ts";
import { alloc, f32, free } from "../src/wasm.ts";
import { randomFloats } from "./helpers.ts";

// ATTNROUND_VERBOSE=1 prints the gather throughput.
const verbose = process.env.ATTNROUND_VERBOSE === "1";

const bits = new Uint32Array(1);
const float = new Float32Array(bits.buffer);
const toFloat = (b: number) => {
  bits[0] = b;
  return float[0];
};
const toBits = (x: number) => {
  float[0] = x;
  return bits[0];
};

// An independent reference: half values computed from their definition, and
// float32 → half as "the nearest representable value, ties to the even bit pattern".
function halfValue(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15));
}

// Positive values of 0x0000 … 0x7bff increase with their bits; 0x7c00 stands for 2^16, where
// rounding with an unbounded exponent would land (so ≥ 65520 rounds to Inf, as IEEE 754 says).
const ladder = Float64Array.from({ length: 0x7c01 }, (_, h) => (h === 0x7c00 ? 65536 : halfValue(h)));

function referenceHalf(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65536) return sign | 0x7c00;
  let lo = 0, hi = 0x7c00; // ladder[lo] <= a < ladder[hi]
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (ladder[mid] <= a) lo = mid;
    else hi = mid;
  }
  const down = a - ladder[lo], up = ladder[hi] - a;
  return sign | (down < up || (down === up && (lo & 1) === 0) ? lo : hi);
}

/** float32 bit patterns that probe every rounding case. */
function probes(): number[] {
  const out: number[] = [0, 0x80000000, 0x7f800000, 0xff800000, 0x00000001, 0x007fffff, 0x7f7fffff];
  for (let h = 0; h < 0x7c00; h++) {
    const v = toBits(halfValue(h));
    const mid = toBits((halfValue(h) + ladder[h + 1]) / 2); // exact in float32
    out.push(v, v + 1, v - 1, mid, mid - 1, mid + 1);
  }
  for (const b of [...out]) out.push((b | 0x80000000) >>> 0);
  const random = randomFloats(400_000, 7);
  for (let i = 0; i < random.length; i += 2) {
    // Random bit patterns, and random values at every scale.
    out.push(toBits(random[i]) ^ (Math.floor((random[i + 1] + 1) * 2 ** 31) >>> 0));
    out.push(toBits(random[i] * 2 ** Math.floor(random[i + 1] * 40)));
  }
  return out.map((b) => b >>> 0);
}

Deno.test("0-convert: float32 → float16 rounds to nearest even, against a nearest-value reference", () => {
  let checked = 0;
  for (const b of probes()) {
    const x = toFloat(b);
    const got = halfFromFloatBits(b);
    if (Number.isNaN(x)) {
      assert.ok(
        (got & 0x7c00) === 0x7c00 && (got & 0x3ff) !== 0,
        `NaN ${b.toString(16)} → ${got.toString(16)}`,
      );
      assert.equal(got & 0x8000, (b >>> 16) & 0x8000, "NaN keeps its sign");
    } else {
      assert.equal(got, referenceHalf(x), `${x} (0x${b.toString(16)})`);
    }
    checked++;
  }
  assert.ok(checked > 500_000);
  // The cases by name.
  const h = (x: number) => halfFromFloatBits(toBits(x));
  assert.equal(h(65504), 0x7bff);
  assert.equal(h(65519.99), 0x7bff);
  assert.equal(h(65520), 0x7c00, "the midpoint to 2^16 rounds to Inf");
  assert.equal(h(2 ** -25), 0, "half the smallest subnormal ties to zero");
  assert.equal(h(toFloat(toBits(2 ** -25) + 1)), 1);
  assert.equal(h(3 * 2 ** -25), 2, "1.5 subnormal units tie to 2");
  assert.equal(h(1 + 2 ** -11), 0x3c00, "ties to even: down");
  assert.equal(h(1 + 3 * 2 ** -11), 0x3c02, "ties to even: up");
  assert.equal(h(-0), 0x8000);
  assert.equal(
    h(2 ** -14 - 2 ** -25),
    0x0400,
    "the largest subnormal's upper midpoint rounds to the smallest normal",
  );
  assert.equal(halfFromFloatBits(0x7f800001), 0x7e00, "a NaN whose payload does not fit stays NaN");
});

Deno.test("0-convert: all 65,536 float16 values decode exactly and round-trip bit for bit", () => {
  for (let h = 0; h < 65536; h++) {
    const b = floatBitsFromHalf(h);
    const expected = halfValue(h);
    if (Number.isNaN(expected)) {
      assert.ok(Number.isNaN(toFloat(b)));
      assert.equal((b >>> 13) & 0x3ff, h & 0x3ff, "payload");
    } else {
      assert.ok(Object.is(toFloat(b), expected), `0x${h.toString(16)}: ${toFloat(b)} vs ${expected}`);
    }
    assert.equal(halfFromFloatBits(b), h, `round trip 0x${h.toString(16)}`);
  }
});

type Float16View = {
  getFloat16(o: number, le?: boolean): number;
  setFloat16(o: number, v: number, le?: boolean): void;
};
const view = new DataView(new ArrayBuffer(2)) as unknown as Float16View;
const hasFloat16 = typeof view.getFloat16 === "function";

Deno.test({
  name: "0-convert: agrees with DataView getFloat16/setFloat16 (where the runtime has them)",
  ignore: !hasFloat16,
  fn: () => {
    const d = view as unknown as DataView & Float16View;
    for (let h = 0; h < 65536; h++) {
      d.setUint16(0, h, true);
      const v = d.getFloat16(0, true);
      const ours = toFloat(floatBitsFromHalf(h));
      assert.ok(Object.is(ours, v) || (Number.isNaN(ours) && Number.isNaN(v)), `0x${h.toString(16)}`);
    }
    for (const b of probes()) {
      const x = toFloat(b);
      d.setFloat16(0, x, true);
      const theirs = d.getUint16(0, true);
      const ours = halfFromFloatBits(b);
      if (Number.isNaN(x)) assert.ok(Number.isNaN(halfValue(ours)) && Number.isNaN(halfValue(theirs)));
      else assert.equal(ours, theirs, `${x}`);
    }
  },
});

// ---------------------------------------------------------------- the cache

function samples(count: number, size: number, seed: number): Float32Array {
  const x = randomFloats(count * size, seed);
  for (let i = 0; i < x.length; i++) x[i] *= 8;
  return x;
}

Deno.test("1-cache: float32 precision stores and gathers exactly, across chunks", async () => {
  await init();
  const shape = [3, 5, 7];
  const size = 105;
  const data = samples(40, size, 1);
  data[3] = NaN;
  data[4] = -0;
  data[5] = toFloat(1); // a float32 subnormal
  const cache = new ActivationCache(shape, 40, { precision: "float32", chunkBytes: 3 * size * 4 + 10 });
  assert.equal(cache.byteLength, 40 * size * 4);
  cache.write(0, data.subarray(0, 17 * size));
  cache.write(17, data.subarray(17 * size));
  assert.equal(cache.length, 40);
  const indices = [39, 0, 5, 5, 17, 2, 38];
  const dst = alloc(indices.length * size * 4);
  cache.gather(Int32Array.from(indices), dst);
  const got = new Uint32Array(f32(dst, indices.length * size).slice().buffer);
  const want = new Uint32Array(data.buffer);
  indices.forEach((s, j) => {
    for (let i = 0; i < size; i++) assert.equal(got[j * size + i], want[s * size + i], `sample ${s} [${i}]`);
  });
  free(dst);
  assert.deepEqual(new Uint32Array(cache.read(0).buffer), want.subarray(0, size));
  cache.dispose();
  assert.equal(cache.byteLength, 0);
  assert.throws(() => cache.read(0), { code: "INVALID_ARGUMENT", message: /after dispose/ });
});

Deno.test("1-cache: float16 precision holds half the bytes and each value rounded once", async () => {
  await init();
  const size = 64;
  const data = samples(50, size, 2);
  const cache = new ActivationCache([4, 16], 50, { chunkBytes: 7 * size * 2 });
  assert.equal(cache.byteLength, 50 * size * 2);
  // Written from wasm memory this time, as a forward pass would leave it.
  const src = alloc(data.length * 4);
  f32(src, data.length).set(data);
  cache.write(0, { ptr: src, length: 20 * size });
  cache.write(20, { ptr: src + 20 * size * 4, length: 30 * size });
  free(src);
  const indices = Array.from({ length: 50 }, (_, i) => (i * 17) % 50);
  const out = new Float32Array(indices.length * size);
  cache.gather(indices, out);
  let worst = 0;
  indices.forEach((s, j) => {
    for (let i = 0; i < size; i++) {
      const x = data[s * size + i];
      const expected = toFloat(floatBitsFromHalf(halfFromFloatBits(toBits(x))));
      assert.ok(Object.is(out[j * size + i], expected));
      if (Math.abs(x) > 2 ** -14) worst = Math.max(worst, Math.abs(out[j * size + i] - x) / Math.abs(x));
    }
  });
  assert.ok(worst <= 2 ** -11, `relative error ${worst}`);
  cache.dispose();
});

Deno.test("1-cache: errors name the offending write, gather or option", async () => {
  await init();
  const cache = new ActivationCache([2, 3], 4);
  assert.throws(() => cache.write(0, new Float32Array(5)), {
    code: "INVALID_ARGUMENT",
    message: /not whole samples/,
  });
  assert.throws(() => cache.write(3, new Float32Array(12)), {
    code: "INVALID_ARGUMENT",
    message: /do not fit/,
  });
  assert.throws(() => cache.write(0, { ptr: 2, length: 6 }), { message: /4-aligned/ });
  assert.throws(() => cache.write(0, { ptr: 2 ** 40, length: 6 }), { message: /wasm memory/ });
  cache.write(0, new Float32Array(12));
  assert.throws(() => cache.gather([2], new Float32Array(6)), { message: /sample 2 has not been written/ });
  assert.throws(() => cache.gather([0, 1], new Float32Array(6)), { message: /needs 12/ });
  assert.throws(() => cache.gather([-1], new Float32Array(6)), { message: /sample -1/ });
  assert.throws(() => new ActivationCache([2, 0], 4), { message: /sample shape/ });
  assert.throws(() => new ActivationCache([2], 4, { precision: "bfloat16" as "float16" }), {
    message: /precision/,
  });
});

Deno.test("2-perf: gather throughput (ATTNROUND_VERBOSE=1 prints it)", async () => {
  await init();
  // A ResNet-18 stem output on Fashion-MNIST: 16×28×28 floats per sample, 1,024 samples, batches of 32.
  const shape = [16, 28, 28];
  const size = 16 * 28 * 28;
  const count = 1024;
  const batch = 32;
  const data = samples(64, size, 3);
  const lines: string[] = [];
  for (const precision of ["float16", "float32"] as const) {
    const cache = new ActivationCache(shape, count, { precision });
    for (let s = 0; s < count; s += 64) cache.write(s, data);
    const dst = alloc(batch * size * 4);
    const indices = new Int32Array(batch);
    let state = 1;
    const iterations = 60;
    let start = 0;
    for (let it = -5; it < iterations; it++) {
      if (it === 0) start = performance.now();
      for (let j = 0; j < batch; j++) indices[j] = (state = (state * 1103515245 + 12345) >>> 0) % count;
      cache.gather(indices, dst);
    }
    const seconds = (performance.now() - start) / 1000;
    const mb = (iterations * batch * size * 4) / 1e6;
    lines.push(
      `gather ${precision}: ${(mb / seconds).toFixed(0)} MB/s of float32 written ` +
        `(${((seconds / iterations) * 1000).toFixed(2)} ms per batch of ${batch}×[${shape}]; cache ${
          (cache.byteLength / 2 ** 20).toFixed(1)
        } MiB)`,
    );
    free(dst);
    cache.dispose();
  }
  if (verbose) console.log(lines.join("\n"));
});

Deno.test("1-cache: a cache kept in a spill file holds no memory and gathers what the in-memory one does", async () => {
  await init();
  const runtime = await detectRuntime();
  for (const precision of ["float16", "float32"] as const) {
    const shape = [3, 5, 7], count = 40, size = 105;
    const data = randomFloats(count * size, 17);
    const memory = new ActivationCache(shape, count, { precision, chunkBytes: 1000 });
    const spilled = new ActivationCache(shape, count, { precision, spill: runtime.spill });
    for (const cache of [memory, spilled]) {
      cache.write(0, data.subarray(0, 25 * size));
      cache.write(25, data.subarray(25 * size));
    }
    assert.equal(spilled.byteLength, 0);
    const indices = [39, 0, 17, 17, 25, 3];
    const a = new Float32Array(indices.length * size), b = new Float32Array(indices.length * size);
    memory.gather(indices, a);
    spilled.gather(indices, b);
    assert.deepEqual(b, a);
    memory.dispose(), spilled.dispose();
  }
});

Deno.test("1-cache: the command line's spill files are unlinked at once and read back what was written", async () => {
  const file = (await detectRuntime()).spill.open(3, 8);
  file.write(2, Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]));
  file.write(0, Uint8Array.from([9, 9, 9, 9, 9, 9, 9, 9]));
  const into = new Uint8Array(8);
  file.read(2, into);
  assert.deepEqual([...into], [1, 2, 3, 4, 5, 6, 7, 8]);
  file.read(0, into);
  assert.deepEqual([...into], [9, 9, 9, 9, 9, 9, 9, 9]);
  const left = readdirSync(tmpdir()).filter((name) => name.startsWith("attnround-cache-"));
  file.close();
  assert.deepEqual(left, [], "no file of ours is left in the temporary folder, even while open");
});
