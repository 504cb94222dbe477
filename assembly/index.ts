// The wasm module's exports: raw-pointer kernels and one allocator.
export { alloc, free } from "./memory";
export { gemm } from "./gemm";
export { conv2dDepthwise, conv2dPacked, conv2dPackWeights } from "./conv2d";
export { averagePool2d, globalAveragePool, maxPool2d } from "./pool";
export { binary } from "./binary";
export { unary } from "./unary";
export { convTranspose2d } from "./conv-transpose2d";
export { gaussianFill, philoxBlocks } from "./random";
export { fakeQuantNearest, lsqBackward, lsqForward, searchScales } from "./quant";
export {
  adaroundForward,
  adaroundInit,
  adaroundRegularizer,
  attentionExpected,
  attentionInit,
  attentionStochastic,
  roundingBackward,
} from "./quant-round";
export { adamStep } from "./quant-adam";
export {
  conv2dBackwardWeights,
  conv2dDepthwiseBackwardInput,
  conv2dDepthwiseBackwardWeights,
  conv2dFlipWeights,
} from "./conv2d-grad";
export { averagePool2dBackward, globalAveragePoolBackward, maxPool2dBackward } from "./pool-grad";
export { reduceToShape } from "./binary-grad";
export { mseGradient } from "./loss";
export { unaryGrad } from "./unary-grad";
export { stridedCopy } from "./strided-copy";
export { choleskyLogDet, gramSmaller } from "./coding-length";
