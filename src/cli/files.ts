// Reading inputs and writing outputs for the command line. Every output goes
// to a temporary file in its own directory and is renamed into place, so a
// failure never leaves a half-written file; and every output path is tried
// before the long work starts, so an unwritable one fails in a second, not
// after an hour of quantization.
import { CliError } from "./errors.ts";
import { isNotFound, isPermissionDenied, type Runtime } from "./runtime.ts";

export function dirname(path: string): string {
  const i = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  if (i < 0) return ".";
  return i === 0 ? path.slice(0, 1) : path.slice(0, i);
}

export function basename(path: string): string {
  return path.slice(Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\")) + 1);
}

export function joinPath(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

function tempPath(rt: Runtime, path: string): string {
  const tag = `${rt.pid}-${Math.random().toString(36).slice(2, 8)}`;
  return joinPath(dirname(path), `.${basename(path)}.${tag}.tmp`);
}

function reason(e: unknown): string {
  if (isPermissionDenied(e)) return "permission denied";
  if (isNotFound(e)) return "no such file or directory";
  return (e as Error)?.message ?? String(e);
}

/** Reads an input file; `what` names it in errors (e.g. "the model", "--calib"). */
export async function readInput(rt: Runtime, path: string, what: string): Promise<Uint8Array> {
  const found = await rt.stat(path).catch(() => undefined);
  if (found?.isDirectory) throw new CliError(`${what} ${path} is a directory; give the path of a file`);
  try {
    return await rt.readFile(path);
  } catch (e) {
    const hint = isNotFound(e) ? ": check the path (relative paths start from the current directory)" : "";
    throw new CliError(`cannot read ${what} ${path} (${reason(e)})${hint}`);
  }
}

/**
 * Fails now if `path` could not be written later: its directory must exist and
 * take a new file, and the path must not be a directory. Leaves nothing behind.
 */
export async function checkWritable(rt: Runtime, path: string, flag: string): Promise<void> {
  const dir = dirname(path);
  const target = await rt.stat(path).catch(() => undefined);
  if (target?.isDirectory) {
    throw new CliError(
      `${flag} ${path} is a directory; give a file path such as ${joinPath(path, basename(path) || "out")}`,
    );
  }
  const parent = await rt.stat(dir).catch(() => undefined);
  if (!parent) throw new CliError(`${flag} ${path}: the directory ${dir} does not exist; create it first`);
  if (!parent.isDirectory) throw new CliError(`${flag} ${path}: ${dir} is not a directory`);
  const probe = tempPath(rt, path);
  try {
    await rt.writeFile(probe, new Uint8Array(0));
  } catch (e) {
    throw new CliError(`${flag} ${path} cannot be written (${reason(e)}); choose a writable directory`);
  }
  await rt.remove(probe).catch(() => {});
}

/** Writes `data` to `path` through a temporary file in the same directory and a rename. */
export async function writeOutput(rt: Runtime, path: string, data: Uint8Array | string): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const temp = tempPath(rt, path);
  try {
    await rt.writeFile(temp, bytes);
    await rt.rename(temp, path);
  } catch (e) {
    await rt.remove(temp).catch(() => {});
    throw new CliError(`cannot write ${path} (${reason(e)})`);
  }
}
