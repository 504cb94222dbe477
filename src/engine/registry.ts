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

const kernels = new Map<string, OpRun>();

export function registerOps(ops: Record<string, OpRun>): void {
  for (const [type, run] of Object.entries(ops)) kernels.set(type, run);
}

export function kernelFor(node: Node): OpRun | undefined {
  if (node.domain !== "" && node.domain !== "ai.onnx") return undefined;
  return kernels.get(node.opType);
}

export function supportedOps(): string[] {
  return [...kernels.keys()].sort();
}
