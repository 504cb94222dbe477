// The geometry of a sliding-window kernel, as assembly/geometry.ts reads it
// through one pointer: GEOMETRY_FIELDS are its fields in its order, one i32
// each. The kernel wrappers (conv2d, conv-transpose2d, pool and their
// backward passes) write it here just before the call.
import { argBlock, i32 } from "../wasm.ts";
import { planeGeometry, type WindowShape } from "./planes.ts";

export const GEOMETRY_FIELDS = [
  "n",
  "c",
  "h",
  "w",
  "m",
  "kh",
  "kw",
  "strideH",
  "strideW",
  "padTop",
  "padLeft",
  "padBottom",
  "padRight",
  "dilationH",
  "dilationW",
  "group",
  "outH",
  "outW",
  "hp",
  "wq",
] as const;

export interface GeometryParams extends WindowShape {
  n: number;
  c: number;
  padTop: number;
  padLeft: number;
  padBottom: number;
  padRight: number;
  /** Output channels and groups: convolutions only. */
  m?: number;
  group?: number;
}

/**
 * Writes the geometry of `p` (with the prepared planes' hp and wq, see
 * planes.ts) to the argument block and returns its address: one block serves
 * every call, which the kernel reads at its start.
 */
export function geometryArg(p: GeometryParams): number {
  const ptr = argBlock(GEOMETRY_FIELDS.length * 4);
  const { hp, wq } = planeGeometry(p);
  const g: Record<(typeof GEOMETRY_FIELDS)[number], number> = { m: 0, group: 1, ...p, hp, wq };
  const view = i32(ptr, GEOMETRY_FIELDS.length);
  for (let i = 0; i < GEOMETRY_FIELDS.length; i++) view[i] = g[GEOMETRY_FIELDS[i]];
  return ptr;
}
