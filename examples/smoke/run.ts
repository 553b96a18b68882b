/**
 * What the examples' smoke tests share: each example runs as a real child process, as a user
 * runs it — node itself with tsx loaded (never through pnpm), so that a signal reaches the program.
 */
import { spawn } from "node:child_process"

/** How a finished run ended and what it printed. */
export interface Ran {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** A run still going: its stdout lines so far, and ways to wait on them, signal it and see it end. */
export interface Running {
  readonly lines: Array<string>
  readonly stderr: () => string
  /** Resolves once the lines printed so far satisfy `predicate`; rejects if the program ends first. */
  readonly waitFor: (predicate: (lines: ReadonlyArray<string>) => boolean) => Promise<void>
  /** Resolves with the first line that satisfies `predicate`; rejects if the program ends first. */
  readonly waitForLine: (predicate: (line: string) => boolean) => Promise<string>
  readonly signal: (signal: NodeJS.Signals) => void
  readonly exit: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
}

/** Starts `src/main.ts` of the example in `dir` with `args`. */
export const start = (dir: string, args: ReadonlyArray<string> = []): Running => {
  const child = spawn(process.execPath, ["--import", "tsx", "--conditions=source", "src/main.ts", ...args], {
    cwd: dir,
    stdio: ["ignore", "pipe", "pipe"]
  })
  const lines: Array<string> = []
  let partial = ""
  let stderr = ""
  let ended = false
  const waiters: Array<() => void> = []
  const wake = () => {
    for (const w of waiters.splice(0)) w()
  }
  child.stdout.on("data", (chunk: Buffer) => {
    const parts = (partial + chunk.toString()).split("\n")
    partial = parts.pop()!
    lines.push(...parts)
    wake()
  })
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on("error", reject)
    child.on("close", (code, signal) => {
      if (partial.length > 0) lines.push(partial)
      partial = ""
      ended = true
      wake()
      resolve({ code, signal })
    })
  })
  const until = <A>(found: () => A | undefined): Promise<A> =>
    new Promise((resolve, reject) => {
      const check = () => {
        const a = found()
        if (a !== undefined) return resolve(a)
        if (ended) return reject(new Error(`the example ended first:\n${lines.join("\n")}\n${stderr}`))
        waiters.push(check)
      }
      check()
    })
  return {
    lines,
    stderr: () => stderr,
    waitFor: (predicate) => until(() => (predicate(lines) ? true : undefined)).then(() => undefined),
    waitForLine: (predicate) => until(() => lines.find(predicate)),
    signal: (s) => child.kill(s),
    exit
  }
}

/**
 * Runs the example in `dir` to its end. With `signalAfter`, sends SIGTERM once stdout contains
 * that text.
 */
export const run = async (
  dir: string,
  args: ReadonlyArray<string> = [],
  options: { readonly signalAfter?: string } = {}
): Promise<Ran> => {
  const running = start(dir, args)
  const { signalAfter } = options
  if (signalAfter !== undefined) {
    running.waitFor((lines) => lines.join("\n").includes(signalAfter)).then(
      () => running.signal("SIGTERM"),
      () => {} // ended before printing it: the test's assertions say what is missing
    )
  }
  const { code, signal } = await running.exit
  return { code, signal, stdout: running.lines.join("\n") + "\n", stderr: running.stderr() }
}
