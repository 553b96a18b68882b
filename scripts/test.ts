/**
 * `pnpm test`: the checks (`tsc -b`, eslint, docs:check, one after the other) and the vitest run,
 * side by side. `tsc -b` is single-threaded and vitest spends much of its time waiting
 * (TestClock steps settle on real timer turns, child processes, Redis, a browser), so on a
 * 2-core machine the two together take little longer than the vitest run alone.
 *
 * vitest prints as it runs; each check's output is held and printed in one piece when the check
 * ends, so the two never interleave line by line. The run fails when any step fails, and ends
 * with one line per step. Arguments go to vitest (`pnpm test -- --reporter=verbose`).
 */
import { spawn } from "node:child_process"
import * as path from "node:path"

const root = path.resolve(import.meta.dirname, "..")
const bin = (name: string) => path.join(root, "node_modules", ".bin", name)

interface Step {
  readonly name: string
  readonly command: string
  readonly args: ReadonlyArray<string>
}

interface Result {
  readonly name: string
  readonly code: number
  readonly seconds: number
}

const checks: ReadonlyArray<Step> = [
  { name: "typecheck", command: bin("tsc"), args: ["-b"] },
  {
    name: "lint",
    command: bin("eslint"),
    args: [".", "--cache", "--cache-location", "node_modules/.cache/eslint/"]
  },
  { name: "docs:check", command: bin("tsx"), args: ["scripts/check-docs.ts"] }
]

const run = (step: Step, held: boolean): Promise<Result> =>
  new Promise((resolve) => {
    const started = Date.now()
    const child = spawn(step.command, [...step.args], {
      cwd: root,
      stdio: held ? ["ignore", "pipe", "pipe"] : "inherit"
    })
    const output: Array<Buffer> = []
    child.stdout?.on("data", (chunk: Buffer) => output.push(chunk))
    child.stderr?.on("data", (chunk: Buffer) => output.push(chunk))
    const done = (code: number) => {
      const seconds = (Date.now() - started) / 1000
      if (held) {
        const text = Buffer.concat(output).toString("utf8").trimEnd()
        const status = code === 0 ? "ok" : `FAILED (exit ${code})`
        process.stdout.write(
          `\n── ${step.name}: ${status}, ${seconds.toFixed(1)} s ──\n${text === "" ? "" : text + "\n"}`
        )
      }
      resolve({ name: step.name, code, seconds })
    }
    child.on("error", (error) => {
      output.push(Buffer.from(String(error)))
      done(1)
    })
    child.on("close", (code, signal) => done(code ?? (signal === null ? 1 : 128)))
  })

const main = async (): Promise<number> => {
  const started = Date.now()
  const lane = (async () => {
    const results: Array<Result> = []
    for (const step of checks) results.push(await run(step, true))
    return results
  })()
  const vitest = run({ name: "vitest", command: bin("vitest"), args: ["run", ...process.argv.slice(2)] }, false)
  const results = [...(await lane), await vitest]
  const failed = results.filter((result) => result.code !== 0)
  process.stdout.write(`\n── pnpm test: ${((Date.now() - started) / 1000).toFixed(1)} s ──\n`)
  for (const result of results) {
    process.stdout.write(
      `  ${result.code === 0 ? "ok    " : "FAILED"} ${result.name} (${result.seconds.toFixed(1)} s)\n`
    )
  }
  return failed.length === 0 ? 0 : 1
}

process.exitCode = await main()
