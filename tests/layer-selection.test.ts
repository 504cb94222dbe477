// Which layers are quantized and how finely: `exclude` (node names, globs,
// op types), `opTypes` and `perChannelWeights`, in the API and as --exclude,
// --op-types and --per-tensor on the command line.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import {
  AttnroundError,
  init,
  inputsFromNpz,
  loadModel,
  QuantizationRun,
  quantize,
  readNpz,
  Tensor,
} from "../mod.ts";
import { readFixture } from "./fixtures.ts";
import { ortNodeRun } from "./ort.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const inDeno = Boolean(process.versions.deno);

async function setup() {
  await init();
  const model = loadModel(readFixture("tiny_cnn_fmnist.onnx"));
  const x = inputsFromNpz(readNpz(readFixture("calib.npz")), model.inputs[0]).x;
  return { model, x };
}

/** The weights the exported model dequantizes (DequantizeLinear inputs that are initializers). */
function dequantizedWeights(onnx: Uint8Array): string[] {
  const again = loadModel(onnx);
  const names = again.graph.nodes.filter((n) => n.opType === "DequantizeLinear").map((n) => n.inputs[0]);
  const out = names.filter((n) => again.graph.initializers.has(n));
  again.dispose();
  return out;
}

Deno.test("exclude: by name, glob and op type; opTypes; the layers left out stay float in the export", async () => {
  const { model, x } = await setup();
  const layersOf = async (options: object) => {
    const q = await quantize(model, x, { iterations: 3, ...options });
    const names = q.weights.map((w) => w.layer.name);
    const exported = dequantizedWeights(q.toOnnx());
    assert.equal(exported.length, names.length, JSON.stringify(options));
    assert.equal(q.report.layers.length, names.length);
    q.dispose();
    return names;
  };
  assert.deepEqual(await layersOf({}), ["/conv1/Conv", "/conv2/Conv", "/fc/Gemm"]);
  assert.deepEqual(await layersOf({ exclude: ["/fc/Gemm"] }), ["/conv1/Conv", "/conv2/Conv"]);
  assert.deepEqual(await layersOf({ exclude: ["/conv?/*"] }), ["/fc/Gemm"]);
  assert.deepEqual(await layersOf({ exclude: ["Gemm", "/conv1/Conv"] }), ["/conv2/Conv"]);
  assert.deepEqual(await layersOf({ opTypes: ["Gemm"] }), ["/fc/Gemm"]);
  model.dispose();
});

Deno.test("exclude: the first layer keeps its place in the 8-bit convention, and a state resumes", async () => {
  const { model, x } = await setup();
  const q = await quantize(model, x, {
    iterations: 3,
    exclude: ["/conv1/Conv"],
    weightBits: 3,
    activationBits: 4,
  });
  // conv2 is not the first layer: its weights and input stay at the asked widths.
  assert.deepEqual(q.weights.map((w) => [w.layer.name, w.bits]), [["/conv2/Conv", 3], ["/fc/Gemm", 8]]);
  assert.ok(q.report.layers.every((l) => l.name !== "/conv1/Conv"));
  const bytes = q.toOnnx();
  q.dispose();
  const options = { iterations: 3, exclude: ["/conv1/Conv"], weightBits: 3, activationBits: 4 };
  const run = await QuantizationRun.start(model, x, options);
  const resumed = await QuantizationRun.resume(model, x, run.state());
  while (!(await resumed.advance({ milliseconds: 10_000 })));
  assert.deepEqual((await resumed.result()).toOnnx(), bytes);
  run.dispose();
  resumed.dispose();
  model.dispose();
});

Deno.test("exclude: an entry that matches nothing, or a wrong op type, is INVALID_ARGUMENT naming it", async () => {
  const { model, x } = await setup();
  const refused = async (options: object, pattern: RegExp) => {
    await assert.rejects(quantize(model, x, { iterations: 1, ...options }), (e: unknown) => {
      assert.ok(e instanceof AttnroundError && e.code === "INVALID_ARGUMENT", String(e));
      assert.match(e.message, pattern);
      return true;
    });
  };
  await refused({ exclude: ["/head*"] }, /exclude: "\/head\*" matches no quantizable layer.*"\/conv1\/Conv"/);
  await refused({ exclude: "/fc/Gemm" }, /exclude must be an array/);
  await refused({ opTypes: ["Relu"] }, /opTypes: "Relu" is not an op type quantized layers have/);
  model.dispose();
});

Deno.test("exclude: --exclude and --op-types on the command line", () => {
  const dir = mkdtempSync(join(tmpdir(), "attnround-exclude-"));
  const cli = (...args: string[]) => {
    const command = inDeno
      ? ["run", "--allow-read", "--allow-write", "--allow-env", join(root, "src", "cli", "main.ts"), ...args]
      : [join(root, "bin", "attnround.mjs"), ...args];
    const r = spawnSync(process.execPath, command, { cwd: root, encoding: "utf8", timeout: 120_000 });
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  };
  const quantizeWith = (...flags: string[]) =>
    cli(
      "quantize",
      join(root, "tests", "fixtures", "tiny_cnn_fmnist.onnx"),
      "--calib",
      join(root, "tests", "fixtures", "calib.npz"),
      "--iters",
      "2",
      "--out",
      join(dir, "q.onnx"),
      "--json",
      ...flags,
    );
  try {
    const excluded = quantizeWith("--exclude", "/fc*, /conv1/Conv");
    assert.equal(excluded.code, 0, excluded.stderr);
    assert.equal(JSON.parse(excluded.stdout).layers, 1);
    const convs = quantizeWith("--op-types", "Conv");
    assert.equal(convs.code, 0, convs.stderr);
    assert.equal(JSON.parse(convs.stdout).layers, 2);
    const none = quantizeWith("--exclude", "head*");
    assert.equal(none.code, 1);
    assert.match(none.stderr, /\[INVALID_ARGUMENT\] exclude: "head\*" matches no quantizable layer/);
    const help = cli("quantize", "--help").stdout;
    assert.match(help, /--exclude LIST/);
    assert.match(help, /--op-types LIST/);
    const perTensor = quantizeWith("--per-tensor");
    assert.equal(perTensor.code, 0, perTensor.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("perChannelWeights: false gives one weight scale per layer; the export runs in onnxruntime as q.run does", async () => {
  const { model, x } = await setup();
  const q = await quantize(model, x, { iterations: 10, perChannelWeights: false, weightBits: 4 });
  for (const w of q.weights) assert.equal(new Set(w.scale).size, 1, w.layer.name);
  const perChannel = await quantize(model, x, { iterations: 10, weightBits: 4 });
  assert.ok(perChannel.weights.some((w) => new Set(w.scale).size > 1));
  const batch = new Tensor((x.data as Float32Array).slice(0, 64 * 784), [64, 1, 28, 28]);
  const expected = q.run({ input: batch }).logits.data as Float32Array;
  const actual = (await ortNodeRun(q.toOnnx(), { input: batch })).logits.data as Float32Array;
  const scale = Math.sqrt(expected.reduce((a, v) => a + v * v, 0) / expected.length);
  const rms = Math.sqrt(expected.reduce((a, v, i) => a + (v - actual[i]) ** 2, 0) / expected.length);
  assert.ok(rms <= 0.02 * scale, `RMS difference ${rms} against RMS ${scale}`);
  assert.equal(q.report.settings.perChannelWeights, false);
  await assert.rejects(
    quantize(model, x, { perChannelWeights: "no" as unknown as boolean }),
    /perChannelWeights/,
  );
  q.dispose();
  perChannel.dispose();
  model.dispose();
});
