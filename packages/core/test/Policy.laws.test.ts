import { Backoff, CircuitBreaker, Testing } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"

const payments = Testing.policy({
  name: "payments",
  timeout: "1 second",
  retry: { maxRetries: 3, schedule: Backoff.exponential({ base: 50, cap: 1_000 }) },
  breaker: { policy: CircuitBreaker.consecutive(2), openDuration: "2 seconds", halfOpenProbes: 1, successThreshold: 1 },
  bulkhead: { maxConcurrent: 2, maxQueued: 2 }
})

describe("Policy under scripted faults (through the testing kit)", () => {
  it.effect("keeps every invariant over random scripts: calls end, nothing lost, typed failures, budgets", () =>
    Testing.policyLaws(payments, {
      runs: 200,
      scripts: Testing.Arbitrary.script({ maxCalls: 8, maxGap: 1_500, maxLatency: 1_500 })
    }))

  it.effect("a half-open breaker admits one probe while other calls keep arriving", () =>
    Effect.gen(function*() {
      const fail = { _tag: "Failure", category: "connection", latency: 0 } as const
      const slow = { _tag: "Success", latency: 500 } as const
      const timeline = yield* Testing.runScript(payments, {
        calls: [
          { at: 0, outcomes: [fail, fail] },
          { at: 2_100, outcomes: [slow] },
          { at: 2_200, outcomes: [slow] },
          { at: 2_300, outcomes: [slow] }
        ],
        seed: 1
      })
      const probes = timeline.attempts.filter((a) => a.breaker === "HalfOpen")
      expect(probes.map((a) => [a.call, a.probes])).toEqual([[1, 1]])
      expect(timeline.calls.map((c) => c.exit._tag)).toEqual(["Failure", "Success", "Failure", "Failure"])
      yield* Testing.check(timeline)
    }))
})
