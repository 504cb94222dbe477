// Calibration from a folder of PNG and JPEG images: each file is decoded by a
// pure-JS decoder (fast-png, jpeg-js: no native code, the same in Deno, Node,
// browsers and edge runtimes), then preprocessed as a torchvision-style
// pipeline would:
//   1. channels: 3 as R, G, B (or B, G, R with --channels bgr), or 1 as the
//      image's gray level (ITU-R 601 luma of a colour image); alpha is dropped;
//   2. resize to --resize WxH (default: the model input's height and width),
//      bilinear with half-pixel centres and no antialiasing (ONNX Resize
//      "linear", OpenCV INTER_LINEAR); an image already that size is untouched;
//   3. scale to [0, 1] (value / 255), then (value − mean) / std per channel
//      (--mean, --std; default 0 and 1);
//   4. layout NCHW or NHWC (--layout; default: whichever the model's input
//      shape says, NCHW when it cannot tell).
// deno-lint-ignore no-import-prefix
import { convertIndexedToRgb, decode as decodePng, hasPngSignature } from "npm:fast-png@8.0.0";
// deno-lint-ignore no-import-prefix
import jpeg from "npm:jpeg-js@0.4.4";
import { Tensor, type ValueInfo } from "../../mod.ts";
import { CliError } from "./errors.ts";
import { joinPath } from "./files.ts";
import type { Runtime } from "./runtime.ts";

export const IMAGE_EXTENSIONS = [".png", ".jpg", ".jpeg"];

export interface Preprocessing {
  /** Target width and height; undefined: the model's, else each image's own (which must then agree). */
  size?: [width: number, height: number];
  channels?: "rgb" | "bgr";
  mean?: number[];
  std?: number[];
  layout?: "nchw" | "nhwc";
}

/** A decoded image: 8-bit samples, `channels` (1 gray or 3 RGB) interleaved. */
interface Pixels {
  width: number;
  height: number;
  channels: 1 | 3;
  data: Uint8Array;
}

/** Gray or RGB from fast-png's output, whatever its bit depth, palette or alpha. */
function fromPng(bytes: Uint8Array): Pixels {
  const png = decodePng(bytes);
  const { width, height } = png;
  if (png.palette) {
    const rgb = convertIndexedToRgb(png);
    const per = rgb.length / (width * height);
    return interleave(width, height, 3, (i, c) => rgb[i * per + c]);
  }
  const channels = png.channels, depth = png.depth, data = png.data;
  const color = channels >= 3 ? 3 : 1;
  let sample: (i: number, c: number) => number;
  if (depth === 16) {
    sample = (i, c) => Math.round(data[i * channels + c] / 257);
  } else if (depth === 8) {
    sample = (i, c) => data[i * channels + c];
  } else {
    // 1-, 2- or 4-bit gray: packed, each row starting on a byte.
    const rowBytes = Math.ceil((width * depth) / 8), max = (1 << depth) - 1;
    sample = (i) => {
      const y = Math.floor(i / width), x = i % width, bit = x * depth;
      const byte = data[y * rowBytes + (bit >> 3)];
      return Math.round((((byte >> (8 - depth - (bit & 7))) & max) * 255) / max);
    };
  }
  return interleave(width, height, color, sample);
}

function interleave(
  width: number,
  height: number,
  channels: 1 | 3,
  sample: (i: number, c: number) => number,
) {
  const data = new Uint8Array(width * height * channels);
  for (let i = 0; i < width * height; i++) {
    for (let c = 0; c < channels; c++) data[i * channels + c] = sample(i, c);
  }
  return { width, height, channels, data };
}

function fromJpeg(bytes: Uint8Array): Pixels {
  const { width, height, data } = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true });
  return interleave(width, height, 3, (i, c) => data[i * 4 + c]);
}

/** Decodes a PNG or JPEG by its content; `name` is for errors. */
function decodeImage(bytes: Uint8Array, name: string): Pixels {
  try {
    if (hasPngSignature(bytes)) return fromPng(bytes);
    if (bytes[0] === 0xff && bytes[1] === 0xd8) return fromJpeg(bytes);
  } catch (e) {
    throw new CliError(`cannot decode the image ${name} (${(e as Error).message})`);
  }
  throw new CliError(`${name} is neither a PNG nor a JPEG file`);
}

/** The image's channel `c` of `want` (1 gray, 3 colour) at pixel i, 0–255. */
function channel(p: Pixels, i: number, c: number, want: 1 | 3): number {
  if (p.channels === want) return p.data[i * want + c];
  if (want === 3) return p.data[i]; // gray to each of R, G, B
  const r = p.data[i * 3], g = p.data[i * 3 + 1], b = p.data[i * 3 + 2];
  return 0.299 * r + 0.587 * g + 0.114 * b;
}

/** Bilinear resampling of one plane (half-pixel centres, edges clamped). */
function resizePlane(src: Float64Array, w: number, h: number, tw: number, th: number): Float64Array {
  const out = new Float64Array(tw * th);
  for (let y = 0; y < th; y++) {
    const sy = Math.min(Math.max((y + 0.5) * (h / th) - 0.5, 0), h - 1);
    const y0 = Math.floor(sy), y1 = Math.min(y0 + 1, h - 1), fy = sy - y0;
    for (let x = 0; x < tw; x++) {
      const sx = Math.min(Math.max((x + 0.5) * (w / tw) - 0.5, 0), w - 1);
      const x0 = Math.floor(sx), x1 = Math.min(x0 + 1, w - 1), fx = sx - x0;
      const top = src[y0 * w + x0] * (1 - fx) + src[y0 * w + x1] * fx;
      const bottom = src[y1 * w + x0] * (1 - fx) + src[y1 * w + x1] * fx;
      out[y * tw + x] = top * (1 - fy) + bottom * fy;
    }
  }
  return out;
}

/** A static dimension of the model's input, if the shape has one there. */
function dim(input: ValueInfo, axis: number): number | undefined {
  const d = input.shape?.[axis];
  return typeof d === "number" && d > 0 ? d : undefined;
}

/** The layout, channel count and size the model's input asks for, as far as its shape tells. */
export function inputGeometry(input: ValueInfo, pre: Preprocessing) {
  const rank = input.shape?.length ?? 4;
  if (rank !== 4) {
    throw new CliError(
      `the model's input "${input.name}" has rank ${rank}; images calibrate models whose input is [N, C, H, W] or [N, H, W, C]`,
    );
  }
  const nhwcShape = !([1, 3].includes(dim(input, 1) ?? 0)) && [1, 3].includes(dim(input, 3) ?? 0);
  const layout = pre.layout ?? (nhwcShape ? "nhwc" : "nchw");
  const [cAxis, hAxis, wAxis] = layout === "nchw" ? [1, 2, 3] : [3, 1, 2];
  const c = dim(input, cAxis) ?? 3;
  if (c !== 1 && c !== 3) {
    throw new CliError(
      `the model's input "${input.name}" has ${c} channels; images give 1 (gray) or 3 (colour)`,
    );
  }
  const size = pre.size ??
    (dim(input, wAxis) && dim(input, hAxis)
      ? [dim(input, wAxis)!, dim(input, hAxis)!] as [number, number]
      : undefined);
  return { layout, channels: c as 1 | 3, size };
}

/** The image files of a folder, by name. */
export async function imageFiles(rt: Runtime, dir: string): Promise<string[]> {
  const names = (await rt.readDir(dir))
    .filter((n) => IMAGE_EXTENSIONS.some((e) => n.toLowerCase().endsWith(e)) && !n.startsWith("."))
    .sort();
  if (names.length === 0) {
    throw new CliError(
      `${dir} holds no image (${IMAGE_EXTENSIONS.join(", ")}); give a folder of images or an .npz`,
    );
  }
  return names.map((n) => joinPath(dir, n));
}

/** The model input tensor of the first `limit` images of `dir`, preprocessed as above. */
export async function loadImages(
  rt: Runtime,
  dir: string,
  input: ValueInfo,
  pre: Preprocessing,
  limit = Infinity,
): Promise<Tensor> {
  const files = (await imageFiles(rt, dir)).slice(0, limit);
  const { layout, channels, size } = inputGeometry(input, pre);
  for (const [flag, values] of [["--mean", pre.mean], ["--std", pre.std]] as const) {
    if (values && values.length !== 1 && values.length !== channels) {
      throw new CliError(`${flag} has ${values.length} values; the model's input has ${channels} channels`);
    }
  }
  const mean = (c: number) => pre.mean?.[pre.mean.length === 1 ? 0 : c] ?? 0;
  const std = (c: number) => pre.std?.[pre.std.length === 1 ? 0 : c] ?? 1;
  let width = size?.[0] ?? 0, height = size?.[1] ?? 0;
  let data: Float32Array | undefined;
  for (let n = 0; n < files.length; n++) {
    const image = decodeImage(await rt.readFile(files[n]), files[n]);
    if (!data) {
      if (!size) [width, height] = [image.width, image.height];
      data = new Float32Array(files.length * channels * width * height);
    } else if (!size && (image.width !== width || image.height !== height)) {
      throw new CliError(
        `${files[n]} is ${image.width}×${image.height}, ${files[0]} ${width}×${height}: give --resize WxH`,
      );
    }
    const pixels = image.width * image.height, plane = width * height;
    for (let c = 0; c < channels; c++) {
      const source = channels === 3 && pre.channels === "bgr" ? 2 - c : c;
      let values: Float64Array = new Float64Array(pixels);
      for (let i = 0; i < pixels; i++) values[i] = channel(image, i, source, channels);
      if (image.width !== width || image.height !== height) {
        values = resizePlane(values, image.width, image.height, width, height);
      }
      const m = mean(c), s = std(c);
      for (let i = 0; i < plane; i++) {
        const v = (values[i] / 255 - m) / s;
        const at = layout === "nchw" ? ((n * channels + c) * plane + i) : ((n * plane + i) * channels + c);
        data[at] = v;
      }
    }
  }
  const shape = layout === "nchw"
    ? [files.length, channels, height, width]
    : [files.length, height, width, channels];
  return new Tensor(data!, shape);
}
