// The version `attnround --version` prints: package.json's, which
// tests/cli.test.ts checks it against.
export const VERSION = "0.1.0";
