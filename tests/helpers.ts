// Shared test helpers: a seeded generator, float comparisons and hand-built
// ONNX models.
import { encodeModel } from "../src/onnx/codec.ts";
import type { GraphProto } from "../src/onnx/types.ts";

/** Deterministic uniform floats in [-1, 1) (mulberry32). */
export function randomFloats(count: number, seed: number): Float32Array {
  const out = new Float32Array(count);
  let state = seed >>> 0;
  for (let i = 0; i < count; i++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

/** Largest |a-b| / (atol + rtol·|b|); at most 1 means every element is within tolerance. */
export function worstRelativeError(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rtol: number,
  atol: number,
) {
  let worst = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const e = Math.abs(actual[i] - expected[i]) / (atol + rtol * Math.abs(expected[i]));
    if (!(e <= worst)) {
      worst = e;
      at = i;
    }
  }
  return { worst, at };
}

/**
 * Whether `value` equals `reference` to float rounding, |value − reference| ≤
 * 1e-4·(1 + |reference|): what "the same outputs" means when two runtimes
 * compare (tests/export.test.ts says why). NaN never does.
 */
export function withinFloatRounding(value: number, reference: number): boolean {
  return Math.abs(value - reference) <= 1e-4 * (1 + Math.abs(reference));
}

/** A hand-built model's bytes: one graph of the default domain at `opset`, every other field empty. */
export function modelBytes(
  opset: number,
  graph: Pick<GraphProto, "node" | "initializer" | "input" | "output">,
  irVersion = 8n,
): Uint8Array {
  return encodeModel({
    irVersion,
    opsetImport: [{ domain: "", version: opset }],
    producerName: "",
    producerVersion: "",
    domain: "",
    modelVersion: 0n,
    docString: "",
    metadataProps: [],
    graph: { name: "g", docString: "", valueInfo: [], metadataProps: [], ...graph },
  });
}
