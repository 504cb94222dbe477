// Progress of a quantization on the terminal, from quantize()'s onProgress
// events: on a TTY one line per block, rewritten in place (\r) as the block
// runs and left standing when it ends; elsewhere (a pipe, a log file) plain
// lines, one every `interval` seconds and one per finished block.
import type { ProgressEvent } from "../../mod.ts";
import type { Output } from "./runtime.ts";

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

const formatLoss = (loss: number | undefined) => loss === undefined ? "–" : loss.toExponential(3);

export class ProgressPrinter {
  private blockStarted = 0;
  private block = -1;
  private lastPrinted = 0;
  private lineOpen = false;
  /** Iterations and seconds of the finished blocks, for the run's ETA. */
  private doneIterations = 0;
  private doneSeconds = 0;

  constructor(
    private readonly out: Output,
    private readonly live: boolean,
    private readonly interval = 10,
    private readonly now: () => number = () => performance.now() / 1000,
  ) {}

  private closeLine(): void {
    if (this.lineOpen) this.out.write("\n");
    this.lineOpen = false;
  }

  private show(text: string): void {
    if (this.live) {
      // Some terminals report no width (0): assume 100 columns there.
      const columns = this.out.columns;
      const width = columns && columns > 20 ? columns - 1 : 100;
      this.out.write(`\r${text.slice(0, width).padEnd(Math.min(width, 80))}`);
      this.lineOpen = true;
    } else {
      this.out.write(text + "\n");
    }
  }

  event(e: ProgressEvent): void {
    const t = this.now();
    if (e.phase === "calibrate") {
      this.closeLine();
      this.out.write("calibrating activation ranges\n");
      return;
    }
    if (e.phase === "evaluate") {
      this.closeLine();
      this.out.write("checking fidelity against the float model on held-back samples\n");
      return;
    }
    const { block = 0, blocks = 1, iteration = 0, iterations = 1 } = e;
    if (block !== this.block) {
      this.closeLine();
      this.block = block;
      this.blockStarted = t;
      this.lastPrinted = t;
    }
    const elapsed = t - this.blockStarted;
    // The first event comes after the first iteration, so time is measured from there.
    const rate = iteration > 1 && elapsed > 0 ? (iteration - 1) / elapsed : NaN;
    const blockEta = (iterations - iteration) / rate;
    const perIteration = (this.doneSeconds + elapsed) / (this.doneIterations + iteration);
    const runEta = blockEta + (blocks - block - 1) * iterations * perIteration;
    const finished = iteration >= iterations;
    const text =
      `block ${block + 1}/${blocks}  iter ${iteration}/${iterations}  loss ${formatLoss(e.loss)}  ` +
      (Number.isFinite(rate) ? `${rate.toFixed(1)} it/s  ` : "") +
      (finished
        ? `done in ${formatDuration(elapsed)}`
        : `ETA ${formatDuration(blockEta)} (run ${formatDuration(runEta)})`);
    if (finished) {
      this.doneIterations += iteration;
      this.doneSeconds += elapsed;
      this.show(text);
      this.closeLine();
    } else if (t - this.lastPrinted >= (this.live ? 0.1 : this.interval)) {
      this.lastPrinted = t;
      this.show(text);
    }
  }

  /** Ends a live line left open (on an error or an interrupt). */
  finish(): void {
    this.closeLine();
  }
}
