// Gives QuantizedModel its toOnnx() and toNpz(): quant cannot import the
// export stage (which depends on it), so the export registers its writers.
import { registerExporters } from "../quant/quantized-model.ts";
import { npzBytes } from "./npz.ts";
import { checkQdq, qdqBytes } from "./qdq.ts";

registerExporters({ onnx: qdqBytes, npz: npzBytes, check: checkQdq });
