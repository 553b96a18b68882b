import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

const root = path.dirname(fileURLToPath(import.meta.url))
const tests = (process.env.BULWARK_MUTATION_TESTS ?? "").split(",").filter((t) => t.length > 0)

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
    sequence: { concurrent: false }
  }
})
