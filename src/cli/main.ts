#!/usr/bin/env -S deno run --allow-read --allow-write --allow-env
// The attnround command line: `deno run -A src/cli/main.ts COMMAND …` in Deno
// (also from a URL), and bin/attnround.mjs runs the same code bundled in Node.
import { runCli } from "./cli.ts";
import { detectRuntime } from "./runtime.ts";

const rt = await detectRuntime();
rt.exit(await runCli(rt));
