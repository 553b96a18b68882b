import { Bulkhead, CircuitBreaker, Policy, Retry } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Data, Effect, Exit, Logger, LogLevel, Schedule } from "effect"

class Down extends Data.TaggedError("Down")<{}> {}
class Wrapped extends Data.TaggedError("Wrapped")<{ readonly error: unknown }> {}

/** Retries anything it is let retry, `maxRetries` times, without waiting. */
const retryAll = (maxRetries: number) =>
  Retry.policy({ maxRetries, while: () => true, schedule: Schedule.spaced("0 millis") })

type Shape = "breaker" | "breaker and bulkhead" | "spans"

/** A policy with a breaker (and a bulkhead, or spans) of its own, named `name`. */
const makePolicy = (
  name: string,
  shape: Shape,
  retry: Retry.RetryPolicy<any, any> | undefined,
  isFailure?: (error: unknown) => boolean
) =>
  Effect.gen(function*() {
    const breaker = yield* CircuitBreaker.make({
      name,
      policy: CircuitBreaker.consecutive(1),
      openDuration: "1 minute",
      ...(isFailure !== undefined ? { isFailure } : {})
    })
    const bulkhead = yield* Bulkhead.make({ name, maxConcurrent: 4 })
    const policy = Policy.make({
      breaker: breaker.protect,
      ...(shape === "breaker and bulkhead" ? { bulkhead: bulkhead.protect } : {}),
      ...(shape === "spans" ? { spans: true } : {}),
      ...(retry !== undefined ? { retry } : {})
    })
    return { breaker, policy }
  })

const shapes: ReadonlyArray<Shape> = ["breaker", "breaker and bulkhead", "spans"]

describe("Policy nested in a policy", () => {
  it.scoped.each(shapes)(
    "an inner breaker's rejection stops the inner retry loop every time, however often the outer loop retries it (%s)",
    (shape) =>
      Effect.gen(function*() {
        const inner = yield* makePolicy(`nesting-inner-${shape}`, shape, retryAll(3))
        const outer = yield* makePolicy(`nesting-outer-${shape}`, shape, retryAll(1))
        yield* inner.breaker.isolate
        let calls = 0
        const call = Effect.suspend(() => {
          calls++
          return Effect.fail(new Down())
        })
        const nested = call.pipe(inner.policy, outer.policy)
        for (let run = 1; run <= 2; run++) {
          const error = yield* Effect.flip(nested)
          expect(error).toBeInstanceOf(CircuitBreaker.CircuitOpenError)
          // the outer loop retries the inner policy's failure once; the inner breaker rejects each
          // of those two attempts once, and the inner loop never retries its rejection
          expect({ run, rejections: (yield* inner.breaker.metrics).rejections }).toEqual({ run, rejections: 2 * run })
        }
        const outerMetrics = yield* outer.breaker.metrics
        expect({ calls, outerCalls: outerMetrics.calls, outerRejections: outerMetrics.rejections }).toEqual({
          calls: 0,
          outerCalls: 4,
          outerRejections: 0
        })
      }).pipe(Effect.provide(Logger.minimumLogLevel(LogLevel.None)))
  )

  it.scoped.each(shapes)(
    "an outer policy without a retry leaves the inner breaker's later rejections unretried (%s)",
    (shape) =>
      Effect.gen(function*() {
        const inner = yield* makePolicy(`nesting-bare-inner-${shape}`, shape, retryAll(3))
        const outer = yield* makePolicy(`nesting-bare-outer-${shape}`, shape, undefined)
        yield* inner.breaker.isolate
        const nested = Effect.fail(new Down()).pipe(inner.policy, outer.policy)
        for (let run = 1; run <= 3; run++) {
          expect(yield* Effect.flip(nested)).toBeInstanceOf(CircuitBreaker.CircuitOpenError)
        }
        expect((yield* inner.breaker.metrics).rejections).toBe(3)
        // and the inner policy alone, after that: one rejection per run as well
        expect(yield* Effect.flip(Effect.fail(new Down()).pipe(inner.policy))).toBeInstanceOf(
          CircuitBreaker.CircuitOpenError
        )
        expect((yield* inner.breaker.metrics).rejections).toBe(4)
      }).pipe(Effect.provide(Logger.minimumLogLevel(LogLevel.None)))
  )

  it.scoped.each(shapes)(
    "a policy nested in itself retries its breaker's rejection of the inner run once, as its call's failure, and no more (%s)",
    (shape) =>
      Effect.gen(function*() {
        const { breaker, policy } = yield* makePolicy(`nesting-self-${shape}`, shape, retryAll(3))
        let calls = 0
        // the call isolates the breaker and fails: every later attempt is rejected
        const call = Effect.suspend(() => {
          calls++
          return Effect.zipRight(breaker.isolate, Effect.fail(new Down()))
        })
        const error = yield* Effect.flip(call.pipe(policy, policy))
        expect(error).toBeInstanceOf(CircuitBreaker.CircuitOpenError)
        // the inner loop retries the call's failure, the breaker rejects that retry and the inner
        // loop stops there; the outer loop retries that failure of its call once, and the breaker's
        // rejection of that retry stops the outer loop
        expect({ calls, rejections: (yield* breaker.metrics).rejections }).toEqual({ calls: 1, rejections: 2 })
      }).pipe(Effect.provide(Logger.minimumLogLevel(LogLevel.None)))
  )
})

describe("Policy around a policy, with failures that are not passed on as they came", () => {
  it.scoped.each(["breaker", "breaker and bulkhead"] as const)(
    "a policy nested in itself whose breaker turns the inner rejection into a defect stops at the next run's rejection (%s)",
    (shape) =>
      Effect.gen(function*() {
        // the breaker's isFailure throws on its own rejection coming out of the inner run
        const { breaker, policy } = yield* makePolicy(`nesting-defect-${shape}`, shape, retryAll(3), (error) => {
          if (error instanceof CircuitBreaker.CircuitOpenError) throw new Error("no rule for this")
          return true
        })
        const call = Effect.zipRight(breaker.isolate, Effect.fail(new Down()))
        const first = yield* Effect.exit(call.pipe(policy, policy))
        expect(Exit.isFailure(first) && Cause.isDie(first.cause)).toBe(true)
        expect((yield* breaker.metrics).rejections).toBe(1)
        // the isolated breaker rejects the next run at once, with the same error object
        expect(yield* Effect.flip(call.pipe(policy, policy))).toBeInstanceOf(CircuitBreaker.CircuitOpenError)
        expect((yield* breaker.metrics).rejections).toBe(2)
      }).pipe(Effect.provide(Logger.minimumLogLevel(LogLevel.None)))
  )

  it.scoped("an outer breaker that replaces its call's failure leaves the inner breaker's later rejections unretried", () =>
    Effect.gen(function*() {
      const inner = yield* makePolicy("nesting-leak-inner", "breaker", retryAll(3))
      yield* inner.breaker.isolate
      // an outer breaker that replaces its call's failure: the record of that failure is never
      // taken back, and the replacement, which its call did not raise, is taken for a rejection
      const outer = Policy.make({
        breaker: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.mapError(self, (error) => new Wrapped({ error })),
        retry: retryAll(1)
      })
      const nested = Effect.fail(new Down()).pipe(inner.policy, outer)
      for (let run = 1; run <= 2; run++) {
        const error = yield* Effect.flip(nested)
        expect(error instanceof Wrapped && error.error).toBeInstanceOf(CircuitBreaker.CircuitOpenError)
        expect({ run, rejections: (yield* inner.breaker.metrics).rejections }).toEqual({ run, rejections: run })
      }
    }).pipe(Effect.provide(Logger.minimumLogLevel(LogLevel.None))))
})

describe("Policy with a constant error object", () => {
  it.effect("raised by two fibers at once, it is retried for both as the call's failure, and no record of it outlives the calls", () =>
    Effect.gen(function*() {
      const constant = new Down()
      // a breaker that holds each failure of the first round until both fibers have failed: both
      // failures have left the call before either reaches the retry loop
      const latch = yield* Effect.makeLatch(false)
      let failed = 0
      let rejecting = false
      let rejected = 0
      const breaker = <A, E, R>(self: Effect.Effect<A, E, R>) =>
        Effect.suspend((): Effect.Effect<A, E | Down, R> => {
          if (!rejecting) {
            return Effect.tapError(self, () =>
              Effect.suspend(() => {
                failed++
                return failed === 2 ? latch.open : latch.await
              }))
          }
          rejected++
          return Effect.fail(constant)
        })
      const policy = Policy.make({ breaker, retry: retryAll(3) })
      const attempts = [0, 0]
      const call = (fiber: number) =>
        Effect.suspend(() => {
          attempts[fiber]++
          return Effect.fail(constant)
        }).pipe(policy, Effect.flip)
      const errors = yield* Effect.all([call(0), call(1)], { concurrency: "unbounded" })
      expect(errors).toEqual([constant, constant])
      expect({ attempts, failed }).toEqual({ attempts: [4, 4], failed: 8 })
      // every record of it was taken back: when the breaker later fails with it itself, without
      // running the call, that is a rejection, and it is not retried
      rejecting = true
      expect(yield* Effect.flip(Effect.fail(new Down()).pipe(policy))).toBe(constant)
      expect(rejected).toBe(1)
    }))
})

describe("Policy with a breaker slot that re-raises its call's failure inside a span", () => {
  it.effect("the re-raised failure, a span-annotated proxy of the call's, is retried as the call's, not taken for a rejection", () =>
    Effect.gen(function*() {
      let calls = 0
      const call = Effect.suspend(() => {
        calls++
        return Effect.fail(new Down())
      })
      // the call runs outside the span, so only the re-raise makes a proxy
      const slot = <A, E, R>(self: Effect.Effect<A, E, R>) =>
        Effect.catchAll(self, (error) => Effect.fail(error).pipe(Effect.withSpan("custom-slot")))
      const error = yield* Effect.flip(call.pipe(Policy.make({ breaker: slot, retry: retryAll(2) })))
      // the slot passed on a different object than the call raised: the proxy Effect makes in a span
      expect(Cause.originalError(error)).not.toBe(error)
      expect(Cause.originalError(error)).toBeInstanceOf(Down)
      expect(calls).toBe(3)
    }).pipe(Effect.provide(Logger.minimumLogLevel(LogLevel.None))))
})

describe("Policy whose retried attempt fails with its breaker's own rejection", () => {
  const layouts = ["breaker", "breaker and bulkhead", "a breaker slot of its own and a bulkhead"] as const
  it.scoped.each(layouts)(
    "that failure is the call's and is retried once; the breaker's next rejection with the same object is not (%s)",
    (layout) =>
      Effect.gen(function*() {
        const name = `retried-own-rejection-${layout}`
        const breaker = yield* CircuitBreaker.make({
          name,
          policy: CircuitBreaker.consecutive(100),
          openDuration: "1 minute"
        })
        const bulkhead = yield* Bulkhead.make({ name, maxConcurrent: 4 })
        const policy = Policy.make({
          breaker: layout === "a breaker slot of its own and a bulkhead"
            ? <A, E, R>(self: Effect.Effect<A, E, R>) => breaker.protect(self)
            : breaker.protect,
          ...(layout === "breaker" ? {} : { bulkhead: bulkhead.protect }),
          retry: retryAll(3)
        })
        let calls = 0
        const call = Effect.suspend((): Effect.Effect<never, unknown> => {
          calls++
          if (calls === 1) return Effect.fail(new Down())
          // the retry isolates the breaker and fails with the breaker's rejection of a call of
          // its own: the object the breaker fails its rejections of this millisecond with
          return Effect.zipRight(
            breaker.isolate,
            Effect.flatMap(Effect.flip(breaker.protect(Effect.void)), Effect.fail)
          )
        })
        const error = yield* Effect.flip(call.pipe(policy))
        expect(error).toBeInstanceOf(CircuitBreaker.CircuitOpenError)
        // the second attempt's failure is retried; the breaker rejects the third attempt with that
        // same object, and the loop stops there: one rejection besides the call's own
        expect({ calls, rejections: (yield* breaker.metrics).rejections }).toEqual({ calls: 2, rejections: 2 })
      }).pipe(Effect.provide(Logger.minimumLogLevel(LogLevel.None)))
  )
})
