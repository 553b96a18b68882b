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
  /**
   * Runs the operation `iterations` times and resolves when done. A concurrent case resolves with
   * each call's latency in ns (in any order): the report then gives its p99 too.
   */
  readonly run: (iterations: number) => Promise<void | ReadonlyArray<number>>
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
  /** For a case that reports latencies: the median over the rounds of each round's p99, in ns. */
  readonly p99?: number
}

const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

/** The nearest-rank p-th percentile (0 < p ≤ 100). */
export const percentile = (xs: ReadonlyArray<number>, p: number): number => {
  const s = Float64Array.from(xs).sort()
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!
}

export const machine = (): string =>
  `${os.cpus()[0]?.model ?? "unknown cpu"} × ${os.cpus().length}, ${
    Math.round(os.totalmem() / 2 ** 30)
  } GiB, Node ${process.version}`

export const runSuite = async (suite: Suite, rounds = quick ? 2 : 15): Promise<ReadonlyArray<Result>> => {
  const samples = new Map<string, Array<number>>(suite.cases.map((c) => [c.name, []]))
  const p99s = new Map<string, Array<number>>()
  const iterations = scale(suite.iterations)
  // warm-up: let the JIT settle on every case before measuring
  for (const c of suite.cases) await c.run(Math.max(1, Math.floor(iterations / 4)))
  for (let round = 0; round < rounds; round++) {
    for (const c of suite.cases) {
      const start = process.hrtime.bigint()
      const latencies = await c.run(iterations)
      const elapsed = Number(process.hrtime.bigint() - start)
      samples.get(c.name)!.push(elapsed / iterations)
      if (latencies !== undefined && latencies.length > 0) {
        const xs = p99s.get(c.name) ?? []
        xs.push(percentile(latencies, 99))
        p99s.set(c.name, xs)
      }
    }
  }
  const medians = new Map([...samples].map(([name, xs]) => [name, median(xs)]))
  const base = medians.get(suite.baseline)
  if (base === undefined) throw new Error(`suite "${suite.name}": no baseline case named "${suite.baseline}"`)
  return suite.cases.map((c) => {
    const p99 = p99s.get(c.name)
    return {
      suite: suite.name,
      name: c.name,
      nsPerOp: medians.get(c.name)!,
      ratio: medians.get(c.name)! / base,
      ...(p99 === undefined ? {} : { p99: median(p99) })
    }
  })
}

export const formatResults = (suite: Suite, results: ReadonlyArray<Result>): string => {
  if (results.some((r) => r.p99 !== undefined)) return formatConcurrent(suite, results)
  const lines = [
    `### ${suite.name}`,
    "",
    `| case | ns/op (median) | × ${suite.baseline} |`,
    "|---|---:|---:|",
    ...results.map((r) => `| ${r.name} | ${r.nsPerOp.toFixed(0)} | ${r.ratio.toFixed(2)} |`)
  ]
  return lines.join("\n")
}

const millis = (ns: number): string => (ns / 1e6).toLocaleString("en", { maximumFractionDigits: 2 })

/**
 * A concurrent suite's table: throughput (calls/s, from the wall time of a whole batch) and the
 * p99 of each call's latency. A case named "<label>: …" is compared with the suite's case named
 * "<label>: no policy" (when there is one): the latency the policy adds is the difference of p99s.
 */
const formatConcurrent = (suite: Suite, results: ReadonlyArray<Result>): string => {
  const byName = new Map(results.map((r) => [r.name, r]))
  const bare = (r: Result) => byName.get(`${r.name.split(":")[0]}: no policy`)
  const lines = [
    `### ${suite.name}`,
    "",
    `| case | calls/s | × ${suite.baseline} | p99 latency (ms) | p99 added by the policy (ms) |`,
    "|---|---:|---:|---:|---:|",
    ...results.map((r) => {
      const base = bare(r)
      const added = base === undefined || base === r || base.p99 === undefined || r.p99 === undefined
        ? "—"
        : millis(r.p99 - base.p99)
      return `| ${r.name} | ${Math.round(1e9 / r.nsPerOp).toLocaleString("en")} | ${(1 / r.ratio).toFixed(2)} | ${
        r.p99 === undefined ? "—" : millis(r.p99)
      } | ${added} |`
    })
  ]
  return lines.join("\n")
}
