// Backward of the neural-network ops in nn.ts: Conv (input, weights, bias),
// Gemm, MatMul with batch broadcasting, BatchNormalization in inference mode,
// and pooling. Convolutions run on the wasm kernels of
// src/kernels/conv2d-grad.ts, matrix products on the wasm GEMM, pooling on
// src/kernels/pool-grad.ts, per-channel sums on reduceToShape.
import { attrFloat, attrInt, attrInts, attrString, type Node } from "../../graph/ir.ts";
import { gemmAt } from "../../kernels/gemm.ts";
import { reduceToShape } from "../../kernels/binary-grad.ts";
import { binary } from "../../kernels/binary.ts";
import {
  conv2dBackwardInput,
  conv2dBackwardInputWorkspaceBytes,
  conv2dBackwardWeights,
  conv2dBackwardWeightsWorkspaceBytes,
} from "../../kernels/conv2d-grad.ts";
import {
  averagePool2dBackward,
  globalAveragePoolBackward,
  maxPool2dBackward,
} from "../../kernels/pool-grad.ts";
import type { AveragePool2dParams } from "../../kernels/pool.ts";
import { f32 } from "../../wasm.ts";
import { opError, type OpGrad, opUnsupported, registerGradients } from "../registry.ts";
import { sizeOf, type Value, type WasmValue } from "../value.ts";
import { floatInput, scratchParts, sumToShape, zeroGradient, zeroGradients } from "./grad-util.ts";
import { broadcastIndex, broadcastShapes } from "./util.ts";
import { as2d, convParams, spatialGeometry } from "./geometry.ts";
import { FUSED_ACTIVATION } from "../fuse.ts";

/** Conv (1-D and 2-D): dX by a transposed convolution, dW by a reduction over pixels, dB per channel. */
const convGrad: OpGrad = (ctx, inputs, _outputs, [dy]) => {
  const node = ctx.node;
  if ((inputs[0]?.shape.length ?? 0) > 4) {
    throw opUnsupported(
      node,
      "the gradient of convolutions over more than two spatial axes is not implemented",
    );
  }
  if (attrString(node, FUSED_ACTIVATION, "none") !== "none") {
    throw opUnsupported(
      node,
      "a Conv with a fused activation has no gradient: differentiate the unfused graph",
    );
  }
  if (!dy) return zeroGradients(ctx, inputs);
  const x = floatInput(node, inputs, 0), w = floatInput(node, inputs, 1);
  const p = convParams(node, x, w);
  const dx = ctx.wants(0) ? ctx.outputF32(x.shape) : undefined;
  const dw = ctx.wants(1) ? ctx.outputF32(w.shape) : undefined;
  const db = ctx.wants(2) && inputs[2] ? ctx.outputF32(inputs[2].shape) : undefined;
  // dX and dW run one after the other, in the same scratch.
  const [workspace] = scratchParts(ctx, [
    Math.max(dx ? conv2dBackwardInputWorkspaceBytes(p) : 0, dw ? conv2dBackwardWeightsWorkspaceBytes(p) : 0),
  ]);
  if (dx) conv2dBackwardInput(p, dy.ptr, w.ptr, dx.ptr, workspace);
  if (dw) conv2dBackwardWeights(p, x.ptr, dy.ptr, dw.ptr, workspace);
  if (db) reduceToShape({ from: [p.n, p.m, p.outH * p.outW], to: [1, p.m, 1] }, dy.ptr, db.ptr);
  return [dx, dw, db].slice(0, inputs.length);
};

/** v ← s·v over `length` floats at `ptr`; `scalar` is 4 bytes of scratch for s. */
function scaleInPlace(ptr: number, length: number, s: number, scalar: number): void {
  f32(scalar, 1)[0] = s;
  binary({ op: "mul", aShape: [length], bShape: [], outShape: [length] }, ptr, scalar, ptr);
}

/** Gemm Y = alpha·op(A)·op(B) + beta·C: dA and dB are GEMMs with dY, dC is beta·dY summed to C's shape. */
const gemmGrad: OpGrad = (ctx, inputs, _outputs, [dy]) => {
  if (!dy) return zeroGradients(ctx, inputs);
  const node = ctx.node;
  const a = floatInput(node, inputs, 0), b = floatInput(node, inputs, 1), c = inputs[2];
  const transA = attrInt(node, "transA", 0) === 1, transB = attrInt(node, "transB", 0) === 1;
  const alpha = attrFloat(node, "alpha", 1), beta = attrFloat(node, "beta", 1);
  const [m, k] = transA ? [a.shape[1], a.shape[0]] : [a.shape[0], a.shape[1]];
  const n = transB ? b.shape[0] : b.shape[1];
  const da = ctx.wants(0) ? ctx.outputF32(a.shape) : undefined;
  const db = ctx.wants(1) ? ctx.outputF32(b.shape) : undefined;
  const dc = ctx.wants(2) && c
    ? (beta === 0 ? zeroGradient(ctx, c.shape) : sumToShape(ctx, dy, c.shape, beta))
    : undefined;
  const [scalar] = scratchParts(ctx, [alpha !== 1 && (da || db) ? 4 : 0]);
  const lda = a.shape[1], ldb = b.shape[1];
  if (da) {
    if (!transA) {
      // dA [m, k] = dY · op(B)ᵀ
      gemmAt(
        { transA: false, transB: !transB, m, n: k, k: n, lda: n, ldb, ldc: k, accumulate: false },
        dy.ptr,
        b.ptr,
        da.ptr,
      );
    } else {
      // dA [k, m] = op(B) · dYᵀ
      gemmAt(
        { transA: transB, transB: true, m: k, n: m, k: n, lda: ldb, ldb: n, ldc: m, accumulate: false },
        b.ptr,
        dy.ptr,
        da.ptr,
      );
    }
    if (alpha !== 1) scaleInPlace(da.ptr, da.size, alpha, scalar);
  }
  if (db) {
    if (!transB) {
      // dB [k, n] = op(A)ᵀ · dY
      gemmAt(
        { transA: !transA, transB: false, m: k, n, k: m, lda, ldb: n, ldc: n, accumulate: false },
        a.ptr,
        dy.ptr,
        db.ptr,
      );
    } else {
      // dB [n, k] = dYᵀ · op(A)
      gemmAt(
        { transA: true, transB: transA, m: n, n: k, k: m, lda: n, ldb: lda, ldc: k, accumulate: false },
        dy.ptr,
        a.ptr,
        db.ptr,
      );
    }
    if (alpha !== 1) scaleInPlace(db.ptr, db.size, alpha, scalar);
  }
  return [da, db, dc].slice(0, inputs.length);
};

/**
 * MatMul with numpy batch broadcasting (1-D operands promoted as the forward
 * does): per batch entry dA = dY·Bᵀ and dB = Aᵀ·dY, accumulated where an
 * operand was broadcast. A batch of A against a 2-D B folds into one GEMM.
 */
const matmulGrad: OpGrad = (ctx, inputs, _outputs, [dy]) => {
  if (!dy) return zeroGradients(ctx, inputs);
  const node = ctx.node;
  const a = floatInput(node, inputs, 0), b = floatInput(node, inputs, 1);
  const aShape = a.shape.length === 1 ? [1, a.shape[0]] : [...a.shape];
  const bShape = b.shape.length === 1 ? [b.shape[0], 1] : [...b.shape];
  let [m, k] = aShape.slice(-2);
  const n = bShape[bShape.length - 1];
  const aBatch = aShape.slice(0, -2), bBatch = bShape.slice(0, -2);
  const batch = broadcastShapes(node, [aBatch, bBatch]);
  let ia = broadcastIndex(aBatch, batch), ib = broadcastIndex(bBatch, batch);
  if (sizeOf(bBatch) === 1 && sizeOf(aBatch) === ia.length) {
    m *= ia.length;
    ia = new Int32Array(1);
    ib = new Int32Array(1);
  }
  const da = ctx.wants(0) ? ctx.outputF32(a.shape) : undefined;
  const db = ctx.wants(1) ? ctx.outputF32(b.shape) : undefined;
  const aShared = ia.length > sizeOf(aBatch), bShared = ib.length > sizeOf(bBatch);
  if (da && aShared) da.data.fill(0);
  if (db && bShared) db.data.fill(0);
  for (let i = 0; i < ia.length; i++) {
    const g = dy.ptr + i * m * n * 4;
    if (da) {
      gemmAt(
        { transA: false, transB: true, m, n: k, k: n, lda: n, ldb: n, ldc: k, accumulate: aShared },
        g,
        b.ptr + ib[i] * k * n * 4,
        da.ptr + ia[i] * m * k * 4,
      );
    }
    if (db) {
      gemmAt(
        { transA: true, transB: false, m: k, n, k: m, lda: k, ldb: n, ldc: n, accumulate: bShared },
        a.ptr + ia[i] * m * k * 4,
        g,
        db.ptr + ib[i] * k * n * 4,
      );
    }
  }
  return [da, db];
};

/** Whether a BatchNormalization computes batch statistics, as nn.ts decides it. */
function batchNormTraining(node: Node, opset: number, outputs: (Value | undefined)[]): boolean {
  return opset >= 14
    ? attrInt(node, "training_mode", 0) === 1
    : outputs.slice(1).some((o) => o !== undefined);
}

/**
 * BatchNormalization in inference mode, y = (x - mean)·s + bias with
 * s = scale / √(var + ε): dx = dy·s per channel; the parameters' gradients
 * come from the per-channel sums Σdy and Σdy·x.
 */
const batchNormGrad: OpGrad = (ctx, inputs, outputs, [dy]) => {
  const node = ctx.node;
  if (batchNormTraining(node, ctx.opset, outputs)) {
    throw opUnsupported(node, "the gradient of BatchNormalization in training mode is not implemented");
  }
  if (!dy) return zeroGradients(ctx, inputs);
  const x = floatInput(node, inputs, 0);
  const params = [1, 2, 3, 4].map((i) => floatInput(node, inputs, i));
  const eps = attrFloat(node, "epsilon", 1e-5);
  const c = x.shape[1] ?? 1, n = x.shape[0];
  const inner = sizeOf(x.shape.slice(2));
  const channel = x.shape.map((d, i) => (i === 1 ? d : 1));
  const grads = inputs.map((v, i) => (v && ctx.wants(i) ? ctx.outputF32(v.shape) : undefined));
  const wantParams = grads.slice(1).some((g) => g !== undefined);
  const [sPtr, sums, temp] = scratchParts(ctx, [c * 4, 2 * c * 4, wantParams ? x.size * 4 : 0]);
  const [scale, , mean, variance] = params.map((p) => p.data.slice());
  const s = f32(sPtr, c);
  for (let ch = 0; ch < c; ch++) s[ch] = scale[ch] / Math.sqrt(variance[ch] + eps);
  if (grads[0]) {
    binary({ op: "mul", aShape: dy.shape, bShape: channel, outShape: dy.shape }, dy.ptr, sPtr, grads[0].ptr);
  }
  if (!wantParams) return grads;
  const perChannel = { from: [n, c, inner], to: [1, c, 1] };
  reduceToShape(perChannel, dy.ptr, sums);
  binary({ op: "mul", aShape: dy.shape, bShape: x.shape, outShape: dy.shape }, dy.ptr, x.ptr, temp);
  reduceToShape(perChannel, temp, sums + c * 4);
  const sum = f32(sums, 2 * c).slice();
  const values = [
    (ch: number) => (sum[c + ch] - mean[ch] * sum[ch]) / Math.sqrt(variance[ch] + eps),
    (ch: number) => sum[ch],
    (ch: number) => -sum[ch] * scale[ch] / Math.sqrt(variance[ch] + eps),
    (ch: number) => -0.5 * scale[ch] * (variance[ch] + eps) ** -1.5 * (sum[c + ch] - mean[ch] * sum[ch]),
  ];
  values.forEach((value, k) => {
    const g = grads[k + 1];
    if (!g) return;
    const gd = g.data;
    for (let ch = 0; ch < c; ch++) gd[ch] = value(ch);
  });
  return grads;
};

/** The 2-D kernel params of a 1-D or 2-D pooling node. */
function poolParams(node: Node, x: WasmValue): AveragePool2dParams {
  const rank = x.shape.length;
  if (rank !== 3 && rank !== 4) {
    throw opUnsupported(
      node,
      `the gradient of pooling is implemented for 1-D and 2-D inputs only (got [${x.shape}])`,
    );
  }
  const kernel = attrInts(node, "kernel_shape");
  if (!kernel) throw opError(node, "kernel_shape is required");
  const g = as2d(spatialGeometry(node, x.shape, kernel, attrInt(node, "ceil_mode", 0) === 1));
  return {
    n: x.shape[0],
    c: x.shape[1],
    h: rank === 4 ? x.shape[2] : 1,
    w: x.shape[rank - 1],
    kh: g.kernel[0],
    kw: g.kernel[1],
    strideH: g.strides[0],
    strideW: g.strides[1],
    padTop: g.pads[0],
    padLeft: g.pads[1],
    padBottom: g.pads[2],
    padRight: g.pads[3],
    dilationH: g.dilations[0],
    dilationW: g.dilations[1],
    outH: g.out[0],
    outW: g.out[1],
    countIncludePad: attrInt(node, "count_include_pad", 0) === 1,
  };
}

const poolGrad = (kind: "max" | "average"): OpGrad => (ctx, inputs, _outputs, [dy]) => {
  if (!dy) return zeroGradients(ctx, inputs);
  const x = floatInput(ctx.node, inputs, 0);
  if ((x.shape.length ?? 0) > 4) {
    throw opUnsupported(
      ctx.node,
      "the gradient of pooling over more than two spatial axes is not implemented",
    );
  }
  const p = poolParams(ctx.node, x);
  if (!ctx.wants(0)) return [undefined];
  const dx = ctx.outputF32(x.shape);
  if (kind === "max") maxPool2dBackward(p, x.ptr, dy.ptr, dx.ptr);
  else averagePool2dBackward(p, dy.ptr, dx.ptr);
  return [dx];
};

const globalAveragePoolGrad: OpGrad = (ctx, inputs, _outputs, [dy]) => {
  if (!dy) return zeroGradients(ctx, inputs);
  const x = floatInput(ctx.node, inputs, 0);
  if (!ctx.wants(0)) return [undefined];
  const dx = ctx.outputF32(x.shape);
  globalAveragePoolBackward({ n: x.shape[0], c: x.shape[1], size: sizeOf(x.shape.slice(2)) }, dy.ptr, dx.ptr);
  return [dx];
};

registerGradients({
  Conv: convGrad,
  Gemm: gemmGrad,
  MatMul: matmulGrad,
  BatchNormalization: batchNormGrad,
  MaxPool: poolGrad("max"),
  AveragePool: poolGrad("average"),
  GlobalAveragePool: globalAveragePoolGrad,
});
