// Small builders for the ONNX messages the export writes: nodes, attributes,
// value infos. Attribute types are explicit where a number could be an INT or
// a FLOAT; the IR (which keeps plain numbers) does not know the difference.
import { AttnroundError } from "../errors.ts";
import type { AttributeValue } from "../graph/ir.ts";
import { tensorToProto } from "../onnx/tensor-proto.ts";
import {
  type AttributeProto,
  AttributeType,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from "../onnx/types.ts";
import type { Tensor } from "../tensor.ts";

const utf8 = new TextEncoder();

function emptyAttribute(name: string, type: number): AttributeProto {
  return {
    name,
    refAttrName: "",
    docString: "",
    type,
    floats: [],
    ints: [],
    strings: [],
    tensors: [],
    graphs: [],
    typeProtos: [],
  };
}

function isTensor(v: unknown): v is Tensor {
  return typeof v === "object" && v !== null && !Array.isArray(v) && "dtype" in v;
}

/**
 * An AttributeProto for an IR attribute value. `type` says INT or FLOAT (and
 * INTS or FLOATS) for numbers; without it, whole numbers are INT(S) and
 * others FLOAT(S). Graph-valued attributes cannot be written from the IR.
 */
export function attributeProto(name: string, value: AttributeValue, type?: number): AttributeProto {
  if (typeof value === "number") {
    const t = type ?? (Number.isInteger(value) ? AttributeType.INT : AttributeType.FLOAT);
    const a = emptyAttribute(name, t);
    if (t === AttributeType.FLOAT) a.f = value;
    else a.i = BigInt(value);
    return a;
  }
  if (typeof value === "string") {
    return { ...emptyAttribute(name, AttributeType.STRING), s: utf8.encode(value) };
  }
  if (isTensor(value)) return { ...emptyAttribute(name, AttributeType.TENSOR), t: tensorToProto("", value) };
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v === "number")) {
      const numbers = value as number[];
      const t = type ?? (numbers.every(Number.isInteger) ? AttributeType.INTS : AttributeType.FLOATS);
      const a = emptyAttribute(name, t);
      if (t === AttributeType.FLOATS) a.floats = [...numbers];
      else a.ints = numbers.map((v) => BigInt(v));
      return a;
    }
    if (value.every((v) => typeof v === "string")) {
      return {
        ...emptyAttribute(name, AttributeType.STRINGS),
        strings: (value as string[]).map((v) => utf8.encode(v)),
      };
    }
    if (value.every(isTensor)) {
      return {
        ...emptyAttribute(name, AttributeType.TENSORS),
        tensors: (value as Tensor[]).map((v) => tensorToProto("", v)),
      };
    }
  }
  throw new AttnroundError("INTERNAL", `attribute "${name}" has a value the export cannot write`);
}

/** A NodeProto of the default domain unless `domain` is given. */
export function nodeProto(
  opType: string,
  name: string,
  input: string[],
  output: string[],
  attribute: AttributeProto[] = [],
  domain = "",
): NodeProto {
  return { input, output, name, opType, attribute, docString: "", domain, overload: "", metadataProps: [] };
}

/** A tensor-typed ValueInfoProto; `dims` undefined leaves the shape unknown. */
export function valueInfoProto(name: string, elemType: number, dims?: (number | string)[]): ValueInfoProto {
  return {
    name,
    docString: "",
    metadataProps: [],
    type: {
      denotation: "",
      tensorType: {
        elemType,
        shape: dims && {
          dim: dims.map((d) =>
            typeof d === "number" ? { dimValue: d, denotation: "" } : { dimParam: d, denotation: "" }
          ),
        },
      },
    },
  };
}

/** A named TensorProto of a Tensor. */
export function initializerProto(name: string, tensor: Tensor): TensorProto {
  return tensorToProto(name, tensor);
}
