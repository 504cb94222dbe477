// A tensor is a typed array plus a shape (row-major) and an ONNX-style dtype.
import { AttnroundError } from "./errors.ts";

export type DType =
  | "float32"
  | "float64"
  | "int8"
  | "uint8"
  | "int16"
  | "uint16"
  | "int32"
  | "uint32"
  | "int64"
  | "uint64"
  | "bool";

export type TensorData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

const dtypeOfArray = new Map<unknown, DType>([
  [Float32Array, "float32"],
  [Float64Array, "float64"],
  [Int8Array, "int8"],
  [Uint8Array, "uint8"],
  [Int16Array, "int16"],
  [Uint16Array, "uint16"],
  [Int32Array, "int32"],
  [Uint32Array, "uint32"],
  [BigInt64Array, "int64"],
  [BigUint64Array, "uint64"],
]);

export class Tensor {
  readonly data: TensorData;
  readonly shape: readonly number[];
  readonly dtype: DType;

  constructor(data: TensorData, shape: readonly number[], dtype?: DType) {
    const natural = dtypeOfArray.get(data.constructor);
    if (!natural) throw new AttnroundError("INVALID_ARGUMENT", "Tensor data must be a typed array");
    const resolved = dtype ?? natural;
    if (resolved !== natural && !(resolved === "bool" && natural === "uint8")) {
      throw new AttnroundError(
        "INVALID_ARGUMENT",
        `Tensor dtype "${resolved}" does not match its ${data.constructor.name} data`,
      );
    }
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) {
        throw new AttnroundError("INVALID_ARGUMENT", `Tensor shape [${shape}] has an invalid dimension ${d}`);
      }
    }
    const size = shape.reduce((a, b) => a * b, 1);
    if (size !== data.length) {
      throw new AttnroundError(
        "SHAPE_MISMATCH",
        `Tensor shape [${shape}] needs ${size} elements but its data has ${data.length}`,
      );
    }
    this.data = data;
    this.shape = Object.freeze([...shape]);
    this.dtype = resolved;
  }

  get size(): number {
    return this.data.length;
  }
}
