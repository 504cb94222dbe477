// The reconstruction loss's gradient (src/kernels/loss.ts): bit for bit
// against the float64-per-value TypeScript loop it replaced, for every tail
// length, with either output left out.
import assert from "node:assert/strict";
import { init } from "../mod.ts";
import { mseGradient, mseGradientReference } from "../src/kernels/loss.ts";
import { randomFloats } from "./helpers.ts";
import { fenced } from "./kernels-helpers.ts";

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

Deno.test("mseGradient equals the float64 reference bit for bit (dp, dt, each alone)", async () => {
  await init();
  for (const n of [0, 1, 2, 3, 4, 5, 7, 8, 33, 1001]) {
    // Values over many magnitudes, so that p - t and its scaling round in float64 and again to float32.
    const p = randomFloats(n, n + 1).map((u, i) => u * 10 ** ((i % 9) - 4));
    const t = randomFloats(n, n + 2).map((u, i) => u * 10 ** ((i % 5) - 2));
    const scale = (2 / Math.max(n, 1)) * 0.7310585786300049;
    for (const [wantP, wantT] of [[true, true], [true, false], [false, true]]) {
      const fp = fenced(n, p), ft = fenced(n, t), dp = fenced(n), dt = fenced(n);
      mseGradient(fp.ptr, ft.ptr, n, scale, wantP ? dp.ptr : 0, wantT ? dt.ptr : 0);
      const rp = new Float32Array(n), rt = new Float32Array(n);
      mseGradientReference(p, t, scale, rp, rt);
      if (wantP) assert.deepEqual(bits(dp.read()), bits(rp), `n ${n}: dp`);
      if (wantT) assert.deepEqual(bits(dt.read()), bits(rt), `n ${n}: dt`);
      fp.release("p"), ft.release("t"), dp.release("dp"), dt.release("dt");
    }
  }
});
