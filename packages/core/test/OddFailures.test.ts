import { Backoff, Failure, Fallback, Hedge, Policy, Retry } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, FastCheck as fc, Fiber, Logger, LogLevel, TestClock } from "effect"
import { oddValues, prototypeKeys } from "./oddValues.js"
import { sized } from "./size.js"

/**
 * Failure values from user code can be anything. Whatever the value, every classification code
 * path keeps it a typed failure: it classifies, it is described, and the stage fails with the
 * value itself (or falls back) — it never dies because of the value.
 */
const protoKey = fc.constantFrom(...prototypeKeys)
const oddValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(...oddValues()),
  fc.anything(),
  fc.record({ _tag: fc.oneof(protoKey, fc.string()), code: fc.oneof(protoKey, fc.string()) }, { requiredKeys: [] }),
  fc.record({ message: fc.anything(), _tag: fc.anything() }, { requiredKeys: [] }),
  fc.constantFrom(...prototypeKeys, "bogus").map((category) => ({ [Failure.RuleKey]: { category } })),
  fc.constantFrom(Infinity, "soon", -1, Number.NaN).map((retryAfter) => ({
    [Failure.RuleKey]: { category: "connection", retryAfter }
  }))
)

const quiet = Logger.minimumLogLevel(LogLevel.None)
const runs = { fastCheck: { numRuns: sized(20, 100) } }

/** Runs `effect` on the TestClock until it ends. */
const settle = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(effect)
    yield* TestClock.adjust("1 day")
    return yield* Fiber.await(fiber)
  })

const failsWith = (exit: Exit.Exit<unknown, unknown>, value: unknown): boolean =>
  Exit.isFailure(exit) && !Cause.isDie(exit.cause) &&
  Cause.failures(exit.cause).pipe((fs) => [...fs].some((f) => Object.is(f, value)))

describe("odd failure values", () => {
  it.prop("Failure: classify never throws and always gives a known category", [oddValue], ([value]) => {
    const c = Failure.defaultClassifier.classify(value, { attempt: 5 })
    expect(Failure.Category.literals).toContain(c.category)
    expect(typeof c.code).toBe("string")
    expect(Failure.warningsFor(Failure.defaultClassifier, c).every((w) => typeof w === "string")).toBe(true)
  })

  it.effect.prop(
    "toExecutionError describes it, and the result encodes",
    [oddValue],
    ([value]) =>
      Effect.gen(function*() {
        const error = yield* Failure.toExecutionError(value)
        expect(typeof Failure.encodeExecutionError(error).message).toBe("string")
        const fromCause = yield* Failure.toExecutionError(Cause.fail(value))
        expect(fromCause.code).toBe(error.code)
      }).pipe(Effect.provide(quiet)),
    runs
  )

  it.effect.prop("Retry fails with the value itself", [oddValue], ([value]) =>
    Effect.gen(function*() {
      const exit = yield* settle(
        Effect.fail(value).pipe(Retry.retry({ maxRetries: 2, schedule: Backoff.fromDelays([10]) }))
      )
      expect(failsWith(exit, value)).toBe(true)
    }).pipe(Effect.provide(quiet)), runs)

  it.effect.prop(
    "Fallback falls back or fails with it; a failed fallback is described",
    [oddValue],
    ([value]) =>
      Effect.gen(function*() {
        const exit = yield* settle(Effect.fail(value).pipe(Fallback.orElse(Effect.succeed("alt"))))
        expect(Exit.isSuccess(exit) ? exit.value === "alt" : failsWith(exit, value)).toBe(true)
        const both = yield* settle(Effect.fail(value).pipe(Fallback.orElse(Effect.fail(value), { name: "odd" })))
        expect(Exit.isFailure(both) && !Cause.isDie(both.cause)).toBe(true)
        if (Exit.isFailure(both)) {
          for (const f of Cause.failures(both.cause)) {
            if (f instanceof Fallback.FallbackFailedError) expect(typeof f.message).toBe("string")
          }
        }
      }).pipe(Effect.provide(quiet)),
    runs
  )

  it.effect.prop("Hedge fails with it", [oddValue], ([value]) =>
    Effect.gen(function*() {
      const exit = yield* settle(Effect.fail(value).pipe(Hedge.hedge({ delay: "10 millis", maxHedges: 2 })))
      expect(failsWith(exit, value)).toBe(true)
    }).pipe(Effect.provide(quiet)), runs)

  it.effect.prop(
    "Policy.make fails with it or answers from its fallback",
    [oddValue, fc.boolean()],
    ([value, fb]) =>
      Effect.gen(function*() {
        const policy = fb
          ? Policy.make({
            name: "odd",
            timeout: "1 second",
            retry: Retry.policy({ maxRetries: 1 }),
            fallback: Effect.succeed("alt")
          })
          : Policy.make({ name: "odd", retry: Retry.policy({ maxRetries: 1, while: () => true }) })
        const exit = yield* settle(Effect.fail(value).pipe(policy))
        expect(Exit.isSuccess(exit) ? exit.value === "alt" : failsWith(exit, value)).toBe(true)
      }).pipe(Effect.provide(quiet)),
    runs
  )
})
