// Backward of Softmax, LogSoftmax, LayerNormalization, InstanceNormalization,
// MeanVarianceNormalization and LRN against float64 finite differences.
import { init } from "../mod.ts";
import { Tensor } from "../src/tensor.ts";
import { checkGradient, type Input, uniform } from "./grad-helpers.ts";

const f64 = (v: Input) => v as Float64Array;
const product = (xs: readonly number[]) => xs.reduce((a, b) => a * b, 1);

/** [outer, len, inner] around an axis; before opset 13 Softmax flattens to 2-D there. */
function around(shape: number[], axis: number, opset: number): [number, number, number] {
  const a = axis < 0 ? axis + shape.length : axis;
  if (opset < 13) return [product(shape.slice(0, a)), product(shape.slice(a)), 1];
  return [product(shape.slice(0, a)), shape[a], product(shape.slice(a + 1))];
}

function softmaxCase(op: string, shape: number[], axis: number | undefined, opset: number, seed: number) {
  const [outer, len, inner] = around(shape, axis ?? (opset >= 13 ? -1 : 1), opset);
  checkGradient({
    name: `${op} [${shape}] axis ${axis ?? "default"} (opset ${opset})`,
    op,
    opset,
    attributes: axis === undefined ? {} : { axis },
    inputs: [uniform(shape, seed, -3, 3)],
    reference: ([x]) => {
      const xd = f64(x), y = new Float64Array(xd.length);
      for (let o = 0; o < outer; o++) {
        for (let i = 0; i < inner; i++) {
          const at = (j: number) => (o * len + j) * inner + i;
          let sum = 0;
          for (let j = 0; j < len; j++) sum += Math.exp(xd[at(j)]);
          for (let j = 0; j < len; j++) {
            y[at(j)] = op === "LogSoftmax" ? xd[at(j)] - Math.log(sum) : Math.exp(xd[at(j)]) / sum;
          }
        }
      }
      return [y];
    },
  }, seed);
}

Deno.test("Softmax and LogSoftmax gradients: axes, negative axes, the 2-D coercion before opset 13", async () => {
  await init();
  let seed = 1;
  for (const op of ["Softmax", "LogSoftmax"]) {
    softmaxCase(op, [2, 3, 5], undefined, 13, seed++);
    softmaxCase(op, [2, 3, 5], 1, 13, seed++);
    softmaxCase(op, [2, 3, 4, 5], -3, 17, seed++);
    softmaxCase(op, [4, 6], 0, 13, seed++);
    softmaxCase(op, [2, 3, 4], undefined, 11, seed++);
    softmaxCase(op, [2, 3, 4], 2, 11, seed++);
  }
});

/** (x − mean)·r·scale + bias over groups of `size` contiguous elements; also the means and r. */
function normalized(
  x: Float64Array,
  size: number,
  eps: number,
  scale: (k: number, i: number) => number,
  bias: (k: number, i: number) => number,
): Float64Array[] {
  const count = x.length / size;
  const y = new Float64Array(x.length), means = new Float64Array(count), inv = new Float64Array(count);
  for (let k = 0; k < count; k++) {
    let mean = 0;
    for (let i = 0; i < size; i++) mean += x[k * size + i] / size;
    let variance = 0;
    for (let i = 0; i < size; i++) variance += (x[k * size + i] - mean) ** 2 / size;
    const r = 1 / Math.sqrt(variance + eps);
    for (let i = 0; i < size; i++) y[k * size + i] = (x[k * size + i] - mean) * r * scale(k, i) + bias(k, i);
    means[k] = mean;
    inv[k] = r;
  }
  return [y, means, inv];
}

/** Index into a parameter of `shape` broadcast to `to`, for flat position i of `to`. */
function broadcastAt(shape: number[], to: number[], i: number): number {
  let o = 0, rest = i;
  const index = to.map((_, d) => {
    const stride = product(to.slice(d + 1)), v = Math.floor(rest / stride);
    rest -= v * stride;
    return v;
  });
  shape.forEach((dim, j) => (o = o * dim + (dim === 1 ? 0 : index[to.length - shape.length + j])));
  return o;
}

function layerNormCase(
  name: string,
  shape: number[],
  axis: number,
  paramShapes: { scale: number[]; bias?: number[] },
  outputs: number,
  seed: number,
) {
  const a = axis < 0 ? axis + shape.length : axis, inner = shape.slice(a);
  const inputs: (Tensor | undefined)[] = [
    uniform(shape, seed, -2, 2),
    uniform(paramShapes.scale, seed + 1, 0.5, 1.5),
  ];
  if (paramShapes.bias) inputs.push(uniform(paramShapes.bias, seed + 2));
  checkGradient({
    name,
    op: "LayerNormalization",
    attributes: { axis, epsilon: 1e-3 },
    outputs,
    inputs,
    reference: ([x, s, b]) =>
      normalized(
        f64(x),
        product(inner),
        1e-3,
        (_, i) => f64(s)[broadcastAt(paramShapes.scale, inner, i)],
        (_, i) => (b ? f64(b)[broadcastAt(paramShapes.bias!, inner, i)] : 0),
      ).slice(0, outputs),
  }, seed);
}

Deno.test("LayerNormalization gradient: axes, broadcast scale and bias, the Mean and InvStdDev outputs", async () => {
  await init();
  layerNormCase("LayerNorm last axis", [2, 5, 8], -1, { scale: [8], bias: [8] }, 1, 1);
  layerNormCase("LayerNorm without bias", [3, 6], -1, { scale: [6] }, 1, 4);
  layerNormCase(
    "LayerNorm axis 1 of 3, scale [4] broadcast",
    [2, 3, 4],
    1,
    { scale: [4], bias: [3, 4] },
    1,
    7,
  );
  layerNormCase("LayerNorm with Mean and InvStdDev outputs", [2, 3, 4], -1, { scale: [4], bias: [4] }, 3, 10);
});

Deno.test("InstanceNormalization gradient", async () => {
  await init();
  const shape = [2, 3, 4, 5], c = 3, size = 20;
  checkGradient({
    name: "InstanceNormalization [2, 3, 4, 5]",
    op: "InstanceNormalization",
    attributes: { epsilon: 1e-3 },
    inputs: [uniform(shape, 1, -2, 2), uniform([c], 2, 0.5, 1.5), uniform([c], 3)],
    reference: ([x, s, b]) => [normalized(f64(x), size, 1e-3, (k) => f64(s)[k % c], (k) => f64(b)[k % c])[0]],
  });
});

Deno.test("MeanVarianceNormalization gradient: default and given axes", async () => {
  await init();
  for (const [shape, axes, seed] of [[[2, 3, 2, 2], [0, 2, 3], 1], [[2, 3, 4], [-1], 2]] as const) {
    const rank = shape.length, reduced = new Set(axes.map((a) => (a + rank) % rank));
    const kept = shape.map((d, i) => (reduced.has(i) ? 1 : d));
    checkGradient({
      name: `MeanVarianceNormalization [${shape}] axes [${axes}]`,
      op: "MeanVarianceNormalization",
      attributes: { axes: [...axes] },
      inputs: [uniform([...shape], seed, -2, 2)],
      reference: ([x]) => {
        const xd = f64(x), slots = product(kept), count = xd.length / slots;
        const slot = (i: number) => broadcastAt(kept, [...shape], i);
        const mean = new Float64Array(slots), variance = new Float64Array(slots);
        xd.forEach((v, i) => (mean[slot(i)] += v / count));
        xd.forEach((v, i) => (variance[slot(i)] += (v - mean[slot(i)]) ** 2 / count));
        return [xd.map((v, i) => (v - mean[slot(i)]) / (Math.sqrt(variance[slot(i)]) + 1e-9))];
      },
    }, seed);
  }
});

Deno.test("LRN gradient: odd and even sizes", async () => {
  await init();
  for (const [size, seed] of [[3, 1], [4, 2]]) {
    const shape = [2, 5, 2, 3], [n, c] = shape, inner = 6;
    const alpha = 0.3, beta = 0.75, bias = 1.5;
    checkGradient({
      name: `LRN size ${size}`,
      op: "LRN",
      attributes: { size, alpha, beta, bias },
      inputs: [uniform(shape, seed, -2, 2)],
      reference: ([x]) => {
        const xd = f64(x), y = new Float64Array(xd.length);
        const before = Math.floor((size - 1) / 2), after = Math.ceil((size - 1) / 2);
        for (let img = 0; img < n; img++) {
          for (let ch = 0; ch < c; ch++) {
            for (let i = 0; i < inner; i++) {
              let sum = 0;
              for (let k = Math.max(0, ch - before); k <= Math.min(c - 1, ch + after); k++) {
                sum += xd[(img * c + k) * inner + i] ** 2;
              }
              const at = (img * c + ch) * inner + i;
              y[at] = xd[at] / (bias + (alpha / size) * sum) ** beta;
            }
          }
        }
        return [y];
      },
    }, seed);
  }
});
