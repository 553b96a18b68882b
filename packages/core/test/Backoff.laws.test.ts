import { Backoff, Retry, Testing } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Effect, FastCheck as fc } from "effect"

describe("Backoff laws (through the testing kit)", () => {
  it.effect.prop(
    "every backoff the options describe keeps the laws its options promise",
    [Testing.Arbitrary.backoffOptions],
    ([options]) => Testing.scheduleLaws(Testing.backoff(options), { ...Testing.backoffLaws(options), runs: 20 }),
    { fastCheck: { numRuns: 40 } }
  )

  it.effect("decorrelated jitter stays within [base, min(cap, 3 × previous)] over random seeds", () =>
    Testing.scheduleLaws(Backoff.decorrelatedJitter({ base: 100, cap: 10_000 }), {
      maxDelay: 10_000,
      jitter: (_n, previous) => [100, Math.min(10_000, 3 * (previous ?? 100))]
    }))

  it.effect("a Retry policy, as a schedule over scripted failures, keeps maxRetries, maxDelay and maxElapsed", () =>
    Testing.scheduleLaws(
      Retry.policy({
        maxRetries: 4,
        maxDelay: "2 seconds",
        maxElapsed: "5 seconds",
        escalate: false,
        schedule: Backoff.fullJitter({ base: 200, cap: 10_000 })
      }),
      {
        maxRetries: 4,
        maxDelay: 2_000,
        maxElapsed: 5_000,
        inputs: fc.constantFrom(
          new Testing.ScriptedFailure("connection"),
          new Testing.ScriptedFailure("timeout"),
          new Testing.ScriptedFailure("communication")
        )
      }
    ))

  it.effect("a law the backoff does not keep is reported with the delays that broke it", () =>
    Effect.gen(function*() {
      // the fibonacci delays of base 100 are 100, 100, 200, 300, 500: never above 500 only with a cap
      const error = yield* Effect.flip(
        Testing.scheduleLaws(Backoff.fibonacci({ base: 100 }), { maxDelay: 500, seed: 9 })
      )
      expect(error.delays).toEqual([100, 100, 200, 300, 500, 800])
      expect(error.message.split("\n")[0]).toBe(
        "Schedule law \"maxDelay\" broken: delay 6 is 800ms, above maxDelay 500ms"
      )
    }))
})
