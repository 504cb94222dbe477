// Calibration data in any of the accepted forms, checked and gathered into
// one float32 array of samples [N, ...sampleShape] for the model's input (a
// single tensor's own array, which the run reads while it lasts).
import { AttnroundError } from "../errors.ts";
import type { ValueInfo } from "../graph/ir.ts";
import { Tensor } from "../tensor.ts";

export type CalibrationInput = Tensor | Tensor[] | AsyncIterable<Tensor> | Iterable<Tensor>;

export interface CalibrationSet {
  data: Float32Array;
  sampleShape: number[];
  count: number;
}

function bad(message: string): never {
  throw new AttnroundError("INVALID_DATA", message);
}

/** Checks one batch (N first) against the model input and returns its samples' shape. */
function checkBatch(t: Tensor, input: ValueInfo, index: number): number[] {
  const where = index < 0 ? "the calibration tensor" : `calibration batch ${index}`;
  if (!(t instanceof Tensor)) bad(`${where} is not a Tensor`);
  if (t.dtype !== "float32") {
    bad(
      `${where} is ${t.dtype}; the model input "${input.name}" takes float32 (scale uint8 images to [0, 1] first)`,
    );
  }
  const expected = input.shape;
  if (expected && expected.length !== t.shape.length) {
    bad(
      `${where} has shape [${t.shape}]; the model input "${input.name}" has rank ${expected.length} ([${
        expected.map((d) => d ?? "?")
      }]), with the samples along the first axis`,
    );
  }
  expected?.forEach((d, i) => {
    if (i > 0 && typeof d === "number" && d !== t.shape[i]) {
      bad(
        `${where} has shape [${t.shape}], but the model input "${input.name}" needs [${
          expected.map((e) => e ?? "N")
        }]`,
      );
    }
  });
  const data = t.data as Float32Array;
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      bad(
        `${where} holds ${data[i]} at element ${i} (sample ${
          Math.floor(i / (data.length / t.shape[0]))
        }): calibration data must be finite`,
      );
    }
  }
  return t.shape.slice(1);
}

export async function collectCalibration(
  source: CalibrationInput,
  input: ValueInfo,
): Promise<CalibrationSet> {
  const batches: Tensor[] = [];
  if (source instanceof Tensor) {
    batches.push(source);
  } else if (source && typeof (source as AsyncIterable<Tensor>)[Symbol.asyncIterator] === "function") {
    for await (const t of source as AsyncIterable<Tensor>) batches.push(t);
  } else if (source && typeof (source as Iterable<Tensor>)[Symbol.iterator] === "function") {
    for (const t of source as Iterable<Tensor>) batches.push(t);
  } else {
    throw new AttnroundError(
      "INVALID_ARGUMENT",
      "calibration must be a Tensor with the samples along its first axis, an array of such Tensors, or an (async) iterable of them",
    );
  }
  let sampleShape: number[] | undefined;
  let count = 0;
  batches.forEach((t, i) => {
    const shape = checkBatch(t, input, source instanceof Tensor ? -1 : i);
    if (sampleShape && shape.join() !== sampleShape.join()) {
      bad(`calibration batch ${i} has samples of shape [${shape}], earlier ones [${sampleShape}]`);
    }
    sampleShape = shape;
    count += t.shape[0];
  });
  if (!sampleShape || count === 0) bad("the calibration set is empty: pass at least one sample");
  // One batch is read in place: a copy would double the largest thing a run holds.
  if (batches.length === 1) return { data: batches[0].data as Float32Array, sampleShape, count };
  const total = batches.reduce((n, t) => n + t.size, 0);
  let data: Float32Array;
  try {
    data = new Float32Array(total);
  } catch (cause) {
    throw new AttnroundError(
      "TOO_LARGE",
      `the calibration set (${count} samples, ${
        total * 4
      } bytes) is more than can be allocated: pass fewer samples`,
      { cause },
    );
  }
  let offset = 0;
  for (const t of batches) {
    data.set(t.data as Float32Array, offset);
    offset += t.size;
  }
  return { data, sampleShape, count };
}
