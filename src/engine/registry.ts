// Op kernels keyed by ONNX op type. Each op file registers its kernels here;
// the engine looks them up, and nothing else knows how an op computes.
import type { Node } from "../graph/ir.ts";
import type { DType } from "../tensor.ts";
import type { Value, WasmValue } from "./value.ts";

export interface OpContext {
  readonly node: Node;
  /** Version of the default operator set the model imports. */
  readonly opset: number;
  /** A new output tensor; float32 lives in wasm memory. Allocate every output before reading any `data`. */
  output(shape: readonly number[], dtype: DType): Value;
  /** A float32 output in wasm memory. */
  outputF32(shape: readonly number[]): WasmValue;
  /** Byte address of `bytes` bytes of scratch memory, valid until the op returns. */
  scratch(bytes: number): number;
}

export type OpRun = (ctx: OpContext, inputs: (Value | undefined)[]) => Value[];

/** Says why a node, judged by its attributes alone, cannot run; checked at load. */
export type OpCheck = (node: Node, opset: number) => string | undefined;

const kernels = new Map<string, OpRun>();
const checks = new Map<string, OpCheck>();

export function registerOps(ops: Record<string, OpRun>, loadChecks: Record<string, OpCheck> = {}): void {
  for (const [type, run] of Object.entries(ops)) kernels.set(type, run);
  for (const [type, check] of Object.entries(loadChecks)) checks.set(type, check);
}

export function kernelFor(node: Node): OpRun | undefined {
  if (node.domain !== "" && node.domain !== "ai.onnx") return undefined;
  return kernels.get(node.opType);
}

/** Why this supported op type still cannot run this node, if it cannot. */
export function unsupportedVariant(node: Node, opset: number): string | undefined {
  return checks.get(node.opType)?.(node, opset);
}

export function supportedOps(): string[] {
  return [...kernels.keys()].sort();
}
