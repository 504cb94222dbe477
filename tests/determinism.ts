// Seeded quantization runs whose results must not depend on the runtime, and a
// way to get the other runtime's results. Run as a program it prints one line
// per task asked for, so a test can compare runtimes:
//   deno run -A tests/determinism.ts [TASK…]      node tests/run-node.mjs --main tests/determinism.ts [TASK…]
// Tasks: "digest" (the default) for quantizationDigest(), "npz:NAME" for the
// SHA-256 of the .npz export of SAME_RUNS[NAME].
import { spawnSync } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { init, loadModel, quantize, type QuantizeOptionsInput, Tensor } from "../mod.ts";
import { readNpz } from "../src/data/npy.ts";
import { fingerprint } from "../src/quant/state.ts";
import { imagesToInput, readFixture } from "./fixtures.ts";

/** A short run: the model fixture, the first `images` calibration images (÷255, [N,1,28,28]) and the options. */
export interface SameRun {
  model: string;
  images: number;
  options: QuantizeOptionsInput;
}

/**
 * The runs whose exported .npz must be byte-identical in Deno, Node and the
 * browser (tests/determinism.test.ts, tests/browser.test.ts). "tiny" uses the
 * stochastic variant of Attention Round, so the random generator's sequence is
 * checked too; the default expectation variant draws only QDrop's numbers.
 */
export const SAME_RUNS: Record<"tiny" | "resnet18", SameRun> = {
  tiny: {
    model: "tiny_cnn_fmnist.onnx",
    images: 96,
    options: {
      weightBits: 3,
      activationBits: 4,
      iterations: 24,
      seed: 7,
      batchSize: 16,
      holdout: 16,
      attention: { variant: "stochastic" },
    },
  },
  resnet18: {
    model: "resnet18_fmnist.onnx",
    images: 40,
    options: { weightBits: 4, activationBits: 4, iterations: 3, seed: 3, batchSize: 8, holdout: 8 },
  },
};

/** The first `count` calibration images as the fixture models' input. */
export function calibrationImages(count: number): Tensor {
  const x = readNpz(readFixture("calib.npz")).x;
  return imagesToInput(new Tensor((x.data as Uint8Array).subarray(0, count * 784), [count, 28, 28]));
}

/** The .npz export of one of SAME_RUNS, on `threads` threads (default: the cores the runtime reports). */
export async function sameRunNpz(run: SameRun, threads?: number): Promise<Uint8Array> {
  await init();
  const model = loadModel(readFixture(run.model));
  const options = threads === undefined ? run.options : { ...run.options, threads };
  const q = await quantize(model, calibrationImages(run.images), options);
  try {
    return q.toNpz();
  } finally {
    q.dispose();
    model.dispose();
  }
}

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(bytes)));
  return Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The digest of a short seeded quantization of tiny_cnn_fmnist: weights, steps and loss curves. */
export async function quantizationDigest(): Promise<string> {
  await init();
  const model = loadModel(readFixture("tiny_cnn_fmnist.onnx"));
  const q = await quantize(model, calibrationImages(1024), {
    weightBits: 3,
    activationBits: 4,
    iterations: 40,
    seed: 11,
    batchSize: 16,
  });
  const parts = [
    ...q.weights.map((w) => q.finalRows.get(w.layer.weight)!),
    Float32Array.from(q.report.activations.map((a) => a.step)),
    Float32Array.from(q.report.blocks.flatMap((b) => b.losses)),
  ];
  q.dispose();
  model.dispose();
  return fingerprint(...parts);
}

export const inDeno = typeof (globalThis as { Deno?: { version?: unknown } }).Deno?.version === "object";
/** The runtime that inOtherRuntime() uses. */
export const otherRuntime = inDeno ? "Node" : "Deno";

/** Runs this file as a program in the other runtime (Node from Deno, Deno from Node); its answers by task. */
export function inOtherRuntime(tasks: string[]): Record<string, string> {
  const [command, args] = inDeno
    ? ["node", ["tests/run-node.mjs", "--main", "tests/determinism.ts", ...tasks]]
    : ["deno", ["run", "-A", "tests/determinism.ts", ...tasks]];
  const child = spawnSync(command, args, {
    encoding: "utf8",
    cwd: fileURLToPath(new URL("..", import.meta.url)),
    timeout: 300_000,
  });
  if (child.status !== 0) {
    throw new Error(`${command} ${args.join(" ")} failed (${child.status}): ${child.stderr}`);
  }
  const answers: Record<string, string> = {};
  for (const line of child.stdout.split("\n")) {
    const [task, value] = line.trim().split(" ");
    if (tasks.includes(task) && value) answers[task] = value;
  }
  for (const task of tasks) {
    if (!answers[task]) throw new Error(`${command} printed no answer for ${task}:\n${child.stdout}`);
  }
  return answers;
}

async function answer(task: string): Promise<string> {
  if (task === "digest") return await quantizationDigest();
  const run = SAME_RUNS[task.replace(/^npz:/, "") as keyof typeof SAME_RUNS];
  if (!task.startsWith("npz:") || !run) throw new Error(`unknown task ${task}`);
  return await sha256Hex(await sameRunNpz(run));
}

// As a program: `deno run tests/determinism.ts …`, or `run-node.mjs --main tests/determinism.ts …`.
const argv = process.argv;
const self = argv.findIndex((a) => a.endsWith("determinism.ts"));
if (self >= 0 && (import.meta.main || argv[self - 1] === "--main")) {
  const tasks = argv.slice(self + 1);
  for (const task of tasks.length ? tasks : ["digest"]) console.log(`${task} ${await answer(task)}`);
}
