// An edge function's code: tests/edge-runtime.mjs bundles it through the
// package's export conditions ("attnround" is mod.edge.ts under "workerd" and
// "edge-light", mod.ts otherwise) and calls it as the runtime would.
import { init, inputsFromNpz, loadModel, quantize, readNpz, Tensor } from "attnround";
import { modelDigest, quantizeInSlices } from "./slices.ts";

/** The float model on a few images: init, load, run. */
export async function runFloat(modelBytes: Uint8Array, npzBytes: Uint8Array): Promise<number[]> {
  await init();
  const model = loadModel(modelBytes);
  const { x } = inputsFromNpz(readNpz(npzBytes), model.inputs[0]);
  const input = new Tensor((x.data as Float32Array).slice(0, 4 * 784), [4, 1, 28, 28]);
  return Array.from(model.run({ input }).logits.data as Float32Array);
}

/**
 * Quantizes the first `count` images' worth of calibration data twice: in one
 * go, and as a chain of requests of `milliseconds` each. Returns both digests.
 */
export async function quantizeBothWays(
  modelBytes: Uint8Array,
  npzBytes: Uint8Array,
  count: number,
  options: Record<string, unknown>,
  milliseconds: number,
): Promise<{ whole: string; sliced: string; slices: number; logits: number[] }> {
  await init();
  const model = loadModel(modelBytes);
  const { x } = inputsFromNpz(readNpz(npzBytes), model.inputs[0]);
  const calib = new Tensor((x.data as Float32Array).slice(0, count * 784), [count, 1, 28, 28]);
  const whole = await quantize(model, calib, options);
  const { result, slices } = await quantizeInSlices(model, calib, options, milliseconds);
  const input = new Tensor((x.data as Float32Array).slice(0, 4 * 784), [4, 1, 28, 28]);
  return {
    whole: await modelDigest(whole),
    sliced: await modelDigest(result),
    slices,
    logits: Array.from(result.run({ input }).logits.data as Float32Array),
  };
}
