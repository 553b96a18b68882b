import * as path from "node:path"
import { fileURLToPath } from "node:url"
import type { RunnerTestCase, RunnerTestFile } from "vitest"
import { defineConfig } from "vitest/config"
import type { Reporter } from "vitest/reporters"

const root = path.dirname(fileURLToPath(import.meta.url))
const tests = (process.env.BULWARK_MUTATION_TESTS ?? "").split(",").filter((t) => t.length > 0)
const pkg = process.env.BULWARK_MUTATION_PACKAGE ?? "core"
if (pkg !== "core" && pkg !== "node" && pkg !== "redis") {
  throw new Error(`BULWARK_MUTATION_PACKAGE must be core, node or redis, got "${pkg}"`)
}
const sources = (name: string) => path.join(root, "packages", name, "src")

/**
 * A test file that fails to load (a mutant that throws while `@bulwark/core` is imported, as a
 * schedule built at load time does) holds no test, and StrykerJS's vitest runner builds a mutant's
 * result from the tests alone: no test failed, so it counted such a mutant as survived although
 * the file fails. This reporter gives each file that failed with no test in it one failed test,
 * "loads", carrying the file's error, so the mutant counts as killed. A file that loaded is left
 * as it is.
 */
class LoadFailures implements Reporter {
  onFinished(files: ReadonlyArray<RunnerTestFile> = []): void {
    for (const file of files) {
      if (file.result?.state !== "fail" || file.tasks.length > 0) continue
      // only the fields a reader of the finished run uses: vitest types a test with a context
      // that only its runner builds
      const loads = {
        type: "test",
        id: `${file.id}_loads`,
        name: "loads",
        mode: "run",
        file,
        suite: undefined,
        meta: {},
        annotations: [],
        result: { state: "fail", errors: file.result.errors ?? [{ message: "the test file failed to load" }] }
      } as unknown as RunnerTestCase
      file.tasks.push(loads)
    }
  }
}

/**
 * The vitest config StrykerJS runs (`stryker.config.mjs`). `@bulwark/core`, `@bulwark/node` and
 * `@bulwark/redis` (and the core's `internal/` modules the others import) resolve to the sources
 * next to this file, so inside Stryker's sandbox the tests see the mutated copy, not the workspace
 * package the `node_modules` link points to, and every package sees the same copy of the core.
 * `BULWARK_MUTATION_PACKAGE` names the package whose tests run (its folder is the root) and
 * `BULWARK_MUTATION_TESTS` lists the test files of the module under test (both set by
 * `scripts/mutation.ts`). A child process a test starts (a bundled fixture) reports no coverage,
 * and has the test's mutant switched on only when the test passes it on (test-support/childEnv.ts):
 * a module such tests reach runs with coverage analysis off (`childProcessModules` in the script,
 * `BULWARK_MUTATION_COVERAGE=off`).
 */
export default defineConfig({
  resolve: {
    alias: [
      { find: /^@bulwark\/(core|node|redis)$/, replacement: path.join(root, "packages/$1/src/index.ts") },
      { find: /^@bulwark\/core\/(.+)$/, replacement: path.join(sources("core"), "$1.ts") }
    ],
    conditions: ["source", "import", "default"]
  },
  ssr: { resolve: { conditions: ["source", "import", "default"] } },
  test: {
    root: path.join(root, "packages", pkg),
    include: tests.length > 0 ? tests : ["test/**/*.test.ts"],
    testTimeout: 60_000,
    // "stack": a setup file's `afterAll` runs before those of the setup files listed before it
    sequence: { concurrent: false, hooks: "stack" },
    // a module the tests reach in child processes: see test-support/withoutCoverage.ts
    ...(process.env.BULWARK_MUTATION_COVERAGE === "off"
      ? { setupFiles: [path.join(root, "test-support/withoutCoverage.ts")] }
      : {}),
    // the Redis tests start their servers themselves; this only refuses a machine without one
    ...(pkg === "redis" ? { globalSetup: [path.join(root, "packages/redis/test/globalSetup.ts")] } : {}),
    reporters: ["default", new LoadFailures()]
  }
})
