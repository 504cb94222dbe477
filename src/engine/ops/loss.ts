// Training losses (domain "attnround"): the reconstruction objective of a block.
import { opError, registerGradients, registerOps, required, TRAINING_DOMAIN } from "../registry.ts";
import { WasmValue } from "../value.ts";

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
    const p = inputs[0]!, t = inputs[1]!;
    const dp = ctx.wants(0) ? ctx.outputF32(p.shape) : undefined;
    const dt = ctx.wants(1) ? ctx.outputF32(t.shape) : undefined;
    const pd = p.data as Float32Array, td = t.data as Float32Array;
    const scale = (2 / Math.max(pd.length, 1)) * (dLoss ? dLoss.data[0] : 0);
    const dpd = dp?.data, dtd = dt?.data;
    for (let i = 0; i < pd.length; i++) {
      const g = scale * (pd[i] - td[i]);
      if (dpd) dpd[i] = g;
      if (dtd) dtd[i] = -g;
    }
    return [dp, dt] as (WasmValue | undefined)[];
  },
}, TRAINING_DOMAIN);
