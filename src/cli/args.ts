// Command-line arguments: each command declares its positionals and flags
// once; parsing, checking and the --help text all come from that declaration.
import { UsageError } from "./errors.ts";

export interface FlagSpec {
  /** "size": a byte count such as 500MB, 4GiB or 1048576, parsed to bytes. */
  type: "string" | "int" | "number" | "boolean" | "size";
  /** Placeholder in the help text, e.g. "FILE". */
  value?: string;
  help: string;
  /** Shown in the help text; the command applies it. */
  default?: string;
  required?: boolean;
  choices?: readonly string[];
  /** Returns what is wrong with a parsed value and what would work, or undefined. */
  check?: (value: number) => string | undefined;
}

export interface CommandSpec {
  name: string;
  summary: string;
  positionals: { name: string; help: string }[];
  flags: Record<string, FlagSpec>;
  examples?: string[];
}

export type FlagValue = string | number | boolean;

export interface ParsedArgs {
  positionals: string[];
  flags: Record<string, FlagValue>;
}

/** Flags every command takes. */
export const commonFlags: Record<string, FlagSpec> = {
  json: { type: "boolean", help: "print only the final result, as JSON, on stdout" },
  quiet: { type: "boolean", help: "print no progress or summary (errors still go to stderr)" },
  help: { type: "boolean", help: "show this help" },
};

/** A flag check: the value must be at least `min`. */
export const atLeast = (min: number) => (v: number) => v >= min ? undefined : `must be ≥ ${min}`;

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}

/** The closest of `names` to `name`, if it is close enough to be a likely typo. */
export function suggest(name: string, names: readonly string[]): string | undefined {
  let best: string | undefined, bestDistance = Infinity;
  for (const n of names) {
    const d = n.startsWith(name) || name.startsWith(n) ? 1 : distance(name, n);
    if (d < bestDistance) [best, bestDistance] = [n, d];
  }
  return bestDistance <= Math.max(1, Math.floor(name.length / 3)) ? best : undefined;
}

function parseValue(spec: CommandSpec, name: string, flag: FlagSpec, raw: string): FlagValue {
  const bad = (what: string) =>
    new UsageError(
      `--${name} ${what}, got "${raw}"${flag.value ? ` (usage: --${name} ${flag.value})` : ""}`,
      spec.name,
    );
  if (flag.type === "string") {
    if (flag.choices && !flag.choices.includes(raw)) throw bad(`must be one of ${flag.choices.join(", ")}`);
    return raw;
  }
  if (flag.type === "size") {
    const size = parseSize(raw);
    if (size === undefined) throw bad("takes a size such as 2GiB, 512MiB or a number of bytes");
    return size;
  }
  if (flag.type === "int" && !/^[+-]?\d+$/.test(raw.trim())) throw bad("must be an integer");
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(n)) throw bad("must be a number");
  const problem = flag.check?.(n);
  if (problem) throw bad(problem);
  return n;
}

const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** Bytes of a size such as "500MB", "4GiB", "1.5 GiB" or "1048576"; undefined if it is not one. */
export function parseSize(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = match && UNITS[match[2].toLowerCase()];
  if (!match || unit === undefined || unit === null) return undefined;
  const bytes = Math.round(Number(match[1]) * unit);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

export function parseArgs(spec: CommandSpec, argv: readonly string[]): ParsedArgs {
  const flags: Record<string, FlagValue> = {};
  const positionals: string[] = [];
  const all = { ...spec.flags, ...commonFlags };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg === "-h") {
      flags.help = true;
      continue;
    }
    if (!arg.startsWith("-") || arg === "-") {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = arg.slice(arg.startsWith("--") ? 2 : 1, eq < 0 ? undefined : eq);
    const flag = all[name];
    if (!flag) {
      const guess = suggest(name, Object.keys(all));
      throw new UsageError(
        `unknown option ${arg.slice(0, eq < 0 ? undefined : eq)} for "attnround ${spec.name}"` +
          (guess
            ? `; did you mean --${guess}?`
            : `; its options are ${Object.keys(all).map((f) => `--${f}`).join(" ")}`),
        spec.name,
      );
    }
    if (flag.type === "boolean") {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`, spec.name);
      flags[name] = true;
      continue;
    }
    const raw = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    if (raw === undefined || (eq < 0 && raw.startsWith("--"))) {
      throw new UsageError(`--${name} needs a value (usage: --${name} ${flag.value ?? "VALUE"})`, spec.name);
    }
    flags[name] = parseValue(spec, name, flag, raw);
  }
  if (flags.help) return { positionals, flags };
  const missing = spec.positionals.slice(positionals.length);
  if (missing.length) {
    throw new UsageError(
      `"attnround ${spec.name}" needs ${missing.map((p) => p.name).join(" and ")}`,
      spec.name,
    );
  }
  if (positionals.length > spec.positionals.length) {
    throw new UsageError(
      `unexpected argument "${positionals[spec.positionals.length]}": "attnround ${spec.name}" takes ${
        spec.positionals.map((p) => p.name).join(" ") || "no positional arguments"
      }`,
      spec.name,
    );
  }
  for (const [name, flag] of Object.entries(spec.flags)) {
    if (flag.required && flags[name] === undefined) {
      throw new UsageError(
        `"attnround ${spec.name}" needs --${name} ${flag.value ?? ""}`.trimEnd(),
        spec.name,
      );
    }
  }
  return { positionals, flags };
}

function usageLine(spec: CommandSpec): string {
  const parts = [`attnround ${spec.name}`, ...spec.positionals.map((p) => p.name)];
  for (const [name, f] of Object.entries(spec.flags)) {
    const text = f.type === "boolean" ? `--${name}` : `--${name} ${f.value ?? "VALUE"}`;
    parts.push(f.required ? text : `[${text}]`);
  }
  return parts.join(" ");
}

export function helpText(spec: CommandSpec): string {
  const rows: [string, string][] = [];
  for (const p of spec.positionals) rows.push([p.name, p.help]);
  for (const [name, f] of Object.entries({ ...spec.flags, ...commonFlags })) {
    const left = f.type === "boolean" ? `--${name}` : `--${name} ${f.value ?? "VALUE"}`;
    const extra = f.choices ? ` (${f.choices.join(" | ")})` : "";
    rows.push([left, f.help + extra + (f.default !== undefined ? ` [default: ${f.default}]` : "")]);
  }
  const width = Math.max(...rows.map(([l]) => l.length)) + 2;
  const lines = [
    `${spec.summary}`,
    "",
    `usage: ${usageLine(spec)}`,
    "",
    ...rows.map(([l, r]) => `  ${l.padEnd(width)}${r}`),
  ];
  if (spec.examples?.length) lines.push("", "examples:", ...spec.examples.map((e) => `  ${e}`));
  lines.push("", "exit status: 0 success, 1 failure, 2 bad usage");
  return lines.join("\n") + "\n";
}
