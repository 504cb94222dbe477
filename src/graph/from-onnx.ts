// Turns a decoded ModelProto into the graph IR: initializers become Tensors,
// attributes plain values, value infos dtypes and (possibly symbolic) shapes.
import { AttnroundError } from "../errors.ts";
import { dtypeFromOnnx, tensorFromProto } from "../onnx/tensor-proto.ts";
import {
  type AttributeProto,
  AttributeType,
  DataType,
  dataTypeName,
  type ModelProto,
  type ValueInfoProto,
} from "../onnx/types.ts";
import type { DType } from "../tensor.ts";
import type { AttributeValue, Graph, Node, ValueInfo } from "./ir.ts";
import { validateGraph } from "./validate.ts";

/**
 * The newest default-domain opset whose ops the engine implements (ONNX 1.20);
 * a later one may change an op's meaning. Opsets 22 to 25 changed none of the
 * engine's ops but by adding types (bfloat16, float8 and float4, int2 and
 * uint2), and the export writes opset 25 for 2-bit weights. Older opsets load
 * (the engine keeps their semantics, as the ONNX backend vectors check); the
 * export converts from opset 9 on.
 */
export const MAX_OPSET = 25;
/** The newest IR version the decoder knows (ONNX 1.20); onnx.helper writes its newest at any opset. */
export const MAX_IR_VERSION = 12n;
/** Domains and attribute names the library gives its own nodes: a model may not use them. */
const OWN_PREFIX = "attnround";

/** The 4- and 2-bit types, which graph inputs and outputs may have but no op other than (De)QuantizeLinear computes in. */
const fourBit: Record<number, DType> = {
  [DataType.UINT4]: "uint4",
  [DataType.INT4]: "int4",
  [DataType.UINT2]: "uint2",
  [DataType.INT2]: "int2",
};

const text = new TextDecoder();

// Very old exporters leave `type` unset; the populated field tells it.
function attributeType(a: AttributeProto): number {
  if (a.type !== AttributeType.UNDEFINED) return a.type;
  if (a.ints.length) return AttributeType.INTS;
  if (a.floats.length) return AttributeType.FLOATS;
  if (a.strings.length) return AttributeType.STRINGS;
  if (a.tensors.length) return AttributeType.TENSORS;
  if (a.i !== undefined) return AttributeType.INT;
  if (a.f !== undefined) return AttributeType.FLOAT;
  if (a.s !== undefined) return AttributeType.STRING;
  if (a.t !== undefined) return AttributeType.TENSOR;
  return AttributeType.UNDEFINED;
}

function attributeValue(a: AttributeProto): AttributeValue | undefined {
  switch (attributeType(a)) {
    case AttributeType.FLOAT:
      return a.f ?? 0;
    case AttributeType.INT:
      return Number(a.i ?? 0n);
    case AttributeType.STRING:
      return text.decode(a.s ?? new Uint8Array());
    case AttributeType.TENSOR:
      return a.t ? tensorFromProto(a.t) : undefined;
    case AttributeType.FLOATS:
      return [...a.floats];
    case AttributeType.INTS:
      return a.ints.map(Number);
    case AttributeType.STRINGS:
      return a.strings.map((s) => text.decode(s));
    case AttributeType.TENSORS:
      return a.tensors.map(tensorFromProto);
    default:
      // Subgraphs, sparse tensors and type protos belong to ops the engine does not run.
      return undefined;
  }
}

function valueInfo(v: ValueInfoProto): ValueInfo {
  const tensor = v.type?.tensorType;
  if (v.type && !tensor) {
    throw new AttnroundError(
      "UNSUPPORTED_MODEL",
      `graph input/output "${v.name}" is not a tensor (sequences, maps and optionals are not supported)`,
    );
  }
  // float16 values are read into float32 (see tensorFromProto) and computed in float32;
  // 4- and 2-bit ones (QuantizeLinear outputs) are held one per element.
  const computable = (code: number) =>
    code === 0 || code === DataType.FLOAT16 || dtypeFromOnnx(code) || fourBit[code];
  if (tensor && !computable(tensor.elemType)) {
    throw new AttnroundError(
      "UNSUPPORTED_MODEL",
      `graph input/output "${v.name}" has element type ${
        dataTypeName(tensor.elemType)
      }, which the engine does not compute in`,
    );
  }
  return {
    name: v.name,
    dtype: tensor ? dtypeFromOnnx(tensor.elemType) ?? fourBit[tensor.elemType] : undefined,
    shape: tensor?.shape?.dim.map((d) => d.dimValue ?? (d.dimParam || undefined)),
  };
}

export function graphFromModel(model: ModelProto): Graph {
  if (model.irVersion > MAX_IR_VERSION) {
    throw new AttnroundError(
      "UNSUPPORTED_MODEL",
      `the model declares IR version ${model.irVersion}, newer than this library reads (IR versions up to ${MAX_IR_VERSION})`,
    );
  }
  const opsetEntry = model.opsetImport.find((o) => o.domain === "" || o.domain === "ai.onnx");
  const opset = opsetEntry?.version ?? (model.irVersion < 3n ? 1 : 0);
  if (opsetEntry && opset < 1) {
    throw new AttnroundError("INVALID_MODEL", `the model imports opset ${opset} of the default operator set`);
  }
  if (opset > MAX_OPSET) {
    throw new AttnroundError(
      "UNSUPPORTED_MODEL",
      `the model imports opset ${opset} of the default operator set; the engine implements opsets up to ${MAX_OPSET}: ` +
        `convert the model to opset ${MAX_OPSET} or lower (e.g. torch.onnx.export(..., opset_version=17))`,
    );
  }
  const usesDefault = model.graph.node.some((n) => n.domain === "" || n.domain === "ai.onnx");
  if (!opset && usesDefault) {
    throw new AttnroundError(
      "INVALID_MODEL",
      "the model uses ONNX ops but imports no version of the default operator set",
    );
  }
  const g = model.graph;
  const initializers = new Map(g.initializer.map((t) => [t.name, tensorFromProto(t)]));
  // Node names identify layers (options, reports, the export): each one is made unique.
  const names = new Set<string>(g.node.map((n) => n.name).filter((name) => name));
  const taken = new Set<string>();
  const uniqueName = (name: string) => {
    let unique = name;
    for (let k = 1; taken.has(unique) || (unique !== name && names.has(unique)); k++) unique = `${name}_${k}`;
    taken.add(unique);
    return unique;
  };
  const nodes: Node[] = g.node.map((n, i) => {
    if (n.domain.startsWith(OWN_PREFIX)) {
      throw new AttnroundError(
        "INVALID_MODEL",
        `node "${n.name}" uses the domain "${n.domain}", which the library reserves for its own nodes`,
      );
    }
    const attributes = new Map<string, AttributeValue>();
    for (const a of n.attribute) {
      if (a.name.startsWith(`${OWN_PREFIX}.`)) {
        throw new AttnroundError(
          "INVALID_MODEL",
          `node "${n.name}" (${n.opType}) has the attribute "${a.name}", a name the library reserves for its own use`,
        );
      }
      const v = attributeValue(a);
      if (v !== undefined) attributes.set(a.name, v);
    }
    return {
      name: uniqueName(n.name || `${n.opType}_${i}`),
      opType: n.opType,
      domain: n.domain,
      inputs: [...n.input],
      outputs: [...n.output],
      attributes,
    };
  });
  const graph = {
    nodes,
    initializers,
    inputs: g.input.filter((v) => !initializers.has(v.name)).map(valueInfo),
    outputs: g.output.map(valueInfo),
    opset,
  };
  validateGraph(graph);
  return graph;
}
