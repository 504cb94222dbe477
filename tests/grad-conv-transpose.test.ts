// Backward of ConvTranspose (input, weights, bias) against float64 finite differences.
import { init } from "../mod.ts";
import { checkGradient, type Input, uniform } from "./grad-helpers.ts";

const f64 = (v: Input) => v as Float64Array;

interface Case {
  name: string;
  /** [n, c, h, w] or [n, c, w]. */
  x: number[];
  /** Output channels per group. */
  mg: number;
  kernel: number[];
  group?: number;
  strides?: number[];
  pads?: number[];
  dilations?: number[];
  outputPadding?: number[];
  /** Spatial output size given as output_shape (pads are then derived, SAME_UPPER-style split as the forward does). */
  outputShape?: number[];
  autoPad?: string;
  bias?: boolean;
}

/** ConvTranspose in float64 from its definition: every input pixel scatters kernel·x into the output. */
function reference(c: Case): (inputs: Input[]) => Float64Array[] {
  const nsp = c.x.length - 2, group = c.group ?? 1;
  const two = (v: number[] | undefined, fill: number) =>
    nsp === 2 ? (v ?? [fill, fill]) : [fill === 0 ? 0 : 1, (v ?? [fill])[0]];
  const [n, ci] = c.x, [h, w] = nsp === 2 ? c.x.slice(2) : [1, c.x[2]];
  const [kh, kw] = nsp === 2 ? c.kernel : [1, c.kernel[0]];
  const [sh, sw] = two(c.strides, 1), [dh, dw] = two(c.dilations, 1);
  const [oph, opw] = two(c.outputPadding, 0);
  const fullH = sh * (h - 1) + oph + (kh - 1) * dh + 1, fullW = sw * (w - 1) + opw + (kw - 1) * dw + 1;
  let pads = c.pads ?? new Array(2 * nsp).fill(0);
  let outH: number, outW: number;
  if (c.outputShape || c.autoPad) {
    const out = c.outputShape ?? c.x.slice(2).map((d, i) => d * (c.strides ?? [1, 1])[i]);
    const full = nsp === 2 ? [fullH, fullW] : [fullW];
    pads = new Array(2 * nsp).fill(0);
    full.forEach((f, i) => {
      const total = Math.max(0, f - out[i]), half = Math.floor(total / 2);
      pads[i] = c.autoPad === "SAME_UPPER" ? half : total - half;
      pads[i + nsp] = total - pads[i];
    });
    [outH, outW] = nsp === 2 ? out : [1, out[0]];
  } else {
    [outH, outW] = nsp === 2
      ? [fullH - pads[0] - pads[2], fullW - pads[1] - pads[3]]
      : [1, fullW - pads[0] - pads[1]];
  }
  const [pt, pl] = nsp === 2 ? [pads[0], pads[1]] : [0, pads[0]];
  const cg = ci / group, m = c.mg * group;
  return ([x, wt, b]) => {
    const y = new Float64Array(n * m * outH * outW);
    for (let img = 0; img < n; img++) {
      for (let ch = 0; ch < ci; ch++) {
        const g = Math.floor(ch / cg);
        for (let iy = 0; iy < h; iy++) {
          for (let ix = 0; ix < w; ix++) {
            const v = f64(x)[((img * ci + ch) * h + iy) * w + ix];
            for (let co = 0; co < c.mg; co++) {
              for (let ki = 0; ki < kh; ki++) {
                const oy = iy * sh - pt + ki * dh;
                if (oy < 0 || oy >= outH) continue;
                for (let kj = 0; kj < kw; kj++) {
                  const ox = ix * sw - pl + kj * dw;
                  if (ox < 0 || ox >= outW) continue;
                  const weight = f64(wt)[((ch * c.mg + co) * kh + ki) * kw + kj];
                  y[((img * m + g * c.mg + co) * outH + oy) * outW + ox] += v * weight;
                }
              }
            }
          }
        }
      }
    }
    if (b) y.forEach((_, i) => (y[i] += f64(b)[Math.floor(i / (outH * outW)) % m]));
    return [y];
  };
}

function convTransposeCase(c: Case, seed: number): void {
  const group = c.group ?? 1;
  const attributes: Record<string, number[] | number | string> = { kernel_shape: c.kernel, group };
  if (c.strides) attributes.strides = c.strides;
  if (c.pads) attributes.pads = c.pads;
  if (c.dilations) attributes.dilations = c.dilations;
  if (c.outputPadding) attributes.output_padding = c.outputPadding;
  if (c.outputShape) attributes.output_shape = c.outputShape;
  if (c.autoPad) attributes.auto_pad = c.autoPad;
  const inputs = [uniform(c.x, seed), uniform([c.x[1], c.mg, ...c.kernel], seed + 1)];
  if (c.bias) inputs.push(uniform([c.mg * group], seed + 2));
  checkGradient({ name: c.name, op: "ConvTranspose", attributes, inputs, reference: reference(c) }, seed);
}

Deno.test("ConvTranspose gradient: strides, pads, dilations, output_padding, groups, output_shape, auto_pad, 1-D", async () => {
  await init();
  const cases: Case[] = [
    { name: "ConvTranspose 3×3 stride 1 with bias", x: [2, 3, 4, 4], mg: 2, kernel: [3, 3], bias: true },
    {
      name: "ConvTranspose 4×4 stride 2 pads 1 (a decoder's upsampling)",
      x: [1, 4, 3, 3],
      mg: 3,
      kernel: [4, 4],
      strides: [2, 2],
      pads: [1, 1, 1, 1],
      bias: true,
    },
    {
      name: "ConvTranspose stride 2 output_padding 1, asymmetric pads",
      x: [2, 2, 3, 4],
      mg: 2,
      kernel: [3, 3],
      strides: [2, 2],
      pads: [1, 0, 0, 1],
      outputPadding: [1, 1],
    },
    { name: "ConvTranspose dilation 2", x: [1, 2, 4, 3], mg: 2, kernel: [2, 3], dilations: [2, 2] },
    {
      name: "ConvTranspose groups 2",
      x: [2, 4, 3, 3],
      mg: 3,
      kernel: [3, 3],
      group: 2,
      strides: [2, 1],
      bias: true,
    },
    {
      name: "ConvTranspose depthwise stride 2",
      x: [1, 3, 4, 4],
      mg: 1,
      kernel: [2, 2],
      group: 3,
      strides: [2, 2],
    },
    {
      name: "ConvTranspose output_shape",
      x: [1, 2, 3, 3],
      mg: 2,
      kernel: [3, 3],
      strides: [2, 2],
      outputShape: [6, 6],
    },
    {
      name: "ConvTranspose SAME_UPPER",
      x: [1, 2, 3, 4],
      mg: 2,
      kernel: [3, 3],
      strides: [2, 2],
      autoPad: "SAME_UPPER",
    },
    {
      name: "ConvTranspose 1-D stride 3",
      x: [2, 3, 5],
      mg: 2,
      kernel: [4],
      strides: [3],
      pads: [1, 2],
      bias: true,
    },
  ];
  cases.forEach((c, i) => convTransposeCase(c, 10 * i + 1));
});
