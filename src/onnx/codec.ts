// ONNX model and tensor codec: ModelProto / TensorProto bytes <-> the plain
// objects of ./types.ts.
//
// Why our own protobuf code instead of protobufjs or @bufbuild/protobuf:
// - Size: the codec is a few hundred lines for the dozen messages ONNX needs,
//   against tens of kilobytes of generic runtime plus generated code.
// - No codegen, no eval: protobufjs builds decoders with `new Function`,
//   which strict CSPs and some edge runtimes (Cloudflare Workers, Vercel Edge)
//   forbid; generated code would have to be regenerated with every onnx.proto.
// - Every runtime: plain ESM over Uint8Array, DataView and TextDecoder, no
//   Buffer, no Long.js, no file system.
// - Hostile input: models come from users, so decoding is bounds-checked
//   throughout and fails with AttnroundError("INVALID_MODEL") (see ./wire.ts).
//
// Encoding writes fields in field-number order (as protobuf's C++ runtime
// does), repeated numeric fields packed where onnx.proto says [packed = true]
// and unpacked elsewhere, then the preserved unknown fields. The decoder
// accepts both packed and unpacked encodings of every repeated numeric field.
import { AttnroundError } from "../errors.ts";
import type {
  AttributeProto,
  GraphProto,
  ModelProto,
  NodeProto,
  OperatorSetIdProto,
  StringStringEntryProto,
  TensorProto,
  TensorShapeDimension,
  TensorShapeProto,
  TypeProto,
  TypeProtoTensor,
  UnknownField,
  ValueInfoProto,
} from "./types.ts";
import { fieldKey as k, WireReader, WireType, WireWriter } from "./wire.ts";

const { VARINT, I64, LEN, I32 } = WireType;

/** Decodes an ONNX model. Throws AttnroundError "INVALID_MODEL" for anything that is not one. */
export function decodeModel(bytes: Uint8Array): ModelProto {
  const r = readerFor(bytes, "decodeModel");
  let model: ModelFields;
  try {
    model = decodeModelFields(r);
  } catch (e) {
    if (!(e instanceof AttnroundError)) throw e;
    throw new AttnroundError("INVALID_MODEL", `not an ONNX model, or a damaged one: ${e.message}`, {
      cause: e,
    });
  }
  const problem = model.irVersion === undefined
    ? "ir_version (field 1) is missing"
    : model.irVersion < 1n
    ? `ir_version ${model.irVersion} is not a valid IR version`
    : model.graph === undefined
    ? "it has no graph (field 7)"
    : model.irVersion >= 3n && model.opsetImport.length === 0
    ? `it declares IR version ${model.irVersion} but imports no operator set (opset_import, field 8)`
    : undefined;
  if (problem) throw new AttnroundError("INVALID_MODEL", `not an ONNX model: ${problem}`);
  return model as ModelProto;
}

export function encodeModel(model: ModelProto): Uint8Array {
  const w = new WireWriter(1024);
  encodeModelFields(w, model);
  return w.finish();
}

/** Decodes a serialized TensorProto, such as the input_*.pb files of ONNX's backend tests. */
export function decodeTensorProto(bytes: Uint8Array): TensorProto {
  return decodeTensor(readerFor(bytes, "decodeTensorProto"));
}

export function encodeTensorProto(tensor: TensorProto): Uint8Array {
  const w = new WireWriter(256);
  encodeTensor(w, tensor);
  return w.finish();
}

function readerFor(bytes: Uint8Array, caller: string): WireReader {
  if (!(bytes instanceof Uint8Array)) {
    throw new AttnroundError("INVALID_ARGUMENT", `${caller} takes a Uint8Array, got ${describe(bytes)}`);
  }
  return new WireReader(bytes);
}

function describe(value: unknown): string {
  if (value === null || typeof value !== "object") return String(value);
  return value.constructor?.name ?? "an object";
}

/** Keeps a field the codec does not model, exactly as it was read. */
function keepUnknown(r: WireReader, key: number, message: { unknownFields?: UnknownField[] }): void {
  r.skip(key);
  (message.unknownFields ??= []).push({ field: key >>> 3, bytes: r.rawSinceKey() });
}

// ---------------------------------------------------------------- decoding
// Each decoder reads fields until its message ends. A decoder called with an
// existing object merges into it, which is protobuf's rule for a singular
// sub-message that occurs more than once. A known field number with an
// unexpected wire type is kept as an unknown field, as protobuf's runtime does.

type ModelFields = Omit<ModelProto, "irVersion" | "graph"> & { irVersion?: bigint; graph?: GraphProto };

function decodeModelFields(r: WireReader): ModelFields {
  const m: ModelFields = {
    opsetImport: [],
    producerName: "",
    producerVersion: "",
    domain: "",
    modelVersion: 0n,
    docString: "",
    metadataProps: [],
  };
  while (r.more()) {
    const key = r.key();
    switch (key) {
      case k(1, VARINT):
        m.irVersion = r.int64();
        break;
      case k(2, LEN):
        m.producerName = r.string();
        break;
      case k(3, LEN):
        m.producerVersion = r.string();
        break;
      case k(4, LEN):
        m.domain = r.string();
        break;
      case k(5, VARINT):
        m.modelVersion = r.int64();
        break;
      case k(6, LEN):
        m.docString = r.string();
        break;
      case k(7, LEN):
        m.graph = r.message("graph", decodeGraph, m.graph);
        break;
      case k(8, LEN):
        m.opsetImport.push(r.message("opset_import", decodeOperatorSetId));
        break;
      case k(14, LEN):
        m.metadataProps.push(r.message("metadata_props", decodeStringStringEntry));
        break;
      default:
        keepUnknown(r, key, m);
    }
  }
  return m;
}

function decodeOperatorSetId(
  r: WireReader,
  o: OperatorSetIdProto = { domain: "", version: 0 },
): OperatorSetIdProto {
  while (r.more()) {
    const key = r.key();
    if (key === k(1, LEN)) o.domain = r.string();
    else if (key === k(2, VARINT)) o.version = r.int64Number("opset version");
    else keepUnknown(r, key, o);
  }
  return o;
}

function decodeStringStringEntry(
  r: WireReader,
  e: StringStringEntryProto = { key: "", value: "" },
): StringStringEntryProto {
  while (r.more()) {
    const key = r.key();
    if (key === k(1, LEN)) e.key = r.string();
    else if (key === k(2, LEN)) e.value = r.string();
    else keepUnknown(r, key, e);
  }
  return e;
}

function decodeGraph(r: WireReader, g: GraphProto = newGraph()): GraphProto {
  while (r.more()) {
    const key = r.key();
    switch (key) {
      case k(1, LEN):
        g.node.push(r.message("node", decodeNode));
        break;
      case k(2, LEN):
        g.name = r.string();
        break;
      case k(5, LEN):
        g.initializer.push(r.message("initializer", decodeTensor));
        break;
      case k(10, LEN):
        g.docString = r.string();
        break;
      case k(11, LEN):
        g.input.push(r.message("input", decodeValueInfo));
        break;
      case k(12, LEN):
        g.output.push(r.message("output", decodeValueInfo));
        break;
      case k(13, LEN):
        g.valueInfo.push(r.message("value_info", decodeValueInfo));
        break;
      case k(16, LEN):
        g.metadataProps.push(r.message("metadata_props", decodeStringStringEntry));
        break;
      default:
        keepUnknown(r, key, g);
    }
  }
  return g;
}

function newGraph(): GraphProto {
  return {
    node: [],
    name: "",
    initializer: [],
    docString: "",
    input: [],
    output: [],
    valueInfo: [],
    metadataProps: [],
  };
}

function decodeNode(r: WireReader, n: NodeProto = newNode()): NodeProto {
  while (r.more()) {
    const key = r.key();
    switch (key) {
      case k(1, LEN):
        n.input.push(r.string());
        break;
      case k(2, LEN):
        n.output.push(r.string());
        break;
      case k(3, LEN):
        n.name = r.string();
        break;
      case k(4, LEN):
        n.opType = r.string();
        break;
      case k(5, LEN):
        n.attribute.push(r.message("attribute", decodeAttribute));
        break;
      case k(6, LEN):
        n.docString = r.string();
        break;
      case k(7, LEN):
        n.domain = r.string();
        break;
      case k(8, LEN):
        n.overload = r.string();
        break;
      case k(9, LEN):
        n.metadataProps.push(r.message("metadata_props", decodeStringStringEntry));
        break;
      default:
        keepUnknown(r, key, n);
    }
  }
  return n;
}

function newNode(): NodeProto {
  return {
    input: [],
    output: [],
    name: "",
    opType: "",
    attribute: [],
    docString: "",
    domain: "",
    overload: "",
    metadataProps: [],
  };
}

function decodeAttribute(r: WireReader, a: AttributeProto = newAttribute()): AttributeProto {
  while (r.more()) {
    const key = r.key();
    switch (key) {
      case k(1, LEN):
        a.name = r.string();
        break;
      case k(2, I32):
        a.f = r.float();
        break;
      case k(3, VARINT):
        a.i = r.int64();
        break;
      case k(4, LEN):
        a.s = r.bytesField();
        break;
      case k(5, LEN):
        a.t = r.message("t", decodeTensor, a.t);
        break;
      case k(6, LEN):
        a.g = r.message("g", decodeGraph, a.g);
        break;
      case k(7, I32):
      case k(7, LEN):
        r.repeated(key, a.floats, () => r.float(), 4);
        break;
      case k(8, VARINT):
      case k(8, LEN):
        r.repeated(key, a.ints, () => r.int64());
        break;
      case k(9, LEN):
        a.strings.push(r.bytesField());
        break;
      case k(10, LEN):
        a.tensors.push(r.message("tensors", decodeTensor));
        break;
      case k(11, LEN):
        a.graphs.push(r.message("graphs", decodeGraph));
        break;
      case k(13, LEN):
        a.docString = r.string();
        break;
      case k(14, LEN):
        a.tp = r.message("tp", decodeType, a.tp);
        break;
      case k(15, LEN):
        a.typeProtos.push(r.message("type_protos", decodeType));
        break;
      case k(20, VARINT):
        a.type = r.int32();
        break;
      case k(21, LEN):
        a.refAttrName = r.string();
        break;
      default:
        keepUnknown(r, key, a);
    }
  }
  return a;
}

function newAttribute(): AttributeProto {
  return {
    name: "",
    refAttrName: "",
    docString: "",
    type: 0,
    floats: [],
    ints: [],
    strings: [],
    tensors: [],
    graphs: [],
    typeProtos: [],
  };
}

function decodeValueInfo(
  r: WireReader,
  v: ValueInfoProto = { name: "", docString: "", metadataProps: [] },
): ValueInfoProto {
  while (r.more()) {
    const key = r.key();
    switch (key) {
      case k(1, LEN):
        v.name = r.string();
        break;
      case k(2, LEN):
        v.type = r.message("type", decodeType, v.type);
        break;
      case k(3, LEN):
        v.docString = r.string();
        break;
      case k(4, LEN):
        v.metadataProps.push(r.message("metadata_props", decodeStringStringEntry));
        break;
      default:
        keepUnknown(r, key, v);
    }
  }
  return v;
}

function decodeType(r: WireReader, t: TypeProto = { denotation: "" }): TypeProto {
  while (r.more()) {
    const key = r.key();
    if (key === k(1, LEN)) t.tensorType = r.message("tensor_type", decodeTypeTensor, t.tensorType);
    else if (key === k(6, LEN)) t.denotation = r.string();
    else keepUnknown(r, key, t);
  }
  return t;
}

function decodeTypeTensor(r: WireReader, t: TypeProtoTensor = { elemType: 0 }): TypeProtoTensor {
  while (r.more()) {
    const key = r.key();
    if (key === k(1, VARINT)) t.elemType = r.int32();
    else if (key === k(2, LEN)) t.shape = r.message("shape", decodeShape, t.shape);
    else keepUnknown(r, key, t);
  }
  return t;
}

function decodeShape(r: WireReader, s: TensorShapeProto = { dim: [] }): TensorShapeProto {
  while (r.more()) {
    const key = r.key();
    if (key === k(1, LEN)) s.dim.push(r.message("dim", decodeDimension));
    else keepUnknown(r, key, s);
  }
  return s;
}

function decodeDimension(r: WireReader, d: TensorShapeDimension = { denotation: "" }): TensorShapeDimension {
  while (r.more()) {
    const key = r.key();
    // dim_value and dim_param are a oneof: the last one read wins.
    if (key === k(1, VARINT)) {
      d.dimValue = r.int64Number("dimension");
      delete d.dimParam;
    } else if (key === k(2, LEN)) {
      d.dimParam = r.string();
      delete d.dimValue;
    } else if (key === k(3, LEN)) d.denotation = r.string();
    else keepUnknown(r, key, d);
  }
  return d;
}

function decodeTensor(r: WireReader, t: TensorProto = newTensor()): TensorProto {
  while (r.more()) {
    const key = r.key();
    switch (key) {
      case k(1, VARINT):
      case k(1, LEN):
        r.repeated(key, t.dims, () => r.int64Number("dimension"));
        break;
      case k(2, VARINT):
        t.dataType = r.int32();
        break;
      case k(4, I32):
      case k(4, LEN):
        r.repeated(key, t.floatData, () => r.float(), 4);
        break;
      case k(5, VARINT):
      case k(5, LEN):
        r.repeated(key, t.int32Data, () => r.int32());
        break;
      case k(6, LEN):
        t.stringData.push(r.bytesField());
        break;
      case k(7, VARINT):
      case k(7, LEN):
        r.repeated(key, t.int64Data, () => r.int64());
        break;
      case k(8, LEN):
        t.name = r.string();
        break;
      case k(9, LEN):
        t.rawData = r.bytesField();
        break;
      case k(10, I64):
      case k(10, LEN):
        r.repeated(key, t.doubleData, () => r.double(), 8);
        break;
      case k(11, VARINT):
      case k(11, LEN):
        r.repeated(key, t.uint64Data, () => r.uint64());
        break;
      case k(12, LEN):
        t.docString = r.string();
        break;
      case k(13, LEN):
        t.externalData.push(r.message("external_data", decodeStringStringEntry));
        break;
      case k(14, VARINT):
        t.dataLocation = r.int32();
        break;
      case k(16, LEN):
        t.metadataProps.push(r.message("metadata_props", decodeStringStringEntry));
        break;
      default:
        keepUnknown(r, key, t);
    }
  }
  return t;
}

function newTensor(): TensorProto {
  return {
    dims: [],
    dataType: 0,
    floatData: [],
    int32Data: [],
    stringData: [],
    int64Data: [],
    name: "",
    doubleData: [],
    uint64Data: [],
    docString: "",
    externalData: [],
    dataLocation: 0,
    metadataProps: [],
  };
}

// ---------------------------------------------------------------- encoding
// Scalars equal to their proto default are left out (reading them back gives
// the default again); optional fields are written whenever they are set. The
// `?? []` guards let hand-built objects leave out empty lists.

function encodeModelFields(w: WireWriter, m: ModelProto): void {
  w.key(1, VARINT);
  w.int64(m.irVersion);
  str(w, 2, m.producerName);
  str(w, 3, m.producerVersion);
  str(w, 4, m.domain);
  if (m.modelVersion) {
    w.key(5, VARINT);
    w.int64(m.modelVersion);
  }
  str(w, 6, m.docString);
  if (m.graph) w.nested(7, (c) => encodeGraph(c, m.graph));
  messages(w, 8, m.opsetImport, encodeOperatorSetId);
  messages(w, 14, m.metadataProps, encodeStringStringEntry);
  unknowns(w, m.unknownFields);
}

function encodeOperatorSetId(w: WireWriter, o: OperatorSetIdProto): void {
  str(w, 1, o.domain);
  w.key(2, VARINT);
  w.int64(o.version);
  unknowns(w, o.unknownFields);
}

function encodeStringStringEntry(w: WireWriter, e: StringStringEntryProto): void {
  str(w, 1, e.key);
  str(w, 2, e.value);
  unknowns(w, e.unknownFields);
}

function encodeGraph(w: WireWriter, g: GraphProto): void {
  messages(w, 1, g.node, encodeNode);
  str(w, 2, g.name);
  messages(w, 5, g.initializer, encodeTensor);
  str(w, 10, g.docString);
  messages(w, 11, g.input, encodeValueInfo);
  messages(w, 12, g.output, encodeValueInfo);
  messages(w, 13, g.valueInfo, encodeValueInfo);
  messages(w, 16, g.metadataProps, encodeStringStringEntry);
  unknowns(w, g.unknownFields);
}

function encodeNode(w: WireWriter, n: NodeProto): void {
  for (const s of n.input ?? []) stringField(w, 1, s);
  for (const s of n.output ?? []) stringField(w, 2, s);
  str(w, 3, n.name);
  str(w, 4, n.opType);
  messages(w, 5, n.attribute, encodeAttribute);
  str(w, 6, n.docString);
  str(w, 7, n.domain);
  str(w, 8, n.overload);
  messages(w, 9, n.metadataProps, encodeStringStringEntry);
  unknowns(w, n.unknownFields);
}

function encodeAttribute(w: WireWriter, a: AttributeProto): void {
  str(w, 1, a.name);
  if (a.f !== undefined) {
    w.key(2, I32);
    w.float(a.f);
  }
  if (a.i !== undefined) {
    w.key(3, VARINT);
    w.int64(a.i);
  }
  if (a.s !== undefined) bytesField(w, 4, a.s);
  if (a.t !== undefined) w.nested(5, (c) => encodeTensor(c, a.t!));
  if (a.g !== undefined) w.nested(6, (c) => encodeGraph(c, a.g!));
  for (const v of a.floats ?? []) {
    w.key(7, I32);
    w.float(v);
  }
  for (const v of a.ints ?? []) {
    w.key(8, VARINT);
    w.int64(v);
  }
  for (const s of a.strings ?? []) bytesField(w, 9, s);
  messages(w, 10, a.tensors, encodeTensor);
  messages(w, 11, a.graphs, encodeGraph);
  str(w, 13, a.docString);
  if (a.tp !== undefined) w.nested(14, (c) => encodeType(c, a.tp!));
  messages(w, 15, a.typeProtos, encodeType);
  if (a.type) {
    w.key(20, VARINT);
    w.int32(a.type);
  }
  str(w, 21, a.refAttrName);
  unknowns(w, a.unknownFields);
}

function encodeValueInfo(w: WireWriter, v: ValueInfoProto): void {
  str(w, 1, v.name);
  if (v.type !== undefined) w.nested(2, (c) => encodeType(c, v.type!));
  str(w, 3, v.docString);
  messages(w, 4, v.metadataProps, encodeStringStringEntry);
  unknowns(w, v.unknownFields);
}

function encodeType(w: WireWriter, t: TypeProto): void {
  if (t.tensorType !== undefined) w.nested(1, (c) => encodeTypeTensor(c, t.tensorType!));
  str(w, 6, t.denotation);
  unknowns(w, t.unknownFields);
}

function encodeTypeTensor(w: WireWriter, t: TypeProtoTensor): void {
  if (t.elemType) {
    w.key(1, VARINT);
    w.int32(t.elemType);
  }
  if (t.shape !== undefined) w.nested(2, (c) => encodeShape(c, t.shape!));
  unknowns(w, t.unknownFields);
}

function encodeShape(w: WireWriter, s: TensorShapeProto): void {
  messages(w, 1, s.dim, encodeDimension);
  unknowns(w, s.unknownFields);
}

function encodeDimension(w: WireWriter, d: TensorShapeDimension): void {
  if (d.dimValue !== undefined) {
    w.key(1, VARINT);
    w.int64(d.dimValue);
  }
  if (d.dimParam !== undefined) stringField(w, 2, d.dimParam);
  str(w, 3, d.denotation);
  unknowns(w, d.unknownFields);
}

function encodeTensor(w: WireWriter, t: TensorProto): void {
  for (const d of t.dims ?? []) {
    w.key(1, VARINT);
    w.int64(d);
  }
  if (t.dataType) {
    w.key(2, VARINT);
    w.int32(t.dataType);
  }
  packed(w, 4, t.floatData, (c, v) => c.float(v));
  packed(w, 5, t.int32Data, (c, v) => c.int32(v));
  for (const s of t.stringData ?? []) bytesField(w, 6, s);
  packed(w, 7, t.int64Data, (c, v) => c.int64(v));
  str(w, 8, t.name);
  if (t.rawData !== undefined) bytesField(w, 9, t.rawData);
  packed(w, 10, t.doubleData, (c, v) => c.double(v));
  packed(w, 11, t.uint64Data, (c, v) => c.int64(v));
  str(w, 12, t.docString);
  messages(w, 13, t.externalData, encodeStringStringEntry);
  if (t.dataLocation) {
    w.key(14, VARINT);
    w.int32(t.dataLocation);
  }
  messages(w, 16, t.metadataProps, encodeStringStringEntry);
  unknowns(w, t.unknownFields);
}

function stringField(w: WireWriter, field: number, value: string): void {
  w.key(field, LEN);
  w.string(value);
}

/** A singular string, left out when empty. */
function str(w: WireWriter, field: number, value: string | undefined): void {
  if (value) stringField(w, field, value);
}

function bytesField(w: WireWriter, field: number, value: Uint8Array): void {
  w.key(field, LEN);
  w.bytes(value);
}

function messages<T>(
  w: WireWriter,
  field: number,
  list: T[] | undefined,
  encode: (w: WireWriter, v: T) => void,
) {
  for (const v of list ?? []) w.nested(field, (c) => encode(c, v));
}

function packed<T>(
  w: WireWriter,
  field: number,
  list: T[] | undefined,
  write: (w: WireWriter, v: T) => void,
) {
  if (list && list.length > 0) w.nested(field, (c) => list.forEach((v) => write(c, v)));
}

function unknowns(w: WireWriter, fields: UnknownField[] | undefined): void {
  for (const u of fields ?? []) w.raw(u.bytes);
}
