// Headless Chromium for the browser tests: Debian's /usr/bin/chromium, driven
// by playwright-core, on a fresh profile, opening pages from a localhost
// server that answers only the files it is given. Where Chromium is not
// installed the tests are skipped, except on CI (tests/system.ts).
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
// deno-lint-ignore no-import-prefix
import { chromium } from "npm:playwright-core@1.65.1";

import { CHROMIUM } from "./system.ts";
export { CHROMIUM, haveChromium } from "./system.ts";

export type Browser = Awaited<ReturnType<typeof chromium.launchPersistentContext>>;
type LaunchOptions = NonNullable<Parameters<typeof chromium.launchPersistentContext>[1]>;

/** Served files by path ("/", "/x.mjs"): content type and body. Any other path is a 404. */
export type Files = Record<string, [contentType: string, body: string | Uint8Array]>;

/**
 * Serves `files` on 127.0.0.1 and launches Chromium with `options` added, then
 * runs `use` with the browser, the server's origin and the paths requested so
 * far; closes the browser and the server and removes the profile afterwards.
 */
export async function withChromium<T>(
  files: Files,
  options: LaunchOptions,
  use: (chromium: { browser: Browser; origin: string; requests: string[] }) => Promise<T>,
): Promise<T> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(req.url ?? "");
    const file = files[req.url ?? ""];
    res.writeHead(file ? 200 : 404, { "content-type": file?.[0] ?? "text/plain" });
    res.end(file?.[1] ?? "");
  });
  const profile = mkdtempSync(join(tmpdir(), "attnround-chromium-"));
  let browser: Browser | undefined;
  try {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    // A fresh profile each run; playwright passes it to Chromium as --user-data-dir.
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
      ...options,
    });
    return await use({ browser, origin, requests });
  } finally {
    await browser?.close();
    await new Promise((resolve) => server.close(resolve));
    rmSync(profile, { recursive: true, force: true });
  }
}
