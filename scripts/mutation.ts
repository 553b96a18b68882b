/**
 * `pnpm test:mutation <Module> [more stryker options]`: mutation-tests one module of
 * @bulwark/core against only its own test files, incrementally (results are kept in
 * `reports/mutation/<Module>.incremental.json`, ignored by git). `pnpm test:mutation --list`
 * prints the modules and their test files.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const core = path.join(root, "packages/core")

/** Test files beyond `test/<Module>.test.ts` and `test/<Module>.*.test.ts`. */
const extraTests: Record<string, ReadonlyArray<string>> = {
  Failure: ["test/OddFailures.test.ts"],
  BreakerStore: ["test/CircuitBreaker.test.ts", "test/CircuitBreaker.hardening.test.ts"]
}

const modules = fs.readdirSync(path.join(core, "src"))
  .filter((f) => f.endsWith(".ts") && f !== "index.ts")
  .map((f) => f.slice(0, -3))
  .sort()

const testsOf = (module: string): Array<string> => {
  const own = fs.readdirSync(path.join(core, "test"))
    .filter((f) => f === `${module}.test.ts` || (f.startsWith(`${module}.`) && f.endsWith(".test.ts")))
    .map((f) => `test/${f}`)
  return [...new Set([...own, ...(extraTests[module] ?? [])])]
}

const [module, ...rest] = process.argv.slice(2)
if (module === undefined || module === "--list") {
  for (const m of modules) console.log(`${m}: ${testsOf(m).join(", ") || "(no tests)"}`)
  process.exit(module === undefined ? 1 : 0)
}
if (!modules.includes(module)) {
  console.error(`Unknown module "${module}"; one of: ${modules.join(", ")}`)
  process.exit(1)
}
const tests = testsOf(module)
if (tests.length === 0) {
  console.error(`No test files for ${module}`)
  process.exit(1)
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
    `reports/mutation/${module}.incremental.json`,
    ...rest
  ],
  { cwd: root, stdio: "inherit", env: { ...process.env, BULWARK_MUTATION_TESTS: tests.join(",") } }
)
process.exit(result.status ?? 1)
