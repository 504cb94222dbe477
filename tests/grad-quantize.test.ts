// QuantizeLinear → DequantizeLinear inside a differentiated graph: the
// gradient passes straight through the rounding and stops where the
// quantizer clipped (a straight-through estimator, which finite differences
// of a step function cannot check).
import assert from "node:assert/strict";
import { init, Tensor } from "../mod.ts";
import { addGradients } from "../src/engine/autodiff.ts";
import { Engine } from "../src/engine/engine.ts";
import type { Graph } from "../src/graph/ir.ts";
import { uniform } from "./grad-helpers.ts";

Deno.test("QuantizeLinear → DequantizeLinear, per tensor and per channel: dy passes where x was not clipped", async () => {
  await init();
  const shape = [2, 3, 4], n = 24;
  for (const perChannel of [false, true]) {
    const scale = perChannel ? [0.05, 0.1, 0.2] : [0.1];
    const zero = perChannel ? [3, -5, 0] : [-2];
    const params = new Map([
      ["s", new Tensor(Float32Array.from(scale), [scale.length])],
      ["z", new Tensor(Int8Array.from(zero), [zero.length], "int8")],
    ]);
    const attributes = new Map([["axis", 1]]);
    const g: Graph = {
      nodes: [
        {
          name: "q",
          opType: "QuantizeLinear",
          domain: "",
          inputs: ["x", "s", "z"],
          outputs: ["xq"],
          attributes,
        },
        {
          name: "dq",
          opType: "DequantizeLinear",
          domain: "",
          inputs: ["xq", "s", "z"],
          outputs: ["y"],
          attributes,
        },
        {
          name: "loss",
          opType: "MeanSquaredError",
          domain: "attnround",
          inputs: ["y", "t"],
          outputs: ["loss"],
          attributes: new Map(),
        },
      ],
      initializers: params,
      inputs: [{ name: "x" }, { name: "t" }],
      outputs: [{ name: "loss" }, { name: "y" }],
      opset: 13,
    };
    const { graph: training, gradients } = addGradients(g, "loss", ["x"]);
    const engine = new Engine(training);
    // Some elements beyond the int8 range of every channel.
    const x = uniform(shape, 1, -40, 40), t = uniform(shape, 2);
    const out = engine.run({ x, t });
    const gx = out[gradients.get("x")!].data as Float32Array, y = out.y.data as Float32Array;
    let clipped = 0;
    for (let i = 0; i < n; i++) {
      const c = perChannel ? Math.floor(i / 4) % 3 : 0;
      const q = Math.round((x.data as Float32Array)[i] / scale[c]) + zero[c];
      const inside = q >= -128 && q <= 127;
      if (!inside) clipped++;
      const expected = inside ? (2 * (y[i] - (t.data as Float32Array)[i])) / n : 0;
      assert.ok(Math.abs(gx[i] - expected) < 1e-6, `dL/dx[${i}] = ${gx[i]}, expected ${expected}`);
    }
    assert.ok(clipped > 0 && clipped < n, `the case should clip some elements (clipped ${clipped})`);
    engine.dispose();
  }
});
