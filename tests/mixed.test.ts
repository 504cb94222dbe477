// Mixed precision (src/quant/mixed.ts, mixed-plan.ts, inspect.ts): the
// knapsack against brute force on small cases; the bytes it counts against
// the exported file's tensors; the sensitivity against the loss computed here
// from a quantize() that rounds that layer alone; sizeBytes against the size
// of the file written; the first/last-layer convention and per-layer
// overrides outside the budget; quantize() reports what it chose.
import assert from "node:assert/strict";
import { AttnroundError, init, loadModel, quantize, Tensor } from "../mod.ts";
import { readNpz } from "../src/data/npy.ts";
import { decodeModel } from "../src/onnx/codec.ts";
import { codingLengthReference } from "../src/kernels/coding-length.ts";
import { inspectMixedPrecision } from "../src/quant/inspect.ts";
import { layerRows } from "../src/quant/layers.ts";
import {
  allocateBytes,
  averageBitsBytes,
  codingLengthCosts,
  defaultCandidates,
  defaultEpsilonRule,
  layerStoredBytes,
  planBits,
  resolveMixedPrecision,
} from "../src/quant/mixed.ts";
import { measureSensitivity } from "../src/quant/mixed-plan.ts";
import { resolveOptions } from "../src/quant/options.ts";
import { quantizableLayers } from "../src/graph/partition.ts";
import { measureLayers } from "../src/quant/layers.ts";
import { imagesToInput, readFixture } from "./fixtures.ts";
import { randomInts } from "./kernels-helpers.ts";

const calibration = () => imagesToInput(readNpz(readFixture("calib.npz")).x);

/** The last `n` samples of t. */
function last(t: Tensor, n: number): Tensor {
  const per = t.size / t.shape[0];
  return new Tensor((t.data as Float32Array).slice((t.shape[0] - n) * per), [n, ...t.shape.slice(1)]);
}

/** Every choice of one option per item, by enumeration: the least cost within the budget (Infinity if none). */
function bruteForce(items: { cost: number[]; bytes: number[] }[], budget: number): number {
  let best = Infinity;
  const walk = (i: number, cost: number, bytes: number) => {
    if (bytes > budget) return;
    if (i === items.length) return void (best = Math.min(best, cost));
    items[i].cost.forEach((c, k) => walk(i + 1, cost + c, bytes + items[i].bytes[k]));
  };
  walk(0, 0, 0);
  return best;
}

Deno.test("allocateBytes: the least summed cost within the budget, as brute force finds it; undefined when nothing fits", () => {
  const rand = randomInts(7);
  for (let trial = 0; trial < 500; trial++) {
    const items = Array.from({ length: rand(1, 6) }, () => {
      const options = rand(1, 4);
      return {
        cost: Array.from({ length: options }, () => rand(0, 1000) / 10),
        bytes: Array.from({ length: options }, () => rand(1, 300)),
      };
    });
    const least = items.reduce((a, it) => a + Math.min(...it.bytes), 0);
    const most = items.reduce((a, it) => a + Math.max(...it.bytes), 0);
    const budget = rand(Math.max(0, least - 50), most + 50);
    const choice = allocateBytes(items, budget);
    const expected = bruteForce(items, budget);
    if (expected === Infinity) {
      assert.equal(choice, undefined, `trial ${trial}`);
      continue;
    }
    assert.ok(choice, `trial ${trial}: no choice within ${budget}`);
    const bytes = choice.reduce((a, k, i) => a + items[i].bytes[k], 0);
    const cost = choice.reduce((a, k, i) => a + items[i].cost[k], 0);
    assert.ok(bytes <= budget, `trial ${trial}: ${bytes} > ${budget}`);
    assert.ok(Math.abs(cost - expected) < 1e-9, `trial ${trial}: cost ${cost}, brute force ${expected}`);
    assert.deepEqual(allocateBytes(items, budget), choice, "deterministic");
  }
});

Deno.test("allocateBytes: on budgets beyond its byte grid it stays within the budget and near the optimum", () => {
  const rand = randomInts(11);
  for (let trial = 0; trial < 20; trial++) {
    const items = Array.from({ length: rand(2, 5) }, () => ({
      cost: [rand(100, 200), rand(40, 99), rand(0, 39)],
      bytes: [rand(1, 9) * 10_000_000, rand(10, 19) * 10_000_000, rand(20, 29) * 10_000_000],
    }));
    const least = items.reduce((a, it) => a + it.bytes[0], 0);
    const budget = least + rand(0, 400_000_000);
    const choice = allocateBytes(items, budget)!;
    const bytes = choice.reduce((a, k, i) => a + items[i].bytes[k], 0);
    assert.ok(bytes <= budget);
    // The grid loses at most one cell per item: a brute force with that much less finds no better.
    const cost = choice.reduce((a, k, i) => a + items[i].cost[k], 0);
    const cell = Math.ceil((budget - least) / Math.floor(2 ** 24 / items.length));
    assert.ok(cost <= bruteForce(items, budget - items.length * cell), `trial ${trial}`);
  }
});

Deno.test("mixedPrecision options: one budget, a known criterion and candidates; each bad input is INVALID_ARGUMENT naming it", () => {
  assert.deepEqual(resolveMixedPrecision({ averageBits: 3 }), {
    criterion: "sensitivity",
    candidates: [...defaultCandidates],
    averageBits: 3,
  });
  assert.deepEqual(
    resolveMixedPrecision({ sizeBytes: 1000, criterion: "coding-length", candidates: [4, 2, 4] }),
    {
      criterion: "coding-length",
      candidates: [2, 4],
      sizeBytes: 1000,
    },
  );
  const bad: [unknown, RegExp][] = [
    [5, /must be an object/],
    [{}, /needs one budget.*got neither/],
    [{ averageBits: 3, sizeBytes: 1000 }, /not both/],
    [{ averageBits: 3, criterion: "hessian" }, /criterion must be "sensitivity" or "coding-length"/],
    [{ averageBits: 1.5 }, /averageBits must be a number within the candidates' range \[2, 8\]/],
    [{ averageBits: 3.5, candidates: [4, 5] }, /range \[4, 5\]/],
    [{ averageBits: 3, candidates: [] }, /non-empty array/],
    [{ averageBits: 3, candidates: [1, 3] }, /integers from 2 to 8/],
    [{ sizeBytes: -1 }, /sizeBytes must be a positive whole number/],
    [{ sizeBytes: 10.5 }, /sizeBytes must be a positive whole number/],
    [{ averageBit: 3 }, /no option "averageBit"; did you mean "averageBits"/],
  ];
  for (const [option, message] of bad) {
    assert.throws(
      () => resolveMixedPrecision(option as never),
      (e) => e instanceof AttnroundError && e.code === "INVALID_ARGUMENT" && message.test(e.message),
      JSON.stringify(option),
    );
  }
});

Deno.test("codingLengthCosts: zero at the targets B + κ·(ρ − ρ̄), growing with the distance, weighted by parameters", () => {
  const layers = [{ parameters: 10, codingLengthPerWeight: 1 }, { parameters: 30, codingLengthPerWeight: 3 }];
  // ρ̄ = 2.5: targets 4 + ½·(1 − 2.5) = 3.25 and 4 + ½·0.5 = 4.25.
  const cost = codingLengthCosts(layers, 4, [3, 4, 5], 0.5);
  assert.deepEqual(cost[0], [10 * 0.25 ** 2, 10 * 0.75 ** 2, 10 * 1.75 ** 2]);
  assert.deepEqual(cost[1], [30 * 1.25 ** 2, 30 * 0.25 ** 2, 30 * 0.75 ** 2]);
});

Deno.test("planBits: first and last layer at 8 bits and overrides stay outside the budget; the allocation sets the others", () => {
  const layers = ["first", "a", "b", "c", "last"].map((name) => ({ name }));
  const plain = planBits(layers, { weightBits: 4, layers: {} });
  assert.deepEqual(plain.bits, [8, 4, 4, 4, 8]);
  assert.deepEqual(plain.source, ["first-last", "uniform", "uniform", "uniform", "first-last"]);
  const allocated = new Map([["a", 2], ["b", 8], ["c", 4]]);
  const mixed = planBits(
    layers,
    { weightBits: 4, layers: {}, mixedPrecision: { averageBits: 3 } },
    allocated,
  );
  assert.deepEqual(mixed.bits, [8, 2, 8, 4, 8]);
  const over = planBits(layers, {
    weightBits: 4,
    layers: { a: { weightBits: 6 }, last: { weightBits: 2 } },
    mixedPrecision: { averageBits: 3 },
  }, allocated);
  assert.deepEqual(over.source, ["first-last", "override", "mixed", "mixed", "override"]);
  assert.deepEqual(over.bits, [8, 6, 8, 4, 2]);
});

Deno.test("layerStoredBytes: the bytes of the levels, zero points and scales the exported file holds for each width", async () => {
  await init();
  const model = loadModel(readFixture("tiny_cnn_fmnist.onnx"));
  const name = quantizableLayers(model.graph)[1].name;
  for (const bits of [2, 3, 4, 5, 8]) {
    const q = await quantize(model, calibration(), {
      iterations: 0,
      activationBits: 4,
      holdout: 0,
      layers: { [name]: { weightBits: bits } },
    });
    const w = q.weights[1];
    const proto = decodeModel(q.toOnnx());
    const sizes = proto.graph.initializer.filter((t) => t.name.startsWith(`${w.layer.weight}_`))
      .reduce((a, t) => a + t.rawData!.length, 0);
    const m = w.rowsShape[0];
    assert.equal(sizes, layerStoredBytes(w.rows.length, m, bits, false), `${bits} bits`);
    assert.equal(q.report.layers[1].storedBytes, sizes);
    q.dispose();
  }
  // Uniform 2, 4 and 8 bits take exactly what averageBits 2, 4 and 8 allow.
  for (const b of [2, 4, 8]) {
    assert.equal(layerStoredBytes(1000, 10, b, false), averageBitsBytes(1000, 10, b));
  }
  assert.equal(layerStoredBytes(1000, 10, 3, false), layerStoredBytes(1000, 10, 4, false));
  assert.equal(layerStoredBytes(1000, 10, 2, true), layerStoredBytes(1000, 10, 8, false), "deploy: int8");
  model.dispose();
});

/** Mean KL(softmax(y) ‖ softmax(ŷ)) per row, in float64. */
function klRows(y: Tensor, yq: Tensor): number {
  const [n, c] = y.shape;
  let kl = 0;
  for (let r = 0; r < n; r++) {
    const p = [...(y.data as Float32Array).subarray(r * c, (r + 1) * c)].map(Math.exp);
    const q = [...(yq.data as Float32Array).subarray(r * c, (r + 1) * c)].map(Math.exp);
    const sp = p.reduce((a, b) => a + b, 0), sq = q.reduce((a, b) => a + b, 0);
    for (let j = 0; j < c; j++) kl += (p[j] / sp) * Math.log((p[j] / sp) / (q[j] / sq));
  }
  return kl / n;
}

Deno.test("measureSensitivity: each layer's loss at each width is the KL of a model with that layer alone rounded to nearest", async () => {
  await init();
  const model = loadModel(readFixture("resnet18_fmnist.onnx"));
  const held = last(calibration(), 16);
  const measured = measureLayers(model.graph);
  const picked = [measured[3], measured[10]];
  const candidates = [2, 4, 8];
  const o = resolveOptions({});
  const { cost, classifier } = measureSensitivity(model.graph, picked, candidates, held, o);
  assert.equal(classifier, true);
  const y = model.run({ input: held }).logits;
  for (const [i, l] of picked.entries()) {
    // quantize() with every other layer left in float, float activations, nearest rounding.
    for (const [k, bits] of candidates.entries()) {
      const others = measured.filter((m) => m !== l).map((m) => m.name);
      const q = await quantize(model, calibration(), {
        rounding: "nearest",
        activationBits: 32,
        holdout: 0,
        exclude: others,
        layers: { [l.name]: { weightBits: bits } },
      });
      const expected = klRows(y, q.run({ input: held }).logits);
      q.dispose();
      assert.ok(
        Math.abs(cost[i][k] - expected) <= 1e-4 * expected + 1e-9,
        `${l.name} at ${bits} bits: ${cost[i][k]} vs ${expected}`,
      );
    }
    // Fewer bits, more loss (far apart widths on these trained weights).
    assert.ok(cost[i][0] > cost[i][1] && cost[i][1] > cost[i][2], `${l.name}: ${cost[i]}`);
  }
  model.dispose();
});

Deno.test("quantize with mixedPrecision: the allocation's bits, within the byte budget, and the report's table", async () => {
  await init();
  const model = loadModel(readFixture("mobilenetv2_fmnist.onnx"));
  const calib = calibration();
  const settings = { activationBits: 32, iterations: 0, rounding: "nearest" as const, holdout: 32 };
  const mixedPrecision = { averageBits: 3, candidates: [2, 4, 8] };
  const q = await quantize(model, calib, { ...settings, mixedPrecision });
  const r = q.report, mp = r.mixedPrecision!;
  assert.equal(r.layers[0].weightBits, 8);
  assert.equal(r.layers.at(-1)!.weightBits, 8);
  assert.equal(mp.criterion, "sensitivity");
  assert.equal(mp.samples, 32);
  assert.equal(mp.costMeasure, "KL divergence of the outputs");
  assert.deepEqual(mp.candidates, [2, 4, 8]);
  assert.equal(mp.budgetLayers, r.layers.length - 2);
  const inBudget = r.layers.filter((l) => l.bitsFrom === "mixed");
  const budget = inBudget.reduce(
    (a, l) => a + averageBitsBytes(l.parameters, q.weights[r.layers.indexOf(l)].rowsShape[0], 3),
    0,
  );
  assert.equal(mp.budgetBytes, budget);
  assert.equal(mp.storedBytes, inBudget.reduce((a, l) => a + l.storedBytes, 0));
  assert.ok(mp.storedBytes <= budget && mp.storedBytes > 0.99 * budget, `${mp.storedBytes} of ${budget}`);
  // 3 bits on average from 2, 4 and 8: some layers below and some above.
  assert.ok(inBudget.some((l) => l.weightBits === 2) && inBudget.some((l) => l.weightBits > 3));
  mp.layers.forEach((l, i) => {
    assert.equal(l.name, inBudget[i].name);
    assert.equal(l.bytes, inBudget[i].storedBytes);
    assert.equal(l.cost.length, 3);
  });
  assert.deepEqual(r.settings.mixedPrecision, {
    criterion: "sensitivity",
    candidates: [2, 4, 8],
    averageBits: 3,
  });
  JSON.parse(JSON.stringify(r));
  q.dispose();

  // Sensitivity needs held-back samples; the coding length does not.
  await assert.rejects(
    () => quantize(model, calib, { ...settings, holdout: 0, mixedPrecision }),
    (e) => e instanceof AttnroundError && e.code === "INVALID_ARGUMENT" && /holdout is 0/.test(e.message),
  );
  const c = await quantize(model, calib, {
    ...settings,
    holdout: 0,
    mixedPrecision: { ...mixedPrecision, criterion: "coding-length" },
  });
  assert.equal(c.report.mixedPrecision!.criterion, "coding-length");
  assert.ok(c.report.mixedPrecision!.storedBytes <= budget);
  c.dispose();
  // A budget below the smallest widths, and the deploy form (every width int8), say what would work.
  await assert.rejects(
    () => quantize(model, calib, { ...settings, mixedPrecision: { averageBits: 3, candidates: [3, 4, 8] } }),
    /smallest widths take/,
  );
  await assert.rejects(
    () => quantize(model, calib, { ...settings, activationBits: 8, mixedPrecision }),
    /deploy form stores every width as int8/,
  );
  model.dispose();
});

Deno.test("quantize with mixedPrecision.sizeBytes: the exported file is no larger, and close to it", async () => {
  await init();
  const model = loadModel(readFixture("resnet18_fmnist.onnx"));
  const calib = calibration();
  const settings = { activationBits: 4, iterations: 0, rounding: "nearest" as const, holdout: 0 };
  const u4 = await quantize(model, calib, { ...settings, weightBits: 4 });
  const u2 = await quantize(model, calib, { ...settings, weightBits: 2 });
  const [big, small] = [u4.toOnnx().length, u2.toOnnx().length];
  u4.dispose(), u2.dispose();
  // Uniform 2 bits is the least the candidates reach; a size budget keeps a few bytes per layer for length prefixes.
  for (const size of [small + 200, Math.round((small + big) / 2), big, big + 12345]) {
    const q = await quantize(model, calib, {
      ...settings,
      mixedPrecision: { criterion: "coding-length", sizeBytes: size },
    });
    const bytes = q.toOnnx().length;
    assert.ok(bytes <= size, `${bytes} > ${size}`);
    assert.ok(bytes > 0.99 * size || size > big, `${bytes} leaves much of ${size}`);
    q.dispose();
  }
  await assert.rejects(
    () =>
      quantize(model, calib, {
        ...settings,
        mixedPrecision: { criterion: "coding-length", sizeBytes: 1000 },
      }),
    /below what the file holds besides the allocated layers/,
  );
  model.dispose();
});

Deno.test("inspectMixedPrecision: coding lengths, and the bits each budget gives by coding length or, with samples, sensitivity", async () => {
  await init();
  const model = loadModel(readFixture("mobilenetv2_fmnist.onnx"));
  const r = inspectMixedPrecision(model, { budgets: [2, 3, 4, 5.5] });
  const layers = quantizableLayers(model.graph);
  assert.equal(r.layers.length, layers.length);
  assert.equal(r.criterion, "coding-length");
  assert.equal(r.firstLastInBudget, false);
  r.budgets.forEach((budget, k) => {
    const inBudget = r.layers.filter((l) => l.bitsFrom === "mixed");
    assert.equal(inBudget.length, layers.length - 2);
    const bytes = inBudget.reduce((s, l) => s + layerStoredBytes(l.parameters, l.m, l.bits[k], false), 0);
    const allowed = inBudget.reduce((s, l) => s + averageBitsBytes(l.parameters, l.m, budget), 0);
    assert.ok(bytes <= allowed, `budget ${budget}: ${bytes} > ${allowed}`);
    assert.equal(r.layers[0].bits[k], 8);
    assert.equal(r.layers.at(-1)!.bits[k], 8);
  });
  // Coding lengths against the plain float64 reference with ε from the rule, computed here.
  for (const i of [0, 1, 5, layers.length - 1]) {
    const { rows, rowsShape } = layerRows(model.graph, layers[i]);
    const m = rowsShape[0], n = rows.length / m;
    const meanSquare = rows.reduce((s, v) => s + v * v, 0) / rows.length;
    const { scale, delta } = defaultEpsilonRule;
    const eps = scale === "coordinate"
      ? delta * Math.sqrt(n * meanSquare)
      : delta * Math.sqrt((n * meanSquare * m * n) / (m * Math.min(m, n)));
    const expected = codingLengthReference(rows, m, eps);
    const got = r.layers[i];
    assert.ok(
      Math.abs(got.codingLength - expected) <= 1e-4 * expected,
      `${got.name}: ${got.codingLength} vs ${expected}`,
    );
    assert.equal(got.codingLengthPerWeight, got.codingLength / (m * n));
    assert.deepEqual([got.m, got.n], [m, n]);
  }
  assert.throws(() => inspectMixedPrecision(model, { budgets: [1] }), AttnroundError);
  // With samples: sensitivity on the last quarter (at most 64), as quantize measures it.
  const calib = calibration();
  const s = inspectMixedPrecision(model, {
    budgets: [3],
    candidates: [2, 4, 8],
    calibration: last(calib, 128),
  });
  assert.equal(s.criterion, "sensitivity");
  assert.equal(s.samples, 32);
  const q = await quantize(model, last(calib, 128), {
    iterations: 0,
    rounding: "nearest",
    holdout: 64,
    mixedPrecision: { averageBits: 3, candidates: [2, 4, 8] },
  });
  assert.deepEqual(s.layers.map((l) => l.bits[0]), q.report.layers.map((l) => l.weightBits));
  assert.deepEqual(
    s.layers.filter((l) => l.sensitivity).map((l) => l.sensitivity),
    q.report.mixedPrecision!.layers.map((l) => l.cost),
  );
  q.dispose();
  model.dispose();
});
