// The M-LSD evaluation (zoo/mlsd.ts) without any model: the line-image
// generator, the decoding of score and offset maps, the structural distance,
// the matching and F1, on hand-made cases.
import assert from "node:assert/strict";
import {
  chooseThresholds,
  decodeSegments,
  f1Score,
  lineImage,
  matchSegments,
  mlsdF1,
  mlsdInput,
  type MlsdMaps,
  type ScoredSegment,
  type Segment,
  segmentGap,
  splitMaps,
  structuralDistance,
} from "../zoo/mlsd.ts";

const MAP = 160;

/** Maps that say exactly the given segments: one centre cell each, offsets to both ends. */
function perfectMaps(segments: readonly Segment[], score = 0.9): MlsdMaps {
  const scores = new Float32Array(MAP * MAP), offsets = new Float32Array(MAP * MAP * 4);
  for (const s of segments) {
    const cx = Math.round((s.x1 + s.x2) / 4), cy = Math.round((s.y1 + s.y2) / 4);
    const at = cy * MAP + cx;
    scores[at] = score;
    offsets.set([s.x1 / 2 - cx, s.y1 / 2 - cy, s.x2 / 2 - cx, s.y2 / 2 - cy], at * 4);
  }
  return { scores, offsets };
}

Deno.test("lineImage: the same seed gives the same image and segments, another seed others", () => {
  const a = lineImage(7), b = lineImage(7), c = lineImage(8);
  assert.deepEqual(a.segments, b.segments);
  assert.deepEqual(a.image.data, b.image.data);
  assert.notDeepEqual(a.segments, c.segments);
});

Deno.test("lineImage: 4–12 segments inside the margin, none within 8 px of another, pixels in [0, 255]", () => {
  for (let seed = 0; seed < 20; seed++) {
    const { image, segments } = lineImage(seed);
    assert.equal(image.data.length, 320 * 320 * 3);
    assert.ok(segments.length >= 4 && segments.length <= 12, `seed ${seed}: ${segments.length} segments`);
    for (const s of segments) {
      for (const v of [s.x1, s.y1, s.x2, s.y2]) assert.ok(v >= 8 && v <= 312);
      const length = Math.hypot(s.x2 - s.x1, s.y2 - s.y1);
      assert.ok(length >= 24 && length <= 240);
    }
    for (let i = 0; i < segments.length; i++) {
      for (let j = i + 1; j < segments.length; j++) assert.ok(segmentGap(segments[i], segments[j]) >= 8);
    }
    assert.ok(image.data.every((v) => v >= 0 && v <= 255 && Number.isInteger(v)));
  }
});

Deno.test("lineImage: without noise and clutter, the stroke is where the ground truth says", () => {
  for (let seed = 0; seed < 10; seed++) {
    const { image, segments } = lineImage(seed, {
      noise: [0, 0],
      texture: [0, 0],
      blobs: [0, 0],
      arcs: [0, 0],
      contrast: [60, 60],
      width: [2, 2],
    });
    const pixel = (x: number, y: number) => {
      const i = (Math.floor(y) * 320 + Math.floor(x)) * 3;
      return [image.data[i], image.data[i + 1], image.data[i + 2]];
    };
    for (const s of segments) {
      // Along the stroke, at a quarter and at three quarters, against 4 px to the side.
      const length = Math.hypot(s.x2 - s.x1, s.y2 - s.y1);
      const [nx, ny] = [-(s.y2 - s.y1) / length, (s.x2 - s.x1) / length];
      for (const t of [0.25, 0.75]) {
        const x = s.x1 + t * (s.x2 - s.x1), y = s.y1 + t * (s.y2 - s.y1);
        const on = pixel(x, y), off = pixel(x + 4 * nx, y + 4 * ny);
        const diff = Math.abs(on.reduce((a, v) => a + v, 0) - off.reduce((a, v) => a + v, 0)) / 3;
        assert.ok(diff > 20, `seed ${seed}: stroke at (${x.toFixed(1)}, ${y.toFixed(1)}) differs by ${diff}`);
      }
    }
  }
});

Deno.test("mlsdInput: NHWC with RGB as given and a fourth channel of ones", () => {
  const { image } = lineImage(3);
  const x = mlsdInput([image, image]);
  assert.deepEqual(x.shape, [2, 320, 320, 4]);
  const p = 320 * 100 + 37;
  assert.deepEqual([...x.data.subarray(p * 4, p * 4 + 4)], [...image.data.subarray(p * 3, p * 3 + 3), 1]);
  assert.equal(x.data[(320 * 320 + p) * 4 + 3], 1);
});

Deno.test("decodeSegments: a centre and its offsets give 2 · (cell + offset), best score first", () => {
  const scores = new Float32Array(MAP * MAP), offsets = new Float32Array(MAP * MAP * 4);
  scores[50 * MAP + 40] = 0.8;
  offsets.set([-10, -5, 10, 5], (50 * MAP + 40) * 4);
  scores[100 * MAP + 120] = 0.9;
  offsets.set([0, -20, 0, 20], (100 * MAP + 120) * 4);
  const got = decodeSegments(scores, offsets, MAP, { scoreThreshold: 0.1, minLength: 20 });
  assert.equal(got.length, 2);
  assert.deepEqual(
    got.map((s) => [s.x1, s.y1, s.x2, s.y2]),
    [[240, 160, 240, 240], [60, 90, 100, 110]],
  );
  assert.ok(Math.abs(got[0].score - 0.9) < 1e-6 && Math.abs(got[1].score - 0.8) < 1e-6);
});

Deno.test("decodeSegments: only 3×3 local maxima, above the score threshold, longer than the minimum, top k", () => {
  const scores = new Float32Array(MAP * MAP), offsets = new Float32Array(MAP * MAP * 4);
  const put = (x: number, y: number, score: number, half: number) => {
    scores[y * MAP + x] = score;
    offsets.set([-half, 0, half, 0], (y * MAP + x) * 4);
  };
  put(10, 10, 0.5, 20); // a maximum
  put(11, 10, 0.4, 20); // its neighbour: suppressed
  put(13, 10, 0.45, 20); // two cells away: a maximum of its own
  put(80, 80, 0.05, 20); // below the threshold
  put(120, 30, 0.7, 4); // 16 px long: too short for minLength 20
  put(0, 159, 0.6, 20); // in a corner: padding does not suppress it
  const got = decodeSegments(scores, offsets, MAP, { scoreThreshold: 0.1, minLength: 20 });
  assert.deepEqual(got.map((s) => s.score.toFixed(2)), ["0.60", "0.50", "0.45"]);
  assert.equal(decodeSegments(scores, offsets, MAP, { scoreThreshold: 0.1, minLength: 10 }).length, 4);
  assert.equal(decodeSegments(scores, offsets, MAP, { scoreThreshold: 0.55, minLength: 20 }).length, 1);
  // top k picks among the maxima before the thresholds, as pred_lines does: the two best are
  // 0.7 (too short) and 0.6.
  assert.equal(
    decodeSegments(scores, offsets, MAP, { scoreThreshold: 0.1, minLength: 20, topK: 2 }).length,
    1,
  );
  // Equal neighbours are both maxima (max-pool equality), as in the reference.
  put(60, 60, 0.3, 20);
  put(61, 60, 0.3, 20);
  assert.equal(decodeSegments(scores, offsets, MAP, { scoreThreshold: 0.1, minLength: 20 }).length, 5);
});

Deno.test("structuralDistance: sAP's squared endpoint distances on the 128×128 scale, either orientation", () => {
  const g = { x1: 100, y1: 100, x2: 200, y2: 100 };
  assert.equal(structuralDistance(g, g), 0);
  assert.equal(structuralDistance({ x1: 200, y1: 100, x2: 100, y2: 100 }, g), 0);
  // Both endpoints 5 px off at 320 px: 2 · (5 · 0.4)² = 8.
  const near = { x1: 105, y1: 100, x2: 200, y2: 105 };
  assert.ok(Math.abs(structuralDistance(near, g) - 8) < 1e-9);
  assert.ok(Math.abs(structuralDistance(near, g, 128) - 50) < 1e-9);
});

const scored = (s: Segment, score: number): ScoredSegment => ({ ...s, score });

Deno.test("matchSegments: one-to-one, greedy in score order; duplicates and misses count", () => {
  const a = { x1: 20, y1: 20, x2: 120, y2: 20 }, b = { x1: 20, y1: 200, x2: 20, y2: 300 };
  // 5 px off at both ends: distance 8, a match; 6 px: 11.52, not one.
  const near = (s: Segment, d: number) => ({ x1: s.x1 + d, y1: s.y1, x2: s.x2, y2: s.y2 + d });
  assert.deepEqual(matchSegments([scored(near(a, 5), 0.9)], [a, b]), {
    truePositives: 1,
    falsePositives: 0,
    falseNegatives: 1,
  });
  assert.deepEqual(matchSegments([scored(near(a, 6), 0.9)], [a, b]), {
    truePositives: 0,
    falsePositives: 1,
    falseNegatives: 2,
  });
  // Two detections of a: the better-scored one matches, the other is a false positive.
  const twice = matchSegments([scored(near(a, 4), 0.5), scored(a, 0.8), scored(b, 0.7)], [a, b]);
  assert.deepEqual(twice, { truePositives: 2, falsePositives: 1, falseNegatives: 0 });
  // A prediction whose nearest truth is taken falls back to the next one within the threshold.
  const c = { x1: 24, y1: 20, x2: 124, y2: 20 }, nearA = { x1: 21, y1: 20, x2: 121, y2: 20 };
  assert.equal(matchSegments([scored(a, 0.9), scored(nearA, 0.8)], [a, c]).truePositives, 2);
  assert.deepEqual(matchSegments([], [a]), { truePositives: 0, falsePositives: 0, falseNegatives: 1 });
});

Deno.test("f1Score sums the counts over images before dividing", () => {
  const s = f1Score([
    { truePositives: 3, falsePositives: 1, falseNegatives: 0 },
    { truePositives: 1, falsePositives: 0, falseNegatives: 3 },
  ]);
  assert.equal(s.precision, 4 / 5);
  assert.equal(s.recall, 4 / 7);
  assert.ok(Math.abs(s.f1 - (2 * (4 / 5) * (4 / 7)) / (4 / 5 + 4 / 7)) < 1e-12);
  assert.equal(f1Score([{ truePositives: 0, falsePositives: 0, falseNegatives: 0 }]).f1, 0);
});

Deno.test("generated images through maps that say exactly their segments give F1 = 1", () => {
  const truth: Segment[][] = [], maps: MlsdMaps[] = [];
  for (let seed = 100; seed < 110; seed++) {
    const { segments } = lineImage(seed);
    truth.push(segments);
    maps.push(perfectMaps(segments));
  }
  const score = mlsdF1(maps, truth, { scoreThreshold: 0.1, minLength: 0 });
  assert.equal(score.f1, 1);
  // Offsets moved by 3 map cells (6 px at each end): every segment is missed and wrong.
  const moved = maps.map((m) => ({ scores: m.scores, offsets: Float32Array.from(m.offsets, (v) => v + 3) }));
  assert.equal(mlsdF1(moved, truth, { scoreThreshold: 0.1, minLength: 0 }).f1, 0);
  // On the validation grid, thresholds at or below the scores keep the F1 at 1.
  const chosen = chooseThresholds(maps, truth);
  assert.equal(chosen.score.f1, 1);
  assert.ok(chosen.options.scoreThreshold < 0.9 && chosen.options.minLength < 24);
});

Deno.test("splitMaps cuts a batch's NHWC outputs per sample", () => {
  const scores = Float32Array.from({ length: 2 * MAP * MAP }, (_, i) => i);
  const offsets = Float32Array.from({ length: 2 * MAP * MAP * 4 }, (_, i) => -i);
  const [first, second] = splitMaps(scores, offsets, 2);
  assert.equal(first.scores.length, MAP * MAP);
  assert.equal(second.scores[0], MAP * MAP);
  assert.equal(second.offsets[0], -MAP * MAP * 4);
});
