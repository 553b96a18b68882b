import { AdaptiveLimit, Bulkhead, Deadline, Health, Timeout } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Data, Deferred, Duration, Effect, Exit, Fiber, Layer, Metric, TestClock } from "effect"

/** Lets every forked fiber run until it blocks. */
const settle = Effect.gen(function*() {
  for (let i = 0; i < 5; i++) yield* Effect.yieldNow()
})

class BadInput extends Data.TaggedError("BadInput")<{}> {}

const timeoutError = new Timeout.TimeoutError({ duration: Duration.seconds(1) })

describe("AdaptiveLimit", () => {
  it.effect("admits up to the limit, queues up to maxQueued, rejects the rest with the bulkhead's error", () =>
    Effect.gen(function*() {
      const limiter = yield* AdaptiveLimit.make({ name: "search", initialLimit: 2, maxQueued: 1 })
      const gate = yield* Deferred.make<void>()
      const started: Array<string> = []
      const call = (label: string) =>
        Effect.sync(() => started.push(label)).pipe(Effect.zipRight(Deferred.await(gate)), Effect.as(label))
      const fibers = yield* Effect.forEach(["a", "b", "c"], (label) => Effect.fork(limiter.protect(call(label))))
      yield* settle
      expect(started).toEqual(["a", "b"])
      expect(yield* limiter.state).toMatchObject({ limit: 2, active: 2, queued: 1 })
      const rejected = yield* Effect.flip(limiter.protect(Effect.succeed("d")))
      expect(rejected).toBeInstanceOf(Bulkhead.BulkheadRejectedError)
      expect(rejected).toMatchObject({ bulkhead: "search", reason: "queue_full", maxConcurrent: 2, maxQueued: 1 })
      yield* Deferred.succeed(gate, void 0)
      expect(yield* Effect.forEach(fibers, Fiber.join)).toEqual(["a", "b", "c"])
      expect(yield* limiter.state).toMatchObject({
        active: 0,
        queued: 0,
        admitted: 3,
        rejected: { queue_full: 1, wait_timeout: 0 }
      })
    }))

  it.effect("the gradient limit falls when latency rises at the same concurrency, and measures on Clock", () =>
    Effect.gen(function*() {
      const limiter = yield* AdaptiveLimit.make({
        name: "db",
        algorithm: AdaptiveLimit.gradient({ smoothing: 1, queueSize: 0 }),
        initialLimit: 10
      })
      const batch = (latency: Duration.DurationInput) =>
        Effect.gen(function*() {
          const state = yield* limiter.state
          const fibers = yield* Effect.forEach(
            Array.from({ length: state.limit }),
            () => Effect.fork(limiter.protect(Effect.sleep(latency)))
          )
          yield* settle
          yield* TestClock.adjust(latency)
          yield* Effect.forEach(fibers, Fiber.join)
          return yield* limiter.state
        })
      const fast = yield* batch("100 millis")
      expect(fast).toMatchObject({ limit: 10, samples: 10, shortLatencyMillis: 100, longLatencyMillis: 100 })
      const slow = yield* batch("400 millis")
      // one change per round trip: the short-term latency climbed, so the limit fell
      expect(slow.shortLatencyMillis).toBeGreaterThan(100)
      expect(slow.limit).toBeLessThan(10)
      expect(slow.limit).toBeGreaterThanOrEqual(5)
    }))

  it.effect("AIMD cuts on a timeout or an overload failure, not on a validation failure, a defect or an interruption", () =>
    Effect.gen(function*() {
      const limiter = yield* AdaptiveLimit.make({
        name: "api",
        algorithm: AdaptiveLimit.aimd({ backoffRatio: 0.5 }),
        initialLimit: 8
      })
      const limit = Effect.map(limiter.state, (s) => s.limit)
      yield* Effect.exit(limiter.protect(Effect.fail(new BadInput())))
      yield* Effect.exit(limiter.protect(Effect.die("bug")))
      const stuck = yield* Effect.fork(limiter.protect(Effect.never))
      yield* settle
      yield* Fiber.interrupt(stuck)
      expect(yield* limit).toBe(8)
      yield* TestClock.adjust("1 millis")
      yield* Effect.exit(limiter.protect(Effect.fail(timeoutError)))
      expect(yield* limit).toBe(4)
      yield* TestClock.adjust("1 millis")
      const overloaded = new Bulkhead.BulkheadRejectedError({
        bulkhead: "downstream",
        reason: "queue_full",
        maxConcurrent: 1,
        maxQueued: 0
      })
      yield* Effect.exit(limiter.protect(Effect.fail(overloaded)))
      expect(yield* limit).toBe(2)
    }))

  it.effect("a limit that grows admits the callers waiting for it at once", () =>
    Effect.gen(function*() {
      const limiter = yield* AdaptiveLimit.make({
        name: "grow",
        algorithm: AdaptiveLimit.aimd({ increase: 2 }),
        initialLimit: 1,
        maxQueued: 5
      })
      const gate = yield* Deferred.make<void>()
      const first = yield* Effect.fork(limiter.protect(Deferred.await(gate)))
      yield* settle
      const waiting = yield* Effect.forEach([1, 2, 3], () => Effect.fork(limiter.protect(Effect.never)))
      yield* settle
      expect(yield* limiter.state).toMatchObject({ limit: 1, active: 1, queued: 3 })
      yield* Deferred.succeed(gate, void 0)
      yield* Fiber.join(first)
      yield* settle
      // the success raised the limit to 3: all three waiters run now
      expect(yield* limiter.state).toMatchObject({ limit: 3, active: 3, queued: 0 })
      yield* Effect.forEach(waiting, Fiber.interrupt)
      expect(yield* limiter.state).toMatchObject({ active: 0 })
    }))

  it.effect("a waiter gives up at its deadline or at maxWait, and higher priorities go first", () =>
    Effect.gen(function*() {
      const limiter = yield* AdaptiveLimit.make({
        name: "prio",
        initialLimit: 1,
        maxQueued: 4,
        maxWait: "10 seconds",
        priorities: 2
      })
      const gate = yield* Deferred.make<void>()
      const order: Array<string> = []
      const holder = yield* Effect.fork(limiter.protect(Deferred.await(gate)))
      yield* settle
      const low = yield* Effect.fork(limiter.run(Effect.sync(() => order.push("low")), 0))
      const high = yield* Effect.fork(limiter.run(Effect.sync(() => order.push("high")), 1))
      const hurried = yield* limiter.protect(Effect.void).pipe(Deadline.within("1 second"), Effect.flip, Effect.fork)
      yield* settle
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(hurried)).toMatchObject({ reason: "wait_timeout", maxWaitMillis: 1000 })
      yield* Deferred.succeed(gate, void 0)
      yield* Fiber.join(holder)
      yield* Fiber.join(high)
      yield* Fiber.join(low)
      expect(order).toEqual(["high", "low"])
      expect((yield* limiter.state).rejected.wait_timeout).toBe(1)
    }))

  it.effect("reports the limit, latencies and rejections as metrics", () =>
    Effect.gen(function*() {
      const limiter = yield* AdaptiveLimit.make({ name: "metered", initialLimit: 1 })
      const fiber = yield* Effect.fork(limiter.protect(Effect.sleep("250 millis")))
      yield* settle
      yield* Effect.exit(limiter.protect(Effect.void))
      yield* TestClock.adjust("250 millis")
      yield* Fiber.join(fiber)
      const limit = yield* Metric.value(Metric.tagged(AdaptiveLimit.limitGauge, "bulkhead", "metered"))
      expect(limit.value).toBe((yield* limiter.state).limit)
      const latency = yield* Metric.value(Metric.tagged(AdaptiveLimit.latencyHistogram, "bulkhead", "metered"))
      expect(latency).toMatchObject({ count: 1, sum: 250 })
      const rejected = yield* Metric.value(
        Bulkhead.rejectedCounter.pipe(
          Metric.tagged("bulkhead", "metered"),
          Metric.tagged("reason", "queue_full"),
          Metric.tagged("category", "resource"),
          Metric.tagged("code", "BULKHEAD_QUEUE_FULL")
        )
      )
      expect(rejected.count).toBe(1)
    }))

  it.effect("its Layer registers a readiness check: degraded while saturated, with the limit in the details", () =>
    Effect.gen(function*() {
      const limiter = yield* AdaptiveLimit.AdaptiveLimit
      const health = yield* Health.Health
      const component = Effect.map(health.report, (r) => r.components.find((c) => c.name === "adaptive_limit:checkout"))
      expect(yield* component).toMatchObject({ status: "up", details: { limit: 1, active: 0, algorithm: "gradient" } })
      const fiber = yield* Effect.fork(limiter.protect(Effect.never))
      yield* settle
      expect(yield* component).toMatchObject({ status: "degraded", details: { limit: 1, active: 1 } })
      yield* Fiber.interrupt(fiber)
    }).pipe(
      Effect.provide(
        AdaptiveLimit.layer({ name: "checkout", initialLimit: 1 }).pipe(Layer.provideMerge(Health.layer()))
      )
    ))

  it.effect("layerConfig reads the limits from Config and fails with a ConfigError naming the key", () =>
    Effect.gen(function*() {
      const good = ConfigProvider.fromMap(
        new Map([["ALGORITHM", "aimd"], ["MIN_LIMIT", "2"], ["MAX_LIMIT", "50"], ["INITIAL_LIMIT", "5"]])
      )
      const limiter = yield* Effect.provide(
        AdaptiveLimit.AdaptiveLimit,
        AdaptiveLimit.layerConfig("search").pipe(Layer.provide(Layer.setConfigProvider(good)))
      )
      expect(yield* limiter.state).toMatchObject({
        name: "search",
        algorithm: "aimd",
        limit: 5,
        minLimit: 2,
        maxLimit: 50
      })
      const bad = ConfigProvider.fromMap(new Map([["MIN_LIMIT", "10"], ["MAX_LIMIT", "5"]]))
      const error = yield* Effect.flip(
        Effect.provide(
          AdaptiveLimit.AdaptiveLimit,
          AdaptiveLimit.layerConfig("search").pipe(Layer.provide(Layer.setConfigProvider(bad)))
        )
      )
      expect(String(error)).toMatch(/MAX_LIMIT.*maxLimit must be a whole number >= 10, got 5/)
      const unknown = ConfigProvider.fromMap(new Map([["ALGORITHM", "vegas"]]))
      const wrong = yield* Effect.flip(
        Effect.provide(
          AdaptiveLimit.AdaptiveLimit,
          AdaptiveLimit.layerConfig("search").pipe(Layer.provide(Layer.setConfigProvider(unknown)))
        )
      )
      expect(String(wrong)).toMatch(/ALGORITHM/)
    }))

  it.effect("options that break a rule are a defect naming the field", () =>
    Effect.gen(function*() {
      const message = (options: AdaptiveLimit.Options) =>
        Effect.map(Effect.exit(AdaptiveLimit.make(options)), (exit) =>
          Exit.isFailure(exit) ? String((exit.cause as { defect?: unknown }).defect) : "built")
      expect(yield* message({ name: "x", minLimit: 0 })).toMatch(
        /AdaptiveLimit "x": minLimit must be a whole number >= 1, got 0/
      )
      expect(yield* message({ minLimit: 5, maxLimit: 4 })).toMatch(/maxLimit must be a whole number >= 5, got 4/)
      expect(yield* message({ minLimit: 5, initialLimit: 2 })).toMatch(/initialLimit must be a number in \[5, 1000\]/)
      expect(yield* message({ algorithm: AdaptiveLimit.aimd({ backoffRatio: 1 }) })).toMatch(
        /backoffRatio must be a number in \(0, 1\)/
      )
      expect(yield* message({ algorithm: AdaptiveLimit.gradient({ tolerance: 0.5 }) })).toMatch(
        /tolerance must be a number >= 1/
      )
      expect(yield* message({ algorithm: AdaptiveLimit.gradient({ smoothing: 0 }) })).toMatch(
        /smoothing must be a number in \(0, 1\]/
      )
      expect(yield* message({ maxWait: "-1 second" })).toMatch(/maxWait must be a duration > 0/)
      expect(yield* message({ priorities: 2, defaultPriority: 2 })).toMatch(
        /defaultPriority must be a whole number in \[0, 2\)/
      )
      expect(yield* message({})).toBe("built")
    }))
})
