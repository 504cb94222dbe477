/**
 * attnround: post-training quantization of ONNX models with Attention Round,
 * in TypeScript over WebAssembly SIMD. This file is the public API and nothing else.
 * @module
 */
export { init } from "./src/init.ts";
export type { InitOptions } from "./src/wasm.ts";
export { Tensor } from "./src/tensor.ts";
export type { DType, TensorData } from "./src/tensor.ts";
export { loadModel, Model } from "./src/model.ts";
export type { BatchedRunOptions } from "./src/engine/parallel/batched.ts";
export { QuantizationRun, quantize } from "./src/quant/quantize.ts";
// Gives QuantizedModel its toOnnx() and toNpz().
import "./src/export/register.ts";
export type {
  Fidelity,
  LayerReport,
  QuantizationReport,
  QuantizedModel,
  QuantizedWeight,
} from "./src/quant/quantized-model.ts";
export type { RunCallbacks } from "./src/quant/quantize.ts";
export type { SpillFile, SpillStore } from "./src/quant/cache.ts";
export type { CalibrationInput } from "./src/quant/calibration.ts";
export type {
  AttentionOptions,
  ExportForm,
  ProgressEvent,
  QuantizeOptions,
  QuantizeOptionsInput,
  RoundingMode,
} from "./src/quant/options.ts";
/** quantize()'s defaults, frozen: what an option left out means. */
export { defaultOptions } from "./src/quant/options.ts";
export { inspectMixedPrecision } from "./src/quant/inspect.ts";
export type { InspectedLayer, MixedPrecisionInspection } from "./src/quant/inspect.ts";
export { inspectModel } from "./src/quant/inspect.ts";
export type { InspectedModelLayer, InspectedTensor, ModelInspection } from "./src/quant/inspect.ts";
export type {
  BitsSource,
  MixedAllocation,
  MixedCriterion,
  MixedLayer,
  MixedPrecisionOptions,
} from "./src/quant/mixed.ts";
export { reportToHtml } from "./src/report/html.ts";
export type { HtmlReportOptions } from "./src/report/html.ts";
export type { ValueInfo } from "./src/graph/ir.ts";
export { readNpy, readNpz, writeNpy, writeNpz } from "./src/data/npy.ts";
export type { NpzOptions, NpzReadOptions } from "./src/data/npy.ts";
export { inputsFromNpz } from "./src/data/inputs.ts";
export type { InputLayout, NpzInputOptions, NpzInputs } from "./src/data/inputs.ts";
export { AttnroundError } from "./src/errors.ts";
export type { ErrorCode } from "./src/errors.ts";
