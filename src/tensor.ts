// A tensor is a typed array plus a shape (row-major) and an ONNX-style dtype.
// The 4-bit and 2-bit types hold one value per element (int4 in an Int8Array,
// values −8…7; uint4 in a Uint8Array, 0…15; int2 −2…1; uint2 0…3); they are
// packed two (four) to a byte only in ONNX files.
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
  | "bool"
  | "int4"
  | "uint4"
  | "int2"
  | "uint2";

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

/** A typed-array constructor, as the dtype table below gives them. */
export interface TypedArrayConstructor {
  new (length: number): TensorData;
  new (buffer: ArrayBufferLike, byteOffset?: number, length?: number): TensorData;
  readonly BYTES_PER_ELEMENT: number;
}

/** The typed array that holds each dtype (bool and the 4- and 2-bit types one per byte). */
export const arrayOfDtype: Readonly<Record<DType, TypedArrayConstructor>> = {
  float32: Float32Array,
  float64: Float64Array,
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  int64: BigInt64Array,
  uint64: BigUint64Array,
  bool: Uint8Array,
  int4: Int8Array,
  uint4: Uint8Array,
  int2: Int8Array,
  uint2: Uint8Array,
};

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

/** Dtypes held in the typed array of a wider one. */
const containerOf: Partial<Record<DType, DType>> = {
  bool: "uint8",
  int4: "int8",
  uint4: "uint8",
  int2: "int8",
  uint2: "uint8",
};

export class Tensor {
  readonly data: TensorData;
  readonly shape: readonly number[];
  readonly dtype: DType;

  constructor(data: TensorData, shape: readonly number[], dtype?: DType) {
    const natural = ArrayBuffer.isView(data) ? dtypeOfArray.get(data.constructor) : undefined;
    if (!natural) throw new AttnroundError("INVALID_ARGUMENT", "Tensor data must be a typed array");
    if (!Array.isArray(shape)) {
      throw new AttnroundError(
        "INVALID_ARGUMENT",
        "Tensor shape must be an array of dimensions, e.g. [1, 3, 224, 224]",
      );
    }
    const resolved = dtype ?? natural;
    if (resolved !== natural && containerOf[resolved] !== natural) {
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
