// The library functions the command line stands on beyond quantize(): ONNX
// and npz export, .npz files as model inputs, and the coding length / mixed
// precision of each layer. Each is reached through one function here, so the
// commands read the same whichever of them a build has.
import { AttnroundError } from "../errors.ts";
import type { ValueInfo } from "../graph/ir.ts";
import type { Model } from "../model.ts";
import { QuantizedModel } from "../quant/quantized-model.ts";
import type { Tensor } from "../tensor.ts";
import { readNpz } from "../data/npy.ts";
import { inspectMixedPrecision } from "../quant/inspect.ts";
import { inputsFromNpz } from "../data/inputs.ts";

interface Exporting {
  toOnnx(): Uint8Array;
  toNpz(): Uint8Array;
}

/** Whether this build can write quantized models as ONNX and npz. */
export function exportAvailable(): boolean {
  return typeof (QuantizedModel.prototype as unknown as Partial<Exporting>).toOnnx === "function";
}

export function toOnnx(q: QuantizedModel): Uint8Array {
  if (!exportAvailable()) throw new AttnroundError("UNSUPPORTED_MODEL", "ONNX export is not in this build");
  return (q as unknown as Exporting).toOnnx();
}

export function toNpz(q: QuantizedModel): Uint8Array {
  if (!exportAvailable()) throw new AttnroundError("UNSUPPORTED_MODEL", "npz export is not in this build");
  return (q as unknown as Exporting).toNpz();
}

/** Coding lengths and the bits mixed precision would give, per quantizable layer (src/quant/inspect.ts). */
export interface CodingInspection {
  budgets: number[];
  /** How ε scales with the layer. */
  epsilon: string;
  layers: {
    name: string;
    codingLength: number;
    codingLengthPerWeight: number;
    /** Bits per budget, in the order of `budgets`. */
    bits: number[];
    bitsFrom: string;
  }[];
}

/** The coding lengths and `--mixed B` bits for each B in `budgets`. */
export function inspectCoding(model: Model, budgets: number[]): CodingInspection | undefined {
  return inspectMixedPrecision(model, { budgets });
}

export interface Samples {
  /** The model's input tensor, float32, samples along the first axis. */
  x: Tensor;
  /** Class labels, when the file has `y`. */
  y?: Int32Array;
}

/** A .npz as model inputs and labels (SPEC §8, through inputsFromNpz); errors name the file. */
export function samplesFromNpz(bytes: Uint8Array, input: ValueInfo, file: string): Samples {
  try {
    const { x, y } = inputsFromNpz(readNpz(bytes), input);
    return { x, y: y && Int32Array.from(y.data as ArrayLike<number | bigint>, Number) };
  } catch (e) {
    if (e instanceof AttnroundError) throw new AttnroundError(e.code, `${file}: ${e.message}`, { cause: e });
    throw e;
  }
}
