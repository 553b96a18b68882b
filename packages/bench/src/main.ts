/**
 * Runs every benchmark suite in one process and prints a markdown report.
 * `pnpm bench` (all suites) or `pnpm bench <name-substring>`.
 */
import { formatResults, machine, quick, runSuite, type Suite } from "./harness.js"
import { suites as breakerSuites } from "./suites/breaker.js"
import { suites as concurrentSuites } from "./suites/concurrent.js"
import { suites as degradationSuites } from "./suites/degradation.js"
import { suites as retrySuites } from "./suites/retry.js"
import { suites as supervisionSuites } from "./suites/supervision.js"
import { suites as testingSuites } from "./suites/testing.js"

const all: ReadonlyArray<Suite> = [
  ...retrySuites,
  ...breakerSuites,
  ...supervisionSuites,
  ...degradationSuites,
  ...testingSuites,
  ...concurrentSuites
]

const filter = process.argv.slice(2).find((arg) => !arg.startsWith("--"))
const selected = filter === undefined ? all : all.filter((s) => s.name.includes(filter))

console.log(
  `# Bulwark benchmarks${quick ? " (--quick: a smoke run, figures mean nothing)" : ""}\n\nMachine: ${machine()}\n`
)
for (const suite of selected) {
  const results = await runSuite(suite)
  console.log(formatResults(suite, results))
  if (suite.extra !== undefined) {
    for (const line of await suite.extra()) console.log(line)
  }
  console.log("")
}
