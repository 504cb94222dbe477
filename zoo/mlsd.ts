// M-LSD on a task with exact answers (SPEC §12, "Quality on a real task"):
// seeded images of drawn line segments, the standard decoding of M-LSD's
// centre-score and offset maps into segments, and matched-segment F1.
//
// The decoding is navervision/mlsd's pred_lines (utils.py) for the maps that
// jp.keijiro.mlsd's ONNX files give: `scores` [1, 160, 160, 1] is already
// sigmoid(centre) with the non-maxima of a 3×3 max-pool set to 0, and
// `offsets` [1, 160, 160, 4] holds (dx_start, dy_start, dx_end, dy_end) in
// map cells. Centres are the 3×3 local maxima (taken again here, which changes
// nothing on those maps), the top 200 by score, kept when the score exceeds a
// threshold and the segment is longer than a minimum; a map cell (x, y) and its
// offsets give a segment in input pixels as 2 · (x + dx, y + dy).
//
// Nothing here runs a model: the module is plain arithmetic, so the tests
// check it without the zoo.

/** A line segment, endpoints in input pixels (x right, y down; pixel (i, j) covers [i, i+1) × [j, j+1)). */
export interface Segment {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

/** A decoded segment with the centre score it came from. */
export interface ScoredSegment extends Segment {
  score: number;
}

/** An RGB image, row-major HWC, values in [0, 255]. */
export interface RgbImage {
  width: number;
  height: number;
  data: Float32Array;
}

/** mulberry32: a small seeded generator of uniform numbers in [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const clamp = (v: number, lo: number, hi: number) => (v < lo ? lo : v > hi ? hi : v);
const segmentLength = (s: Segment) => Math.hypot(s.x2 - s.x1, s.y2 - s.y1);

// ---------------------------------------------------------------- generator

/** How the generator draws; the defaults are what the evaluation uses. */
export interface LineImageOptions {
  size: number;
  /** Segments per image, inclusive. */
  segments: [number, number];
  /** Segment length in pixels. */
  length: [number, number];
  /** Stroke width in pixels. */
  width: [number, number];
  /** Grey-level difference between stroke and background. */
  contrast: [number, number];
  /** Small filled discs that are not segments. */
  blobs: [number, number];
  /** Circular arcs (curves, not segments): radius 20–80 px, 60–180° of it. */
  arcs: [number, number];
  /** Amplitude of a smooth texture (a few random waves) over the background, grey levels. */
  texture: [number, number];
  /** Standard deviation of the Gaussian pixel noise, drawn per image. */
  noise: [number, number];
  /** Endpoints stay this far inside the image. */
  margin: number;
  /** Smallest distance between two segments, and between a disc and a segment. */
  gap: number;
}

export const lineImageDefaults: Readonly<LineImageOptions> = Object.freeze<LineImageOptions>({
  size: 320,
  segments: [4, 12],
  length: [24, 240],
  width: [1, 5],
  contrast: [16, 160],
  blobs: [0, 8],
  arcs: [0, 4],
  texture: [0, 24],
  noise: [0, 24],
  margin: 8,
  gap: 8,
});

/** Smallest distance from point (px, py) to segment s. */
function pointToSegment(px: number, py: number, s: Segment): number {
  const dx = s.x2 - s.x1, dy = s.y2 - s.y1;
  const t = clamp(((px - s.x1) * dx + (py - s.y1) * dy) / (dx * dx + dy * dy || 1), 0, 1);
  return Math.hypot(px - (s.x1 + t * dx), py - (s.y1 + t * dy));
}

/** Whether segments a and b cross (proper or touching intersection). */
function intersects(a: Segment, b: Segment): boolean {
  const side = (px: number, py: number, s: Segment) =>
    Math.sign((s.x2 - s.x1) * (py - s.y1) - (s.y2 - s.y1) * (px - s.x1));
  return side(a.x1, a.y1, b) * side(a.x2, a.y2, b) <= 0 && side(b.x1, b.y1, a) * side(b.x2, b.y2, a) <= 0;
}

/** Smallest distance between two segments. */
export function segmentGap(a: Segment, b: Segment): number {
  if (intersects(a, b)) return 0;
  return Math.min(
    pointToSegment(a.x1, a.y1, b),
    pointToSegment(a.x2, a.y2, b),
    pointToSegment(b.x1, b.y1, a),
    pointToSegment(b.x2, b.y2, a),
  );
}

/** Blends colour `rgb` into the image with per-pixel coverage given by `alpha(x + ½, y + ½)` over a box. */
function paint(
  image: RgbImage,
  box: [number, number, number, number],
  rgb: readonly number[],
  alpha: (x: number, y: number) => number,
): void {
  const [x0, y0, x1, y1] = [
    Math.max(0, Math.floor(box[0])),
    Math.max(0, Math.floor(box[1])),
    Math.min(image.width - 1, Math.ceil(box[2])),
    Math.min(image.height - 1, Math.ceil(box[3])),
  ];
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const a = alpha(x + 0.5, y + 0.5);
      if (a <= 0) continue;
      const i = (y * image.width + x) * 3;
      for (let c = 0; c < 3; c++) image.data[i + c] += (rgb[c] - image.data[i + c]) * a;
    }
  }
}

/**
 * A seeded image of drawn line segments and the segments themselves, exactly.
 * With the defaults: a background of one colour with a linear gradient and a
 * smooth texture of a few waves (up to ±24 grey levels); 4–12 straight strokes
 * (lengths 24–240 px, any angle, widths 1–5 px, anti-aliased, flat ends, each
 * 16–160 grey levels lighter or darker than the background); as clutter that
 * is not a segment, up to 8 small discs and up to 4 circular arcs; then
 * Gaussian noise (σ up to 24). Strokes neither cross nor come within 8 px of
 * each other or of the clutter (one that would is drawn elsewhere): M-LSD,
 * trained on wireframes, ends segments at junctions, so a crossing would make
 * the ground truth depend on that convention.
 */
export function lineImage(
  seed: number,
  options: Partial<LineImageOptions> = {},
): { image: RgbImage; segments: Segment[] } {
  const o = { ...lineImageDefaults, ...options };
  const next = seededRandom(seed);
  const uniform = ([lo, hi]: [number, number]) => lo + (hi - lo) * next();
  const integer = ([lo, hi]: [number, number]) => lo + Math.floor(next() * (hi - lo + 1));
  const size = o.size;
  const image: RgbImage = { width: size, height: size, data: new Float32Array(size * size * 3) };

  const base = [0, 1, 2].map(() => 40 + 175 * next());
  const slope = [0, 1, 2].map(() => (next() - 0.5) * 80 / size);
  const direction = next() * 2 * Math.PI;
  const [gx, gy] = [Math.cos(direction), Math.sin(direction)];
  const amplitude = uniform(o.texture) / 3;
  const waves = [0, 1, 2].map(() => {
    const angle = next() * 2 * Math.PI, k = (2 * Math.PI) / uniform([40, 160]);
    return { kx: k * Math.cos(angle), ky: k * Math.sin(angle), phase: next() * 2 * Math.PI };
  });
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const along = (x - size / 2) * gx + (y - size / 2) * gy;
      let texture = 0;
      for (const w of waves) texture += amplitude * Math.sin(w.kx * x + w.ky * y + w.phase);
      for (let c = 0; c < 3; c++) image.data[(y * size + x) * 3 + c] = base[c] + slope[c] * along + texture;
    }
  }
  const grey = (base[0] + base[1] + base[2]) / 3;
  const colourAgainst = (contrast: number) => {
    // Lighter or darker, whichever has room; each channel jittered by up to ±20.
    const sign = grey + contrast <= 255 && (grey - contrast < 0 || next() < 0.5) ? 1 : -1;
    return base.map((b) => clamp(b + sign * contrast + (next() - 0.5) * 40, 0, 255));
  };

  const segments: Segment[] = [];
  const wanted = integer(o.segments);
  for (let attempt = 0; segments.length < wanted && attempt < 1000; attempt++) {
    const length = uniform(o.length), angle = next() * Math.PI;
    const cx = uniform([o.margin, size - o.margin]), cy = uniform([o.margin, size - o.margin]);
    const dx = (Math.cos(angle) * length) / 2, dy = (Math.sin(angle) * length) / 2;
    const s = { x1: cx - dx, y1: cy - dy, x2: cx + dx, y2: cy + dy };
    const inside = (v: number) => v >= o.margin && v <= size - o.margin;
    if (!inside(s.x1) || !inside(s.y1) || !inside(s.x2) || !inside(s.y2)) continue;
    if (segments.some((t) => segmentGap(s, t) < o.gap)) continue;
    segments.push(s);
  }
  const clear = (x: number, y: number, r: number) =>
    segments.every((s) => pointToSegment(x, y, s) >= r + o.gap);

  // Clutter first, so that strokes are drawn over it.
  const blobs = integer(o.blobs);
  for (let b = 0; b < blobs; b++) {
    const r = uniform([2, 6]), cx = uniform([0, size]), cy = uniform([0, size]);
    if (!clear(cx, cy, r)) continue;
    const rgb = colourAgainst(uniform(o.contrast));
    paint(
      image,
      [cx - r - 1, cy - r - 1, cx + r + 1, cy + r + 1],
      rgb,
      (x, y) => clamp(r + 0.5 - Math.hypot(x - cx, y - cy), 0, 1),
    );
  }
  const arcs = integer(o.arcs);
  for (let a = 0; a < arcs; a++) {
    const radius = uniform([20, 80]), cx = uniform([0, size]), cy = uniform([0, size]);
    const start = next() * 2 * Math.PI, sweep = uniform([Math.PI / 3, Math.PI]);
    const width = uniform(o.width), rgb = colourAgainst(uniform(o.contrast));
    const steps = Math.ceil((radius * sweep) / 2);
    const points = Array.from({ length: steps + 1 }, (_, k) => {
      const phi = start + (sweep * k) / steps;
      return [cx + radius * Math.cos(phi), cy + radius * Math.sin(phi)];
    });
    if (!points.every(([x, y]) => clear(x, y, width / 2))) continue;
    paint(
      image,
      [cx - radius - width, cy - radius - width, cx + radius + width, cy + radius + width],
      rgb,
      (x, y) => {
        const phi = (Math.atan2(y - cy, x - cx) - start + 4 * Math.PI) % (2 * Math.PI);
        if (phi > sweep) return 0;
        return clamp(width / 2 + 0.5 - Math.abs(Math.hypot(x - cx, y - cy) - radius), 0, 1);
      },
    );
  }
  for (const s of segments) {
    const width = uniform(o.width), rgb = colourAgainst(uniform(o.contrast));
    const length = segmentLength(s);
    const [ux, uy] = [(s.x2 - s.x1) / length, (s.y2 - s.y1) / length];
    const pad = width / 2 + 1;
    const box: [number, number, number, number] = [
      Math.min(s.x1, s.x2) - pad,
      Math.min(s.y1, s.y2) - pad,
      Math.max(s.x1, s.x2) + pad,
      Math.max(s.y1, s.y2) + pad,
    ];
    paint(image, box, rgb, (x, y) => {
      const t = (x - s.x1) * ux + (y - s.y1) * uy; // along the segment
      const across = Math.abs((x - s.x1) * uy - (y - s.y1) * ux);
      return clamp(width / 2 + 0.5 - across, 0, 1) * clamp(0.5 + Math.min(t, length - t), 0, 1);
    });
  }

  const sigma = uniform(o.noise);
  for (let i = 0; i < image.data.length; i += 2) {
    // Box–Muller: two Gaussian values per pair of uniforms.
    const r = sigma * Math.sqrt(-2 * Math.log(1 - next())), phi = 2 * Math.PI * next();
    image.data[i] = clamp(Math.round(image.data[i] + r * Math.cos(phi)), 0, 255);
    if (i + 1 < image.data.length) {
      image.data[i + 1] = clamp(Math.round(image.data[i + 1] + r * Math.sin(phi)), 0, 255);
    }
  }
  return { image, segments };
}

/**
 * M-LSD's input for a batch of images: NHWC [N, H, W, 4], RGB in [0, 255] and
 * a fourth channel of ones (navervision/mlsd's np.ones; the graph scales to
 * [-1, 1] itself).
 */
export function mlsdInput(images: readonly RgbImage[]): { data: Float32Array; shape: number[] } {
  const { width, height } = images[0];
  const data = new Float32Array(images.length * height * width * 4);
  images.forEach((image, n) => {
    for (let p = 0; p < width * height; p++) {
      const o = (n * width * height + p) * 4;
      data[o] = image.data[p * 3];
      data[o + 1] = image.data[p * 3 + 1];
      data[o + 2] = image.data[p * 3 + 2];
      data[o + 3] = 1;
    }
  });
  return { data, shape: [images.length, height, width, 4] };
}

// ---------------------------------------------------------------- decoding

export interface DecodeOptions {
  /** A centre is kept when its score is above this (pred_lines' score_thr). */
  scoreThreshold: number;
  /** …and its segment longer than this, in input pixels (pred_lines' dist_thr is in map cells, half of it). */
  minLength: number;
  /** Centres considered, best first (the model's top-k). */
  topK: number;
}

export const decodeDefaults: Readonly<DecodeOptions> = Object.freeze({
  scoreThreshold: 0.1,
  minLength: 20,
  topK: 200,
});

/**
 * Segments from one sample's maps: `scores` [H·W] and `offsets` [H·W·4]
 * (row-major, NHWC), on a map of `mapSize` cells at half the input
 * resolution. Sorted by score, best first.
 */
export function decodeSegments(
  scores: ArrayLike<number>,
  offsets: ArrayLike<number>,
  mapSize: number,
  options: Partial<DecodeOptions> = {},
): ScoredSegment[] {
  const o = { ...decodeDefaults, ...options };
  const centres: { at: number; score: number }[] = [];
  for (let y = 0; y < mapSize; y++) {
    for (let x = 0; x < mapSize; x++) {
      const s = scores[y * mapSize + x];
      if (!(s > 0)) continue;
      // 3×3 max-pool with "same" padding: a centre equals the largest score around it.
      let max = s;
      for (let v = Math.max(0, y - 1); v <= Math.min(mapSize - 1, y + 1); v++) {
        for (let u = Math.max(0, x - 1); u <= Math.min(mapSize - 1, x + 1); u++) {
          max = Math.max(max, scores[v * mapSize + u]);
        }
      }
      if (s === max) centres.push({ at: y * mapSize + x, score: s });
    }
  }
  centres.sort((a, b) => b.score - a.score || a.at - b.at);
  const segments: ScoredSegment[] = [];
  for (const { at, score } of centres.slice(0, o.topK)) {
    if (!(score > o.scoreThreshold)) continue;
    const x = at % mapSize, y = Math.floor(at / mapSize);
    const [dx1, dy1, dx2, dy2] = [0, 1, 2, 3].map((k) => offsets[at * 4 + k]);
    const segment = { x1: 2 * (x + dx1), y1: 2 * (y + dy1), x2: 2 * (x + dx2), y2: 2 * (y + dy2), score };
    if (segmentLength(segment) > o.minLength) segments.push(segment);
  }
  return segments;
}

// ---------------------------------------------------------------- matching and F1

/**
 * The structural distance of LCNN's sAP (Zhou et al., 2019), which the M-LSD
 * paper reports: the sum of the squared distances between corresponding
 * endpoints, in the better of the two orientations, measured after scaling
 * the image to 128×128.
 */
export function structuralDistance(a: Segment, b: Segment, imageSize = 320): number {
  const k = 128 / imageSize;
  const d2 = (x1: number, y1: number, x2: number, y2: number) => ((x1 - x2) * k) ** 2 + ((y1 - y2) * k) ** 2;
  const same = d2(a.x1, a.y1, b.x1, b.y1) + d2(a.x2, a.y2, b.x2, b.y2);
  const swapped = d2(a.x1, a.y1, b.x2, b.y2) + d2(a.x2, a.y2, b.x1, b.y1);
  return Math.min(same, swapped);
}

/**
 * sAP¹⁰'s threshold: a match when the structural distance is at most 10 on
 * the 128×128 scale, i.e. 62.5 px² at 320×320 (an RMS endpoint error of
 * 5.6 px).
 */
export const matchThreshold = 10;

export interface MatchCounts {
  truePositives: number;
  falsePositives: number;
  falseNegatives: number;
}

/**
 * One-to-one matching, greedy in score order as sAP's is: each prediction,
 * best score first, takes the nearest ground-truth segment not yet taken if
 * it lies within the threshold, else it is a false positive. A second
 * detection of a segment already matched is therefore a false positive.
 */
export function matchSegments(
  predicted: readonly ScoredSegment[],
  truth: readonly Segment[],
  options: { threshold?: number; imageSize?: number } = {},
): MatchCounts {
  const threshold = options.threshold ?? matchThreshold;
  const taken = new Array<boolean>(truth.length).fill(false);
  let truePositives = 0;
  const order = [...predicted].sort((a, b) => b.score - a.score);
  for (const p of order) {
    let best = -1, bestDistance = Infinity;
    truth.forEach((g, j) => {
      if (taken[j]) return;
      const d = structuralDistance(p, g, options.imageSize);
      if (d < bestDistance) [best, bestDistance] = [j, d];
    });
    if (best >= 0 && bestDistance <= threshold) {
      taken[best] = true;
      truePositives++;
    }
  }
  return {
    truePositives,
    falsePositives: predicted.length - truePositives,
    falseNegatives: truth.length - truePositives,
  };
}

export interface F1Score extends MatchCounts {
  precision: number;
  recall: number;
  f1: number;
}

/** Precision, recall and F1 (in [0, 1]) from counts summed over a set of images. */
export function f1Score(counts: readonly MatchCounts[]): F1Score {
  const sum = (key: keyof MatchCounts) => counts.reduce((a, c) => a + c[key], 0);
  const tp = sum("truePositives"), fp = sum("falsePositives"), fn = sum("falseNegatives");
  const precision = tp + fp ? tp / (tp + fp) : 0, recall = tp + fn ? tp / (tp + fn) : 0;
  return {
    truePositives: tp,
    falsePositives: fp,
    falseNegatives: fn,
    precision,
    recall,
    f1: precision + recall ? (2 * precision * recall) / (precision + recall) : 0,
  };
}

/** One sample's maps, as a model gives them. */
export interface MlsdMaps {
  scores: ArrayLike<number>;
  offsets: ArrayLike<number>;
}

/** F1 over a set of images, decoding each sample's maps with `options`. */
export function mlsdF1(
  maps: readonly MlsdMaps[],
  truth: readonly Segment[][],
  options: Partial<DecodeOptions>,
  mapSize = 160,
): F1Score {
  return f1Score(
    maps.map((m, i) =>
      matchSegments(decodeSegments(m.scores, m.offsets, mapSize, options), truth[i], {
        imageSize: 2 * mapSize,
      })
    ),
  );
}

/** The decoding thresholds tried on the validation images. */
export const thresholdGrid: { scoreThreshold: number[]; minLength: number[] } = {
  scoreThreshold: [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6],
  minLength: [0, 10, 20, 30, 40],
};

/**
 * The thresholds of the grid with the best F1 on the given (validation)
 * images; ties go to the earlier, lower, thresholds.
 */
export function chooseThresholds(
  maps: readonly MlsdMaps[],
  truth: readonly Segment[][],
  grid = thresholdGrid,
  mapSize = 160,
): { options: DecodeOptions; score: F1Score } {
  let best: { options: DecodeOptions; score: F1Score } | undefined;
  for (const scoreThreshold of grid.scoreThreshold) {
    for (const minLength of grid.minLength) {
      const options = { ...decodeDefaults, scoreThreshold, minLength };
      const score = mlsdF1(maps, truth, options, mapSize);
      if (!best || score.f1 > best.score.f1) best = { options, score };
    }
  }
  return best!;
}

/** Splits a batch's NHWC outputs into per-sample maps. */
export function splitMaps(scores: Float32Array, offsets: Float32Array, count: number): MlsdMaps[] {
  const cells = scores.length / count;
  return Array.from({ length: count }, (_, n) => ({
    scores: scores.slice(n * cells, (n + 1) * cells),
    offsets: offsets.slice(n * cells * 4, (n + 1) * cells * 4),
  }));
}

/**
 * Seed ranges of the generated images: calibration (quantization) from 0,
 * validation (where the decoding thresholds are chosen) from 1,000, test
 * (where F1 is reported) from 2,000. They never overlap in any run here.
 */
export const mlsdSeeds = Object.freeze({ calibration: 0, validation: 1000, test: 2000 });

/**
 * The generator's options for an image of another size: lengths, margin and
 * gap scaled by size / 320 (widths, contrast and noise kept), so that other
 * zoo models can be fed images of the same kind.
 */
export function lineImageOptionsFor(size: number): Partial<LineImageOptions> {
  const k = size / lineImageDefaults.size;
  const [shortest, longest] = lineImageDefaults.length;
  return {
    size,
    length: [Math.max(8, shortest * k), longest * k],
    margin: Math.max(2, lineImageDefaults.margin * k),
    gap: Math.max(3, lineImageDefaults.gap * k),
  };
}
