// attnround quantize | eval | inspect | demo: the commands (one file each)
// and their dispatch. runCli returns the exit code: 0 success, 1 failure,
// 2 bad usage.
import { AttnroundError } from "../../mod.ts";
import { type CommandSpec, helpText, parseArgs, suggest } from "./args.ts";
import { Console } from "./common.ts";
import { demo, demoSpec } from "./demo.ts";
import { CliError, UsageError } from "./errors.ts";
import { evalCommand, evalSpec } from "./eval.ts";
import { inspectCommand, inspectSpec } from "./inspect.ts";
import { quantizeCommand, quantizeSpec } from "./quantize.ts";
import type { Runtime } from "./runtime.ts";
import { VERSION } from "./version.ts";

const commands: Record<string, CommandSpec> = {
  quantize: quantizeSpec,
  eval: evalSpec,
  inspect: inspectSpec,
  demo: demoSpec,
};

const topHelp = `attnround: post-training quantization of ONNX models (Attention Round)

usage: attnround COMMAND [options]

commands:
  quantize MODEL.onnx --calib CALIB.npz --out OUT.onnx [options]   quantize a model
  eval MODEL.onnx --data TEST.npz [--compare OTHER.onnx]           top-1 (and agreement) as one JSON line
  inspect MODEL.onnx                                               ops, parameters, blocks, coding length per layer
  demo [--fast]                                                    quantize the bundled ResNet-18 (a clone or the installed package)

"attnround COMMAND --help" shows a command's options; "attnround --version" the version.
exit status: 0 success, 1 failure, 2 bad usage
`;

function describeError(e: unknown): string {
  if (e instanceof AttnroundError) return `[${e.code}] ${e.message}`;
  if (e instanceof CliError) return e.message;
  // Not one the library anticipated: a bug, told in one line like any other error.
  const error = e as Error;
  return `[INTERNAL] ${error?.name ?? "Error"}: ${
    error?.message ?? String(e)
  } (a bug in attnround: please report it)`;
}

/** Runs one command line; returns the exit code. */
export async function runCli(rt: Runtime, argv: readonly string[] = rt.args): Promise<number> {
  const [name, ...rest] = argv;
  let json = rest.includes("--json");
  try {
    if (name === undefined || name === "--help" || name === "-h" || name === "help") {
      const spec = name === "help" && rest[0] ? commands[rest[0]] : undefined;
      rt.stdout.write(spec ? helpText(spec) : topHelp);
      return name === undefined ? 2 : 0;
    }
    if (name === "--version" || name === "-V" || name === "version") {
      rt.stdout.write(json ? JSON.stringify({ version: VERSION }) + "\n" : `attnround ${VERSION}\n`);
      return 0;
    }
    const spec = commands[name];
    if (!spec) {
      const guess = suggest(name, Object.keys(commands));
      throw new UsageError(
        `unknown command "${name}"${guess ? `; did you mean "${guess}"?` : ""} (commands: ${
          Object.keys(commands).join(", ")
        })`,
      );
    }
    const { flags, positionals } = parseArgs(spec, rest);
    if (flags.help) {
      rt.stdout.write(helpText(spec));
      return 0;
    }
    json = flags.json === true;
    const out = new Console(rt, json, flags.quiet === true);
    switch (name) {
      case "quantize":
        return await quantizeCommand(rt, flags, positionals, out);
      case "eval":
        return await evalCommand(rt, flags, positionals, out);
      case "inspect":
        return await inspectCommand(rt, flags, positionals, out);
      default:
        return await demo(rt, flags, out);
    }
  } catch (e) {
    const code = e instanceof CliError
      ? e.exitCode
      : e instanceof AttnroundError && e.code === "ABORTED"
      ? 130
      : 1;
    rt.stderr.write(`attnround: error: ${describeError(e)}\n`);
    if (e instanceof UsageError) {
      rt.stderr.write(
        e.command
          ? `run "attnround ${e.command} --help" for its options\n`
          : `run "attnround --help" for the commands\n`,
      );
    }
    if (json) {
      rt.stdout.write(
        JSON.stringify({
          error: {
            code: e instanceof AttnroundError
              ? e.code
              : e instanceof CliError
              ? (code === 2 ? "USAGE" : "FAILED")
              : "INTERNAL",
            message: (e as Error)?.message ?? String(e),
          },
        }) + "\n",
      );
    }
    return code;
  }
}
