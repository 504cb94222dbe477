// A quantization report as one self-contained HTML page: inline CSS and SVG
// plots, no script, nothing fetched. A pure function of the report (web
// standard only), for the command line and for library users alike.
import { argument, AttnroundError, isOptions } from "../errors.ts";
import type { LayerReport, QuantizationReport } from "../quant/quantized-model.ts";

export interface HtmlReportOptions {
  /** Page title; defaults to "attnround quantization report". */
  title?: string;
  /** What was quantized (e.g. the model's file name), shown under the title. */
  model?: string;
  /** Top-1 accuracy (fractions) on labelled data, when the caller measured it. */
  accuracy?: { samples: number; float?: number; quantized?: number };
  /** File sizes in bytes, when known. */
  sizes?: { floatModel?: number; quantizedModel?: number; npz?: number };
}

/** Per-layer coding length fields, which older reports lack. */
type LayerWithCoding = LayerReport & {
  codingLength?: number;
  codingLengthPerWeight?: number;
  bitsFrom?: string;
};

const WIDTH = 920;
const COLORS = {
  bits: "#4e79a7",
  coding: "#f28e2b",
  nearest: "#e15759",
  final: "#59a14f",
  axis: "#555",
  grid: "#e4e4e4",
};

function esc(text: unknown): string {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function num(v: number | undefined, digits = 3): string {
  if (v === undefined || !Number.isFinite(v)) return "–";
  if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5)) return v.toExponential(digits - 1);
  return Number(v.toPrecision(digits)).toString();
}

function bytes(n: number | undefined): string {
  if (n === undefined) return "–";
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 ** 2).toFixed(2)} MiB`;
}

const percent = (v: number | undefined) => v === undefined ? "–" : `${(100 * v).toFixed(2)} %`;

/** A layer name short enough for an axis label: its last two path parts without the op type. */
function shortName(name: string): string {
  let parts = name.replace(/^\//, "").split("/").filter(Boolean);
  if (parts.length > 1 && /^(Conv|ConvTranspose|Gemm|MatMul)(_\d+)?$/.test(parts.at(-1)!)) parts.pop();
  // Exporters repeat module paths ("layer2/layer2.0/downsample/downsample.0"): keep the longer of each pair.
  parts = parts.filter((p, i) => i === parts.length - 1 || !parts[i + 1].startsWith(p));
  const short = parts.slice(-2).join("/") || name;
  return short.length > 22 ? "…" + short.slice(-21) : short;
}

/** About `count` round tick values from lo up to the first one at or above hi. */
function ticks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) hi = lo + 1;
  const raw = (hi - lo) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * magnitude).find((s) => s >= raw)!;
  const out: number[] = [];
  const last = Math.ceil(hi / step - 1e-9) * step;
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= last + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}

interface Frame {
  left: number;
  top: number;
  width: number;
  height: number;
}

function svgOpen(plot: string, height: number, label: string): string {
  return `<svg data-plot="${plot}" role="img" aria-label="${esc(label)}" viewBox="0 0 ${WIDTH} ${height}" ` +
    `width="${WIDTH}" height="${height}" xmlns="http://www.w3.org/2000/svg">`;
}

/** Horizontal grid lines with labels on the left (or right) of the frame. */
function yAxis(
  f: Frame,
  values: number[],
  y: (v: number) => number,
  format: (v: number) => string,
  side = "left",
) {
  const x = side === "left" ? f.left - 6 : f.left + f.width + 6;
  const anchor = side === "left" ? "end" : "start";
  return values.map((v) =>
    (side === "left"
      ? `<line x1="${f.left}" x2="${f.left + f.width}" y1="${y(v)}" y2="${y(v)}" stroke="${COLORS.grid}"/>`
      : "") +
    `<text x="${x}" y="${y(v) + 4}" text-anchor="${anchor}" class="tick">${esc(format(v))}</text>`
  ).join("");
}

function frameBox(f: Frame): string {
  return `<path d="M${f.left} ${f.top}V${f.top + f.height}H${
    f.left + f.width
  }" fill="none" stroke="${COLORS.axis}"/>`;
}

function axisTitle(text: string, x: number, y: number, rotate = false, color = COLORS.axis): string {
  const transform = rotate ? ` transform="rotate(-90 ${x} ${y})"` : "";
  return `<text x="${x}" y="${y}" text-anchor="middle" class="axis-title" fill="${color}"${transform}>${
    esc(text)
  }</text>`;
}

function legend(items: [string, string][], x: number, y: number): string {
  let at = x;
  return items.map(([color, text]) => {
    const s = `<rect x="${at}" y="${y - 9}" width="12" height="12" fill="${color}"/>` +
      `<text x="${at + 16}" y="${y + 1}" class="tick">${esc(text)}</text>`;
    at += 28 + text.length * 6.5;
    return s;
  }).join("");
}

/** Category labels under the x axis, rotated when there are many. */
function categoryLabels(f: Frame, names: string[], center: (i: number) => number): string {
  const rotate = names.length > 8;
  return names.map((n, i) => {
    const x = center(i), y = f.top + f.height + 14;
    return rotate
      ? `<text x="${x}" y="${y}" transform="rotate(-55 ${x} ${y})" text-anchor="end" class="tick">${
        esc(n)
      }</text>`
      : `<text x="${x}" y="${y}" text-anchor="middle" class="tick">${esc(n)}</text>`;
  }).join("");
}

function labelSpace(names: string[]): number {
  return names.length > 8 ? Math.min(150, 20 + 5.2 * Math.max(...names.map((n) => n.length))) : 30;
}

/** Weight bits per layer (bars) and coding length per weight ρ (points, right axis). */
export function bitsPlot(layers: LayerWithCoding[]): string {
  const names = layers.map((l, i) => `${i + 1} ${shortName(l.name)}`);
  const f: Frame = { left: 56, top: 34, width: WIDTH - 56 - 64, height: 200 };
  const height = f.top + f.height + labelSpace(names);
  const slot = f.width / Math.max(layers.length, 1);
  const center = (i: number) => f.left + slot * (i + 0.5);
  const maxBits = Math.max(8, ...layers.map((l) => l.weightBits));
  const yBits = (b: number) => f.top + f.height - (b / maxBits) * f.height;
  const bars = layers.map((l, i) =>
    `<rect class="bar" x="${center(i) - slot * 0.35}" y="${yBits(l.weightBits)}" width="${slot * 0.7}" ` +
    `height="${f.height - (yBits(l.weightBits) - f.top)}" fill="${COLORS.bits}">` +
    `<title>${esc(l.name)}: ${l.weightBits}-bit weights, ${l.parameters} parameters</title></rect>`
  ).join("");
  const withRho = layers.map((l, i) => [i, l.codingLengthPerWeight] as const).filter((
    p,
  ): p is [number, number] => p[1] !== undefined);
  let coding = "";
  if (withRho.length) {
    const rhoTicks = ticks(0, Math.max(...withRho.map(([, r]) => r)) * 1.05, 4);
    const top = rhoTicks.at(-1)!;
    const yRho = (r: number) => f.top + f.height - (r / top) * f.height;
    coding = `<path class="line" d="${
      withRho.map(([i, r], k) => `${k ? "L" : "M"}${center(i)} ${yRho(r)}`).join("")
    }" ` +
      `fill="none" stroke="${COLORS.coding}" stroke-width="2"/>` +
      withRho.map(([i, r]) =>
        `<circle cx="${center(i)}" cy="${yRho(r)}" r="3.5" fill="${COLORS.coding}"><title>${
          esc(layers[i].name)
        }: ρ = ${num(r)} bits per weight, L = ${num(layers[i].codingLength)} bits</title></circle>`
      ).join("") +
      yAxis(f, rhoTicks, yRho, (v) =>
        num(v, 2), "right") +
      axisTitle("coding length per weight ρ (bits)", WIDTH - 12, f.top + f.height / 2, true, COLORS.coding);
  }
  const items: [string, string][] = [[COLORS.bits, "weight bits"]];
  if (withRho.length) items.push([COLORS.coding, "coding length per weight ρ"]);
  else coding = `<text x="${f.left + 120}" y="17" class="note">(no coding lengths in this report)</text>`;
  return svgOpen("bits", height, "weight bits and coding length per layer") +
    yAxis(f, ticks(0, maxBits, 4), yBits, (v) => String(v)) + bars + coding + frameBox(f) +
    axisTitle("weight bits", 14, f.top + f.height / 2, true) + categoryLabels(f, names, center) +
    legend(items, f.left, 16) + "</svg>";
}

/** Reconstruction loss over the iterations, one line per block, log scale. */
export function lossPlot(blocks: QuantizationReport["blocks"]): string {
  const f: Frame = { left: 70, top: 34, width: WIDTH - 70 - 150, height: 240 };
  const height = f.top + f.height + 44;
  const curves = blocks.filter((b) => b.losses.some((v) => v > 0 && Number.isFinite(v)));
  if (curves.length === 0) {
    return svgOpen("loss", 80, "reconstruction loss per block") +
      `<text x="20" y="44" class="note">No block was reconstructed (rounding to nearest, or 0 iterations): no loss curves.</text></svg>`;
  }
  const positive = curves.flatMap((b) => b.losses.filter((v) => v > 0 && Number.isFinite(v)));
  const lo = Math.floor(Math.log10(Math.min(...positive))), hi = Math.ceil(Math.log10(Math.max(...positive)));
  const top = hi > lo ? hi : lo + 1;
  const maxIter = Math.max(...curves.map((b) => (b.losses.length - 1) * b.lossEvery), 1);
  const x = (it: number) => f.left + (it / maxIter) * f.width;
  const y = (v: number) => f.top + f.height - ((Math.log10(v) - lo) / (top - lo)) * f.height;
  const decades = Array.from({ length: top - lo + 1 }, (_, i) => 10 ** (lo + i));
  const color = (k: number) => `hsl(${Math.round((k * 300) / Math.max(curves.length, 1))} 65% 45%)`;
  const lines = curves.map((b, k) => {
    const points = b.losses.map((v, i) => [x(i * b.lossEvery), y(Math.max(v, 10 ** lo))]);
    return `<path class="line" d="${
      points.map(([px, py], i) => `${i ? "L" : "M"}${px.toFixed(1)} ${py.toFixed(1)}`).join("")
    }" ` +
      `fill="none" stroke="${color(k)}" stroke-width="1.6"><title>block ${b.index + 1}: loss ${
        num(b.losses[0])
      } → ${num(b.losses.at(-1))}</title></path>`;
  }).join("");
  const key = curves.map((b, k) => {
    const ky = f.top + 6 + k * Math.min(16, f.height / curves.length);
    return `<rect x="${f.left + f.width + 16}" y="${ky - 8}" width="14" height="3" fill="${color(k)}"/>` +
      `<text x="${f.left + f.width + 34}" y="${ky - 3}" class="tick">block ${b.index + 1}</text>`;
  }).join("");
  return svgOpen("loss", height, "reconstruction loss per block over the iterations") +
    yAxis(f, decades, y, (v) => v.toExponential(0)) +
    ticks(0, maxIter, 6).filter((it) => it <= maxIter).map((it) =>
      `<text x="${x(it)}" y="${f.top + f.height + 16}" text-anchor="middle" class="tick">${it}</text>`
    ).join("") + lines + frameBox(f) + key +
    axisTitle("iteration", f.left + f.width / 2, height - 6) +
    axisTitle("block output MSE (log)", 16, f.top + f.height / 2, true) + "</svg>";
}

/** Relative weight error ‖ŵ − w‖/‖w‖ per layer: rounding to nearest beside the final rounding. */
export function weightErrorPlot(layers: LayerReport[]): string {
  const names = layers.map((l, i) => `${i + 1} ${shortName(l.name)}`);
  const f: Frame = { left: 64, top: 34, width: WIDTH - 64 - 20, height: 200 };
  const height = f.top + f.height + labelSpace(names);
  const slot = f.width / Math.max(layers.length, 1);
  const center = (i: number) => f.left + slot * (i + 0.5);
  const scale = ticks(
    0,
    Math.max(1e-6, ...layers.flatMap((l) => [l.weightError.nearest, l.weightError.final])) * 1.05,
    4,
  );
  const top = scale.at(-1)!;
  const y = (v: number) => f.top + f.height - (v / top) * f.height;
  const bar = (i: number, v: number, offset: number, color: string, what: string) =>
    `<rect class="bar" x="${center(i) + offset * slot * 0.38}" y="${y(v)}" width="${slot * 0.36}" ` +
    `height="${f.top + f.height - y(v)}" fill="${color}"><title>${esc(layers[i].name)}: ${what} ${
      num(v)
    }</title></rect>`;
  const bars = layers.map((l, i) =>
    bar(i, l.weightError.nearest, -1, COLORS.nearest, "nearest") +
    bar(i, l.weightError.final, 0, COLORS.final, "final")
  ).join("");
  return svgOpen("weight-error", height, "relative weight error per layer, nearest and final rounding") +
    yAxis(f, scale, y, (v) => num(v, 2)) + bars + frameBox(f) +
    axisTitle("‖ŵ − w‖ / ‖w‖", 16, f.top + f.height / 2, true) + categoryLabels(f, names, center) +
    legend(
      [[COLORS.nearest, "round to nearest (before)"], [COLORS.final, "final rounding (after)"]],
      f.left,
      16,
    ) +
    "</svg>";
}

/** Fidelity and accuracy as labelled bars, each on its own scale. */
export function fidelityPlot(report: QuantizationReport, options: HtmlReportOptions): string {
  const rows: { label: string; value: number; max: number; text: string; color: string }[] = [];
  const fid = report.fidelity;
  const acc = options.accuracy;
  if (acc?.float !== undefined) {
    rows.push({
      label: `float top-1 (${acc.samples} samples)`,
      value: acc.float,
      max: 1,
      text: percent(acc.float),
      color: "#76b7b2",
    });
  }
  if (acc?.quantized !== undefined) {
    rows.push({
      label: `quantized top-1 (${acc.samples} samples)`,
      value: acc.quantized,
      max: 1,
      text: percent(acc.quantized),
      color: COLORS.bits,
    });
  }
  if (fid?.top1Agreement !== undefined) {
    rows.push({
      label: `top-1 agreement with float (${fid.samples} held back)`,
      value: fid.top1Agreement,
      max: 1,
      text: percent(fid.top1Agreement),
      color: fid.ok ? COLORS.final : COLORS.nearest,
    });
  }
  if (fid) {
    rows.push({
      label: "output SNR against float (dB)",
      value: Math.max(0, fid.snrDb),
      max: Math.max(40, fid.snrDb),
      text: `${fid.snrDb.toFixed(1)} dB`,
      color: fid.ok ? COLORS.final : COLORS.nearest,
    });
  }
  const t = report.totals;
  const quantBytes = options.sizes?.quantizedModel ?? t.quantizedWeightBytes;
  rows.push({
    label: options.sizes?.quantizedModel
      ? "quantized model / float model size"
      : "quantized / float weight bytes",
    value: quantBytes / (options.sizes?.floatModel ?? t.floatBytes),
    max: 1,
    text: `${bytes(quantBytes)} of ${bytes(options.sizes?.floatModel ?? t.floatBytes)}`,
    color: COLORS.coding,
  });
  const rowHeight = 34, left = 300, barWidth = WIDTH - left - 150;
  const height = 16 + rows.length * rowHeight;
  return svgOpen("fidelity", height, "fidelity and accuracy summary") + rows.map((r, i) => {
    const y = 10 + i * rowHeight;
    const w = Math.max(1, Math.min(1, r.value / r.max) * barWidth);
    return `<text x="${left - 10}" y="${y + 16}" text-anchor="end" class="label">${esc(r.label)}</text>` +
      `<rect x="${left}" y="${y}" width="${barWidth}" height="22" fill="#f1f1f1"/>` +
      `<rect class="bar" x="${left}" y="${y}" width="${w}" height="22" fill="${r.color}"/>` +
      `<text x="${left + barWidth + 10}" y="${y + 16}" class="label">${esc(r.text)}</text>`;
  }).join("") + "</svg>";
}

function table(head: string[], rows: (string | number)[][], numeric: boolean[] = []): string {
  return `<table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead><tbody>` +
    rows.map((r) =>
      `<tr>${r.map((c, i) => `<td${numeric[i] ? ' class="num"' : ""}>${esc(c)}</td>`).join("")}</tr>`
    ).join("") + "</tbody></table>";
}

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:24px auto;max-width:960px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;margin:0 0 12px}.status{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff;font-weight:600}
.ok{background:#3a8a3a}.bad{background:#c0392b}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}.card{border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:130px}
.card b{display:block;font-size:18px}.card span{color:#666;font-size:12px}
figure{margin:8px 0 16px}figcaption{color:#555;font-size:13px;margin-top:4px}
svg{max-width:100%;height:auto;display:block}svg .tick{font-size:11px;fill:#444}svg .label{font-size:13px;fill:#222}
svg .axis-title{font-size:12px}svg .note{font-size:13px;fill:#666}
table{border-collapse:collapse;font-size:12.5px;width:100%;margin:6px 0}th,td{border-bottom:1px solid #eee;padding:3px 6px;text-align:left}
th{background:#f6f6f6}td{overflow-wrap:anywhere}td.num{text-align:right;font-variant-numeric:tabular-nums}
details{margin:8px 0}summary{cursor:pointer;color:#333}code{background:#f4f4f4;padding:1px 4px;border-radius:3px}
`;

const isObject = (v: unknown) => typeof v === "object" && v !== null && !Array.isArray(v);

/** The report as a standalone HTML page with inline SVG plots. */
export function reportToHtml(report: QuantizationReport, options: HtmlReportOptions = {}): string {
  const usage = "reportToHtml takes q.report (or it read back from its JSON)";
  const r = report as unknown as Record<string, unknown>;
  argument(
    isObject(r) && isObject(r.settings) && isObject(r.totals) && Array.isArray(r.layers) &&
      Array.isArray(r.blocks) && Array.isArray(r.activations),
    `${usage}: an object with settings, layers, activations, blocks and totals`,
  );
  argument(isOptions(options), "reportToHtml's options must be an object such as { title }");
  try {
    return renderReport(report, options);
  } catch (cause) {
    // A report edited by hand (or from another version) may lack a field deep inside.
    if (cause instanceof AttnroundError) throw cause;
    throw new AttnroundError("INVALID_ARGUMENT", `${usage}: ${(cause as Error)?.message}`, { cause });
  }
}

function renderReport(report: QuantizationReport, options: HtmlReportOptions): string {
  const title = options.title ?? "attnround quantization report";
  const s = report.settings;
  const layers = report.layers as LayerWithCoding[];
  const fid = report.fidelity;
  const t = report.totals;
  const status = fid
    ? `<span class="status ${fid.ok ? "ok" : "bad"}">${
      fid.ok ? "fidelity check passed" : "fidelity check FAILED"
    }</span>`
    : `<span class="status bad">no fidelity check (no held-back samples)</span>`;
  const card = (value: string, what: string) =>
    `<div class="card"><b>${esc(value)}</b><span>${esc(what)}</span></div>`;
  const cards = [
    card(
      `W${s.weightBits}A${s.activationBits === 32 ? "32 (float)" : s.activationBits}`,
      "weights / activations",
    ),
    card(s.rounding, "rounding"),
    card(String(s.iterations), "iterations per block"),
    card(`${t.seconds.toFixed(1)} s`, "quantization time"),
    card(`${(t.floatBytes / Math.max(t.quantizedWeightBytes, 1)).toFixed(1)}×`, "smaller weights"),
  ];
  if (fid?.top1Agreement !== undefined) {
    cards.push(
      card(percent(fid.top1Agreement), `top-1 agreement (${fid.samples} held-back calibration samples)`),
    );
  }
  if (options.accuracy?.quantized !== undefined) {
    cards.push(card(percent(options.accuracy.quantized), "quantized top-1"));
  }
  const hasCoding = layers.some((l) => l.codingLength !== undefined);
  const hasSource = layers.some((l) => l.bitsFrom !== undefined);
  const extra = report as QuantizationReport & {
    codingLengthEpsilon?: string;
    mixedPrecision?: {
      criterion?: string;
      averageBits?: number;
      sizeBytes?: number;
      budgetBytes?: number;
      storedBytes?: number;
      costMeasure?: string;
      samples?: number;
      layers?: { name: string; bits: number; bytes: number; cost: number[] }[];
      achievedAverageBits: number;
      budgetLayers: number;
      candidates: number[];
    };
  };
  const mixed = extra.mixedPrecision;
  const layerRows = layers.map((l, i) => [
    i + 1,
    l.name,
    l.kind,
    `[${l.shape.join("×")}]`,
    l.parameters,
    l.weightBits,
    ...(hasSource ? [l.bitsFrom ?? "–"] : []),
    ...(hasCoding ? [num(l.codingLength, 4), num(l.codingLengthPerWeight, 3)] : []),
    num(l.scale.min),
    num(l.scale.max),
    num(l.weightError.nearest),
    num(l.weightError.final),
  ]);
  const layerHead = [
    "#",
    "layer",
    "op",
    "weight shape",
    "parameters",
    "bits",
    ...(hasSource ? ["bits from"] : []),
    ...(hasCoding ? ["coding length L (bits)", "ρ (bits/weight)"] : []),
    "scale min",
    "scale max",
    "error nearest",
    "error final",
  ];
  const blockRows = report.blocks.map((b) => [
    b.index + 1,
    b.layers.map(shortName).join(", ") || "–",
    b.losses.length ? num(b.losses[0]) : "–",
    b.losses.length ? num(b.losses.at(-1)) : "–",
    b.msPerIteration ? b.msPerIteration.toFixed(1) : "–",
  ]);
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title><style>${STYLE}</style></head><body>
<h1>${esc(title)}</h1>
<p class="sub">${
    options.model ? `${esc(options.model)} · ` : ""
  }${layers.length} quantized layers in ${report.blocks.length} blocks · ${
    t.parameters.toLocaleString("en-US")
  } weights · seed ${s.seed} · batch ${s.batchSize}</p>
${status}
<div class="cards">${cards.join("")}</div>

<h2>Fidelity and accuracy</h2>
<figure>${
    fidelityPlot(report, options)
  }<figcaption>The fidelity check compares the quantized model with the float one on
calibration samples held back from reconstruction${
    fid ? ` (${fid.samples}; KL divergence ${num(fid.klDivergence)})` : ""
  }.
${options.accuracy ? "Top-1 is measured on labelled data by the caller." : ""}</figcaption></figure>

<h2>Bits and coding length per layer</h2>
<figure>${bitsPlot(layers)}<figcaption>Weight bit width of each quantized layer${
    hasCoding
      ? " and its lossy coding length per weight ρ = L / (m·n), from which mixed precision assigns the bits"
      : ""
  }. By convention the first and last layers keep 8-bit weights.${
    mixed
      ? ` Mixed precision${mixed.criterion ? ` (${esc(mixed.criterion)})` : ""}: ${
        mixed.sizeBytes !== undefined
          ? `a file of at most ${mixed.sizeBytes} bytes`
          : `average ${mixed.averageBits} bits`
      } asked over the ${mixed.budgetLayers} layers in the budget${
        mixed.budgetBytes !== undefined ? ` (${mixed.storedBytes} of ${mixed.budgetBytes} bytes used)` : ""
      }, ${num(mixed.achievedAverageBits, 4)} bits on average given, from the candidates ${
        mixed.candidates.join(", ")
      }.`
      : ""
  }${
    extra.codingLengthEpsilon ? ` Coding length at distortion ${esc(extra.codingLengthEpsilon)}.` : ""
  }</figcaption></figure>

<h2>Reconstruction loss per block</h2>
<figure>${
    lossPlot(report.blocks)
  }<figcaption>Mean squared error between each quantized block's output and the float
block's output on mini-batches of the calibration set, over the reconstruction iterations.</figcaption></figure>

<h2>Weight error per layer, before and after</h2>
<figure>${
    weightErrorPlot(layers)
  }<figcaption>‖ŵ − w‖ / ‖w‖ of the quantized weights with plain rounding to nearest (before)
and with the final ${
    esc(s.rounding)
  } rounding (after). Reconstruction may trade a larger weight error for a smaller output error.</figcaption></figure>

<h2>Layers</h2>
${table(layerHead, layerRows, layerHead.map((h, i) => i === 0 || (i >= 4 && h !== "bits from")))}
${
    mixed?.layers
      ? `<h2>Mixed precision</h2>
<p>Each layer in the budget: its bits, the bytes the file stores for its weight, and the cost of each candidate
width (${esc(mixed.costMeasure ?? "")}${
        mixed.samples ? `, on ${mixed.samples} held-back samples` : ""
      }); the allocation minimises the summed cost within the budget.</p>
${
        table(
          ["layer", "bits", "bytes", ...mixed.candidates.map((b) => `cost at ${b}`)],
          mixed.layers.map((l) => [l.name, l.bits, l.bytes, ...l.cost.map((c) => num(c))]),
          [false, true, true, ...mixed.candidates.map(() => true)],
        )
      }`
      : ""
  }

<h2>Blocks</h2>
${
    table(["block", "layers", "first loss", "last loss", "ms / iteration"], blockRows, [
      true,
      false,
      true,
      true,
      true,
    ])
  }

<h2>Totals</h2>
${
    table(["", ""], [
      ["quantized weights", t.parameters.toLocaleString("en-US")],
      ["float weight bytes", bytes(t.floatBytes)],
      ["quantized weight bytes (integers, scales, zero points)", bytes(t.quantizedWeightBytes)],
      ...(options.sizes?.floatModel !== undefined
        ? [["float model file", bytes(options.sizes.floatModel)]]
        : []),
      ...(options.sizes?.quantizedModel !== undefined
        ? [["quantized ONNX file", bytes(options.sizes.quantizedModel)]]
        : []),
      ...(options.sizes?.npz !== undefined ? [["npz of integer weights", bytes(options.sizes.npz)]] : []),
      ["time", `${t.seconds.toFixed(1)} s`],
      ["peak activation cache", bytes(report.memory.peakCacheBytes)],
      ["wasm heap", bytes(report.memory.wasmHeapBytes)],
    ])
  }

<details><summary>Activation quantizers (${report.activations.length})</summary>
${
    table(
      ["tensor", "bits", "step", "zero point"],
      report.activations.map((a) => [a.tensor, a.bits, num(a.step, 4), a.zero]),
      [false, true, true, true],
    )
  }
</details>
<details><summary>Settings</summary><pre>${esc(JSON.stringify(s, null, 2))}</pre></details>
</body></html>
`;
}
