// The geometry of a sliding-window kernel (convolution, depthwise and
// transposed convolution, pooling, and their backward passes), read through
// one pointer instead of some twenty arguments. src/kernels/geometry.ts
// writes it: the same fields in the same order, 4 bytes each. A kernel reads
// the fields it needs into locals once, at its start.
@unmanaged
export class Geometry {
  n: i32;
  c: i32;
  h: i32;
  w: i32;
  /** Output channels (convolutions). */
  m: i32;
  kh: i32;
  kw: i32;
  strideH: i32;
  strideW: i32;
  padTop: i32;
  padLeft: i32;
  padBottom: i32;
  padRight: i32;
  dilationH: i32;
  dilationW: i32;
  /** Groups (convolutions). */
  group: i32;
  outH: i32;
  outW: i32;
  /** Rows per phase plane and floats per row of the prepared planes (see planes.ts). */
  hp: i32;
  wq: i32;
}
