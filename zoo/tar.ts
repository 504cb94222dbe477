// Reads one file out of a .tgz (an npm tarball): gunzip with the web-standard
// DecompressionStream, then walk the 512-byte tar headers. Enough for npm
// pack's output (ustar, regular files); no tar binary needed.

const decoder = new TextDecoder();

function field(header: Uint8Array, start: number, length: number): string {
  const bytes = header.subarray(start, start + length);
  const end = bytes.indexOf(0);
  return decoder.decode(end >= 0 ? bytes.subarray(0, end) : bytes);
}

async function gunzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new DecompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** The bytes of `path` inside the gzipped tarball, or undefined if it holds no such file. */
export async function readFromTgz(tgz: Uint8Array, path: string): Promise<Uint8Array | undefined> {
  const tar = await gunzip(tgz);
  for (let at = 0; at + 512 <= tar.length;) {
    const header = tar.subarray(at, at + 512);
    if (header.every((b) => b === 0)) break; // end-of-archive marker
    const prefix = field(header, 345, 155); // ustar: long names are split into prefix/name
    const name = prefix ? `${prefix}/${field(header, 0, 100)}` : field(header, 0, 100);
    const size = parseInt(field(header, 124, 12).trim() || "0", 8);
    const type = String.fromCharCode(header[156]);
    if (name === path && (type === "0" || type === "\0")) return tar.slice(at + 512, at + 512 + size);
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return undefined;
}
