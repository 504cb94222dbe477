// Helpers for the kernel tests: buffers in wasm memory fenced by canaries, so
// that a kernel writing outside its output or workspace fails the test.
import assert from "node:assert/strict";
import { conv2dOutputSize, type Conv2dParams } from "../src/kernels/conv2d.ts";
import { alloc, f32, free } from "../src/wasm.ts";
import { worstRelativeError } from "./helpers.ts";

const FENCE = 16; // floats of canary on each side
const CANARY = -12345.678;

export interface Fenced {
  /** Byte address of the first float. */
  ptr: number;
  length: number;
  /** Current contents (a copy). */
  read(): Float32Array;
  /** Throws if a canary was overwritten; frees the buffer. */
  release(name: string): void;
}

/** A wasm buffer of `length` floats holding `data` (or NaN garbage), fenced by canaries. */
export function fenced(length: number, data?: Float32Array): Fenced {
  const base = alloc((length + 2 * FENCE) * 4);
  const all = f32(base, length + 2 * FENCE);
  all.fill(CANARY);
  const body = all.subarray(FENCE, FENCE + length);
  if (data) body.set(data);
  else body.fill(NaN);
  const ptr = base + FENCE * 4;
  return {
    ptr,
    length,
    read: () => f32(ptr, length).slice(),
    release(name: string) {
      const now = f32(base, length + 2 * FENCE);
      for (let i = 0; i < FENCE; i++) {
        assert.equal(now[i], Math.fround(CANARY), `${name}: wrote ${FENCE - i} floats before its start`);
        assert.equal(now[FENCE + length + i], Math.fround(CANARY), `${name}: wrote past its end (+${i})`);
      }
      free(base);
    },
  };
}

/** A fenced workspace of `bytes` bytes (rounded up to floats), filled with NaN. */
export function fencedBytes(bytes: number): Fenced {
  return fenced(Math.ceil(bytes / 4));
}

/** Asserts every element is within atol + rtol·|expected|, naming the first bad one. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rtol: number,
  atol: number,
  what: string,
): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const { worst, at } = worstRelativeError(actual, expected, rtol, atol);
  assert.ok(
    worst <= 1,
    `${what}: element ${at} is ${actual[at]}, expected ${expected[at]} (${worst.toFixed(2)}× the tolerance)`,
  );
}

/** Seeded integer generator (mulberry32) for random shapes. */
export function randomInts(seed: number): (lo: number, hi: number) => number {
  let state = seed >>> 0;
  return (lo, hi) => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    return lo + Math.floor(u * (hi - lo + 1));
  };
}

/** A convolution's geometry without its output size, which convParams derives. */
export type ConvShape = Omit<Conv2dParams, "outH" | "outW">;

export function convParams(s: ConvShape): Conv2dParams {
  return {
    ...s,
    outH: conv2dOutputSize(s.h, s.kh, s.strideH, s.padTop, s.padBottom, s.dilationH),
    outW: conv2dOutputSize(s.w, s.kw, s.strideW, s.padLeft, s.padRight, s.dilationW),
  };
}

export function convShape(over: Partial<ConvShape>): ConvShape {
  return {
    n: 2,
    c: 3,
    h: 7,
    w: 9,
    m: 5,
    kh: 3,
    kw: 3,
    strideH: 1,
    strideW: 1,
    padTop: 1,
    padLeft: 1,
    padBottom: 1,
    padRight: 1,
    dilationH: 1,
    dilationW: 1,
    group: 1,
    ...over,
  };
}
