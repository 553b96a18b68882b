/**
 * Mutation testing for @bulwark/core, one module at a time, against only the test files that
 * exercise it, incrementally (results are kept in `reports/mutation/<module>.incremental.json`,
 * committed, so a fresh clone only re-runs the mutants whose code or tests changed).
 *
 * - `pnpm test:mutation <Module> [stryker options]`: `Backoff`, or `internal/breakerState` for a
 *   module of `src/internal/`;
 * - `pnpm test:mutation --all [stryker options]`: every module, one after the other, then the
 *   summary table;
 * - `pnpm test:mutation --summary`: the table from the incremental results, without running;
 * - `pnpm test:mutation --list`: the modules and the test files each one runs.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const core = path.join(root, "packages/core")
const read = (file: string): string => fs.readFileSync(path.join(core, file), "utf8")

/** Test files beyond `test/<Module>.test.ts` and `test/<Module>.*.test.ts`. */
const extraTests: Record<string, ReadonlyArray<string>> = {
  Failure: ["test/OddFailures.test.ts"],
  // the deadline's bound on a backoff is Retry's, tested beside the other deadline checks
  Retry: ["test/Deadline.test.ts"],
  BreakerStore: ["test/CircuitBreaker.test.ts", "test/CircuitBreaker.hardening.test.ts"]
}

/**
 * Internal modules shared by so many modules that the tests of all of them would take hours:
 * the tests that check them directly instead. Every other internal module runs the tests of the
 * modules that import it (directly or through another internal module), and the test files that
 * import it themselves.
 */
const internalTests: Record<string, ReadonlyArray<string>> = {
  "internal/config": ["test/Options.property.test.ts", "test/RetryBudget.test.ts", "test/Bulkhead.test.ts"],
  "internal/describe": ["test/OddFailures.test.ts", "test/Failure.test.ts", "test/Options.property.test.ts"],
  "internal/duration": [
    "test/Options.property.test.ts",
    "test/Backoff.test.ts",
    "test/Deadline.test.ts",
    "test/Timeout.test.ts"
  ]
}

const sourcesIn = (dir: string): Array<string> =>
  fs.readdirSync(path.join(core, dir)).filter((f) => f.endsWith(".ts") && f !== "index.ts").map((f) => f.slice(0, -3))
    .sort()

const publicModules = sourcesIn("src")
const internalModules = sourcesIn("src/internal").map((m) => `internal/${m}`)
const modules = [...publicModules, ...internalModules]
const testFiles = fs.readdirSync(path.join(core, "test")).filter((f) => f.endsWith(".test.ts")).sort()

const ownTests = (module: string): Array<string> => [
  ...testFiles.filter((f) => f === `${module}.test.ts` || f.startsWith(`${module}.`)).map((f) => `test/${f}`),
  ...(extraTests[module] ?? [])
]

/** The modules (public or internal) whose source imports `internal/<name>`. */
const importersOf = (name: string): Array<string> =>
  modules.filter((m) => {
    const source = read(`src/${m}.ts`)
    return m.startsWith("internal/")
      ? source.includes(`"./${name}.js"`)
      : source.includes(`"./internal/${name}.js"`)
  })

const testsOf = (module: string, seen: Set<string> = new Set()): Array<string> => {
  if (!module.startsWith("internal/")) return [...new Set(ownTests(module))]
  if (internalTests[module] !== undefined) return [...internalTests[module]]
  if (seen.has(module)) return []
  seen.add(module)
  const name = module.slice("internal/".length)
  const direct = testFiles.filter((f) => read(`test/${f}`).includes(`/internal/${name}.js"`)).map((f) => `test/${f}`)
  return [...new Set([...direct, ...importersOf(name).flatMap((m) => testsOf(m, seen))])]
}

/** `internal/breakerState` → `reports/mutation/internal.breakerState.incremental.json` (one flat folder). */
const incrementalFile = (module: string): string => `reports/mutation/${module.replace("/", ".")}.incremental.json`

const run = (module: string, options: ReadonlyArray<string>): number => {
  const tests = testsOf(module)
  if (tests.length === 0) {
    console.error(`No test files for ${module}`)
    return 1
  }
  const result = spawnSync(
    "pnpm",
    [
      "exec",
      "stryker",
      "run",
      "stryker.config.mjs",
      "--mutate",
      `packages/core/src/${module}.ts`,
      "--incrementalFile",
      incrementalFile(module),
      ...options
    ],
    {
      cwd: root,
      stdio: "inherit",
      env: {
        ...process.env,
        BULWARK_MUTATION_TESTS: tests.join(","),
        // Stryker runs vitest in worker threads, which take no V8 flags of their own: the memory
        // tests' `gc` comes from the process (vitest.config.ts gives it to its forks instead)
        NODE_OPTIONS: [process.env.NODE_OPTIONS, "--expose-gc"].filter(Boolean).join(" ")
      }
    }
  )
  return result.status ?? 1
}

interface Counts {
  mutants: number
  errors: number
  killed: number
  timeout: number
  survived: number
  noCoverage: number
}

/** The counts in a module's incremental result (a mutation-testing-report-schema file), if any. */
const countsOf = (module: string): Counts | undefined => {
  const file = path.join(root, incrementalFile(module))
  if (!fs.existsSync(file)) return undefined
  const report = JSON.parse(fs.readFileSync(file, "utf8")) as {
    files: Record<string, { mutants: ReadonlyArray<{ status: string }> }>
  }
  const counts: Counts = { mutants: 0, errors: 0, killed: 0, timeout: 0, survived: 0, noCoverage: 0 }
  for (const { mutants } of Object.values(report.files)) {
    for (const { status } of mutants) {
      if (status === "Ignored") continue
      counts.mutants++
      if (status === "CompileError" || status === "RuntimeError") counts.errors++
      else if (status === "Killed") counts.killed++
      else if (status === "Timeout") counts.timeout++
      else if (status === "Survived") counts.survived++
      else if (status === "NoCoverage") counts.noCoverage++
    }
  }
  return counts
}

/** Stryker's score: detected (killed or timed out) over every mutant that compiled and ran. */
const score = (c: Counts): string => {
  const valid = c.killed + c.timeout + c.survived + c.noCoverage
  return valid === 0 ? "-" : `${(100 * (c.killed + c.timeout) / valid).toFixed(1)}%`
}

const summary = (): void => {
  const header = ["module", "mutants", "errors", "killed", "timeout", "survived", "no coverage", "score"]
  const rows: Array<Array<string>> = []
  const total: Counts = { mutants: 0, errors: 0, killed: 0, timeout: 0, survived: 0, noCoverage: 0 }
  const unmeasured: Array<string> = []
  for (const module of modules) {
    const c = countsOf(module)
    if (c === undefined) {
      unmeasured.push(module)
      continue
    }
    for (const key of Object.keys(total) as Array<keyof Counts>) total[key] += c[key]
    rows.push([module, ...[c.mutants, c.errors, c.killed, c.timeout, c.survived, c.noCoverage].map(String), score(c)])
  }
  rows.push([
    "core (measured modules)",
    ...[total.mutants, total.errors, total.killed, total.timeout, total.survived, total.noCoverage].map(String),
    score(total)
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((cell, i) => i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)).join("  ")
  console.log(line(header))
  console.log(widths.map((w) => "-".repeat(w)).join("  "))
  for (const row of rows) console.log(line(row))
  if (unmeasured.length > 0) console.log(`\nNot yet measured: ${unmeasured.join(", ")}`)
}

const [module, ...rest] = process.argv.slice(2)
if (module === undefined || module === "--list") {
  for (const m of modules) console.log(`${m}: ${testsOf(m).join(", ") || "(no tests)"}`)
  process.exit(module === undefined ? 1 : 0)
}
if (module === "--summary") {
  summary()
  process.exit(0)
}
if (module === "--all") {
  const failed: Array<string> = []
  for (const m of modules) {
    console.log(`\n=== ${m} ===`)
    if (run(m, rest) !== 0) failed.push(m)
  }
  console.log("")
  summary()
  if (failed.length > 0) console.error(`\nStryker failed for: ${failed.join(", ")}`)
  process.exit(failed.length > 0 ? 1 : 0)
}
if (!modules.includes(module)) {
  console.error(`Unknown module "${module}"; one of: ${modules.join(", ")}`)
  process.exit(1)
}
process.exit(run(module, rest))
