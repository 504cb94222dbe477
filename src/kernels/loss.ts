// Backward of the reconstruction loss mean((p - t)²): dp = scale·(p - t) and
// dt = -dp with scale = 2·dLoss / n, in float64 per value and rounded once to
// float32. The wasm kernel is assembly/loss.ts; mseGradientReference is the
// plain loop the tests hold it to, bit for bit.
import { AttnroundError } from "../errors.ts";
import { wasm } from "../wasm.ts";
import type { FloatArray } from "./planes.ts";

/** dp and dt (byte addresses, 0 for one not wanted) of n values of p and t. */
export function mseGradient(p: number, t: number, n: number, scale: number, dp: number, dt: number): void {
  if (!Number.isInteger(n) || n < 0) {
    throw new AttnroundError("INVALID_ARGUMENT", `mseGradient: n must be a non-negative integer, got ${n}`);
  }
  wasm().mseGradient(p, t, n, scale, dp, dt);
}

/** Plain reference of mseGradient on typed arrays. */
export function mseGradientReference(
  p: FloatArray,
  t: FloatArray,
  scale: number,
  dp: FloatArray | undefined,
  dt: FloatArray | undefined,
): void {
  for (let i = 0; i < p.length; i++) {
    const g = scale * (p[i] - t[i]);
    if (dp) dp[i] = g;
    if (dt) dt[i] = -g;
  }
}
