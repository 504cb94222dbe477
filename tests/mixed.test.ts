// Mixed precision (src/quant/mixed.ts, src/quant/inspect.ts): the greedy
// allocation meets the budget on random layer sets, does not depend on the
// order of the layers, is deterministic and gives bits that grow with the
// coding length per weight; the first/last-layer convention and per-layer
// overrides stay outside the budget; quantize() reports what it chose.
import assert from "node:assert/strict";
import { AttnroundError, init, loadModel, quantize } from "../mod.ts";
import { readNpz } from "../src/data/npy.ts";
import { codingLengthReference } from "../src/kernels/coding-length.ts";
import { inspectMixedPrecision } from "../src/quant/inspect.ts";
import { layerRows } from "../src/quant/layers.ts";
import {
  allocateBits,
  type BudgetLayer,
  defaultCandidates,
  defaultEpsilonRule,
  planBits,
} from "../src/quant/mixed.ts";
import { quantizableLayers } from "../src/graph/partition.ts";
import { imagesToInput, readFixture } from "./fixtures.ts";
import { randomInts } from "./kernels-helpers.ts";

function randomLayers(rand: (lo: number, hi: number) => number, count: number): BudgetLayer[] {
  return Array.from({ length: count }, (_, i) => ({
    key: `layer${i}`,
    // From a few parameters to a million: a few huge layers must not break the budget.
    parameters: rand(1, 10) * 10 ** rand(0, 5),
    codingLengthPerWeight: rand(0, 4000) / 1000,
  }));
}

function shuffled<T>(items: T[], rand: (lo: number, hi: number) => number): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = rand(0, i);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

const used = (layers: BudgetLayer[], bits: number[]) =>
  layers.reduce((s, l, i) => s + bits[i] * l.parameters, 0);

Deno.test("allocateBits: meets Σ b·P ≤ B·Σ P on random layer sets, with no single step up left that fits", () => {
  const rand = randomInts(42);
  const candidateSets = [[...defaultCandidates], [2, 4, 8], [3, 4], [2, 3, 4, 5, 6, 7, 8]];
  for (let trial = 0; trial < 400; trial++) {
    const layers = randomLayers(rand, rand(1, 40));
    const candidates = candidateSets[trial % candidateSets.length];
    const lo = candidates[0], hi = candidates.at(-1)!;
    const budget = lo + (rand(0, 100) / 100) * (hi - lo);
    const bits = allocateBits(layers, budget, candidates);
    const total = layers.reduce((s, l) => s + l.parameters, 0);
    const spent = used(layers, bits);
    assert.ok(spent <= budget * total * (1 + 1e-12), `trial ${trial}: ${spent} > ${budget}·${total}`);
    bits.forEach((b) => assert.ok(candidates.includes(b), `bits ${b} not a candidate`));
    // Bits never decrease as ρ grows.
    for (let i = 0; i < layers.length; i++) {
      for (let k = 0; k < layers.length; k++) {
        if (layers[i].codingLengthPerWeight < layers[k].codingLengthPerWeight) {
          assert.ok(
            bits[i] <= bits[k],
            `trial ${trial}: ρ ${layers[i].codingLengthPerWeight} gets ${bits[i]} bits, ρ ${
              layers[k].codingLengthPerWeight
            } gets ${bits[k]}`,
          );
        }
      }
    }
    // The fix-up stops only when no layer can step up within the budget without
    // passing a layer of higher ρ.
    for (let i = 0; i < layers.length; i++) {
      const next = candidates.find((c) => c > bits[i]);
      if (next === undefined) continue;
      const fits = spent + (next - bits[i]) * layers[i].parameters <= budget * total * (1 + 1e-12);
      const monotone = layers.every((l, k) =>
        !(l.codingLengthPerWeight > layers[i].codingLengthPerWeight) || bits[k] >= next
      );
      assert.ok(!(fits && monotone), `trial ${trial}: layer ${i} could still step up to ${next}`);
    }
  }
});

Deno.test("allocateBits: the same layers in any order get the same bits; the same call the same result", () => {
  const rand = randomInts(7);
  for (let trial = 0; trial < 100; trial++) {
    const layers = randomLayers(rand, rand(2, 30));
    // Some equal ρ and equal sizes, so that ties are broken by key and not by position.
    if (layers.length > 3) {
      layers[1].codingLengthPerWeight = layers[0].codingLengthPerWeight;
      layers[1].parameters = layers[0].parameters;
    }
    const budget = 2 + rand(0, 600) / 100;
    const bits = allocateBits(layers, budget);
    assert.deepEqual(allocateBits(layers, budget), bits);
    const byKey = new Map(layers.map((l, i) => [l.key, bits[i]]));
    for (let k = 0; k < 3; k++) {
      const order = shuffled(layers, rand);
      const again = allocateBits(order, budget);
      order.forEach((l, i) => assert.equal(again[i], byKey.get(l.key), `trial ${trial}: ${l.key}`));
    }
  }
});

Deno.test("allocateBits: targets B + κ·(ρ − ρ̄) where they are candidates; equal ρ gives uniform bits", () => {
  const layer = (key: string, rho: number, parameters = 100) => ({
    key,
    parameters,
    codingLengthPerWeight: rho,
  });
  const c = [...defaultCandidates];
  // κ = 1, ρ̄ = 2.5: targets 3, 4, 5 → exactly 4 bits on average.
  assert.deepEqual(allocateBits([layer("a", 1.5), layer("b", 2.5), layer("c", 3.5)], 4, c, 1), [3, 4, 5]);
  // κ = 1/2 (the default) halves the distances: targets 3.5, 4, 4.5 → 3, 4, 4, then "c" steps up.
  assert.deepEqual(allocateBits([layer("a", 1.5), layer("b", 2.5), layer("c", 3.5)], 4), [3, 4, 5]);
  assert.deepEqual(allocateBits([layer("a", 2), layer("b", 2.5), layer("c", 3)], 4), [4, 4, 4]);
  assert.deepEqual(allocateBits([layer("a", 0.5), layer("b", 2.5), layer("c", 4.5)], 4), [3, 4, 5]);
  assert.deepEqual(allocateBits([layer("a", 3), layer("b", 3), layer("c", 3)], 3), [3, 3, 3]);
  // B = 3.5 with equal ρ: half the parameters can step up; the tie goes by key ("b" before "a",
  // as "a" would step down first).
  assert.deepEqual(allocateBits([layer("b", 3), layer("a", 3)], 3.5), [4, 3]);
  assert.deepEqual(allocateBits([layer("a", 3), layer("b", 3)], 3.5), [3, 4]);
  // ρ̄ ≈ 4.96: targets -0.96 and 3.04 round to 2 and 3; the slack then lifts the small layer to 3.
  assert.deepEqual(allocateBits([layer("small", 1, 10), layer("big", 5, 1000)], 3, c, 1), [3, 3]);
  // ρ̄ = 1.9: targets 2.6, 4.7, 4.7 round to 3, 5, 5, over the budget of 12·100; the layer furthest
  // above its target (0.4 against 0.3) steps down.
  assert.deepEqual(allocateBits([layer("a", 0.5), layer("b", 2.6), layer("c", 2.6)], 4, c, 1), [2, 5, 5]);
  assert.deepEqual(allocateBits([], 3), []);
  assert.deepEqual(allocateBits([layer("a", 1), layer("b", 9)], 2), [2, 2]);
  assert.deepEqual(allocateBits([layer("a", 1), layer("b", 9)], 8), [8, 8]);
});

Deno.test("allocateBits / options: averageBits outside the candidates' range or bad candidates are INVALID_ARGUMENT", () => {
  const layers = [{ key: "a", parameters: 10, codingLengthPerWeight: 1 }];
  const invalid = (e: unknown) => e instanceof AttnroundError && e.code === "INVALID_ARGUMENT";
  assert.throws(() => allocateBits(layers, 1.5), invalid);
  assert.throws(() => allocateBits(layers, 9), invalid);
  assert.throws(() => allocateBits(layers, NaN), invalid);
  assert.throws(() => allocateBits(layers, 3.5, [4, 5]), invalid);
  assert.throws(() => allocateBits(layers, 3, []), invalid);
  assert.throws(() => allocateBits(layers, 3, [1, 3]), invalid);
  assert.throws(() => allocateBits(layers, 3, [2.5, 4]), invalid);
  assert.throws(() => allocateBits(layers, 3, [2, 16]), invalid);
});

Deno.test("planBits: first and last layer at 8 bits and overrides stay outside the budget", () => {
  const layers = ["first", "a", "b", "c", "last"].map((name, i) => ({
    key: name,
    name,
    parameters: 100 * (i + 1),
    codingLengthPerWeight: [9, 1, 2, 3, 9][i],
  }));
  const plain = planBits(layers, { weightBits: 4, layers: {} });
  assert.deepEqual(plain.bits, [8, 4, 4, 4, 8]);
  assert.deepEqual(plain.source, ["first-last", "uniform", "uniform", "uniform", "first-last"]);
  const mixed = planBits(layers, { weightBits: 4, layers: {}, mixedPrecision: { averageBits: 3 } });
  assert.equal(mixed.bits[0], 8);
  assert.equal(mixed.bits[4], 8);
  const middle = layers.slice(1, 4);
  assert.deepEqual(mixed.bits.slice(1, 4), allocateBits(middle, 3));
  assert.ok(used(middle, mixed.bits.slice(1, 4)) <= 3 * 900);
  // An override wins, also over the edges, and leaves the budget to the others.
  const over = planBits(layers, {
    weightBits: 4,
    layers: { a: { weightBits: 6 }, last: { weightBits: 2 } },
    mixedPrecision: { averageBits: 3 },
  });
  assert.deepEqual(over.source, ["first-last", "override", "mixed", "mixed", "override"]);
  assert.equal(over.bits[1], 6);
  assert.equal(over.bits[4], 2);
  assert.deepEqual(over.bits.slice(2, 4), allocateBits(layers.slice(2, 4), 3));
});

Deno.test("inspectMixedPrecision: MobileNetV2's coding lengths and allocations meet each budget", async () => {
  await init();
  const model = loadModel(readFixture("mobilenetv2_fmnist.onnx"));
  const r = inspectMixedPrecision(model, { budgets: [2, 3, 4, 5.5] });
  const layers = quantizableLayers(model.graph);
  assert.equal(r.layers.length, layers.length);
  assert.equal(r.firstLastInBudget, false);
  r.budgets.forEach((budget, k) => {
    const inBudget = r.layers.filter((l) => l.bitsFrom === "mixed");
    assert.equal(inBudget.length, layers.length - 2);
    const p = inBudget.reduce((s, l) => s + l.parameters, 0);
    const b = inBudget.reduce((s, l) => s + l.bits[k] * l.parameters, 0);
    assert.ok(b <= budget * p * (1 + 1e-12), `budget ${budget}: average ${b / p}`);
    assert.ok(b / p > budget - 0.25, `budget ${budget}: average ${b / p} leaves too much unused`);
    assert.equal(r.layers[0].bits[k], 8);
    assert.equal(r.layers.at(-1)!.bits[k], 8);
    assert.equal(r.averageBits[k].inBudget, b / p);
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
  model.dispose();
});

Deno.test("quantize with mixedPrecision: tiny_cnn's middle layer gets the budget, the report says so", async () => {
  await init();
  const model = loadModel(readFixture("tiny_cnn_fmnist.onnx"));
  const calib = imagesToInput(readNpz(readFixture("calib.npz")).x);
  const settings = { activationBits: 32, iterations: 5, rounding: "nearest" as const, holdout: 0 };
  const q = await quantize(model, calib, {
    ...settings,
    weightBits: 6,
    mixedPrecision: { averageBits: 3.5 },
  });
  const r = q.report;
  // One layer in the budget: 3.5 bits cannot be met with 4, so it gets 3.
  assert.deepEqual(r.layers.map((l) => l.weightBits), [8, 3, 8]);
  assert.deepEqual(r.layers.map((l) => l.bitsFrom), ["first-last", "mixed", "first-last"]);
  assert.deepEqual(r.mixedPrecision, {
    averageBits: 3.5,
    candidates: [...defaultCandidates],
    firstLastInBudget: false,
    budgetLayers: 1,
    budgetParameters: r.layers[1].parameters,
    achievedAverageBits: 3,
  });
  assert.equal(q.weights[1].qmax - q.weights[1].qmin + 1, 2 ** 3);
  for (const l of r.layers) {
    assert.ok(l.codingLength > 0 && Number.isFinite(l.codingLength));
    assert.equal(l.codingLengthPerWeight, l.codingLength / l.parameters);
  }
  assert.deepEqual(r.settings.mixedPrecision, { averageBits: 3.5, candidates: [...defaultCandidates] });
  JSON.parse(JSON.stringify(r));
  q.dispose();
  // An override of the middle layer wins; nothing is left in the budget.
  const name = r.layers[1].name;
  const o = await quantize(model, calib, {
    ...settings,
    mixedPrecision: { averageBits: 2, candidates: [2, 4] },
    layers: { [name]: { weightBits: 5 } },
  });
  assert.deepEqual(o.report.layers.map((l) => l.weightBits), [8, 5, 8]);
  assert.equal(o.report.mixedPrecision!.budgetLayers, 0);
  o.dispose();
  // Without mixedPrecision the report has no such section, and the coding lengths all the same.
  const u = await quantize(model, calib, { ...settings, weightBits: 4 });
  assert.equal(u.report.mixedPrecision, undefined);
  assert.deepEqual(u.report.layers.map((l) => l.bitsFrom), ["first-last", "uniform", "first-last"]);
  assert.deepEqual(u.report.layers.map((l) => l.codingLength), r.layers.map((l) => l.codingLength));
  u.dispose();
  await assert.rejects(
    () => quantize(model, calib, { ...settings, mixedPrecision: { averageBits: 9 } }),
    (e) => e instanceof AttnroundError && e.code === "INVALID_ARGUMENT" && /averageBits/.test(e.message),
  );
});
