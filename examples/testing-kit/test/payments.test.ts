/**
 * Property tests of a schedule and a policy with Bulwark's testing kit. Copy this file next to
 * your own policy: each test is a pattern (laws of a schedule; invariants over random call
 * scripts; one scripted scenario read through its timeline; an invariant of your own).
 */
import { Testing } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { paymentsBackoff, paymentsPolicy } from "../src/payments.js"

describe("payments backoff", () => {
  // every run draws from a fresh Random seeded by the run: a failure replays and shrinks
  it.effect("keeps its caps over random seeds", () =>
    Testing.scheduleLaws(paymentsBackoff, {
      maxDelay: "5 seconds",
      maxRetries: 5,
      maxElapsed: "20 seconds",
      jitter: (retry) => [0, Math.min(5_000, 100 * 2 ** (retry - 1))]
    }))
})

describe("payments policy", () => {
  it.effect("keeps every invariant under random faults", () =>
    Testing.policyLaws(Testing.policy(paymentsPolicy), { runs: 200 }))

  it.effect("a hanging call times out, and the retry after it succeeds", () =>
    Effect.gen(function*() {
      const timeline = yield* Testing.runScript(Testing.policy(paymentsPolicy), {
        calls: [{ at: 0, outcomes: [{ _tag: "Hang" }, { _tag: "Success", latency: 30 }] }],
        seed: 1
      })
      expect(timeline.attempts.map((a) => [a.start, a.outcome._tag])).toEqual([[0, "Interrupted"], [
        expect.any(Number),
        "Success"
      ]])
      expect(timeline.calls[0]!.exit._tag).toBe("Success")
      yield* Testing.check(timeline)
    }))

  it.effect("never retries a validation failure (an invariant of our own)", () =>
    Testing.policyLaws(Testing.policy(paymentsPolicy), {
      runs: 100,
      invariants: [
        ...Testing.allInvariants,
        Testing.invariant("noRetryOnValidation", (timeline) => {
          const retried = timeline.attempts.find((a) =>
            a.outcome._tag === "Failure" && a.outcome.category === "validation" && a.decision._tag === "Retry"
          )
          return retried && `call ${retried.call} retried after a validation failure`
        })
      ]
    }))
})
