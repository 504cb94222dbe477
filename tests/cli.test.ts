// The command line as a user runs it: a subprocess, `deno run src/cli/main.ts`
// under Deno and `node bin/attnround.mjs` under Node (tests/run-node.mjs), on
// the tiny fixture model with few iterations. Exit codes, --json, errors that
// name what is wrong, outputs that are whole or absent, and eval's top-1
// against an independent computation.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { Buffer } from "node:buffer";
import {
  init,
  inputsFromNpz,
  inspectModel,
  loadModel,
  quantize,
  type QuantizeOptionsInput,
  readNpz,
  writeNpy,
} from "../mod.ts";
import { argmaxRows, imagesToInput, readFixture } from "./fixtures.ts";
import { ortNodeRun } from "./ort.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const fixture = (name: string) => join(root, "tests", "fixtures", name);
const MODEL = fixture("tiny_cnn_fmnist.onnx");
const CALIB = fixture("calib.npz");
const TEST = fixture("test.npz");
const inDeno = Boolean(process.versions.deno);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(...args: string[]): Run {
  const command = inDeno
    ? ["run", "--allow-read", "--allow-write", "--allow-env", join(root, "src", "cli", "main.ts"), ...args]
    : [join(root, "bin", "attnround.mjs"), ...args];
  const r = spawnSync(process.execPath, command, {
    cwd: root,
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" },
    timeout: 120_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** `attnround quantize` of the tiny model on the calibration fixture, writing `out`. */
function cliQuantize(out: string, ...flags: string[]): Run {
  return cli("quantize", MODEL, "--calib", CALIB, "--out", out, ...flags);
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "attnround-cli-"));
}

Deno.test("cli: --help on every command exits 0; no command or an unknown one is bad usage (2)", () => {
  for (const command of ["quantize", "eval", "inspect", "demo"]) {
    const r = cli(command, "--help");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`usage: attnround ${command}`));
    assert.match(r.stdout, /--json/);
  }
  assert.match(cli("--help").stdout, /quantize MODEL\.onnx --calib CALIB\.npz --out OUT\.onnx/);
  assert.equal(cli().code, 2);
  const unknown = cli("quantise", MODEL);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command "quantise"; did you mean "quantize"\?/);
});

Deno.test("cli: bad flags and values exit 2 and name the flag", () => {
  const typo = cliQuantize("x.onnx", "--iter", "3");
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /unknown option --iter for "attnround quantize"; did you mean --iters\?/);
  assert.match(typo.stderr, /attnround quantize --help/);
  const bits = cliQuantize("x.onnx", "--w", "9");
  assert.equal(bits.code, 2);
  assert.match(bits.stderr, /--w must be 2 to 8, got "9"/);
  const notNumber = cliQuantize("x.onnx", "--iters", "many");
  assert.equal(notNumber.code, 2);
  assert.match(notNumber.stderr, /--iters must be an integer, got "many"/);
  const memory = cliQuantize("x.onnx", "--memory", "12XB");
  assert.equal(memory.code, 2);
  assert.match(memory.stderr, /--memory takes a size such as 2GiB, 512MiB or a number of bytes, got "12XB"/);
  const rounding = cliQuantize("x.onnx", "--rounding", "stochastic");
  assert.equal(rounding.code, 2);
  assert.match(rounding.stderr, /--rounding must be one of attention, adaround, nearest/);
  const missing = cli("quantize", MODEL, "--out", "x.onnx");
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /needs --calib CALIB\.npz/);
  const noValue = cli("eval", MODEL, "--data");
  assert.equal(noValue.code, 2);
  assert.match(noValue.stderr, /--data needs a value/);
  // With --json, stdout still holds exactly one JSON object.
  const json = cli("eval", MODEL, "--data", TEST, "--bogus", "--json");
  assert.equal(json.code, 2);
  assert.equal(JSON.parse(json.stdout).error.code, "USAGE");
});

Deno.test("cli: a missing or broken input fails with 1 and names the file", () => {
  const missing = cli("inspect", join(root, "no-such-model.onnx"));
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /cannot read the model .*no-such-model\.onnx \(no such file or directory\)/);
  const notOnnx = cli("eval", CALIB, "--data", TEST);
  assert.equal(notOnnx.code, 1);
  assert.match(notOnnx.stderr, /\[INVALID_MODEL\] .*calib\.npz: not an ONNX model/);
  const notNpz = cli("eval", MODEL, "--data", MODEL);
  assert.equal(notNpz.code, 1);
  assert.match(notNpz.stderr, /tiny_cnn_fmnist\.onnx.*not a zip archive/);
});

Deno.test("cli: an output path that cannot be written fails with 1 before quantizing, leaving no file", () => {
  const dir = tempDir();
  try {
    writeFileSync(join(dir, "a-file"), "x");
    mkdirSync(join(dir, "a-dir"));
    const cases: [string, RegExp][] = [
      [join(dir, "missing", "q.onnx"), /--out .*missing\/q\.onnx: the directory .*missing does not exist/],
      [join(dir, "a-dir"), /--out .*a-dir is a directory/],
      [join(dir, "a-file", "q.onnx"), /--out .*a-file\/q\.onnx: .*a-file is not a directory/],
    ];
    for (const [out, message] of cases) {
      // 100,000 iterations per block: only a check made before the work can return in time.
      const started = performance.now();
      const r = cliQuantize(out, "--iters", "100000");
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, message);
      assert.ok(performance.now() - started < 60_000);
    }
    const report = cliQuantize(join(dir, "q.onnx"), "--html", join(dir, "missing", "r.html"));
    assert.equal(report.code, 1);
    assert.match(report.stderr, /--html .*missing\/r\.html/);
    const same = cliQuantize(join(dir, "q.onnx"), "--report", join(dir, "q.onnx"));
    assert.equal(same.code, 2);
    assert.match(same.stderr, /--out and --report name the same file/);
    // A failure after the checks (calibration data the model cannot take) writes nothing either.
    const badData = cli(
      "quantize",
      MODEL,
      "--calib",
      MODEL,
      "--out",
      join(dir, "q.onnx"),
      "--report",
      join(dir, "r.json"),
    );
    assert.equal(badData.code, 1);
    assert.deepEqual(readdirSync(dir).sort(), ["a-dir", "a-file"]);
    assert.deepEqual(readdirSync(join(dir, "a-dir")), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("cli: eval prints one JSON line whose top-1 matches an independent computation", async () => {
  const r = cli("eval", MODEL, "--data", TEST, "--compare", MODEL);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split("\n");
  assert.equal(lines.length, 1);
  const result = JSON.parse(lines[0]);
  // The library on the same images, prepared without the CLI's .npz handling.
  await init();
  const { x, y } = readNpz(readFixture("test.npz"));
  const images = imagesToInput(x), labels = y.data as Uint8Array;
  const model = loadModel(readFixture("tiny_cnn_fmnist.onnx"));
  const classes = argmaxRows(model.run({ input: images }).logits);
  const top1 = classes.filter((c, i) => c === labels[i]).length / labels.length;
  model.dispose();
  assert.equal(result.n, 10000);
  assert.equal(result.top1, top1);
  assert.equal(result.agreement, 1);
  // And onnxruntime on the same model, up to near-ties between two classes.
  const ort = await ortNodeRun(readFixture("tiny_cnn_fmnist.onnx"), { input: images });
  const ortClasses = argmaxRows(Object.values(ort)[0]);
  const ortTop1 = ortClasses.filter((c, i) => c === labels[i]).length / labels.length;
  assert.ok(Math.abs(result.top1 - ortTop1) <= 2 / 10000, `cli ${result.top1} vs onnxruntime ${ortTop1}`);
  assert.ok(result.top1 > 0.8, `tiny_cnn reaches ${result.top1}`);
});

Deno.test("cli: inspect --json describes the model", () => {
  const r = cli("inspect", MODEL, "--json");
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  assert.deepEqual(info.ops, {
    Sub: 1,
    Div: 1,
    Conv: 2,
    Relu: 2,
    MaxPool: 1,
    GlobalAveragePool: 1,
    Flatten: 1,
    Gemm: 1,
  });
  assert.deepEqual(info.layers.map((l: { name: string }) => l.name), [
    "/conv1/Conv",
    "/conv2/Conv",
    "/fc/Gemm",
  ]);
  assert.deepEqual(info.layers.map((l: { parameters: number }) => l.parameters), [
    8 * 9,
    16 * 8 * 9,
    10 * 16,
  ]);
  assert.equal(info.blocks.length, 2);
  // Coding lengths, and the bits --mixed 2/3/4 would give by the coding length (no samples): the first and
  // last layer stay at 8; 3 bits would be stored in int4, more than a 3-bit budget holds, so the middle layer gets 2.
  for (const l of info.layers) {
    assert.ok(l.codingLength > 0 && l.codingLengthPerWeight > 0, JSON.stringify(l));
  }
  assert.deepEqual(info.layers.map((l: { mixedBits: Record<string, number> }) => l.mixedBits), [
    { 2: 8, 3: 8, 4: 8 },
    { 2: 2, 3: 2, 4: 4 },
    { 2: 8, 3: 8, 4: 8 },
  ]);
  assert.equal(info.inputs[0].name, "input");
  const text = cli("inspect", MODEL);
  assert.match(text.stdout, /\/conv2\/Conv\s+Conv\s+\[16×8×3×3\]\s+1152/);
});

Deno.test("cli: quantize writes the ONNX, npz, JSON and HTML whole, passes its options, and --json prints only the result", () => {
  const dir = tempDir();
  try {
    const out = join(dir, "q.onnx");
    const r = cliQuantize(
      out,
      "--npz",
      join(dir, "q.npz"),
      "--report",
      join(dir, "r.json"),
      "--html",
      join(dir, "r.html"),
      "--iters",
      "20",
      "--w",
      "3",
      "--asymmetric",
      "--variant",
      "stochastic",
      "--memory",
      "256MiB",
      "--json",
    );
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.equal(lines.length, 1, "one line of JSON on stdout");
    const result = JSON.parse(lines[0]);
    assert.equal(result.out, out);
    assert.equal(result.settings.weightBits, 3);
    assert.equal(result.settings.memoryBudget, 256 * 2 ** 20);
    assert.deepEqual(
      readdirSync(dir).sort(),
      ["q.npz", "q.onnx", "r.html", "r.json"],
      "no temporary files left",
    );
    assert.equal(result.bytes.quantizedModel, readFileSync(out).length);
    const report = JSON.parse(readFileSync(join(dir, "r.json"), "utf8"));
    assert.deepEqual(report.layers.map((l: { weightBits: number }) => l.weightBits), [8, 3, 8]);
    assert.equal(report.settings.iterations, 20);
    assert.equal(report.settings.symmetricWeights, false);
    assert.equal(report.settings.attention.variant, "stochastic");
    assert.match(readFileSync(join(dir, "r.html"), "utf8"), /^<!DOCTYPE html>[\s\S]*<svg data-plot="loss"/);
    // The written model runs, and eval reads it.
    const again = cli("eval", out, "--data", TEST, "--compare", MODEL);
    assert.equal(again.code, 0, again.stderr);
    const e = JSON.parse(again.stdout);
    // 20 iterations at W3A4 leave the tiny model well short of float, but far above chance (0.1).
    assert.ok(e.agreement > 0.5 && e.top1 > 0.5, again.stdout);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("cli: quantize --size writes a model no larger than SIZE; inspect --calib shows each layer's sensitivity", () => {
  const dir = tempDir();
  try {
    const size = (...flags: string[]) => {
      const out = join(dir, "q.onnx");
      const r = cliQuantize(out, "--iters", "5", "--a", "4", ...flags);
      assert.equal(r.code, 0, r.stderr);
      return { bytes: readFileSync(out).length, stdout: r.stdout };
    };
    const [w2, w8] = [size("--w", "2").bytes, size("--w", "8").bytes];
    // Uniform 2 bits is the least the candidates reach; a size budget keeps a few bytes for length prefixes.
    for (const bound of [w2 + 200, Math.floor((w2 + w8) / 2), w8]) {
      const r = size("--size", String(bound));
      assert.ok(r.bytes <= bound, `--size ${bound} wrote ${r.bytes} bytes`);
      assert.match(r.stdout, /mixed precision \(sensitivity\): \d+ of \d+ bytes for 1 layers/);
    }
    const coding = size("--size", String(w8), "--mixed-criterion", "coding-length");
    assert.ok(coding.bytes <= w8);
    assert.match(coding.stdout, /mixed precision \(coding-length\)/);
    const small = cliQuantize(join(dir, "q.onnx"), "--iters", "5", "--size", "1KiB");
    assert.equal(small.code, 1);
    assert.match(small.stderr, /sizeBytes 1024 is below what the file holds besides the allocated layers/);
    const both = cliQuantize(join(dir, "q.onnx"), "--mixed", "3", "--size", "4KiB");
    assert.equal(both.code, 2);
    assert.match(both.stderr, /--mixed AVG_BITS or --size SIZE, not both/);
    const alone = cliQuantize(join(dir, "q.onnx"), "--mixed-criterion", "coding-length");
    assert.equal(alone.code, 2);
    const unknown = cliQuantize(join(dir, "q.onnx"), "--mixed", "3", "--mixed-criterion", "hessian");
    assert.equal(unknown.code, 2);
    const inspect = cli("inspect", MODEL, "--calib", CALIB);
    assert.equal(inspect.code, 0, inspect.stderr);
    assert.match(inspect.stdout, /sens@2 +sens@3 +sens@4 +sens@5 +sens@6 +sens@8/);
    assert.match(inspect.stdout, /\/conv2\/Conv .*(\s+\d\.\d\de[-+]\d+){6}\n/);
    assert.match(inspect.stdout, /on 64 held-back samples/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("cli: progress on a pipe is plain lines, and --quiet prints nothing", () => {
  const dir = tempDir();
  try {
    const r = cliQuantize(join(dir, "q.onnx"), "--iters", "30", "--mixed", "3");
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stdout.includes("\r"), "no carriage returns when stdout is not a terminal");
    assert.match(r.stdout, /block 1\/2 +iter 30\/30 +loss \S+ +[\d.]+ it\/s +done in/);
    assert.match(r.stdout, /block 2\/2 +iter 30\/30/);
    assert.match(r.stdout, /fidelity on \d+ held-back samples: top-1 agreement/);
    assert.match(
      r.stdout,
      /mixed precision \(sensitivity\): 356 of 502 bytes for 1 layers, 2\.000 bits on average \(asked 3 bits; .*\); bits per layer: 8 2 8/,
    );
    const quiet = cliQuantize(join(dir, "q.onnx"), "--iters", "5", "--quiet");
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.equal(quiet.stdout, "");
    assert.ok(existsSync(join(dir, "q.onnx")));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("cli: src/cli/ reaches the library only through mod.ts, as any client would", () => {
  const dir = join(root, "src", "cli");
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".ts"))) {
    const source = readFileSync(join(dir, file), "utf8");
    for (const [, path] of source.matchAll(/(?:import|export)[^'"]*?from\s*["']([^"']+)["']/g)) {
      const allowed = path === "../../mod.ts" || path.startsWith("./") || path.startsWith("node:") ||
        path.startsWith("npm:");
      assert.ok(allowed, `src/cli/${file} imports ${path}`);
    }
  }
});

Deno.test("cli: --version prints package.json's version", () => {
  const { version } = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  for (const flag of ["--version", "-V"]) {
    const r = cli(flag);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `attnround ${version}\n`);
  }
  assert.deepEqual(JSON.parse(cli("--version", "--json").stdout), { version });
  assert.match(cli("--help").stdout, /attnround --version/);
});

Deno.test("cli: --calib takes a .npy, and --limit N uses its first N samples", async () => {
  await init();
  const dir = tempDir();
  try {
    const x = readNpz(readFixture("calib.npz")).x;
    const npy = join(dir, "calib.npy");
    writeFileSync(npy, writeNpy(x));
    const r = cli(
      "quantize",
      MODEL,
      "--calib",
      npy,
      "--limit",
      "40",
      "--iters",
      "2",
      "--out",
      join(dir, "q.onnx"),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /calib\.npy: 40 samples of \[1,28,28\]/);
    // --limit also cuts an .npz, and eval's --data with its labels.
    const e = cli("eval", MODEL, "--data", TEST, "--limit", "100", "--json");
    assert.equal(e.code, 0, e.stderr);
    assert.equal(JSON.parse(e.stdout).n, 100);
    const bad = cliQuantize(join(dir, "q.onnx"), "--limit", "0");
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--limit must be ≥ 1/);
    assert.match(cli("quantize", "--help").stdout, /--limit N/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("cli: --config FILE.json takes every quantize() option and gives the API's bytes", async () => {
  await init();
  const dir = tempDir();
  try {
    const model = loadModel(readFixture("tiny_cnn_fmnist.onnx"));
    const second = inspectModel(model).layers[1].name;
    // Every setting away from its default, a per-layer override and mixed precision included.
    const options: QuantizeOptionsInput = {
      weightBits: 3,
      activationBits: 6,
      rounding: "attention",
      iterations: 12,
      batchSize: 16,
      seed: 7,
      learningRate: 2e-3,
      activationLearningRate: 1e-4,
      activationDrop: 0.25,
      symmetricWeights: false,
      attention: { sigma0: 0.4, decay: 0.6, variant: "stochastic" },
      holdout: 24,
      layers: { [second]: { activationBits: 5 } },
      mixedPrecision: { averageBits: 4 },
      memoryBudget: 256 * 2 ** 20,
    };
    const calib = inputsFromNpz(readNpz(readFixture("calib.npz")), model.inputs[0]).x;
    const q = await quantize(model, calib, options);
    const api = q.toOnnx();
    q.dispose();
    model.dispose();
    writeFileSync(join(dir, "options.json"), JSON.stringify(options));
    const out = join(dir, "q.onnx");
    const r = cli(
      "quantize",
      MODEL,
      "--calib",
      CALIB,
      "--config",
      join(dir, "options.json"),
      "--out",
      out,
      "--quiet",
    );
    assert.equal(r.code, 0, r.stderr);
    assert.ok(Buffer.compare(readFileSync(out), api) === 0, "the CLI's model differs from the API's");
    // A flag beside --config overrides the file's value.
    const flagged = cli(
      "quantize",
      MODEL,
      "--calib",
      CALIB,
      "--config",
      join(dir, "options.json"),
      "--iters",
      "3",
      "--out",
      out,
      "--json",
    );
    assert.equal(flagged.code, 0, flagged.stderr);
    assert.equal(JSON.parse(flagged.stdout).settings.iterations, 3);
    assert.equal(JSON.parse(flagged.stdout).settings.seed, 7);
    // An unknown option is named, with the file.
    writeFileSync(join(dir, "typo.json"), JSON.stringify({ holdot: 3 }));
    const typo = cliQuantize(out, "--config", join(dir, "typo.json"));
    assert.equal(typo.code, 1);
    assert.match(
      typo.stderr,
      /--config .*typo\.json: quantize has no option "holdot"; did you mean "holdout"\?/,
    );
    writeFileSync(join(dir, "list.json"), "[1]");
    assert.match(cliQuantize(out, "--config", join(dir, "list.json")).stderr, /must hold a JSON object/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
