import { Failure, Timeout } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Duration, Effect, Exit, Fiber, Metric, MetricState, Option, TestClock } from "effect"

describe("Timeout", () => {
  it.effect("fails with a TimeoutError once the duration has passed on the clock", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(
        Effect.flip(Effect.never.pipe(Timeout.timeout("2 seconds", { name: "fetchUser" })))
      )
      yield* TestClock.adjust("1999 millis")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust("1 millis")
      const error = yield* Fiber.join(fiber)
      expect(error).toBeInstanceOf(Timeout.TimeoutError)
      expect(error.duration).toEqual(Duration.seconds(2))
      expect(error.operation).toBe("fetchUser")
      expect(error.message).toBe("Operation \"fetchUser\" timed out after 2s and was interrupted")
    }))

  it.effect("a defect in the interrupted work's finalizers is kept beside the TimeoutError", () =>
    Effect.gen(function*() {
      const work = Effect.never.pipe(Effect.ensuring(Effect.die("finalizer bug")), Timeout.timeout("1 second"))
      const fiber = yield* Effect.fork(Effect.exit(work))
      yield* TestClock.adjust("1 second")
      const exit = yield* Fiber.join(fiber)
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit)) {
        expect(Cause.failureOption(exit.cause).pipe(Option.getOrUndefined)).toBeInstanceOf(Timeout.TimeoutError)
        expect([...Cause.defects(exit.cause)]).toEqual(["finalizer bug"])
      }
    }))

  it.effect("returns the value, or the work's own failure, when the work finishes in time", () =>
    Effect.gen(function*() {
      const fast = Effect.sleep("1 second").pipe(Effect.as("value"), Timeout.timeout("2 seconds"))
      const fiber = yield* Effect.fork(fast)
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBe("value")
      const failing = Effect.fail("own error" as const).pipe(Timeout.timeout("2 seconds"))
      expect(yield* Effect.exit(failing)).toEqual(Exit.fail("own error"))
    }))

  it.effect("interrupts the work and fails only after its finalizers have finished", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const work = Effect.acquireRelease(
        Effect.sync(() => log.push("acquired")),
        () => Effect.sleep("500 millis").pipe(Effect.zipRight(Effect.sync(() => log.push("released"))))
      ).pipe(Effect.zipRight(Effect.never), Effect.scoped)
      const fiber = yield* Effect.fork(
        work.pipe(Timeout.timeout("1 second"), Effect.tapError(() => Effect.sync(() => log.push("timed out"))))
      )
      yield* TestClock.adjust("1 second")
      expect(log).toEqual(["acquired"])
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust("500 millis")
      expect(yield* Effect.flip(Fiber.join(fiber))).toBeInstanceOf(Timeout.TimeoutError)
      expect(log).toEqual(["acquired", "released", "timed out"])
    }))

  it.effect("counts timeouts in bulwark_timeout_total tagged with the operation", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(
        Effect.exit(Effect.never.pipe(Timeout.timeout("1 second", { name: "metric-op" })))
      )
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      const value = yield* Metric.value(Metric.tagged(Timeout.timeoutsCounter, "operation", "metric-op"))
      expect(value).toEqual(MetricState.counter(1))
    }))

  it("classifies itself as a retryable timeout", () => {
    const error = new Timeout.TimeoutError({ duration: Duration.seconds(1) })
    expect(error.message).toBe("The operation timed out after 1s and was interrupted")
    expect(Failure.defaultClassifier.classify(error)).toMatchObject({
      category: "timeout",
      code: "TIMEOUT",
      retryable: true,
      tripsBreaker: true
    })
  })

  it("a duration that is not positive is rejected when the policy is built", () => {
    expect(() => Timeout.timeout(0)).toThrow(/duration must be a duration > 0, got 0/)
    for (const duration of [-1, Number.NaN, "-5 seconds", -5n, [-5, 0], [0, -1], "abc", "0 millis"] as const) {
      expect(() => Timeout.timeout(duration as Duration.DurationInput)).toThrow(
        /Timeout.timeout: duration must be a duration > 0/
      )
    }
  })
})
