// Test fixtures live in tests/fixtures/ (see its README). Read through node:fs
// so the same test files run in Deno and in Node (tests/run-node.mjs keeps
// import.meta.url pointing at this file after bundling).
import { readFileSync } from "node:fs";
import { Tensor } from "../src/tensor.ts";

/** The bytes of tests/fixtures/NAME. */
export function readFixture(name: string): Uint8Array {
  return new Uint8Array(readFileSync(new URL(`./fixtures/${name}`, import.meta.url)));
}

/** Samples [start, start + count) of a float32 batch (first axis). */
export function rows(t: Tensor, start: number, count: number): Tensor {
  const per = t.size / t.shape[0];
  return new Tensor((t.data as Float32Array).slice(start * per, (start + count) * per), [
    count,
    ...t.shape.slice(1),
  ]);
}

/** uint8 images [N, H, W] → float32 [N, 1, H, W] in [0, 1]: the fixture models' input contract. */
export function imagesToInput(x: Tensor): Tensor {
  const pixels = x.data as Uint8Array;
  const data = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) data[i] = pixels[i] / 255;
  return new Tensor(data, [x.shape[0], 1, x.shape[1], x.shape[2]]);
}

/** The index of the largest value in each row of a [N, C] float tensor (first one on ties). */
export function argmaxRows(logits: Tensor): Int32Array {
  const [rows, classes] = logits.shape;
  const values = logits.data as Float32Array;
  const best = new Int32Array(rows);
  for (let n = 0; n < rows; n++) {
    for (let c = 1; c < classes; c++) {
      if (values[n * classes + c] > values[n * classes + best[n]]) best[n] = c;
    }
  }
  return best;
}
