/// <reference lib="dom" />
// The HTML report of a real quantization, rendered by headless Chromium
// (Debian's /usr/bin/chromium, driven by playwright-core) from a localhost
// server: the page must load nothing else, and each plot must be there, have
// a size, hold drawn marks and show more than one colour in the screenshot.
// Skipped only where Chromium is not installed and CI is not set (.ci/run
// installs it).
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import process from "node:process";
import { Buffer } from "node:buffer";
import { init, loadModel, quantize } from "../mod.ts";
import { readNpz } from "../src/data/npy.ts";
import { reportToHtml } from "../src/report/html.ts";
import { type Files, haveChromium, withChromium } from "./chromium.ts";
import { imagesToInput, readFixture } from "./fixtures.ts";

const chromiumInstalled = haveChromium("tests/report-html.test.ts (the report in Chromium)");

const PLOTS = ["fidelity", "bits", "loss", "weight-error"];

async function realReport() {
  await init();
  const model = loadModel(readFixture("tiny_cnn_fmnist.onnx"));
  const q = await quantize(model, imagesToInput(readNpz(readFixture("calib.npz")).x), {
    weightBits: 4,
    activationBits: 4,
    iterations: 60,
  });
  const report = q.report;
  q.dispose();
  model.dispose();
  return report;
}

Deno.test("report html: self-contained, one figure per plot, tables for every layer and block", async () => {
  const report = await realReport();
  const html = reportToHtml(report, {
    model: "tiny_cnn_fmnist.onnx",
    accuracy: { samples: 100, float: 0.9, quantized: 0.85 },
  });
  assert.ok(html.startsWith("<!DOCTYPE html>"));
  // Nothing fetched: no scripts, stylesheets, images or URLs beyond the SVG namespace.
  assert.doesNotMatch(html, /<script|<link|<img|<iframe|src=|url\(/i);
  assert.deepEqual([...new Set(html.match(/https?:\/\/[^\s"')]+/g))], ["http://www.w3.org/2000/svg"]);
  for (const plot of PLOTS) assert.match(html, new RegExp(`<svg data-plot="${plot}"`));
  for (const l of report.layers) {
    assert.ok(html.includes(`<td>${l.name}</td>`), `layer ${l.name} in the table`);
  }
  // Text from the report is escaped.
  const tricky = reportToHtml({ ...report, layers: [{ ...report.layers[0], name: "<b>&x" }] });
  assert.ok(tricky.includes("&#60;b&#62;&#38;x") && !tricky.includes("<b>&x"));
});

Deno.test({
  name: "report html: Chromium renders every plot non-empty (screenshot)",
  ignore: !chromiumInstalled,
  async fn() {
    const report = await realReport();
    const html = reportToHtml(report, {
      model: "tiny_cnn_fmnist.onnx",
      accuracy: { samples: 100, float: 0.9, quantized: 0.85 },
    });
    const files: Files = { "/": ["text/html; charset=utf-8", html] };
    const launch = { viewport: { width: 1000, height: 800 }, deviceScaleFactor: 1 };
    await withChromium(files, launch, async ({ browser, origin, requests }) => {
      const url = `${origin}/`;
      const page = await browser.newPage();
      const loaded: string[] = [];
      page.on("request", (r) => loaded.push(r.url()));
      await page.goto(url, { waitUntil: "load" });
      assert.deepEqual(loaded, [url], "the page loads nothing but itself");

      const plots = await page.evaluate((names) =>
        names.map((name) => {
          const svg = document.querySelector(`svg[data-plot="${name}"]`);
          if (!svg) return { name, found: false };
          const box = svg.getBoundingClientRect();
          return {
            name,
            found: true,
            x: box.left + scrollX,
            y: box.top + scrollY,
            width: box.width,
            height: box.height,
            marks: svg.querySelectorAll("path, rect.bar, circle").length,
            lines: svg.querySelectorAll("path.line").length,
            bars: svg.querySelectorAll("rect.bar").length,
          };
        }), PLOTS);
      for (const p of plots) {
        assert.ok(p.found, `plot ${p.name} is on the page`);
        assert.ok(p.width! > 100 && p.height! > 40, `plot ${p.name} has a size (${p.width}×${p.height})`);
        assert.ok(p.marks! > 1, `plot ${p.name} draws something`);
      }
      const by = Object.fromEntries(plots.map((p) => [p.name, p]));
      const n = report.layers.length;
      assert.equal(by.bits.bars, n, "one bar of bits per layer");
      assert.equal(by["weight-error"].bars, 2 * n, "nearest and final error bars per layer");
      assert.equal(
        by.loss.lines,
        report.blocks.filter((b) => b.losses.length > 0).length,
        "one loss curve per block",
      );

      const shot = await page.screenshot({ fullPage: true });
      const keep = process.env.ATTNROUND_SCREENSHOT;
      if (keep) writeFileSync(keep, shot);
      // Decode the screenshot in the browser and count the colours inside each plot's box.
      const decoder = await browser.newPage();
      const colours = await decoder.evaluate(async ({ png, boxes }) => {
        const image = new Image();
        image.src = `data:image/png;base64,${png}`;
        await image.decode();
        const canvas = document.createElement("canvas");
        canvas.width = image.width;
        canvas.height = image.height;
        const context = canvas.getContext("2d")!;
        context.drawImage(image, 0, 0);
        return boxes.map((b) => {
          const pixels =
            context.getImageData(Math.round(b.x), Math.round(b.y), Math.round(b.width), Math.round(b.height))
              .data;
          const seen = new Set<number>();
          let inked = 0;
          for (let i = 0; i < pixels.length; i += 4) {
            seen.add((pixels[i] << 16) | (pixels[i + 1] << 8) | pixels[i + 2]);
            if (pixels[i] + pixels[i + 1] + pixels[i + 2] < 600) inked++;
          }
          return { colours: seen.size, inked: inked / (pixels.length / 4) };
        });
      }, {
        png: Buffer.from(shot).toString("base64"),
        boxes: plots as { x: number; y: number; width: number; height: number }[],
      });
      colours.forEach((c, i) => {
        assert.ok(c.colours >= 4, `plot ${PLOTS[i]} shows ${c.colours} colours in the screenshot`);
        assert.ok(
          c.inked > 0.01,
          `plot ${PLOTS[i]} has ink on ${(100 * c.inked).toFixed(2)} % of its pixels`,
        );
      });
      await decoder.close();
      // Besides the page, only the browser's own favicon probe.
      assert.deepEqual(
        requests.filter((r) => r !== "/favicon.ico"),
        ["/"],
        "the server saw one request for the page",
      );
    });
  },
});
