/**
 * Mutation testing for the packages' sources (`packages/{core,node,redis}/src`), one module at a
 * time, against only the test files that exercise it, incrementally (results are kept in
 * `reports/mutation/<module>.incremental.json`, committed, so a fresh clone only re-runs the
 * mutants whose code or tests changed).
 *
 * - `pnpm test:mutation <Module> [stryker options]`: `Backoff`, or `internal/breakerState` for a
 *   module of the core's `src/internal/`; `node/HealthServer`, `redis/RateLimit`,
 *   `redis/internal/breakerStoreState` for the other packages;
 * - `pnpm test:mutation --all [stryker options]`: every module, one after the other, then the
 *   summary table;
 * - `pnpm test:mutation --summary`: the table from the incremental results, without running;
 * - `pnpm test:mutation --list`: the modules and the test files each one runs.
 *
 * A module whose tests reach it mostly in child processes (`node/Main`) runs without coverage
 * analysis, and all of its mutants every time (see `childProcessModules`).
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

/**
 * The packages whose sources are mutated. A module is named by its path under the package's
 * `src/` without `.ts`, after the package's prefix: `Backoff` and `internal/breakerState` in the
 * core, `node/HealthServer`, `redis/internal/breakerStoreState`.
 */
interface Package {
  readonly name: "core" | "node" | "redis"
  readonly prefix: string
  /** Its modules by their local names (`Backoff`, `internal/breakerState`), listed once. */
  readonly modules: ReadonlyArray<string>
  /** Its test files (`*.test.ts` in `test/`), listed once. */
  readonly testFiles: ReadonlyArray<string>
}

const dirOf = (name: Package["name"]): string => path.join(root, "packages", name)
const read = (pkg: Package, file: string): string => fs.readFileSync(path.join(dirOf(pkg.name), file), "utf8")

const sourcesIn = (name: Package["name"], dir: string): Array<string> =>
  fs.readdirSync(path.join(dirOf(name), dir)).filter((f) => f.endsWith(".ts") && f !== "index.ts").map((f) =>
    f.slice(0, -3)
  ).sort()

const packageOf = (name: Package["name"], prefix: string): Package => ({
  name,
  prefix,
  modules: [...sourcesIn(name, "src"), ...sourcesIn(name, "src/internal").map((m) => `internal/${m}`)],
  testFiles: fs.readdirSync(path.join(dirOf(name), "test")).filter((f) => f.endsWith(".test.ts")).sort()
})

const packages: ReadonlyArray<Package> = [
  packageOf("core", ""),
  packageOf("node", "node/"),
  packageOf("redis", "redis/")
]

/** Test files beyond `test/<Module>.test.ts`, `test/<Module>.*.test.ts` and those importing `../src/<Module>.js`. */
const extraTests: Record<string, ReadonlyArray<string>> = {
  Failure: ["test/OddFailures.test.ts"],
  // the deadline's bound on a backoff is Retry's, tested beside the other deadline checks
  Retry: ["test/Deadline.test.ts"],
  BreakerStore: ["test/CircuitBreaker.test.ts", "test/CircuitBreaker.hardening.test.ts"],
  "node/Main": ["test/MainCleanup.test.ts"],
  "redis/RedisBreakerStore": ["test/Fleet.breaker.test.ts"],
  "redis/RedisRetryBudget": ["test/Fleet.budget.test.ts", "test/Fleet.budgetMinimum.test.ts"],
  // every Redis module talks through the client; its failure tests and the two it serves most
  "redis/RedisClient": ["test/RedisFailure.test.ts", "test/RedisBreakerStore.test.ts", "test/RateLimit.test.ts"]
}

/**
 * Modules whose tests reach much of their code only in child processes (a bundled fixture run by
 * `node`, see test-support/childEnv.ts). A child reports no coverage to StrykerJS, so per-test
 * coverage would count every mutant only a child reaches as not covered and never run it: these
 * run with `--coverageAnalysis off` and without the coverage the vitest runner reports anyway
 * (test-support/withoutCoverage.ts), every mutant against all of the module's test files. Without
 * coverage Stryker would also reuse every earlier result of an unchanged mutant even after the
 * tests changed (it cannot tell which tests cover it), so they also run with `--force`: all their
 * mutants each time (narrow a run with `--mutate "packages/node/src/Main.ts:120-130"`).
 */
const childProcessModules: ReadonlySet<string> = new Set(["node/Main"])

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

const modules: Array<string> = packages.flatMap((pkg) => pkg.modules.map((m) => pkg.prefix + m))

/** The package of a module and its local name. */
const locate = (module: string): { readonly pkg: Package; readonly local: string } => {
  const pkg = packages.find((p) => p.prefix !== "" && module.startsWith(p.prefix)) ?? packages[0]!
  return { pkg, local: module.slice(pkg.prefix.length) }
}

const ownTests = (pkg: Package, local: string): Array<string> => [
  ...pkg.testFiles.filter((f) =>
    f === `${local}.test.ts` || f.startsWith(`${local}.`) ||
    read(pkg, `test/${f}`).includes(`"../src/${local}.js"`)
  ).map((f) => `test/${f}`),
  ...(extraTests[pkg.prefix + local] ?? [])
]

/** The modules (public or internal) of a package whose source imports `internal/<name>`. */
const importersOf = (pkg: Package, name: string): Array<string> =>
  pkg.modules.filter((m) => {
    const source = read(pkg, `src/${m}.ts`)
    return m.startsWith("internal/")
      ? source.includes(`"./${name}.js"`)
      : source.includes(`"./internal/${name}.js"`)
  })

const localTestsOf = (pkg: Package, local: string, seen: Set<string>): Array<string> => {
  if (!local.startsWith("internal/")) return [...new Set(ownTests(pkg, local))]
  const fixed = internalTests[pkg.prefix + local]
  if (fixed !== undefined) return [...fixed]
  if (seen.has(local)) return []
  seen.add(local)
  const name = local.slice("internal/".length)
  const direct = pkg.testFiles.filter((f) => read(pkg, `test/${f}`).includes(`/internal/${name}.js"`)).map((f) =>
    `test/${f}`
  )
  return [...new Set([...direct, ...importersOf(pkg, name).flatMap((m) => localTestsOf(pkg, m, seen))])]
}

/** The test files a module's mutants run against, relative to its package. */
const testsOf = (module: string): Array<string> => {
  const { local, pkg } = locate(module)
  return localTestsOf(pkg, local, new Set())
}

/**
 * `internal/breakerState` → `reports/mutation/internal.breakerState.incremental.json`,
 * `node/HealthServer` → `reports/mutation/node.HealthServer.incremental.json` (one flat folder).
 */
const incrementalFile = (module: string): string => `reports/mutation/${module.replaceAll("/", ".")}.incremental.json`

const run = (module: string, options: ReadonlyArray<string>): number => {
  const { local, pkg } = locate(module)
  const tests = testsOf(module)
  const childProcesses = childProcessModules.has(module)
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
      `packages/${pkg.name}/src/${local}.ts`,
      "--incrementalFile",
      incrementalFile(module),
      ...(childProcesses ? ["--coverageAnalysis", "off", "--force"] : []),
      ...options
    ],
    {
      cwd: root,
      stdio: "inherit",
      env: {
        ...process.env,
        // the package whose tests run, and whose tsconfig.json checks the mutants
        BULWARK_MUTATION_PACKAGE: pkg.name,
        BULWARK_MUTATION_TESTS: tests.join(","),
        // a Redis test without `redis-server` is skipped, which would count its mutants survived
        ...(pkg.name === "redis" ? { BULWARK_REQUIRE_REDIS: "1" } : {}),
        // see test-support/withoutCoverage.ts
        ...(childProcesses ? { BULWARK_MUTATION_COVERAGE: "off" } : {}),
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
  const unmeasured: Array<string> = []
  const keys = ["mutants", "errors", "killed", "timeout", "survived", "noCoverage"] as const
  for (const pkg of packages) {
    const total: Counts = { mutants: 0, errors: 0, killed: 0, timeout: 0, survived: 0, noCoverage: 0 }
    let measured = 0
    for (const local of pkg.modules) {
      const module = pkg.prefix + local
      const c = countsOf(module)
      if (c === undefined) {
        unmeasured.push(module)
        continue
      }
      measured++
      for (const key of keys) total[key] += c[key]
      rows.push([module, ...keys.map((key) => String(c[key])), score(c)])
    }
    if (measured > 0) {
      rows.push([
        `${pkg.name} (measured modules)`,
        ...keys.map((key) => String(total[key])),
        score(total)
      ])
    }
  }
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
