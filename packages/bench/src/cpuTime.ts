/**
 * CPU time per operation (`process.cpuUsage`, user + system, all threads) for the cases of one
 * suite, beside the wall time the harness reports. On a shared machine whose load average is
 * several times its core count, wall time per round mostly measures how long the process
 * waited for a core; CPU time is what the case itself spends.
 *
 * `--alone` runs all the rounds of one case before the next case (not interleaved), so a case is
 * not charged for collecting the garbage another case left (Effect's forked timeouts leave a lot).
 *
 * `pnpm --filter @bulwark/bench exec tsc -b && node packages/bench/build/cpuTime.js <suite-name-substring> [--alone]`
 */
import * as os from "node:os"
import { machine, scale, type Suite } from "./harness.js"
import { suites as degradationSuites } from "./suites/degradation.js"

const median = (xs: Array<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

const filter = process.argv.slice(2).find((arg) => !arg.startsWith("--")) ?? ""
const selected: ReadonlyArray<Suite> = degradationSuites.filter((s) => s.name.includes(filter))

console.log(`Machine: ${machine()}; load average ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}\n`)
for (const suite of selected) {
  const iterations = scale(suite.iterations)
  for (const c of suite.cases) await c.run(Math.max(1, Math.floor(iterations / 4)))
  const cpu = new Map<string, Array<number>>(suite.cases.map((c) => [c.name, []]))
  const wall = new Map<string, Array<number>>(suite.cases.map((c) => [c.name, []]))
  const alone = process.argv.includes("--alone")
  const order = alone
    ? suite.cases.flatMap((c) => Array.from({ length: 15 }, () => c))
    : Array.from({ length: 15 }, () => suite.cases).flat()
  {
    for (const c of order) {
      const start = process.cpuUsage()
      const started = process.hrtime.bigint()
      await c.run(iterations)
      const used = process.cpuUsage(start)
      wall.get(c.name)!.push(Number(process.hrtime.bigint() - started) / iterations)
      cpu.get(c.name)!.push(((used.user + used.system) * 1000) / iterations)
    }
  }
  console.log(`### ${suite.name}\n\n| case | CPU ns/op (median) | wall ns/op (median) |\n|---|---:|---:|`)
  for (const c of suite.cases) {
    console.log(`| ${c.name} | ${Math.round(median(cpu.get(c.name)!))} | ${Math.round(median(wall.get(c.name)!))} |`)
  }
  console.log(`\nload average after: ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}\n`)
}
