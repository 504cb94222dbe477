// The little the command line needs from its host, for Deno and for Node:
// arguments, files, the terminal, Ctrl-C and the exit code. Nothing else in
// src/cli/ touches Deno.* or node:*.

import type { SpillStore } from "../../mod.ts";

export interface Output {
  /** Writes `text`; once the reader has gone (a closed pipe), writes nothing more and does not fail. */
  write(text: string): void;
  readonly isTTY: boolean;
  /** Terminal width, when known. */
  readonly columns?: number;
}

export interface Runtime {
  readonly name: "deno" | "node";
  readonly args: string[];
  readonly pid: number;
  readonly stdout: Output;
  readonly stderr: Output;
  readFile(path: string): Promise<Uint8Array>;
  writeFile(path: string, data: Uint8Array): Promise<void>;
  /** Replaces `to` atomically (same directory). */
  rename(from: string, to: string): Promise<void>;
  remove(path: string): Promise<void>;
  mkdir(path: string): Promise<void>;
  /** undefined when nothing is there; throws when the path cannot be looked at (permissions). Follows links. */
  stat(path: string): Promise<FileInfo | undefined>;
  /** The path with every link and "." or ".." resolved; it must exist. */
  realPath(path: string): Promise<string>;
  /** The names in a directory. */
  readDir(path: string): Promise<string[]>;
  /** Whether a process with this id runs on this machine, when the runtime can tell. */
  isRunning(pid: number): Promise<boolean | undefined>;
  /** Calls `handler` on Ctrl-C (SIGINT); returns a function that stops listening. */
  onInterrupt(handler: () => void): () => void;
  /** Files for activation caches larger than the memory budget, in the temporary folder. */
  spill: SpillStore;
  exit(code: number): never;
}

export interface FileInfo {
  /** "other": a device, pipe or socket. */
  kind: "file" | "directory" | "other";
  size: number;
  /** Device and inode, which tell two paths of one file apart from two files, where the runtime gives them. */
  dev?: number;
  ino?: number;
  /** Last modification, ms since the epoch, when known. */
  mtimeMs?: number;
}

/** Whether the error is the host's "no such file or directory". */
export function isNotFound(e: unknown): boolean {
  const err = e as { code?: string; name?: string };
  return err?.code === "ENOENT" || err?.name === "NotFound";
}

/** Whether the error is the host's "permission denied" (or a read-only file system). */
export function isPermissionDenied(e: unknown): boolean {
  const err = e as { code?: string; name?: string };
  return err?.code === "EACCES" || err?.code === "EPERM" || err?.code === "EROFS" ||
    err?.name === "PermissionDenied" || err?.name === "NotCapable";
}

// deno-lint-ignore no-explicit-any
type Any = any;

/** Whether the error says the reader of a pipe has gone (EPIPE). */
function isBrokenPipe(e: unknown): boolean {
  const err = e as { code?: string; name?: string };
  return err?.code === "EPIPE" || err?.name === "BrokenPipe";
}

/**
 * A spill store over positioned reads and writes of a file that is unlinked
 * as soon as it is open, so that nothing is left behind however the process ends.
 */
function spillStore(
  openUnlinked: () => {
    write(bytes: Uint8Array, at: number): number;
    read(into: Uint8Array, at: number): number;
    close(): void;
  },
): SpillStore {
  return {
    open(_count, recordBytes) {
      const file = openUnlinked();
      return {
        write(index, bytes) {
          for (let done = 0; done < bytes.length;) {
            done += file.write(bytes.subarray(done), index * recordBytes + done);
          }
        },
        read(index, into) {
          for (let done = 0; done < into.length;) {
            const n = file.read(into.subarray(done), index * recordBytes + done);
            if (n <= 0) throw new Error(`spill file: record ${index} was never written`);
            done += n;
          }
        },
        close: () => file.close(),
      };
    },
  };
}

function denoRuntime(Deno: Any): Runtime {
  const encoder = new TextEncoder();
  const output = (file: Any): Output => {
    let closed = false;
    return {
      write(text: string) {
        if (closed) return;
        const bytes = encoder.encode(text);
        try {
          for (let done = 0; done < bytes.length;) done += file.writeSync(bytes.subarray(done));
        } catch (e) {
          // `attnround inspect … | head -1`: the reader has what it wanted, the output ends here.
          if (!isBrokenPipe(e)) throw e;
          closed = true;
        }
      },
      get isTTY() {
        return file.isTerminal();
      },
      get columns() {
        try {
          return Deno.consoleSize().columns;
        } catch {
          return undefined;
        }
      },
    };
  };
  return {
    name: "deno",
    args: [...Deno.args],
    pid: Deno.pid,
    stdout: output(Deno.stdout),
    stderr: output(Deno.stderr),
    readFile: (path) => Deno.readFile(path),
    writeFile: (path, data) => Deno.writeFile(path, data),
    rename: (from, to) => Deno.rename(from, to),
    remove: (path) => Deno.remove(path),
    mkdir: (path) => Deno.mkdir(path, { recursive: true }),
    async stat(path) {
      try {
        const s = await Deno.stat(path);
        return {
          kind: s.isFile ? "file" : s.isDirectory ? "directory" : "other",
          size: s.size,
          dev: s.dev ?? undefined,
          ino: s.ino ?? undefined,
          mtimeMs: s.mtime?.getTime(),
        };
      } catch (e) {
        if (isNotFound(e)) return undefined;
        throw e;
      }
    },
    realPath: (path) => Deno.realPath(path),
    async readDir(path) {
      const names: string[] = [];
      for await (const entry of Deno.readDir(path)) names.push(entry.name);
      return names;
    },
    async isRunning(pid) {
      // Deno has no signal 0; Linux lists live processes in /proc (readable with --allow-all).
      if (Deno.build.os !== "linux") return undefined;
      try {
        await Deno.stat(`/proc/${pid}`);
        return true;
      } catch (e) {
        return isNotFound(e) ? false : undefined;
      }
    },
    onInterrupt(handler) {
      Deno.addSignalListener("SIGINT", handler);
      return () => Deno.removeSignalListener("SIGINT", handler);
    },
    exit: (code): never => Deno.exit(code) as never,
    spill: spillStore(() => {
      const path = Deno.makeTempFileSync({ prefix: "attnround-cache-" });
      const file = Deno.openSync(path, { read: true, write: true });
      Deno.removeSync(path);
      return {
        write(bytes, at) {
          file.seekSync(at, Deno.SeekMode.Start);
          return file.writeSync(bytes);
        },
        read(into, at) {
          file.seekSync(at, Deno.SeekMode.Start);
          return file.readSync(into) ?? 0;
        },
        close: () => file.close(),
      };
    }),
  };
}

async function nodeRuntime(process: Any): Promise<Runtime> {
  const fs = await import("node:fs/promises");
  const fsSync = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const output = (stream: Any): Output => {
    let closed = false;
    // A closed pipe is reported asynchronously: from then on the output ends quietly.
    stream.on?.("error", (e: unknown) => {
      if (!isBrokenPipe(e)) throw e;
      closed = true;
    });
    return {
      write: (text: string) => {
        if (!closed) stream.write(text);
      },
      get isTTY() {
        return Boolean(stream.isTTY);
      },
      get columns() {
        return stream.columns;
      },
    };
  };
  return {
    name: "node",
    args: process.argv.slice(2),
    pid: process.pid,
    stdout: output(process.stdout),
    stderr: output(process.stderr),
    readFile: async (path) => new Uint8Array(await fs.readFile(path)),
    writeFile: (path, data) => fs.writeFile(path, data),
    rename: (from, to) => fs.rename(from, to),
    remove: (path) => fs.rm(path, { force: true }),
    mkdir: async (path) => void await fs.mkdir(path, { recursive: true }),
    async stat(path) {
      try {
        const s = await fs.stat(path);
        return {
          kind: s.isFile() ? "file" : s.isDirectory() ? "directory" : "other",
          size: s.size,
          dev: s.dev,
          ino: s.ino,
          mtimeMs: s.mtimeMs,
        };
      } catch (e) {
        if (isNotFound(e)) return undefined;
        throw e;
      }
    },
    realPath: (path) => fs.realpath(path),
    readDir: (path) => fs.readdir(path),
    isRunning(pid) {
      try {
        process.kill(pid, 0); // signal 0: only asks whether the process exists
        return Promise.resolve(true);
      } catch (e) {
        return Promise.resolve((e as { code?: string }).code === "EPERM");
      }
    },
    onInterrupt(handler) {
      process.on("SIGINT", handler);
      return () => process.off("SIGINT", handler);
    },
    exit(code) {
      // Let piped output drain before the process ends.
      process.exitCode = code;
      process.stdout.write("", () => process.exit(code));
      return undefined as never;
    },
    spill: spillStore(() => {
      const dir = fsSync.mkdtempSync(join(tmpdir(), "attnround-cache-"));
      const fd = fsSync.openSync(join(dir, "cache"), "w+");
      fsSync.rmSync(dir, { recursive: true });
      return {
        write: (bytes, at) => fsSync.writeSync(fd, bytes, 0, bytes.length, at),
        read: (into, at) => fsSync.readSync(fd, into, 0, into.length, at),
        close: () => fsSync.closeSync(fd),
      };
    }),
  };
}

/** The host runtime: Deno when `Deno` is defined, else Node. */
export function detectRuntime(): Promise<Runtime> {
  const g = globalThis as Any;
  if (g.Deno?.version?.deno) return Promise.resolve(denoRuntime(g.Deno));
  if (g.process?.versions?.node) return nodeRuntime(g.process);
  throw new Error("the attnround command line runs in Deno or Node");
}
