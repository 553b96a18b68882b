import { defineConfig } from "vitest/config"

/** The examples' smoke tests: each example runs briefly as a child process (`pnpm test:examples`). */
export default defineConfig({
  test: {
    include: ["examples/*/test/smoke.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 60_000
  }
})
