// The command line's two kinds of failure and their exit codes: 2 for a
// command that was asked for wrongly (the message says how to ask), 1 for one
// that was asked for properly and could not be done.

export class CliError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = "CliError";
  }
}

export class UsageError extends CliError {
  /** The command whose --help would help, e.g. "quantize". */
  constructor(message: string, readonly command?: string) {
    super(message, 2);
    this.name = "UsageError";
  }
}
