import { Backoff, Failure, Fallback, Hedge, Policy, Retry } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, FastCheck as fc, Fiber, Logger, LogLevel, TestClock } from "effect"
import * as Describe from "../src/internal/describe.js"
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

describe("describing a failure value, exactly", () => {
  it("primitives and symbols as their text", () => {
    expect(
      ["[object Object]", "", 42, true, 5n, undefined, null, Symbol("token"), Symbol()].map(Describe.describe)
    ).toEqual(["[object Object]", "", "42", "true", "5", "undefined", "null", "Symbol(token)", "Symbol()"])
  })

  it("a tagged value: its tag, then its fields but the tag, message, stack and cause", () => {
    const value = {
      _tag: "Odd",
      message: "",
      stack: "at line 1",
      cause: "upstream",
      callback: () => 1,
      text: "x",
      count: 1,
      flag: false,
      big: 2n,
      missing: undefined,
      none: null
    }
    expect(Describe.describe(value)).toBe(
      `Odd { text: "x", count: 1, flag: false, big: 2, missing: undefined, none: null }`
    )
    expect(Describe.describe({ _tag: "Bare" })).toBe("Bare")
    // a tag that is not a string is no tag
    expect(Describe.describe({ _tag: 5, field: 1 })).toBe("{ field: 1 }")
  })

  it("nested objects (cycles included) and symbols as fields; at most eight fields", () => {
    const cyclic: Record<string, unknown> = { symbol: Symbol("k"), anonymous: Symbol(), nested: { deep: 1 } }
    cyclic.self = cyclic
    expect(Describe.describe(cyclic)).toBe("{ symbol: Symbol(k), anonymous: Symbol(), nested: {…}, self: {…} }")
    const huge = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`f${i}`, i]))
    expect(Describe.describe(huge)).toBe("{ f0: 0, f1: 1, f2: 2, f3: 3, f4: 4, f5: 5, f6: 6, f7: 7 }")
    const nine = Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`f${i}`, i]))
    expect(Describe.describe(nine)).toBe("{ f0: 0, f1: 1, f2: 2, f3: 3, f4: 4, f5: 5, f6: 6, f7: 7 }")
  })

  it("a message wins; an empty one falls back to the text of the value", () => {
    expect(Describe.describe(Object.assign(() => 1, { message: "callback failed" }))).toBe("callback failed")
    expect(Describe.describe(new RangeError(""))).toBe("RangeError")
    expect(Describe.describe({ toString: () => "custom text" })).toBe("custom text")
    const getter = Object.defineProperty({ ok: 1 }, "bad", {
      enumerable: true,
      get() {
        throw new Error("getter")
      }
    })
    expect(Describe.describe(getter)).toBe("{ ok: 1, bad: undefined }")
  })

  it("a value whose keys cannot even be listed: the placeholder", () => {
    const { proxy, revoke } = Proxy.revocable({ message: "gone" }, {})
    revoke()
    expect(Describe.describe(proxy)).toBe("an object that cannot be described")
  })

  it("stringProperty and tagOf read functions too, and only strings", () => {
    const tagged = Object.assign(() => 1, { _tag: "Callback", code: 7 })
    expect(Describe.tagOf(tagged)).toBe("Callback")
    expect(Describe.stringProperty(tagged, "code")).toBeUndefined()
    expect(Describe.tagOf(null)).toBeUndefined()
    expect(Describe.tagOf("Callback")).toBeUndefined()
  })
})
