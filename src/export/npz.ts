// The quantized weights as an .npz archive that numpy.load reads: per
// quantized layer (keyed by its ONNX node name, a leading "/" dropped; see
// npzKey for the rare names that are not plain paths):
//   <layer>.weight_int   integer levels in the weight's own layout (int8, or
//                        uint8 for asymmetric weights; 4-bit levels widened)
//   <layer>.scale        float32 [channels], one per output channel
//   <layer>.zero_point   [channels], the weight_int dtype
//   <layer>.axis         int32 scalar: the axis of weight_int the channels run along
//   <layer>.bits         int32 scalar: the weight's bit width
// and, when the layer's input is quantized:
//   <layer>.input_scale, <layer>.input_zero_point (int32), <layer>.input_bits;
// and, with biasCorrection, for a corrected layer:
//   <layer>.bias         float32 [channels], the bias that replaces the model's.
// The float weight the model uses is
//   scale.reshape(shape) * (weight_int - zero_point.reshape(shape))
// with shape = [1, …, channels (at axis), …, 1].
import { writeNpz } from "../data/npy.ts";
import type { QuantizedModel } from "../quant/quantized-model.ts";
import { Tensor } from "../tensor.ts";

function int32Scalar(v: number): Tensor {
  return new Tensor(new Int32Array([v]), []);
}

/** Longest key kept whole; longer ones are cut and told apart by a hash of the full name. */
const KEY_LENGTH = 200;

function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, "0");
}

/**
 * A layer's key: its node name as a relative path without empty, "." or ".."
 * parts (so that unzip keeps every entry in its folder), control characters
 * as "_" (numpy cuts a name at NUL), at most 200 characters, unique.
 */
function npzKey(layer: string, used: Set<string>): string {
  let key =
    layer.replaceAll("\\", "/").split("/").filter((p) => p !== "" && p !== "." && p !== "..").join("/")
      // deno-lint-ignore no-control-regex
      .replace(/[\u0000-\u001f\u007f]/g, "_") || "layer";
  if (key.length > KEY_LENGTH) key = `${key.slice(0, KEY_LENGTH - 9)}_${fnv1a(layer)}`;
  let unique = key;
  for (let k = 1; used.has(unique); k++) unique = `${key}_${k}`;
  used.add(unique);
  return unique;
}

/** The npz entries of a quantized model, by name (see the file comment). */
export function npzArrays(q: QuantizedModel): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  const inputs = new Map(q.activations.map((a) => [a.tensor, a]));
  const used = new Set<string>();
  for (const w of q.quantizedWeights()) {
    const key = npzKey(w.layer, used);
    const Ints = w.qmin < 0 ? Int8Array : Uint8Array;
    out[`${key}.weight_int`] = new Tensor(Ints.from(w.levels), w.shape);
    out[`${key}.scale`] = new Tensor(Float32Array.from(w.scale), [w.scale.length]);
    out[`${key}.zero_point`] = new Tensor(Ints.from(w.zero), [w.zero.length]);
    out[`${key}.axis`] = int32Scalar(w.axis);
    out[`${key}.bits`] = int32Scalar(w.bits);
    if (w.correctedBias) {
      out[`${key}.bias`] = new Tensor(w.correctedBias.values, [w.correctedBias.values.length]);
    }
    const a = inputs.get(w.input);
    if (a) {
      out[`${key}.input_scale`] = new Tensor(new Float32Array([a.step]), []);
      out[`${key}.input_zero_point`] = int32Scalar(a.zero);
      out[`${key}.input_bits`] = int32Scalar(a.bits);
    }
  }
  return out;
}

/** The .npz bytes (deflated, as numpy.savez_compressed writes). */
export function npzBytes(q: QuantizedModel): Uint8Array {
  return writeNpz(npzArrays(q), { compressed: true });
}
