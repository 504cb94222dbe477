// Issue 17, "Hardening", on the command line: outputs that would replace an
// input or a device, paths the up-front check missed, a closed stdout, stale
// temporary files, limits on what an .npz may unpack to, and errors that must
// be `[CODE] message` naming the input at fault, never a stack trace.
// Subprocesses as in cli.test.ts: `deno run src/cli/main.ts` under Deno,
// `node bin/attnround.mjs` under Node.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { Tensor } from "../mod.ts";
import { writeNpz } from "../src/data/npy.ts";
import { decodeModel, encodeModel } from "../src/onnx/codec.ts";
import type { ModelProto } from "../src/onnx/types.ts";
import { runCli } from "../src/cli/cli.ts";
import type { Runtime } from "../src/cli/runtime.ts";

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

function command(args: string[]): string[] {
  return inDeno
    ? ["run", "--allow-read", "--allow-write", "--allow-env", join(root, "src", "cli", "main.ts"), ...args]
    : [join(root, "bin", "attnround.mjs"), ...args];
}

function cli(args: string[], cwd = root): Run {
  const r = spawnSync(process.execPath, command(args), {
    cwd,
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" },
    timeout: 120_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** No stack trace and one `attnround: error: [CODE] …` or usage line on stderr. */
function assertCleanError(r: Run): void {
  assert.doesNotMatch(r.stderr, /^\s+at /m, r.stderr);
  assert.doesNotMatch(r.stderr, /TypeError|RangeError|BrokenPipe/, r.stderr);
}

function withTempDir(work: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), "attnround-hardening-"));
  try {
    work(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function variant(change: (m: ModelProto) => void): Uint8Array {
  const proto = decodeModel(new Uint8Array(readFileSync(MODEL)));
  change(proto);
  return encodeModel(proto);
}

// 100,000 iterations per block: only a check made before the work returns in time.
const LONG = ["--iters", "100000"];

Deno.test("D6: no output may replace an input or another output, however the path is spelled", () => {
  withTempDir((dir) => {
    copyFileSync(MODEL, join(dir, "m.onnx"));
    copyFileSync(CALIB, join(dir, "c.npz"));
    linkSync(join(dir, "m.onnx"), join(dir, "hard.onnx"));
    symlinkSync(join(dir, "m.onnx"), join(dir, "soft.onnx"));
    mkdirSync(join(dir, "sub"));
    const model = readFileSync(join(dir, "m.onnx")), calib = readFileSync(join(dir, "c.npz"));
    const cases: [string[], RegExp][] = [
      [["--out", "./m.onnx"], /--out \.\/m\.onnx .*the model/],
      [["--out", join(dir, "m.onnx")], /--out .*m\.onnx .*the model/],
      [["--out", "hard.onnx"], /--out hard\.onnx .*the model/],
      [["--out", "soft.onnx"], /--out soft\.onnx .*the model/],
      [["--out", "q.onnx", "--report", "./c.npz"], /--report \.\/c\.npz .*--calib/],
      [["--out", "q.onnx", "--npz", "./q.onnx"], /--out and --npz name the same file/],
      [["--out", "q.onnx", "--html", `${dir}/sub/../q.onnx`], /--out and --html name the same file/],
    ];
    for (const [flags, message] of cases) {
      const r = cli(["quantize", "m.onnx", "--calib", "c.npz", ...flags, ...LONG], dir);
      assert.equal(r.code, 2, `${flags.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assertCleanError(r);
    }
    assert.deepEqual(readFileSync(join(dir, "m.onnx")), model);
    assert.deepEqual(readFileSync(join(dir, "c.npz")), calib);
    assert.ok(lstatSync(join(dir, "soft.onnx")).isSymbolicLink());
    assert.deepEqual(readdirSync(dir).sort(), ["c.npz", "hard.onnx", "m.onnx", "soft.onnx", "sub"]);
  });
});

Deno.test("D7: an output that exists and is not a regular file (a FIFO here) is refused before the run", () => {
  withTempDir((dir) => {
    const fifo = join(dir, "q.onnx");
    const made = spawnSync("mkfifo", [fifo]);
    assert.equal(made.status, 0, String(made.stderr));
    for (const flags of [["--out", fifo], ["--out", join(dir, "ok.onnx"), "--report", fifo]]) {
      const r = cli(["quantize", MODEL, "--calib", CALIB, ...flags, ...LONG]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /q\.onnx is not a regular file/);
      assertCleanError(r);
      assert.ok(lstatSync(fifo).isFIFO(), "the FIFO is still a FIFO");
    }
  });
});

Deno.test("D10: an empty --out, a 250-character name and a directory the runtime may not read", () => {
  withTempDir((dir) => {
    const empty = cli(["quantize", MODEL, "--calib", CALIB, "--out=", ...LONG]);
    assert.equal(empty.code, 2, empty.stderr);
    assert.match(empty.stderr, /--out needs a file path/);
    // 250 bytes: a valid name (the limit is 255), whatever the temporary file adds.
    const name = "q".repeat(245) + ".onnx";
    const long = cli([
      "quantize",
      MODEL,
      "--calib",
      CALIB,
      "--out",
      join(dir, name),
      "--rounding",
      "nearest",
    ]);
    assert.equal(long.code, 0, long.stderr);
    assert.deepEqual(readdirSync(dir), [name]);
    const proc = cli(["quantize", MODEL, "--calib", CALIB, "--out", "/proc/x.onnx", ...LONG]);
    assert.equal(proc.code, 1, proc.stderr);
    assert.doesNotMatch(proc.stderr, /does not exist/);
    if (inDeno) assert.match(proc.stderr, /permission|--allow-all/);
    assertCleanError(proc);
  });
});

Deno.test("D15: a stdout closed early ends the output quietly, exit status 0", () => {
  // `true` exits at once, so every write of inspect meets a closed pipe.
  const line = [process.execPath, ...command(["inspect", MODEL])].map((a) => `'${a}'`).join(" ");
  const r = spawnSync("bash", ["-c", `set -o pipefail; ${line} | true`], {
    cwd: root,
    encoding: "utf8",
    timeout: 120_000,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, "");
});

Deno.test("D16: stale temporary files of an output are removed by the next run into that folder", () => {
  withTempDir((dir) => {
    // A killed run's file: no process has that pid (Node can tell; Deno without --allow-all cannot
    // read /proc) and nothing has written to it for two minutes (a writer renames its file at once).
    const stale = join(dir, ".q.onnx.99999999-abcdef.tmp");
    const old = join(dir, ".q.onnx.1-zz9zz9.tmp"); // pid 1 lives, but the file is two days old
    const live = join(dir, `.q.onnx.${process.pid}-abc123.tmp`); // a running writer's
    const other = join(dir, ".other.onnx.99999999-abcdef.tmp"); // another output's
    for (const path of [stale, old, live, other]) writeFileSync(path, "partial");
    const seconds = Date.now() / 1000;
    utimesSync(stale, seconds - 120, seconds - 120);
    utimesSync(old, seconds - 2 * 86_400, seconds - 2 * 86_400);
    utimesSync(other, seconds - 2 * 86_400, seconds - 2 * 86_400);
    const r = cli([
      "quantize",
      MODEL,
      "--calib",
      CALIB,
      "--out",
      join(dir, "q.onnx"),
      "--rounding",
      "nearest",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!existsSync(stale) && !existsSync(old), "stale files removed");
    assert.ok(existsSync(live) && existsSync(other), "a live writer's file and other outputs' files kept");
    assert.ok(existsSync(join(dir, "q.onnx")));
  });
});

Deno.test("D1: --max-data and --max-samples limit what an .npz may unpack to, before it is inflated", () => {
  const bytes = cli([
    "quantize",
    MODEL,
    "--calib",
    CALIB,
    "--out",
    "x.onnx",
    "--max-data",
    "100KiB",
    ...LONG,
  ]);
  assert.equal(bytes.code, 1, bytes.stderr);
  assert.match(bytes.stderr, /\[TOO_LARGE\] .*calib\.npz/);
  assert.match(bytes.stderr, /--max-data/);
  assertCleanError(bytes);
  const samples = cli(["eval", MODEL, "--data", TEST, "--max-samples", "500"]);
  assert.equal(samples.code, 1, samples.stderr);
  assert.match(samples.stderr, /\[TOO_LARGE\] .*test\.npz/);
  assert.match(samples.stderr, /10000 samples/);
  assert.match(samples.stderr, /--max-samples/);
  const bad = cli(["eval", MODEL, "--data", TEST, "--max-data", "lots"]);
  assert.equal(bad.code, 2, bad.stderr);
});

Deno.test("errors name the file: NaN calibration data, a model without outputs or inputs, a 64-bit seed", () => {
  withTempDir((dir) => {
    const data = new Float32Array(4 * 784).fill(0.5);
    data[1000] = NaN;
    const nan = join(dir, "nan.npz");
    writeFileSync(nan, writeNpz({ x: new Tensor(data, [4, 1, 28, 28]) }));
    const r = cli(["quantize", MODEL, "--calib", nan, "--out", join(dir, "q.onnx"), ...LONG]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /\[INVALID_DATA\] --calib .*nan\.npz: array "x" holds NaN at element 1000 \(sample 1\)/,
    );

    const noOutputs = join(dir, "no-outputs.onnx");
    writeFileSync(noOutputs, variant((m) => m.graph.output = []));
    const e1 = cli(["eval", noOutputs, "--data", TEST]);
    assert.equal(e1.code, 1, e1.stderr);
    assert.match(e1.stderr, /\[INVALID_MODEL\] .*no-outputs\.onnx: .*no outputs/);
    assertCleanError(e1);

    const noInputs = join(dir, "no-inputs.onnx");
    writeFileSync(
      noInputs,
      variant((m) => {
        const { initializer, input } = m.graph;
        const template = initializer.find((t) => t.name === "normalize.mean")!;
        initializer.push({
          ...template,
          name: "input",
          dims: [1, 1, 28, 28],
          rawData: new Uint8Array(784 * 4),
        });
        m.graph.input = input.filter((i) => i.name !== "input");
      }),
    );
    const e2 = cli(["eval", noInputs, "--data", TEST]);
    assert.equal(e2.code, 1, e2.stderr);
    assert.match(e2.stderr, /\[UNSUPPORTED_MODEL\] .*no-inputs\.onnx: .*one input/);
    assertCleanError(e2);

    const seed = cli([
      "quantize",
      MODEL,
      "--calib",
      CALIB,
      "--out",
      join(dir, "q.onnx"),
      "--seed",
      "4294967296",
    ]);
    assert.equal(seed.code, 2, seed.stderr);
    assert.match(seed.stderr, /--seed must be .*4294967295/);
  });
});

Deno.test("D3: a model whose node names are 70,000 characters long quantizes and exports whole with --npz", () => {
  withTempDir((dir) => {
    const model = join(dir, "long.onnx");
    writeFileSync(model, variant((m) => m.graph.node.forEach((n, i) => n.name = `${i}`.repeat(70_000))));
    const r = cli([
      "quantize",
      model,
      "--calib",
      CALIB,
      "--out",
      join(dir, "q.onnx"),
      "--npz",
      join(dir, "q.npz"),
      "--rounding",
      "nearest",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readdirSync(dir).sort(), ["long.onnx", "q.npz", "q.onnx"]);
  });
});

Deno.test("an error the library did not anticipate is [INTERNAL] message, without a stack trace", async () => {
  let stderr = "";
  const output = (write: (t: string) => void) => ({ write, isTTY: false });
  const rt = {
    name: "deno",
    args: [],
    pid: 1,
    stdout: output(() => {}),
    stderr: output((t) => stderr += t),
    stat: () => Promise.resolve({ kind: "file", size: 1 }),
    // Bytes that throw when looked at: an error no code path expects.
    readFile: () =>
      Promise.resolve(
        new Proxy(new Uint8Array(1), {
          getPrototypeOf() {
            throw new RangeError("boom");
          },
        }),
      ),
  } as unknown as Runtime;
  const code = await runCli(rt, ["inspect", "model.onnx"]);
  assert.equal(code, 1);
  assert.match(stderr, /^attnround: error: \[INTERNAL\] .*boom/);
  assert.doesNotMatch(stderr, /^\s+at /m);
});
