// The graph IR every later stage works on: nodes with parsed attributes,
// initializers as Tensors, and the opset that fixes each op's semantics.
import { AttnroundError } from "../errors.ts";
import type { DType, Tensor } from "../tensor.ts";

export type AttributeValue = number | string | Tensor | Graph | number[] | string[] | Tensor[] | Graph[];

export interface Node {
  name: string;
  opType: string;
  domain: string;
  /** Input names; "" marks an omitted optional input. */
  inputs: string[];
  outputs: string[];
  attributes: Map<string, AttributeValue>;
}

export interface ValueInfo {
  name: string;
  dtype?: DType;
  /** Dimensions: a number, a symbolic name, or undefined when unknown. */
  shape?: (number | string | undefined)[];
}

export interface Graph {
  nodes: Node[];
  initializers: Map<string, Tensor>;
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  /** Version of the default ("" / "ai.onnx") operator set. */
  opset: number;
}

/**
 * Whether `node` is one of ONNX's own ops `types` (the default domain). An op
 * of another domain with the same name (com.microsoft's Relu, say) is not.
 */
export function isOnnxOp(node: Node, ...types: string[]): boolean {
  return isOnnxDomain(node) && types.includes(node.opType);
}

/** Whether `node` belongs to ONNX's default operator set ("" or "ai.onnx"). */
export function isOnnxDomain(node: Node): boolean {
  return node.domain === "" || node.domain === "ai.onnx";
}

function attr(node: Node, name: string): AttributeValue | undefined {
  return node.attributes.get(name);
}

function wrongType(node: Node, name: string, expected: string): never {
  throw new AttnroundError(
    "INVALID_MODEL",
    `node "${node.name}" (${node.opType}): attribute "${name}" should be ${expected}`,
  );
}

export function attrInt(node: Node, name: string, fallback: number): number;
export function attrInt(node: Node, name: string): number | undefined;
export function attrInt(node: Node, name: string, fallback?: number): number | undefined {
  const v = attr(node, name);
  if (v === undefined) return fallback;
  if (typeof v !== "number") wrongType(node, name, "an integer");
  return v;
}

export function attrFloat(node: Node, name: string, fallback: number): number;
export function attrFloat(node: Node, name: string): number | undefined;
export function attrFloat(node: Node, name: string, fallback?: number): number | undefined {
  const v = attr(node, name);
  if (v === undefined) return fallback;
  if (typeof v !== "number") wrongType(node, name, "a number");
  return v;
}

export function attrInts(node: Node, name: string, fallback: number[]): number[];
export function attrInts(node: Node, name: string): number[] | undefined;
export function attrInts(node: Node, name: string, fallback?: number[]): number[] | undefined {
  const v = attr(node, name);
  if (v === undefined) return fallback;
  if (!Array.isArray(v) || v.some((x) => typeof x !== "number")) wrongType(node, name, "a list of integers");
  return v as number[];
}

export const attrFloats = attrInts;

export function attrString(node: Node, name: string, fallback: string): string;
export function attrString(node: Node, name: string): string | undefined;
export function attrString(node: Node, name: string, fallback?: string): string | undefined {
  const v = attr(node, name);
  if (v === undefined) return fallback;
  if (typeof v !== "string") wrongType(node, name, "a string");
  return v;
}

export function attrTensor(node: Node, name: string): Tensor | undefined {
  const v = attr(node, name);
  if (v === undefined) return undefined;
  if (typeof v !== "object" || Array.isArray(v) || !("dtype" in v)) wrongType(node, name, "a tensor");
  return v as Tensor;
}

/** The node that writes each tensor. */
export function producers(graph: Graph): Map<string, Node> {
  return new Map(graph.nodes.flatMap((n) => n.outputs.map((name) => [name, n])));
}

/** The nodes that read a tensor. */
export function consumers(graph: Graph, name: string): Node[] {
  return graph.nodes.filter((n) => n.inputs.includes(name));
}

/** Nodes in an order where every input is produced before it is used. */
export function topologicalOrder(graph: Graph): Node[] {
  const available = new Set<string>(["", ...graph.initializers.keys(), ...graph.inputs.map((i) => i.name)]);
  const waiting = new Map<string, Node[]>();
  const missing = new Map<Node, number>();
  const ready: Node[] = [];
  for (const node of graph.nodes) {
    const needs = new Set(node.inputs.filter((name) => !available.has(name)));
    missing.set(node, needs.size);
    if (needs.size === 0) ready.push(node);
    for (const name of needs) {
      if (!waiting.has(name)) waiting.set(name, []);
      waiting.get(name)!.push(node);
    }
  }
  const order: Node[] = [];
  // Stable: among ready nodes, keep the file's order.
  const position = new Map(graph.nodes.map((n, i) => [n, i]));
  while (ready.length > 0) {
    ready.sort((a, b) => position.get(b)! - position.get(a)!);
    const node = ready.pop()!;
    order.push(node);
    for (const out of node.outputs) {
      if (available.has(out)) continue;
      available.add(out);
      for (const consumer of waiting.get(out) ?? []) {
        const left = missing.get(consumer)! - 1;
        missing.set(consumer, left);
        if (left === 0) ready.push(consumer);
      }
    }
  }
  if (order.length !== graph.nodes.length) {
    const stuck = graph.nodes.filter((n) => !order.includes(n));
    const unresolved = [...new Set(stuck.flatMap((n) => n.inputs.filter((i) => !available.has(i))))];
    throw new AttnroundError(
      "INVALID_MODEL",
      `the graph has a cycle or uses undefined values: ${unresolved.slice(0, 5).join(", ")} (needed by ${
        stuck.slice(0, 3).map((n) => `"${n.name}"`).join(", ")
      })`,
    );
  }
  return order;
}
