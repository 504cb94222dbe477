// A quantization run done the way an edge function with a CPU budget per
// request would do it: every request gets the state bytes, resumes a fresh
// QuantizationRun from them, works for its budget and answers with new state
// bytes, until one finishes. Shared by the in-process test (tests/quantize)
// and the edge-runtime one (tests/edge-driver.ts).
import type { Model } from "../src/model.ts";
import type { CalibrationInput } from "../src/quant/calibration.ts";
import type { QuantizeOptionsInput } from "../src/quant/options.ts";
import type { QuantizedModel } from "../src/quant/quantized-model.ts";
import { QuantizationRun } from "../mod.ts";

/** One request: state bytes in, at most `milliseconds` of work, state bytes (or the finished model) out. */
export async function resumeForBudget(
  model: Model,
  calibration: CalibrationInput,
  state: Uint8Array,
  milliseconds: number,
  threads?: number,
): Promise<{ state: Uint8Array } | { result: QuantizedModel }> {
  const run = await QuantizationRun.resume(model, calibration, state, threads ? { threads } : {});
  if (await run.advance({ milliseconds })) return { result: await run.result() };
  try {
    return { state: run.state() };
  } finally {
    run.dispose();
  }
}

/** The whole run as a chain of requests (each on `options.threads`, if set); `slices` counts them. */
export async function quantizeInSlices(
  model: Model,
  calibration: CalibrationInput,
  options: QuantizeOptionsInput,
  milliseconds: number,
): Promise<{ result: QuantizedModel; slices: number }> {
  const first = await QuantizationRun.start(model, calibration, options);
  // Bytes only cross from one request to the next: a copy, as a network would make.
  let state = first.state().slice();
  first.dispose();
  for (let slices = 1;; slices++) {
    const answer = await resumeForBudget(model, calibration, state, milliseconds, options.threads);
    if ("result" in answer) return { result: answer.result, slices };
    state = answer.state.slice();
  }
}

/**
 * SHA-256 (hex) over everything that makes up a quantized model: per layer its
 * final weights, scales and zero points, per activation quantizer its step and
 * zero point. Two runs that agree here export byte-identical models.
 */
export async function modelDigest(q: QuantizedModel): Promise<string> {
  const parts: Uint8Array[] = [];
  const text = new TextEncoder();
  const floats = (values: ArrayLike<number>) => new Uint8Array(Float32Array.from(values).buffer);
  for (const w of q.weights) {
    parts.push(text.encode(`${w.layer.weight}:${w.bits}:${w.qmin}:${w.qmax}`));
    parts.push(floats(q.finalRows.get(w.layer.weight)!), floats(w.scale), floats(w.zero));
  }
  for (const a of q.activations) parts.push(text.encode(`${a.tensor}:${a.bits}`), floats([a.step, a.zero]));
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) all.set(p, at), at += p.length;
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("");
}
