// Model inputs from the arrays of an .npz file: the array named "x" (else the
// first array other than "y") holds the samples along its first axis, "y" the
// labels if present. uint8 data is scaled by 1/255 into float32 and given the
// model input's layout: a missing channel axis (size 1) is inserted where the
// declared input shape has it.
import { argument, AttnroundError, isOptions } from "../errors.ts";
import { Tensor } from "../tensor.ts";

/** What the layout is taken from: a model input (a `ValueInfo` fits). */
export interface InputLayout {
  name: string;
  /** Declared dimensions: numbers, symbolic names, or undefined when unknown. */
  shape?: readonly (number | string | undefined)[];
}

export interface NpzInputOptions {
  /** The shape of one sample (without the leading N), for inputs whose declared shape does not tell it. */
  sampleShape?: readonly number[];
  /** Divide uint8 data by 255 (default true). */
  scaleUint8?: boolean;
}

export interface NpzInputs {
  /** float32 samples [N, ...sampleShape], ready to feed to the model input. */
  x: Tensor;
  /** The labels, as stored, when the archive holds an array "y" with one entry per sample. */
  y?: Tensor;
}

function bad(
  code: "INVALID_DATA" | "SHAPE_MISMATCH" | "INVALID_ARGUMENT" | "TOO_LARGE",
  message: string,
): never {
  throw new AttnroundError(code, message);
}

const show = (shape: readonly (number | string | undefined)[]) =>
  `[${shape.map((d) => d ?? "?").join(", ")}]`;

/**
 * Turns `readNpz(bytes)` into float32 inputs for `input` (a model input such
 * as `model.inputs[0]`) and the labels, if any. Throws AttnroundError naming
 * the array and what would work: INVALID_DATA for missing or unusable arrays,
 * SHAPE_MISMATCH when the samples do not fit the input, INVALID_ARGUMENT when
 * the input's declared shape cannot tell the layout and no `sampleShape` is given.
 */
export function inputsFromNpz(
  arrays: Record<string, Tensor>,
  input: InputLayout,
  options: NpzInputOptions = {},
): NpzInputs {
  argument(
    typeof arrays === "object" && arrays !== null,
    "inputsFromNpz takes the arrays readNpz returns, e.g. inputsFromNpz(readNpz(bytes), model.inputs[0])",
  );
  argument(
    typeof input === "object" && input !== null && typeof input.name === "string",
    "inputsFromNpz needs the model input the arrays are for, e.g. model.inputs[0]",
  );
  argument(
    isOptions(options),
    "inputsFromNpz's options must be an object such as { sampleShape: [1, 28, 28] }",
  );
  argument(
    options.sampleShape === undefined ||
      (Array.isArray(options.sampleShape) && options.sampleShape.every((d) => Number.isInteger(d) && d > 0)),
    `inputsFromNpz: sampleShape must be the dimensions of one sample, e.g. [1, 28, 28], got ${options.sampleShape}`,
  );
  const names = Object.keys(arrays);
  const xName = "x" in arrays ? "x" : names.find((n) => n !== "y");
  if (xName === undefined) {
    bad(
      "INVALID_DATA",
      `the .npz holds ${
        names.length === 0 ? "no arrays" : `only ${names.map((n) => `"${n}"`).join(", ")}`
      }: ` +
        `it needs the inputs as an array named "x" (samples along the first axis), and optionally labels "y"`,
    );
  }
  const raw = arrays[xName];
  if (!(raw instanceof Tensor)) bad("INVALID_ARGUMENT", `arrays["${xName}"] is not a Tensor`);
  if (raw.shape.length < 1 || raw.shape[0] === 0) {
    bad("INVALID_DATA", `array "${xName}" of shape ${show(raw.shape)} holds no samples`);
  }
  const n = raw.shape[0];
  const x = new Tensor(
    toFloat32(raw, xName, options.scaleUint8 ?? true),
    layout(raw.shape, xName, input, options),
  );

  let y: Tensor | undefined;
  if ("y" in arrays) {
    y = arrays.y;
    if (!(y instanceof Tensor) || y.shape[0] !== n) {
      bad(
        "INVALID_DATA",
        `labels "y" of shape ${show(y?.shape ?? [])} do not match the ${n} samples of "${xName}"`,
      );
    }
  }
  return y ? { x, y } : { x };
}

/** A float32 array for array `name`, or TOO_LARGE when the runtime cannot allocate it. */
function allocated(name: string, length: number): Float32Array {
  try {
    return new Float32Array(length);
  } catch {
    return bad(
      "TOO_LARGE",
      `array "${name}" needs ${length * 4} bytes as float32, more than can be allocated`,
    );
  }
}

function toFloat32(t: Tensor, name: string, scaleUint8: boolean): Float32Array {
  switch (t.dtype) {
    case "float32":
      return t.data as Float32Array;
    case "float64": {
      const out = allocated(name, t.size);
      out.set(t.data as Float64Array);
      return out;
    }
    case "uint8": {
      const pixels = t.data as Uint8Array;
      const out = allocated(name, pixels.length);
      const k = scaleUint8 ? 1 / 255 : 1;
      for (let i = 0; i < pixels.length; i++) out[i] = pixels[i] * k;
      return out;
    }
    default:
      return bad(
        "INVALID_DATA",
        `array "${name}" is ${t.dtype}; inputs must be float32, float64 or uint8 (images, scaled by 1/255)`,
      );
  }
}

/** The shape [N, ...] the samples take for `input`. */
function layout(
  shape: readonly number[],
  name: string,
  input: InputLayout,
  options: NpzInputOptions,
): number[] {
  const n = shape[0];
  const sampleSize = shape.slice(1).reduce((a, b) => a * b, 1);
  if (options.sampleShape) {
    const wanted = [n, ...options.sampleShape];
    if (options.sampleShape.reduce((a, b) => a * b, 1) !== sampleSize) {
      bad(
        "SHAPE_MISMATCH",
        `array "${name}" of shape ${show(shape)} cannot take the sample shape ${show(options.sampleShape)}`,
      );
    }
    return fit(wanted, name, shape, input);
  }
  const declared = input.shape;
  if (!declared) {
    bad(
      "INVALID_ARGUMENT",
      `the model does not declare the shape of its input "${input.name}", so the layout of array "${name}" ` +
        `${show(shape)} cannot be told: pass the shape of one sample (e.g. sampleShape: [1, ${
          shape.slice(1).join(", ")
        }])`,
    );
  }
  if (declared.length === shape.length) return fit([...shape], name, shape, input);
  if (declared.length === shape.length + 1) {
    // A missing channel axis of size 1: wherever the declared shape allows it, preferring axis 1 (NCHW).
    const fits = [];
    for (let axis = 1; axis < declared.length; axis++) {
      const candidate = [...shape.slice(0, axis), 1, ...shape.slice(axis)];
      if (consistent(candidate, declared)) fits.push(candidate);
    }
    if (fits.length === 1) return fits[0];
    if (fits.length > 1) {
      bad(
        "INVALID_ARGUMENT",
        `array "${name}" ${show(shape)} lacks an axis of input "${input.name}" ${show(declared)}, whose ` +
          `dynamic dimensions do not tell where the channel axis goes: pass the shape of one sample ` +
          `(e.g. sampleShape: [1, ${shape.slice(1).join(", ")}])`,
      );
    }
  }
  return bad(
    "SHAPE_MISMATCH",
    `array "${name}" of shape ${show(shape)} does not fit input "${input.name}" ${show(declared)}`,
  );
}

function consistent(shape: readonly number[], declared: readonly (number | string | undefined)[]): boolean {
  return shape.length === declared.length &&
    declared.every((d, i) => i === 0 || typeof d !== "number" || d === shape[i]);
}

function fit(wanted: number[], name: string, shape: readonly number[], input: InputLayout): number[] {
  if (input.shape && !consistent(wanted, input.shape)) {
    bad(
      "SHAPE_MISMATCH",
      `array "${name}" of shape ${show(shape)} does not fit input "${input.name}" ${show(input.shape)}` +
        (wanted.join() !== shape.join() ? ` (as ${show(wanted)})` : ""),
    );
  }
  return wanted;
}
