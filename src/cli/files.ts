// Reading inputs and writing outputs for the command line. Every output goes
// to a temporary file in its own directory and is renamed into place, so a
// failure never leaves a half-written file; and every output path is checked
// before the long work starts (writable, a regular file or a new path, not an
// input nor another output however it is spelled), so a bad one fails in a
// second, not after an hour of quantization.
import { CliError, UsageError } from "./errors.ts";
import { type FileInfo, isNotFound, isPermissionDenied, type Runtime } from "./runtime.ts";

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

const encoder = new TextEncoder();

/**
 * The part of a file name its temporary files start with: the name cut to
 * 225 bytes, so that ".NAME.PID-RAND.tmp" stays within the 255 bytes a file
 * name may have wherever the name itself does.
 */
function tempStem(name: string): string {
  let stem = name;
  while (encoder.encode(stem).length > 225) stem = stem.slice(0, -1);
  return stem;
}

function tempPath(rt: Runtime, path: string): string {
  const tag = `${rt.pid}-${Math.random().toString(36).slice(2, 8) || "0"}`;
  return joinPath(dirname(path), `.${tempStem(basename(path))}.${tag}.tmp`);
}

function reason(e: unknown): string {
  if (isPermissionDenied(e)) {
    return (e as Error)?.name === "NotCapable"
      ? "permission denied: Deno needs --allow-all for it"
      : "permission denied";
  }
  if (isNotFound(e)) return "no such file or directory";
  return (e as Error)?.message ?? String(e);
}

/** Reads an input file; `what` names it in errors (e.g. "the model", "--calib"). */
export async function readInput(rt: Runtime, path: string, what: string): Promise<Uint8Array> {
  const found = await rt.stat(path).catch(() => undefined);
  if (found?.kind === "directory") {
    throw new CliError(`${what} ${path} is a directory; give the path of a file`);
  }
  // A device or pipe may never end (/dev/zero): only regular files are read.
  if (found?.kind === "other") throw new CliError(`${what} ${path} is not a regular file`);
  try {
    return await rt.readFile(path);
  } catch (e) {
    const hint = isNotFound(e) ? ": check the path (relative paths start from the current directory)" : "";
    throw new CliError(`cannot read ${what} ${path} (${reason(e)})${hint}`);
  }
}

/** A path as the file system sees it: links and ".." resolved, and the file's device and inode if it exists. */
interface Identity {
  real: string;
  info?: FileInfo;
}

async function identify(rt: Runtime, path: string): Promise<Identity> {
  const info = await rt.stat(path).catch(() => undefined);
  if (info) return { real: await rt.realPath(path).catch(() => path), info };
  const dir = await rt.realPath(dirname(path)).catch(() => dirname(path));
  return { real: joinPath(dir, basename(path)) };
}

function same(a: Identity, b: Identity): boolean {
  if (a.real === b.real) return true;
  return a.info?.ino !== undefined && a.info.dev === b.info?.dev && a.info.ino === b.info?.ino;
}

/**
 * Fails now if `path` could not be written later: its directory must exist and
 * take a new file, and the path must be a regular file or new. Leaves nothing behind.
 */
export async function checkWritable(rt: Runtime, path: string, flag: string): Promise<void> {
  const dir = dirname(path);
  const target = await rt.stat(path).catch(() => undefined);
  if (target?.kind === "directory") {
    throw new CliError(
      `${flag} ${path} is a directory; give a file path such as ${joinPath(path, basename(path) || "out")}`,
    );
  }
  if (target?.kind === "other") {
    // Renaming over a device or pipe would replace it (as root, /dev/null itself).
    throw new CliError(`${flag} ${path} is not a regular file (a device, pipe or socket); write to a file`);
  }
  let parent: FileInfo | undefined;
  try {
    parent = await rt.stat(dir);
  } catch (e) {
    throw new CliError(`${flag} ${path}: cannot look at the directory ${dir} (${reason(e)})`);
  }
  if (!parent) throw new CliError(`${flag} ${path}: the directory ${dir} does not exist; create it first`);
  if (parent.kind !== "directory") throw new CliError(`${flag} ${path}: ${dir} is not a directory`);
  const probe = tempPath(rt, path);
  try {
    await rt.writeFile(probe, new Uint8Array(0));
  } catch (e) {
    throw new CliError(`${flag} ${path} cannot be written (${reason(e)}); choose a writable directory`);
  }
  await rt.remove(probe).catch(() => {});
}

/** A temporary file untouched this long is abandoned: writing one takes seconds, and it is renamed at once. */
const STALE_MS = 60_000;

/**
 * Removes the temporary files a killed run left for `path` (".NAME.PID-RAND.tmp"
 * in its directory): those whose process is gone, or that nobody has written
 * to for a minute. A live writer's file stays.
 */
async function removeStaleTemps(rt: Runtime, path: string): Promise<void> {
  const stem = tempStem(basename(path));
  const names = await rt.readDir(dirname(path)).catch(() => []);
  for (const name of names) {
    if (!name.startsWith(`.${stem}.`) || !name.endsWith(".tmp")) continue;
    const tag = /^(\d+)-[a-z0-9]+$/.exec(name.slice(stem.length + 2, -4));
    if (!tag || Number(tag[1]) === rt.pid) continue;
    const file = joinPath(dirname(path), name);
    const info = await rt.stat(file).catch(() => undefined);
    if (info?.kind !== "file") continue;
    const old = info.mtimeMs !== undefined && Date.now() - info.mtimeMs > STALE_MS;
    if (old || (await rt.isRunning(Number(tag[1]))) === false) await rt.remove(file).catch(() => {});
  }
}

/**
 * Checks the outputs of a command before any work: each path given, a file
 * path, not an input (`inputs`: [what, path], e.g. ["--calib", "c.npz"]) nor
 * another output however either is spelled (links, "..", hard links), and
 * writable (see checkWritable). Removes stale temporary files of each output.
 */
export async function checkOutputs(
  rt: Runtime,
  command: string,
  outputs: [string, string | undefined][],
  inputs: [string, string][],
): Promise<void> {
  const given = outputs.filter((o): o is [string, string] => typeof o[1] === "string");
  for (const [flag, path] of given) {
    if (path === "") throw new UsageError(`${flag} needs a file path`, command);
    if (basename(path) === "" || basename(path) === "." || basename(path) === "..") {
      throw new UsageError(`${flag} ${path} names a directory; give a file path`, command);
    }
  }
  const ids = await Promise.all(given.map(([, path]) => identify(rt, path)));
  const inputIds = await Promise.all(inputs.map(([, path]) => identify(rt, path)));
  given.forEach(([flag, path], i) => {
    const input = inputs.findIndex((_, k) => same(ids[i], inputIds[k]));
    if (input >= 0) {
      const [what, inputPath] = inputs[input];
      throw new UsageError(
        `${flag} ${path} is ${what} ${inputPath}: writing it would replace an input; write elsewhere`,
        command,
      );
    }
    const other = given.findIndex((_, k) => k !== i && same(ids[i], ids[k]));
    if (other >= 0) {
      const [first, second] = other < i ? [given[other][0], flag] : [flag, given[other][0]];
      throw new UsageError(
        `${first} and ${second} name the same file ${path}; give each its own path`,
        command,
      );
    }
  });
  for (const [flag, path] of given) {
    await checkWritable(rt, path, flag);
    await removeStaleTemps(rt, path);
  }
}

/**
 * Writes files through temporary files in their directories, then renames
 * them into place: all of them are written before any is renamed, so that a
 * failure (a full disk) leaves the earlier outputs as they were, not a set of
 * new and old files. A path that is a link is written through (the link stays).
 */
export async function writeOutputs(rt: Runtime, files: [string, Uint8Array | string][]): Promise<void> {
  const temps: [string, string][] = [];
  try {
    for (const [path, data] of files) {
      const target = await rt.realPath(path).catch(() => path);
      const temp = tempPath(rt, target);
      temps.push([temp, target]);
      try {
        await rt.writeFile(temp, typeof data === "string" ? encoder.encode(data) : data);
      } catch (e) {
        throw new CliError(`cannot write ${path} (${reason(e)})`);
      }
    }
    for (const [i, [temp, target]] of temps.entries()) {
      try {
        await rt.rename(temp, target);
      } catch (e) {
        throw new CliError(`cannot write ${files[i][0]} (${reason(e)})`);
      }
    }
  } finally {
    for (const [temp] of temps) await rt.remove(temp).catch(() => {});
  }
}

/** Writes `data` to `path` through a temporary file in the same directory and a rename. */
export function writeOutput(rt: Runtime, path: string, data: Uint8Array | string): Promise<void> {
  return writeOutputs(rt, [[path, data]]);
}
