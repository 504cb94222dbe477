// Training losses (domain "attnround"): the reconstruction objective of a block.
import { opError, registerGradients, registerOps, required, TRAINING_DOMAIN } from "../registry.ts";
import { mseGradient } from "../../kernels/loss.ts";
import { sizeOf, type WasmValue } from "../value.ts";
import { floatInput } from "./grad-util.ts";

registerOps(
  {
    /** mean((prediction − target)²) over all elements, as a scalar. */
    MeanSquaredError: (ctx, inputs) => {
      const p = required(ctx.node, inputs, 0), t = required(ctx.node, inputs, 1);
      if (p.shape.join() !== t.shape.join()) {
        throw opError(ctx.node, `prediction [${p.shape}] and target [${t.shape}] differ in shape`);
      }
      const loss = ctx.outputF32([]);
      const pd = p.data as Float32Array, td = t.data as Float32Array;
      let sum = 0;
      for (let i = 0; i < pd.length; i++) sum += (pd[i] - td[i]) ** 2;
      loss.data[0] = sum / Math.max(pd.length, 1);
      return [loss];
    },
  },
  {},
  TRAINING_DOMAIN,
);

registerGradients({
  MeanSquaredError: (ctx, inputs, _outputs, [dLoss]) => {
    const p = floatInput(ctx.node, inputs, 0), t = floatInput(ctx.node, inputs, 1);
    const dp = ctx.wants(0) ? ctx.outputF32(p.shape) : undefined;
    const dt = ctx.wants(1) ? ctx.outputF32(t.shape) : undefined;
    const n = sizeOf(p.shape);
    const scale = (2 / Math.max(n, 1)) * (dLoss ? dLoss.data[0] : 0);
    mseGradient(p.ptr, t.ptr, n, scale, dp?.ptr ?? 0, dt?.ptr ?? 0);
    return [dp, dt] as (WasmValue | undefined)[];
  },
}, TRAINING_DOMAIN);
