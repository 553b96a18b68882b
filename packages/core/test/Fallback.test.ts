import { Failure, Fallback } from "@bulwark/core"
import { describe, expect, expectTypeOf, it } from "@effect/vitest"
import { Cause, Context, Data, Effect, Exit, HashMap, Layer, Logger, Metric, MetricState, Option } from "effect"

class Refused extends Data.TaggedError("Refused")<{}> {}
class BadInput extends Data.TaggedError("BadInput")<{}> {}
class ReplicaDown extends Data.TaggedError("ReplicaDown")<{}> {}
class Forbidden extends Data.TaggedError("Forbidden")<{}> {}
class Bug extends Data.TaggedError("Bug")<{}> {}

const classifier = Failure.layerClassifier({
  tables: [
    Failure.table<Refused | BadInput | ReplicaDown | Forbidden | Bug>({
      Refused: "connection",
      BadInput: "validation",
      ReplicaDown: "connection",
      Forbidden: "security",
      Bug: "user_code"
    })
  ]
})

describe("Fallback", () => {
  it.effect("runs the alternative when the call fails in a way another backend can help with", () =>
    Effect.gen(function*() {
      const primary: Effect.Effect<string, Refused> = Effect.fail(new Refused())
      const price = primary.pipe(Fallback.orElse(Effect.succeed("cached"), { name: "price-ok" }))
      expect(yield* price).toBe("cached")
      const counted = yield* Metric.value(
        Fallback.fallbacksCounter.pipe(Metric.tagged("operation", "price-ok"), Metric.tagged("outcome", "succeeded"))
      )
      expect(counted).toEqual(MetricState.counter(1))
    }).pipe(Effect.provide(classifier)))

  it.effect("does not fall back on the caller's own errors, defects or success", () =>
    Effect.gen(function*() {
      let ran = 0
      const alternative = Effect.sync(() => ++ran)
      expect(yield* Effect.exit(Effect.fail(new BadInput()).pipe(Fallback.orElse(alternative)))).toEqual(
        Exit.fail(new BadInput())
      )
      const died = yield* Effect.exit(Effect.die("bug").pipe(Fallback.orElse(alternative)))
      expect(Exit.isFailure(died) && Cause.isDie(died.cause)).toBe(true)
      expect(yield* Effect.succeed(0).pipe(Fallback.orElse(alternative))).toBe(0)
      expect(ran).toBe(0)
    }).pipe(Effect.provide(classifier)))

  it.effect("security and user_code failures never fall back, like validation", () =>
    Effect.gen(function*() {
      let ran = 0
      const alternative = Effect.sync(() => ++ran)
      for (const error of [new Forbidden(), new Bug(), new BadInput()]) {
        expect(yield* Effect.exit(Effect.fail(error).pipe(Fallback.orElse(alternative)))).toEqual(Exit.fail(error))
      }
      expect(ran).toBe(0)
      // the same stage falls back on a connection failure
      expect(yield* Effect.fail(new Refused()).pipe(Fallback.orElse(alternative))).toBe(1)
    }).pipe(Effect.provide(classifier)))

  it.effect("`when` chooses by classification, and the alternative can read the failure", () =>
    Effect.gen(function*() {
      const onlyConnection = Fallback.orElse(
        (failed) => Effect.succeed(`${failed.classification.category}:${(failed.error as Refused)._tag}`),
        { when: (_e, c) => c.category === "connection" }
      )
      expect(yield* Effect.fail(new Refused()).pipe(onlyConnection)).toBe("connection:Refused")
      const timeout = new Cause.TimeoutException()
      expect(yield* Effect.exit(Effect.fail(timeout).pipe(onlyConnection))).toEqual(Exit.fail(timeout))
    }).pipe(Effect.provide(classifier)))

  it.effect("when the fallback fails too, both causes are reported in a FallbackFailedError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Effect.fail(new Refused()).pipe(Fallback.orElse(Effect.fail(new ReplicaDown()), { name: "quote" }))
      )
      if (!(error instanceof Fallback.FallbackFailedError)) return expect.unreachable("not a FallbackFailedError")
      expect(error.primaryError).toEqual(Option.some(new Refused()))
      expect(error.fallbackError).toEqual(Option.some(new ReplicaDown()))
      expect(error.operation).toBe("quote")
      expect(error.message).toBe("\"quote\" failed (Refused) and so did its fallback (ReplicaDown)")
      expect(Failure.defaultClassifier.classify(error)).toMatchObject({
        code: "FALLBACK_FAILED",
        strategy: "abandon",
        retryable: false
      })
    }).pipe(Effect.provide(classifier)))

  it.effect("a defect in the fallback stays a defect, with the primary failure before it", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Effect.fail(new Refused()).pipe(Fallback.orElse(Effect.die("fallback bug"))))
      if (!Exit.isFailure(exit)) return expect.unreachable("the call succeeded")
      expect(Cause.failures(exit.cause).pipe((c) => [...c])).toEqual([new Refused()])
      expect([...Cause.defects(exit.cause)]).toEqual(["fallback bug"])
    }).pipe(Effect.provide(classifier)))

  it.effect("the error type is the primary's errors plus FallbackFailedError only when the alternative can fail", () =>
    Effect.gen(function*() {
      // Type-level test: vitest does not check types; `tsc -b` does (tsconfig.test.json includes test/,
      // and `pnpm test` runs `pnpm typecheck` first), so a wrong type here fails `pnpm test`.
      const primary = Effect.fail(new Refused()) as Effect.Effect<number, Refused>
      const safe = primary.pipe(Fallback.orElse(Effect.succeed("cached")))
      expectTypeOf(safe).toEqualTypeOf<Effect.Effect<number | string, Refused>>()
      const risky = primary.pipe(Fallback.orElse(Effect.fail(new ReplicaDown()) as Effect.Effect<number, ReplicaDown>))
      expectTypeOf(risky).toEqualTypeOf<Effect.Effect<number, Refused | Fallback.FallbackFailedError>>()
      // and at run time the values match the types
      expect(yield* safe).toBe("cached")
      expect(yield* Effect.flip(risky)).toBeInstanceOf(Fallback.FallbackFailedError)
    }).pipe(Effect.provide(classifier)))

  class Quotes extends Context.Tag("test/Quotes")<Quotes, { readonly get: Effect.Effect<number, Refused> }>() {}

  it.effect("a defect beside a typed failure is never hidden by a fallback", () =>
    Effect.gen(function*() {
      let ran = 0
      // the call fails, and a finalizer of the call dies on the way out
      const primary = Effect.fail(new Refused()).pipe(Effect.ensuring(Effect.die("finalizer bug")))
      const exit = yield* Effect.exit(primary.pipe(Fallback.orElse(Effect.sync(() => ++ran))))
      expect(ran).toBe(0)
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      // the same in the alternative: it stays a defect, not a FallbackFailedError
      const secondary = Effect.fail(new ReplicaDown()).pipe(Effect.ensuring(Effect.die("replica bug")))
      const both = yield* Effect.exit(Effect.fail(new Refused()).pipe(Fallback.orElse(secondary)))
      expect(Exit.isFailure(both) && Cause.isDie(both.cause)).toBe(true)
      if (Exit.isFailure(both)) expect(Cause.defects(both.cause)).toContain("replica bug")
    }).pipe(Effect.provide(classifier)))

  it.effect("plan fails over from one Layer to another on classified failures", () =>
    Effect.gen(function*() {
      const primary = Layer.succeed(Quotes, { get: Effect.fail(new Refused()) })
      const replica = Layer.succeed(Quotes, { get: Effect.succeed(42) })
      const program = Effect.flatMap(Quotes, (q) => q.get)
      expect(yield* program.pipe(Effect.withExecutionPlan(Fallback.plan(primary, replica)))).toBe(42)
      const invalid = Layer.succeed(Quotes, { get: Effect.fail(new BadInput() as unknown as Refused) })
      const exit = yield* Effect.exit(program.pipe(Effect.withExecutionPlan(Fallback.plan(invalid, replica))))
      expect(exit).toEqual(Exit.fail(new BadInput()))
    }).pipe(Effect.provide(classifier)))

  it.effect("when(error, classification): the predicate decides, typed against the effect's E", () =>
    Effect.gen(function*() {
      // BadInput is validation (never falls back by default); the predicate says otherwise
      const onBadInput = Fallback.orElse(Effect.succeed("default"), {
        when: (e: Refused | BadInput, c) => e._tag === "BadInput" && c.category === "validation"
      })
      const bad: Effect.Effect<string, BadInput> = Effect.fail(new BadInput())
      expect(yield* bad.pipe(onBadInput)).toBe("default")
      const refused: Effect.Effect<string, Refused> = Effect.fail(new Refused())
      expect(yield* Effect.exit(refused.pipe(onBadInput))).toEqual(Exit.fail(new Refused()))
      const other: Effect.Effect<string, ReplicaDown> = Effect.fail(new ReplicaDown())
      // @ts-expect-error the predicate is over Refused | BadInput, the effect fails with ReplicaDown
      const wrong = other.pipe(onBadInput)
      expect(Effect.isEffect(wrong)).toBe(true)
    }).pipe(Effect.provide(classifier)))

  it.effect("a classify table given to the stage is tried before the caller's classifier", () =>
    Effect.gen(function*() {
      // Refused is connection in the context; the stage says it is the caller's fault
      const orElse = Fallback.orElse(Effect.succeed("default"), {
        classify: Failure.table<Refused | ReplicaDown>({ Refused: "validation", ReplicaDown: "connection" })
      })
      const refused: Effect.Effect<string, Refused | ReplicaDown> = Effect.fail(new Refused())
      expect(yield* Effect.exit(refused.pipe(orElse))).toEqual(Exit.fail(new Refused()))
      const down: Effect.Effect<string, Refused | ReplicaDown> = Effect.fail(new ReplicaDown())
      expect(yield* down.pipe(orElse)).toBe("default")
    }).pipe(Effect.provide(classifier)))

  it.effect("a failure whose _tag or code is a key of Object.prototype falls back like any unclassified failure", () =>
    Effect.gen(function*() {
      for (const key of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
        expect(yield* Effect.fail({ _tag: key, code: key }).pipe(Fallback.orElse(Effect.succeed(key)))).toBe(key)
        const both = yield* Effect.flip(
          Effect.fail({ _tag: key }).pipe(Fallback.orElse(Effect.fail({ code: key })))
        )
        expect(both instanceof Fallback.FallbackFailedError && both.message).toContain(key)
      }
    }))
})

const outcomes = (operation: string) =>
  Effect.all({
    succeeded: Metric.value(
      Fallback.fallbacksCounter.pipe(Metric.tagged("operation", operation), Metric.tagged("outcome", "succeeded"))
    ),
    failed: Metric.value(
      Fallback.fallbacksCounter.pipe(Metric.tagged("operation", operation), Metric.tagged("outcome", "failed"))
    )
  })

class Prices extends Context.Tag("test/Prices")<Prices, { readonly get: Effect.Effect<number, Refused> }>() {}

describe("Fallback, what it reports", () => {
  it.effect("a fallback that fails too is counted as failed, not succeeded, under its operation", () =>
    Effect.gen(function*() {
      yield* Effect.flip(
        Effect.fail(new Refused()).pipe(Fallback.orElse(Effect.fail(new ReplicaDown()), { name: "q2" }))
      )
      expect(yield* outcomes("q2")).toEqual({ succeeded: MetricState.counter(0), failed: MetricState.counter(1) })
    }).pipe(Effect.provide(classifier)))

  it.effect("without a name: the message says \"The call\", the error has no operation, the untagged counter counts", () =>
    Effect.gen(function*() {
      const untagged = Fallback.fallbacksCounter.pipe(Metric.tagged("outcome", "failed"))
      const before = yield* Metric.value(untagged)
      const error = yield* Effect.flip(Effect.fail(new Refused()).pipe(Fallback.orElse(Effect.fail(new ReplicaDown()))))
      if (!(error instanceof Fallback.FallbackFailedError)) return expect.unreachable("not a FallbackFailedError")
      expect(error.message).toBe("The call failed (Refused) and so did its fallback (ReplicaDown)")
      expect(Object.keys(error)).not.toContain("operation")
      expect(error._tag).toBe("FallbackFailedError")
      expect(yield* Effect.fail(error).pipe(Effect.catchTag("FallbackFailedError", () => Effect.succeed("caught"))))
        .toBe("caught")
      expect((yield* Metric.value(untagged)).count).toBe(before.count + 1)
    }).pipe(Effect.provide(classifier)))

  it.effect("FallbackFailedError's category is the fallback's built-in one, else system; a cause with no failure reads as a defect", () =>
    Effect.gen(function*() {
      const timedOut = yield* Effect.flip(
        Effect.fail(new Refused()).pipe(Fallback.orElse(Effect.fail(new Cause.TimeoutException())))
      )
      expect(Failure.defaultClassifier.classify(timedOut)).toMatchObject({
        category: "timeout",
        code: "FALLBACK_FAILED"
      })
      const down = yield* Effect.flip(Effect.fail(new Refused()).pipe(Fallback.orElse(Effect.fail(new ReplicaDown()))))
      expect(Failure.defaultClassifier.classify(down)).toMatchObject({ category: "system", code: "FALLBACK_FAILED" })
      const made = new Fallback.FallbackFailedError({ primary: Cause.die("bug"), fallback: Cause.fail(new Refused()) })
      expect(made.message).toBe("The call failed (a defect) and so did its fallback (Refused)")
      expect(made.primaryError).toEqual(Option.none())
    }).pipe(Effect.provide(classifier)))

  it.effect("the counter is exported as bulwark_fallback_total, a counter that only counts up, with its description", () =>
    Effect.gen(function*() {
      yield* Effect.fail(new Refused()).pipe(Fallback.orElse(Effect.succeed(1), { name: "fallback-exported" }))
      const pair = [...Metric.unsafeSnapshot()].find((p) =>
        p.metricKey.tags.some((t) => t.key === "operation" && t.value === "fallback-exported")
      )
      expect(pair?.metricKey.name).toBe("bulwark_fallback_total")
      expect(pair?.metricKey.description).toEqual(Option.some("Calls that ran their fallback, by outcome"))
      expect(pair?.metricKey.keyType).toMatchObject({ incremental: true })
    }).pipe(Effect.provide(classifier)))

  it.effect("plan: a classify function given to it is tried before the caller's classifier", () =>
    Effect.gen(function*() {
      const primary = Layer.succeed(Prices, { get: Effect.fail(new Refused()) })
      const replica = Layer.succeed(Prices, { get: Effect.succeed(42) })
      const program = Effect.flatMap(Prices, (q) => q.get)
      const plan = Fallback.plan(primary, replica, {
        classify: (error) => error instanceof Refused ? "validation" : undefined
      })
      expect(yield* Effect.exit(program.pipe(Effect.withExecutionPlan(plan)))).toEqual(Exit.fail(new Refused()))
    }).pipe(Effect.provide(classifier)))

  it.effect("an interrupted fallback is an interruption: not a FallbackFailedError, not counted as failed", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(
        Effect.fail(new Refused()).pipe(Fallback.orElse(Effect.interrupt, { name: "interrupted" }))
      )
      expect(Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)).toBe(true)
      expect(yield* outcomes("interrupted")).toEqual({
        succeeded: MetricState.counter(0),
        failed: MetricState.counter(0)
      })
    }).pipe(Effect.provide(classifier)))

  it.effect("logs the fallback and its failure, annotated with the operation", () =>
    Effect.gen(function*() {
      const lines: Array<{ level: string; message: unknown; operation: unknown }> = []
      const logger = Logger.make(({ annotations, logLevel, message }) => {
        lines.push({
          level: logLevel.label,
          message: Array.isArray(message) ? message[0] : message,
          operation: Option.getOrElse(HashMap.get(annotations, "bulwark.fallback"), () => "(none)")
        })
      })
      yield* Effect.flip(
        Effect.fail(new Refused()).pipe(Fallback.orElse(Effect.fail(new ReplicaDown()), { name: "q3" }))
      )
        .pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      // without a name, no annotation
      yield* Effect.fail(new Refused()).pipe(Fallback.orElse(Effect.succeed(1)))
        .pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      expect(lines).toEqual([
        { level: "INFO", message: "Falling back after connection failure REFUSED", operation: "q3" },
        {
          level: "ERROR",
          message: "\"q3\" failed (Refused) and so did its fallback (ReplicaDown)",
          operation: "q3"
        },
        { level: "INFO", message: "Falling back after connection failure REFUSED", operation: "(none)" }
      ])
    }).pipe(Effect.provide(classifier)))
})
