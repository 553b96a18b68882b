// Mutation testing for @bulwark/core (StrykerJS). Not part of `pnpm test`: run one module at a
// time with `pnpm test:mutation <Module>` (or `internal/<name>`), or all of them one after the
// other with `pnpm test:mutation --all` (scripts/mutation.ts sets `mutate`, the test files and
// the committed incremental file). See docs/testing.md, "Mutation testing".
import { createRequire } from "node:module"

// pnpm keeps each package's dependencies apart: name the plugins by path so Stryker finds them
const require = createRequire(import.meta.url)

const pkg = process.env.BULWARK_MUTATION_PACKAGE ?? "core"

/** @type {import("@stryker-mutator/api/core").PartialStrykerOptions} */
export default {
  packageManager: "pnpm",
  plugins: [
    require.resolve("@stryker-mutator/vitest-runner"),
    require.resolve("@stryker-mutator/typescript-checker")
  ],
  testRunner: "vitest",
  vitest: { configFile: "vitest.mutation.config.ts", related: false },
  checkers: ["typescript"],
  // the source project of the package under test (`BULWARK_MUTATION_PACKAGE`, set by
  // scripts/mutation.ts): a mutant that does not compile is dropped before any test runs. The
  // other packages use a project that reads the core from its sources, so no build is needed
  tsconfigFile: pkg === "core" ? "packages/core/tsconfig.json" : `packages/${pkg}/tsconfig.mutation.json`,
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },
  coverageAnalysis: "perTest",
  incremental: true,
  // 2 shared cores: one test runner and one checker
  concurrency: 1,
  timeoutMS: 10_000,
  reporters: ["clear-text", "progress", "json"],
  jsonReporter: { fileName: "reports/mutation/mutation.json" },
  ignorePatterns: ["dist", "build", "coverage", "reports", "docs/charts/*.svg", "examples/*/node_modules"],
  cleanTempDir: "always"
}
