// Wall time on 1 thread against more (SPEC §13), side by side in one process:
// quantize of each fixture model at W4A4 with Attention Round (200
// iterations per block, the 1,024 calibration images), and the float model's
// inference over the 10,000 test images in runs of 250 (what `attnround eval`
// does). Each setting runs on every thread count in turn, so that a drift of a
// shared machine's load hits them alike; the .npz (and the outputs) must be
// the same bytes on every count. Prints one Markdown table with the load
// average before and after, and writes the numbers as JSON.
//   deno task bench:threads [--threads 1,2] [--iterations 200] [--models resnet18_fmnist,mobilenetv2_fmnist]
//                           [--out bench/results/threads.json]
import process from "node:process";
import { init, loadModel, quantize, readNpz, Tensor } from "../mod.ts";
import { option, readFixture, toInput } from "./fmnist.ts";
import { sha256Hex } from "../tests/determinism.ts";

const counts = option("threads", "1,2").split(",").map(Number);
const iterations = Number(option("iterations", "200"));
const models = option("models", "resnet18_fmnist,mobilenetv2_fmnist").split(",");
const out = option("out", "bench/results/threads.json");
const EVAL_IMAGES = 10_000, EVAL_BATCH = 250;

interface Timing {
  task: string;
  model: string;
  threads: number;
  seconds: number;
  /** CPU time of the whole process (every thread), in seconds. */
  cpuSeconds: number;
  /** SHA-256 of the .npz, or of the outputs. */
  digest: string;
}

async function timed(task: string, model: string, threads: number, work: () => Promise<Uint8Array>) {
  const cpu = process.cpuUsage(), started = performance.now();
  const bytes = await work();
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  const timing = {
    task,
    model,
    threads,
    seconds,
    cpuSeconds: (used.user + used.system) / 1e6,
    digest: await sha256Hex(bytes),
  };
  console.error(
    `${task} ${model} on ${threads}: ${seconds.toFixed(1)} s (CPU ${timing.cpuSeconds.toFixed(1)} s)`,
  );
  return timing;
}

await init();
const calib = toInput(readNpz(readFixture("calib.npz")).x);
const test = toInput(readNpz(readFixture("test.npz")).x);
const images = new Tensor((test.data as Float32Array).slice(0, EVAL_IMAGES * 784), [EVAL_IMAGES, 1, 28, 28]);
const loadBefore = Deno.loadavg();
const timings: Timing[] = [];
for (const name of models) {
  const model = loadModel(readFixture(`${name}.onnx`));
  for (const threads of counts) {
    timings.push(
      await timed("quantize", name, threads, async () => {
        const q = await quantize(model, calib, { weightBits: 4, activationBits: 4, iterations, threads });
        const npz = q.toNpz();
        q.dispose();
        return npz;
      }),
    );
  }
  for (const threads of counts) {
    timings.push(
      await timed("eval", name, threads, async () => {
        const outputs = await model.runBatched({ input: images }, { batchSize: EVAL_BATCH, threads });
        return new Uint8Array((outputs.logits.data as Float32Array).buffer);
      }),
    );
  }
  model.dispose();
}
const loadAfter = Deno.loadavg();

const git = await new Deno.Command("git", { args: ["rev-parse", "--short", "HEAD"], stdout: "piped" })
  .output()
  .catch(() => undefined);
const context = {
  commit: git?.success ? new TextDecoder().decode(git.stdout).trim() : "unknown",
  date: new Date().toISOString(),
  cores: navigator.hardwareConcurrency,
  loadBefore,
  loadAfter,
  iterations,
};
const one = (t: Timing) =>
  timings.find((u) => u.task === t.task && u.model === t.model && u.threads === counts[0])!;
const fmt = (v: number[]) => v.map((x) => x.toFixed(2)).join(", ");
const taskName = (t: Timing) =>
  t.task === "quantize"
    ? `quantize W4A4 attention, ${iterations} iterations`
    : `eval, ${EVAL_IMAGES.toLocaleString("en-US")} images`;
console.log(`| model | task | threads | wall | CPU | wall vs ${counts[0]} thread | same bytes |`);
console.log("|---|---|--:|--:|--:|--:|:-:|");
for (const t of timings) {
  const base = one(t);
  console.log(
    `| ${t.model} | ${taskName(t)} | ${t.threads} | ${t.seconds.toFixed(1)} s | ${
      t.cpuSeconds.toFixed(1)
    } s | ${(t.seconds / base.seconds).toFixed(2)}× | ${t.digest === base.digest ? "yes" : "NO"} |`,
  );
}
console.log(
  `\nAt commit ${context.commit}, ${context.date}, ${context.cores} cores; load average ${
    fmt(loadBefore)
  } before, ${fmt(loadAfter)} after.`,
);
await Deno.writeTextFile(out, JSON.stringify({ context, timings }, null, 2) + "\n");
console.error(`wrote ${out}`);
if (timings.some((t) => t.digest !== one(t).digest)) Deno.exit(1);
