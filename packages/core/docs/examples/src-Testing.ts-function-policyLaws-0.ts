import { Testing } from '../../src'

const check = Testing.policyLaws(
  Testing.policy({ timeout: "2 seconds", retry: { maxRetries: 3 }, breaker: {}, bulkhead: { maxConcurrent: 2, maxQueued: 4 } })
)
// in a test: it.effect("the payments policy keeps its invariants", () => check)
