// Plain-object mirror of onnx.proto (IR 10-11, opsets up to 23), as decodeModel
// returns it and encodeModel takes it.
//
// Conventions: proto field names in camelCase; repeated fields are always
// arrays (empty when absent); strings are strings and bytes are Uint8Array;
// scalar fields hold the proto default ("", 0, 0n) when absent and are written
// only when they differ from it. Fields whose presence carries meaning are
// optional properties instead: the value of an attribute (f, i, s, t, g, tp),
// a dimension's value or parameter, raw_data, and every singular sub-message.
// int64 fields are bigint, except those that are sizes or versions (dims,
// dim_value, opset version), which are checked to fit a number exactly.
//
// Parts of onnx.proto not modelled here (training_info, functions, sparse
// tensors, quantization_annotation, tensor segments, device configurations,
// non-tensor types, ...) and field numbers unknown to us are kept verbatim in
// `unknownFields` and written back after the known fields, so a decode/encode
// round trip loses nothing.

/** A field the codec does not model: its key and value exactly as they were on the wire. */
export interface UnknownField {
  /** Field number. */
  field: number;
  /** The whole field, key included. */
  bytes: Uint8Array;
}

interface Preserving {
  /** Present only when the message had fields the codec does not model. */
  unknownFields?: UnknownField[];
}

/** TensorProto.DataType. */
export const DataType = {
  UNDEFINED: 0,
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  COMPLEX64: 14,
  COMPLEX128: 15,
  BFLOAT16: 16,
  FLOAT8E4M3FN: 17,
  FLOAT8E4M3FNUZ: 18,
  FLOAT8E5M2: 19,
  FLOAT8E5M2FNUZ: 20,
  UINT4: 21,
  INT4: 22,
  FLOAT4E2M1: 23,
  FLOAT8E8M0: 24,
  UINT2: 25,
  INT2: 26,
} as const;
export type DataType = (typeof DataType)[keyof typeof DataType];

/** The name of a TensorProto.DataType value, e.g. "FLOAT16", or "DataType 99" for unknown ones. */
export function dataTypeName(dataType: number): string {
  for (const [name, value] of Object.entries(DataType)) if (value === dataType) return name;
  return `DataType ${dataType}`;
}

/** AttributeProto.AttributeType. */
export const AttributeType = {
  UNDEFINED: 0,
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  GRAPH: 5,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
  TENSORS: 9,
  GRAPHS: 10,
  SPARSE_TENSOR: 11,
  SPARSE_TENSORS: 12,
  TYPE_PROTO: 13,
  TYPE_PROTOS: 14,
} as const;
export type AttributeType = (typeof AttributeType)[keyof typeof AttributeType];

/** TensorProto.DataLocation. */
export const DataLocation = { DEFAULT: 0, EXTERNAL: 1 } as const;
export type DataLocation = (typeof DataLocation)[keyof typeof DataLocation];

export interface ModelProto extends Preserving {
  /** Field 1; decodeModel rejects a model without it. */
  irVersion: bigint;
  /** Field 8. */
  opsetImport: OperatorSetIdProto[];
  producerName: string;
  producerVersion: string;
  domain: string;
  modelVersion: bigint;
  docString: string;
  /** Field 7; decodeModel rejects a model without it. */
  graph: GraphProto;
  /** Field 14. */
  metadataProps: StringStringEntryProto[];
  // Unmodelled: training_info = 20, functions = 25, configuration = 26.
}

export interface OperatorSetIdProto extends Preserving {
  /** "" (or "ai.onnx") is the default ONNX operator set. */
  domain: string;
  version: number;
}

export interface StringStringEntryProto extends Preserving {
  key: string;
  value: string;
}

export interface GraphProto extends Preserving {
  /** Field 1, in topological order. */
  node: NodeProto[];
  name: string;
  /** Field 5. */
  initializer: TensorProto[];
  docString: string;
  /** Field 11. */
  input: ValueInfoProto[];
  /** Field 12. */
  output: ValueInfoProto[];
  /** Field 13. */
  valueInfo: ValueInfoProto[];
  /** Field 16. */
  metadataProps: StringStringEntryProto[];
  // Unmodelled: quantization_annotation = 14, sparse_initializer = 15.
}

export interface NodeProto extends Preserving {
  input: string[];
  output: string[];
  name: string;
  opType: string;
  /** Field 5. */
  attribute: AttributeProto[];
  docString: string;
  domain: string;
  overload: string;
  /** Field 9. */
  metadataProps: StringStringEntryProto[];
  // Unmodelled: device_configurations = 10.
}

export interface AttributeProto extends Preserving {
  name: string;
  /** Field 21: set inside functions, where the attribute refers to one of the caller's. */
  refAttrName: string;
  docString: string;
  /** Field 20: an AttributeType saying which value field below is in use. */
  type: number;
  f?: number;
  i?: bigint;
  /** Raw bytes; usually UTF-8 text. */
  s?: Uint8Array;
  t?: TensorProto;
  g?: GraphProto;
  /** Field 14. */
  tp?: TypeProto;
  floats: number[];
  ints: bigint[];
  strings: Uint8Array[];
  tensors: TensorProto[];
  graphs: GraphProto[];
  /** Field 15. */
  typeProtos: TypeProto[];
  // Unmodelled: sparse_tensor = 22, sparse_tensors = 23.
}

export interface ValueInfoProto extends Preserving {
  name: string;
  type?: TypeProto;
  docString: string;
  /** Field 4. */
  metadataProps: StringStringEntryProto[];
}

export interface TypeProto extends Preserving {
  /** Field 1. Sequence, map, optional, opaque and sparse types stay in unknownFields. */
  tensorType?: TypeProtoTensor;
  /** Field 6. */
  denotation: string;
}

export interface TypeProtoTensor extends Preserving {
  /** A DataType value. */
  elemType: number;
  /** Absent: rank unknown. Present with no dims: a scalar. */
  shape?: TensorShapeProto;
}

export interface TensorShapeProto extends Preserving {
  dim: TensorShapeDimension[];
}

export interface TensorShapeDimension extends Preserving {
  /** Field 1: a known size. At most one of dimValue and dimParam is set; neither means unknown. */
  dimValue?: number;
  /** Field 2: a symbolic size such as "batch". */
  dimParam?: string;
  denotation: string;
}

export interface TensorProto extends Preserving {
  /** Field 1. */
  dims: number[];
  /** Field 2: a DataType value. */
  dataType: number;
  /** Field 4: FLOAT and COMPLEX64. */
  floatData: number[];
  /** Field 5: INT32, INT16, INT8, UINT16, UINT8, BOOL, and FLOAT16/BFLOAT16/FLOAT8 as bit patterns. */
  int32Data: number[];
  /** Field 6: STRING. */
  stringData: Uint8Array[];
  /** Field 7: INT64. */
  int64Data: bigint[];
  name: string;
  /** Field 9: little-endian fixed-width elements; takes precedence over the typed fields. */
  rawData?: Uint8Array;
  /** Field 10: DOUBLE and COMPLEX128. */
  doubleData: number[];
  /** Field 11: UINT32 and UINT64. */
  uint64Data: bigint[];
  docString: string;
  /** Field 13: "location", "offset", "length", "checksum" when dataLocation is EXTERNAL. */
  externalData: StringStringEntryProto[];
  /** Field 14: a DataLocation value. */
  dataLocation: number;
  /** Field 16. */
  metadataProps: StringStringEntryProto[];
  // Unmodelled: segment = 3.
}
