import * as path from "node:path"
import { fileURLToPath } from "node:url"
import type { RunnerTestCase, RunnerTestFile } from "vitest"
import { defineConfig } from "vitest/config"
import type { Reporter } from "vitest/reporters"

const root = path.dirname(fileURLToPath(import.meta.url))
const tests = (process.env.BULWARK_MUTATION_TESTS ?? "").split(",").filter((t) => t.length > 0)

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
 * The vitest config StrykerJS runs (`stryker.config.mjs`). `@bulwark/core` resolves to the sources
 * next to this file, so inside Stryker's sandbox the tests see the mutated copy, not the workspace
 * package the `node_modules` link points to. `BULWARK_MUTATION_TESTS` (set by
 * `scripts/mutation.ts`) lists the test files of the module under test.
 */
export default defineConfig({
  resolve: {
    alias: [{ find: /^@bulwark\/core$/, replacement: path.join(root, "packages/core/src/index.ts") }],
    conditions: ["source", "import", "default"]
  },
  ssr: { resolve: { conditions: ["source", "import", "default"] } },
  test: {
    root: path.join(root, "packages/core"),
    include: tests.length > 0 ? tests : ["test/**/*.test.ts"],
    testTimeout: 60_000,
    sequence: { concurrent: false },
    reporters: ["default", new LoadFailures()]
  }
})
