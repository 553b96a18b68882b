/**
 * A small benchmark harness: every case runs in the same process, interleaved round by round, so
 * the peers see the same machine state; the report is the median ns/op over the rounds and the
 * ratio to a named baseline.
 */
import * as os from "node:os"

/**
 * `--quick`: every case runs briefly (a hundredth of its iterations, two rounds), so CI checks
 * that every benchmark still runs without spending minutes on it. Its figures mean nothing.
 */
export const quick = process.argv.includes("--quick")

/** A size scaled down in quick mode. */
export const scale = (n: number): number => (quick ? Math.max(1, Math.ceil(n / 100)) : n)

export interface Case {
  readonly name: string
  /** Runs the operation `iterations` times and resolves when done. */
  readonly run: (iterations: number) => Promise<void>
}

export interface Suite {
  readonly name: string
  /** The case the ratios are computed against. */
  readonly baseline: string
  readonly iterations: number
  readonly cases: ReadonlyArray<Case>
  /** Extra figures a suite reports (memory per item…), printed after its table. */
  readonly extra?: () => Promise<ReadonlyArray<string>>
}

export interface Result {
  readonly suite: string
  readonly name: string
  readonly nsPerOp: number
  readonly ratio: number
}

const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

export const machine = (): string =>
  `${os.cpus()[0]?.model ?? "unknown cpu"} × ${os.cpus().length}, ${
    Math.round(os.totalmem() / 2 ** 30)
  } GiB, Node ${process.version}`

export const runSuite = async (suite: Suite, rounds = quick ? 2 : 15): Promise<ReadonlyArray<Result>> => {
  const samples = new Map<string, Array<number>>(suite.cases.map((c) => [c.name, []]))
  const iterations = scale(suite.iterations)
  // warm-up: let the JIT settle on every case before measuring
  for (const c of suite.cases) await c.run(Math.max(1, Math.floor(iterations / 4)))
  for (let round = 0; round < rounds; round++) {
    for (const c of suite.cases) {
      const start = process.hrtime.bigint()
      await c.run(iterations)
      const elapsed = Number(process.hrtime.bigint() - start)
      samples.get(c.name)!.push(elapsed / iterations)
    }
  }
  const medians = new Map([...samples].map(([name, xs]) => [name, median(xs)]))
  const base = medians.get(suite.baseline)
  if (base === undefined) throw new Error(`suite "${suite.name}": no baseline case named "${suite.baseline}"`)
  return suite.cases.map((c) => ({
    suite: suite.name,
    name: c.name,
    nsPerOp: medians.get(c.name)!,
    ratio: medians.get(c.name)! / base
  }))
}

export const formatResults = (suite: Suite, results: ReadonlyArray<Result>): string => {
  const lines = [
    `### ${suite.name}`,
    "",
    `| case | ns/op (median) | × ${suite.baseline} |`,
    "|---|---:|---:|",
    ...results.map((r) => `| ${r.name} | ${r.nsPerOp.toFixed(0)} | ${r.ratio.toFixed(2)} |`)
  ]
  return lines.join("\n")
}
