/**
 * A vitest setup file for mutation testing a module whose tests reach much of its code only in
 * child processes (`childProcessModules` in scripts/mutation.ts). StrykerJS's vitest runner
 * reports the coverage measured in the test's own process whatever `coverageAnalysis` says, and
 * StrykerJS would then count every mutant that only a child reaches as not covered, and never run
 * it. This drops that coverage as each test file ends (its `afterAll` runs before the one of
 * Stryker's own setup file, which reads it), so every mutant runs against all the module's tests,
 * whose children take the mutant through test-support/childEnv.ts.
 */
import { afterAll } from "vitest"

afterAll(() => {
  const ns = (globalThis as { __stryker__?: { mutantCoverage?: unknown } }).__stryker__
  if (ns !== undefined) ns.mutantCoverage = undefined
})
