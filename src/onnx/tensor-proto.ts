// TensorProto <-> Tensor.
//
// Reading copies the data into a fresh, aligned buffer: raw_data usually sits
// at an odd offset inside the model bytes, and a Float32Array cannot view
// unaligned memory (nor should a tensor keep a whole model alive).
// FLOAT16 tensors become float32 tensors (exactly: every half is a float);
// the engine computes in float32 anyway. INT4 and UINT4 are packed two to a
// byte, the first element in the low nibble (in raw_data, and in int32_data
// one byte per entry), INT2 and UINT2 (opset 25) four to a byte, the first
// element in the lowest two bits; they unpack to tensors of one value per
// element. Strings, bfloat16, float8, float4 and complex types are
// UNSUPPORTED_MODEL for now.
import { AttnroundError } from "../errors.ts";
import { arrayOfDtype, type DType, Tensor, type TensorData } from "../tensor.ts";
import { DataLocation, DataType, dataTypeName, type TensorProto } from "./types.ts";

interface Layout {
  dtype: DType;
  /** Bytes per element in raw_data (for packed types: per byte of elements). */
  width: number;
  /** Bits per element of a packed type (4: two to a byte, 2: four), the first in the lowest bits. */
  packed?: 4 | 2;
  /** The typed field that holds the values when raw_data is absent. */
  field: "floatData" | "doubleData" | "int32Data" | "int64Data" | "uint64Data";
}

const layouts = new Map<number, Layout>([
  [DataType.FLOAT, { dtype: "float32", width: 4, field: "floatData" }],
  [DataType.DOUBLE, { dtype: "float64", width: 8, field: "doubleData" }],
  [DataType.FLOAT16, { dtype: "float32", width: 2, field: "int32Data" }],
  [DataType.INT8, { dtype: "int8", width: 1, field: "int32Data" }],
  [DataType.UINT8, { dtype: "uint8", width: 1, field: "int32Data" }],
  [DataType.INT16, { dtype: "int16", width: 2, field: "int32Data" }],
  [DataType.UINT16, { dtype: "uint16", width: 2, field: "int32Data" }],
  [DataType.INT32, { dtype: "int32", width: 4, field: "int32Data" }],
  [DataType.UINT32, { dtype: "uint32", width: 4, field: "uint64Data" }],
  [DataType.INT64, { dtype: "int64", width: 8, field: "int64Data" }],
  [DataType.UINT64, { dtype: "uint64", width: 8, field: "uint64Data" }],
  [DataType.BOOL, { dtype: "bool", width: 1, field: "int32Data" }],
  [DataType.INT4, { dtype: "int4", width: 1, field: "int32Data", packed: 4 }],
  [DataType.UINT4, { dtype: "uint4", width: 1, field: "int32Data", packed: 4 }],
  [DataType.INT2, { dtype: "int2", width: 1, field: "int32Data", packed: 2 }],
  [DataType.UINT2, { dtype: "uint2", width: 1, field: "int32Data", packed: 2 }],
]);

const dataTypeOfDtype: Record<DType, number> = {
  float32: DataType.FLOAT,
  float64: DataType.DOUBLE,
  int8: DataType.INT8,
  uint8: DataType.UINT8,
  int16: DataType.INT16,
  uint16: DataType.UINT16,
  int32: DataType.INT32,
  uint32: DataType.UINT32,
  int64: DataType.INT64,
  uint64: DataType.UINT64,
  bool: DataType.BOOL,
  int4: DataType.INT4,
  uint4: DataType.UINT4,
  int2: DataType.INT2,
  uint2: DataType.UINT2,
};

const onnxTypes: Record<number, DType> = {
  1: "float32",
  2: "uint8",
  3: "int8",
  4: "uint16",
  5: "int16",
  6: "int32",
  7: "int64",
  9: "bool",
  11: "float64",
  12: "uint32",
  13: "uint64",
};

/** The Tensor dtype of an ONNX TensorProto.DataType code, if the engine has one. */
export function dtypeFromOnnx(code: number): DType | undefined {
  return onnxTypes[code];
}

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The tensor a TensorProto holds, from raw_data or else from its typed field. */
export function tensorFromProto(t: TensorProto): Tensor {
  const label = t.name ? `tensor "${t.name}"` : "an unnamed tensor";
  if (t.dataLocation === DataLocation.EXTERNAL) {
    const location = t.externalData.find((e) => e.key === "location")?.value ?? "?";
    throw new AttnroundError(
      "UNSUPPORTED_MODEL",
      `${label} keeps its data in the external file "${location}", which is not supported: ` +
        `save the model with its weights inside the .onnx file (onnx.save_model(..., save_as_external_data=False))`,
    );
  }
  if (t.dataType === DataType.UNDEFINED) {
    throw new AttnroundError("INVALID_MODEL", `${label} has no data type (data_type is UNDEFINED)`);
  }
  const layout = layouts.get(t.dataType);
  if (!layout) {
    throw new AttnroundError(
      "UNSUPPORTED_MODEL",
      `${label} has data type ${dataTypeName(t.dataType)}, which is not supported ` +
        `(supported: ${[...layouts.keys()].map(dataTypeName).join(", ")})`,
    );
  }
  const count = elementCount(t.dims, label);
  const shape = `dims [${t.dims.join(", ")}]`;
  // Packed types: one byte (raw) or int32_data entry per 8 / packed elements.
  const stored = layout.packed ? Math.ceil((count * layout.packed) / 8) : count;
  let data: TensorData;
  if (t.rawData !== undefined) {
    const bytes = t.rawData;
    if (bytes.length !== stored * layout.width) {
      throw new AttnroundError(
        "INVALID_MODEL",
        `${label}: raw_data has ${bytes.length} bytes, but ${shape} of ${dataTypeName(t.dataType)} need ` +
          `${stored * layout.width}`,
      );
    }
    data = layout.packed ? unpack(bytes, count, layout) : fromRaw(bytes, t.dataType, layout);
  } else {
    const values = t[layout.field];
    if (values.length !== stored) {
      throw new AttnroundError(
        "INVALID_MODEL",
        `${label} has ${values.length} values in ${snake(layout.field)}, but ${shape} need ${stored}`,
      );
    }
    data = layout.packed
      ? unpack(Uint8Array.from(values as number[]), count, layout)
      : fromTyped(values, t.dataType, layout);
  }
  return new Tensor(data, t.dims, layout.dtype);
}

/** A TensorProto holding `tensor` in raw_data (little-endian; 4- and 2-bit types packed into bytes). */
export function tensorToProto(name: string, tensor: Tensor): TensorProto {
  const data = tensor.data;
  let rawData: Uint8Array;
  const packed = PACKED[tensor.dtype];
  if (packed) {
    rawData = pack(data as Int8Array | Uint8Array, tensor.dtype, packed, name);
  } else {
    rawData = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
    if (!littleEndian) swapBytes(rawData, data.BYTES_PER_ELEMENT);
  }
  return {
    dims: [...tensor.shape],
    dataType: dataTypeOfDtype[tensor.dtype],
    floatData: [],
    int32Data: [],
    stringData: [],
    int64Data: [],
    name,
    rawData,
    doubleData: [],
    uint64Data: [],
    docString: "",
    externalData: [],
    dataLocation: DataLocation.DEFAULT,
    metadataProps: [],
  };
}

function elementCount(dims: number[], label: string): number {
  let count = 1;
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new AttnroundError(
        "INVALID_MODEL",
        `${label} has an invalid dimension ${d} in [${dims.join(", ")}]`,
      );
    }
    count *= d;
  }
  if (!Number.isSafeInteger(count)) {
    throw new AttnroundError("INVALID_MODEL", `${label} has too many elements: [${dims.join(", ")}]`);
  }
  return count;
}

function fromRaw(bytes: Uint8Array, dataType: number, layout: Layout): TensorData {
  const copy = new Uint8Array(bytes.length); // offset 0 of a new buffer: aligned for any element type
  copy.set(bytes);
  if (!littleEndian) swapBytes(copy, layout.width);
  if (dataType === DataType.FLOAT16) {
    const halves = new Uint16Array(copy.buffer, 0, copy.length / 2);
    const out = new Float32Array(halves.length);
    for (let i = 0; i < halves.length; i++) out[i] = halfToFloat(halves[i]);
    return out;
  }
  if (dataType === DataType.BOOL) {
    for (let i = 0; i < copy.length; i++) copy[i] = copy[i] !== 0 ? 1 : 0;
    return copy;
  }
  const Typed = arrayOfDtype[layout.dtype];
  return new Typed(copy.buffer, 0, copy.length / layout.width);
}

function fromTyped(values: number[] | bigint[], dataType: number, layout: Layout): TensorData {
  switch (dataType) {
    case DataType.FLOAT16:
      return Float32Array.from(values as number[], (h) => halfToFloat(h & 0xffff));
    case DataType.BOOL:
      return Uint8Array.from(values as number[], (v) => (v !== 0 ? 1 : 0));
    case DataType.UINT32:
      return Uint32Array.from(values as bigint[], (v) => Number(BigInt.asUintN(32, v)));
    case DataType.UINT64:
      return BigUint64Array.from(values as bigint[], (v) => BigInt.asUintN(64, v));
    case DataType.INT64:
      return BigInt64Array.from(values as bigint[], (v) => BigInt.asIntN(64, v));
    default: {
      // float, double and the int32_data types; smaller integer types wrap as in C.
      const Typed = arrayOfDtype[layout.dtype] as unknown as typeof Float32Array;
      return Typed.from(values as number[]);
    }
  }
}

/** Bits per element of the packed dtypes. */
const PACKED: Partial<Record<DType, 4 | 2>> = { int4: 4, uint4: 4, int2: 2, uint2: 2 };

/** `count` values of `layout.packed` bits from bytes holding 8 / bits each, the first in the lowest bits; signed types sign-extend. */
function unpack(bytes: Uint8Array, count: number, layout: Layout): Int8Array | Uint8Array {
  const bits = layout.packed!, per = 8 / bits, mask = (1 << bits) - 1, shift = 32 - bits;
  const signed = layout.dtype === "int4" || layout.dtype === "int2";
  const out = signed ? new Int8Array(count) : new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const v = (bytes[Math.floor(i / per)] >> ((i % per) * bits)) & mask;
    out[i] = signed ? (v << shift) >> shift : v;
  }
  return out;
}

/** Packs `bits`-bit values 8 / bits to a byte, the first in the lowest bits (unused high bits 0). */
function pack(values: Int8Array | Uint8Array, dtype: DType, bits: 4 | 2, name: string): Uint8Array {
  const signed = dtype === "int4" || dtype === "int2";
  const [lo, hi] = signed ? [-(1 << (bits - 1)), (1 << (bits - 1)) - 1] : [0, (1 << bits) - 1];
  const per = 8 / bits, mask = (1 << bits) - 1;
  const out = new Uint8Array(Math.ceil(values.length / per));
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v < lo || v > hi) {
      throw new AttnroundError(
        "INVALID_ARGUMENT",
        `tensor "${name}" (${dtype}) holds ${v} at element ${i}, outside [${lo}, ${hi}]`,
      );
    }
    out[Math.floor(i / per)] |= (v & mask) << ((i % per) * bits);
  }
  return out;
}

/** IEEE 754 half (as its 16 bits) to a number; exact. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * (1024 + fraction) * 2 ** (exponent - 25);
}

function swapBytes(bytes: Uint8Array, width: number): void {
  if (width === 1) return;
  for (let i = 0; i < bytes.length; i += width) bytes.subarray(i, i + width).reverse();
}

function snake(field: string): string {
  return field.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());
}
