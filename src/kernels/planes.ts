// Geometry of the prepared planes that the window kernels (conv2d, depthwise,
// pooling) read: see assembly/planes.ts for the layout. TypeScript owns the
// shapes, so the sizes are decided here and passed to the wasm side.
import { AttnroundError } from "../errors.ts";

export interface WindowShape {
  h: number;
  w: number;
  kh: number;
  kw: number;
  strideH: number;
  strideW: number;
  dilationH: number;
  dilationW: number;
  outH: number;
  outW: number;
}

export interface PlaneGeometry {
  /** Rows per phase plane: every row a window reads. */
  hp: number;
  /** Floats per row: every column a quad of four outputs reads, ragged last quad included. */
  wq: number;
  /** Floats per prepared channel (strideW phase planes). */
  channelFloats: number;
}

export function planeGeometry(s: WindowShape): PlaneGeometry {
  // Rows are a multiple of four floats long so that they start 16-byte
  // aligned: fewer of the unaligned tap loads split a cache line (~+10%).
  const hp = (s.outH - 1) * s.strideH + (s.kh - 1) * s.dilationH + 1;
  const wq = align4(4 * Math.ceil(s.outW / 4) + Math.floor(((s.kw - 1) * s.dilationW) / s.strideW));
  return { hp, wq, channelFloats: s.strideW * hp * wq };
}

/** Bytes of prepared planes for `channels` channels, with 16 floats of slack, 16-byte aligned. */
export function planeBytes(s: WindowShape, channels: number): number {
  return align16((planeGeometry(s).channelFloats * channels + 16) * 4);
}

export function align16(bytes: number): number {
  return (bytes + 15) & ~15;
}

/** Throws unless every named field is an integer of at least `min`. */
export function checkIntegers(kernel: string, p: object, names: readonly string[], min: number): void {
  const record = p as Record<string, unknown>;
  for (const name of names) {
    const v = record[name];
    if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
      throw new AttnroundError(
        "INVALID_ARGUMENT",
        `${kernel}: params.${name} must be an integer >= ${min}, got ${String(v)}`,
      );
    }
  }
}

/** What the plain reference kernels accept: float32 as the wasm kernels see it, or float64 for finite differences. */
export type FloatArray = Float32Array | Float64Array;

export type Activation = "none" | "relu" | "clip";

/** The clamp [lo, hi] that a fused activation amounts to. */
export function activationRange(
  kernel: string,
  p: { activation?: Activation; clipMin?: number; clipMax?: number },
): [number, number] {
  switch (p.activation ?? "none") {
    case "none":
      return [-Infinity, Infinity];
    case "relu":
      return [0, Infinity];
    case "clip":
      return [p.clipMin ?? -Infinity, p.clipMax ?? Infinity];
    default:
      throw new AttnroundError(
        "INVALID_ARGUMENT",
        `${kernel}: params.activation must be "none", "relu" or "clip", got "${p.activation}"`,
      );
  }
}

/** Reference clamp, as the wasm pmax/pmin pair computes it: NaN stays NaN. */
export function clampActivation(v: number, lo: number, hi: number): number {
  const u = v < lo ? lo : v;
  return hi < u ? hi : u;
}

function align4(floats: number): number {
  return (floats + 3) & ~3;
}
