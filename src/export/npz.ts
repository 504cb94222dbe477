// The quantized weights as an .npz archive that numpy.load reads: per
// quantized layer (keyed by its ONNX node name, a leading "/" dropped):
//   <layer>.weight_int   integer levels in the weight's own layout (int8, or
//                        uint8 for asymmetric weights; 4-bit levels widened)
//   <layer>.scale        float32 [channels], one per output channel
//   <layer>.zero_point   [channels], the weight_int dtype
//   <layer>.axis         int32 scalar: the axis of weight_int the channels run along
//   <layer>.bits         int32 scalar: the weight's bit width
// and, when the layer's input is quantized:
//   <layer>.input_scale, <layer>.input_zero_point (int32), <layer>.input_bits.
// The float weight the model uses is
//   scale.reshape(shape) * (weight_int - zero_point.reshape(shape))
// with shape = [1, …, channels (at axis), …, 1].
import { writeNpz } from "../data/npy.ts";
import type { QuantizedModel } from "../quant/quantized-model.ts";
import { Tensor } from "../tensor.ts";

function int32Scalar(v: number): Tensor {
  return new Tensor(new Int32Array([v]), []);
}

/** The npz entries of a quantized model, by name (see the file comment). */
export function npzArrays(q: QuantizedModel): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  const inputs = new Map(q.activations.map((a) => [a.tensor, a]));
  for (const w of q.quantizedWeights()) {
    const key = w.layer.replace(/^\/+/, "");
    const Ints = w.qmin < 0 ? Int8Array : Uint8Array;
    out[`${key}.weight_int`] = new Tensor(Ints.from(w.levels), w.shape);
    out[`${key}.scale`] = new Tensor(Float32Array.from(w.scale), [w.scale.length]);
    out[`${key}.zero_point`] = new Tensor(Ints.from(w.zero), [w.zero.length]);
    out[`${key}.axis`] = int32Scalar(w.axis);
    out[`${key}.bits`] = int32Scalar(w.bits);
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
