import { AdaptiveLimit, Bulkhead, Deadline, Health, Timeout } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  ConfigProvider,
  Context,
  Data,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Metric,
  Option,
  TestClock
} from "effect"

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
      // the waiter that gave up leaves the queue and frees nothing: the others still wait for the holder
      yield* settle
      expect(order).toEqual([])
      expect(yield* limiter.state).toMatchObject({ active: 1, queued: 2 })
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

  it("the algorithm constructors and the service tag", () => {
    expect(AdaptiveLimit.aimd()).toEqual({ _tag: "aimd", options: {} })
    expect(AdaptiveLimit.gradient({ tolerance: 2 })).toEqual({ _tag: "gradient", options: { tolerance: 2 } })
    expect(AdaptiveLimit.AdaptiveLimit.key).toBe("@bulwark/core/AdaptiveLimit")
  })

  it.effect("without options: named default, gradient, limits [1, 1000] starting at 20, no queue, one class", () =>
    Effect.gen(function*() {
      const limiter = yield* AdaptiveLimit.make()
      expect(limiter.name).toBe("default")
      expect(yield* limiter.state).toMatchObject({
        name: "default",
        algorithm: "gradient",
        limit: 20,
        estimate: 20,
        minLimit: 1,
        maxLimit: 1000,
        maxQueued: 0,
        queuedByPriority: [0],
        samples: 0
      })
      // the initial limit defaults to 20 within the bounds: a maxLimit below it, or a minLimit above it
      expect((yield* (yield* AdaptiveLimit.make({ maxLimit: 10 })).state).limit).toBe(10)
      expect(yield* (yield* AdaptiveLimit.make({ minLimit: 30 })).state).toMatchObject({ limit: 30, maxLimit: 1000 })
    }))

  it.effect("each option that breaks its rule is a defect with the whole message", () =>
    Effect.gen(function*() {
      const message = (options: AdaptiveLimit.Options) =>
        Effect.map(Effect.exit(AdaptiveLimit.make(options)), (exit) =>
          Exit.isFailure(exit) ? String((exit.cause as { defect?: unknown }).defect) : "built")
      const aimd = (o: AdaptiveLimit.AimdOptions) => ({ algorithm: AdaptiveLimit.aimd(o) })
      const gradient = (o: AdaptiveLimit.GradientOptions) => ({ algorithm: AdaptiveLimit.gradient(o) })
      const cases: ReadonlyArray<readonly [AdaptiveLimit.Options, string]> = [
        [{ maxQueued: -1 }, "maxQueued must be a whole number >= 0, got -1"],
        [{ priorities: 0 }, "priorities must be a whole number >= 1, got 0"],
        [{ defaultPriority: -1 }, "defaultPriority must be a whole number >= 0, got -1"],
        [{ maxWait: 0 }, "maxWait must be a duration > 0, got 0"],
        [{ initialLimit: 1001 }, "initialLimit must be a number in [1, 1000], got 1001"],
        [aimd({ backoffRatio: 0 }), "backoffRatio must be a number in (0, 1), got 0"],
        [aimd({ increase: 0 }), "increase must be a number > 0, got 0"],
        [aimd({ increase: Infinity }), "increase must be a number > 0, got Infinity"],
        [aimd({ slowLatency: 0 }), "slowLatency must be a duration > 0, got 0"],
        [gradient({ smoothing: 1.5 }), "smoothing must be a number in (0, 1], got 1.5"],
        [gradient({ shortWindow: 0 }), "shortWindow must be a whole number >= 1, got 0"],
        [gradient({ longWindow: 1 }), "longWindow must be a whole number >= 2, got 1"],
        [gradient({ queueSize: -1 }), "queueSize must be a number >= 0, got -1"],
        [gradient({ queueSize: Infinity }), "queueSize must be a number >= 0, got Infinity"]
      ]
      for (const [options, expected] of cases) {
        expect(yield* message(options)).toBe(`RangeError: AdaptiveLimit "default": ${expected}`)
      }
      // each bound itself is allowed
      expect(yield* message({ minLimit: 1, maxLimit: 10, initialLimit: 10, maxQueued: 0, defaultPriority: 0 })).toBe(
        "built"
      )
    }))

  it.effect("a waiter is rejected at maxWait, counted under the bulkhead metrics with its reason and code", () =>
    Effect.gen(function*() {
      const limiter = yield* AdaptiveLimit.make({
        name: "adaptive-max-wait",
        initialLimit: 1,
        maxQueued: 1,
        maxWait: "500 millis"
      })
      const busy = yield* Effect.fork(limiter.protect(Effect.never))
      yield* settle
      const waiting = yield* Effect.fork(Effect.flip(limiter.protect(Effect.void)))
      yield* settle
      yield* TestClock.adjust("499 millis")
      expect(Option.isNone(yield* Fiber.poll(waiting))).toBe(true)
      yield* TestClock.adjust("1 millis")
      const error = yield* Fiber.join(waiting)
      expect(error).toMatchObject({ bulkhead: "adaptive-max-wait", reason: "wait_timeout", maxWaitMillis: 500 })
      expect(error.message).toBe(
        "Bulkhead \"adaptive-max-wait\" rejected the call: no slot freed within 500ms (wait timeout)"
      )
      const rejected = yield* Metric.value(
        Bulkhead.rejectedCounter.pipe(
          Metric.tagged("bulkhead", "adaptive-max-wait"),
          Metric.tagged("reason", "wait_timeout"),
          Metric.tagged("category", "resource"),
          Metric.tagged("code", "BULKHEAD_WAIT_TIMEOUT")
        )
      )
      expect(rejected.count).toBe(1)
      yield* Fiber.interrupt(busy)
    }))

  it.effect("AIMD: a success at least slowLatency long cuts the limit", () =>
    Effect.gen(function*() {
      const limiter = yield* AdaptiveLimit.make({
        name: "adaptive-slow",
        algorithm: AdaptiveLimit.aimd({ backoffRatio: 0.5, slowLatency: "100 millis" }),
        initialLimit: 8
      })
      const fiber = yield* Effect.fork(limiter.protect(Effect.sleep("100 millis")))
      yield* settle
      yield* TestClock.adjust("100 millis")
      yield* Fiber.join(fiber)
      expect((yield* limiter.state).limit).toBe(4)
    }))

  it.effect("gradient: the windows given set the averages, measured from each call's own start on Clock", () =>
    Effect.gen(function*() {
      const limiter = yield* AdaptiveLimit.make({
        name: "adaptive-windows",
        algorithm: AdaptiveLimit.gradient({ shortWindow: 3, longWindow: 3, smoothing: 1, queueSize: 0 }),
        initialLimit: 1
      })
      const call = (millis: number) =>
        Effect.gen(function*() {
          const fiber = yield* Effect.fork(limiter.protect(Effect.sleep(Duration.millis(millis))))
          yield* settle
          yield* TestClock.adjust(Duration.millis(millis))
          yield* Fiber.join(fiber)
        })
      yield* call(100)
      // starts at 100 and takes 300: short 100 + (300 - 100) / 2, long 100 + (200 - 100) / 2
      yield* call(300)
      expect(yield* limiter.state).toMatchObject({ samples: 2, shortLatencyMillis: 200, longLatencyMillis: 150 })
      const average = (term: string) =>
        Effect.map(
          Metric.value(AdaptiveLimit.latencyGauge.pipe(
            Metric.tagged("bulkhead", "adaptive-windows"),
            Metric.tagged("term", term)
          )),
          (state) => state.value
        )
      expect([yield* average("short"), yield* average("long")]).toEqual([200, 150])
      const latency = yield* Metric.value(Metric.tagged(AdaptiveLimit.latencyHistogram, "bulkhead", "adaptive-windows"))
      expect(latency).toMatchObject({ count: 2, sum: 400 })
    }))

  it.effect("gradient: a queueSize function gives the allowance", () =>
    Effect.gen(function*() {
      const limiter = yield* AdaptiveLimit.make({
        name: "adaptive-queue-size",
        algorithm: AdaptiveLimit.gradient({ smoothing: 1, queueSize: (limit) => limit + 1 }),
        initialLimit: 2
      })
      yield* limiter.protect(Effect.void)
      // flat latency: 2 × 1 + (2 + 1)
      expect((yield* limiter.state).limit).toBe(5)
    }))

  it.effect("isDrop decides which failures cut the limit; defects and interruptions are not measured at all", () =>
    Effect.gen(function*() {
      const limiter = yield* AdaptiveLimit.make({
        name: "adaptive-is-drop",
        algorithm: AdaptiveLimit.aimd({ backoffRatio: 0.5 }),
        initialLimit: 8,
        isDrop: (c) => c.category !== "timeout"
      })
      yield* Effect.exit(limiter.protect(Effect.die("bug")))
      const stuck = yield* Effect.fork(limiter.protect(Effect.never))
      yield* settle
      yield* Fiber.interrupt(stuck)
      expect(yield* limiter.state).toMatchObject({ limit: 8, samples: 0 })
      yield* Effect.exit(limiter.protect(Effect.fail(timeoutError)))
      expect(yield* limiter.state).toMatchObject({ limit: 8, samples: 1 })
      yield* TestClock.adjust("1 millis")
      yield* Effect.exit(limiter.protect(Effect.fail(new BadInput())))
      expect(yield* limiter.state).toMatchObject({ limit: 4, samples: 2 })
    }))

  it.effect("its metrics have fixed names, descriptions and latency buckets", () =>
    Effect.gen(function*() {
      const limiter = yield* AdaptiveLimit.make({ name: "adaptive-metric-keys" })
      yield* limiter.protect(Effect.void)
      const keys = (yield* Metric.snapshot)
        .map((pair) => pair.metricKey)
        .filter((key) => key.tags.some((t) => t.key === "bulkhead" && t.value === "adaptive-metric-keys"))
      const described = (name: string) => keys.find((key) => key.name === name)
      expect(Option.getOrUndefined(described("bulwark_adaptive_limit")!.description)).toBe(
        "The current limit of an adaptive concurrency limit"
      )
      const latency = described("bulwark_adaptive_limit_latency_ms")!
      expect(Option.getOrUndefined(latency.description)).toBe(
        "Latency of the calls an adaptive concurrency limit measured, in milliseconds"
      )
      const boundaries = (latency.keyType as unknown as { boundaries: { values: ReadonlyArray<number> } }).boundaries
      expect(boundaries.values).toEqual([...Array.from({ length: 17 }, (_, i) => 2 ** i), Infinity])
      expect(Option.getOrUndefined(described("bulwark_adaptive_limit_latency_average_ms")!.description)).toBe(
        "Short-term and long-term latency averages of an adaptive concurrency limit, in milliseconds"
      )
    }))

  it.effect("keeps the bulkhead gauges of active and queued calls under its name", () =>
    Effect.gen(function*() {
      const limiter = yield* AdaptiveLimit.make({ name: "adaptive-gauges", initialLimit: 1, maxQueued: 1 })
      const busy = yield* Effect.fork(limiter.protect(Effect.never))
      const waiting = yield* Effect.fork(limiter.protect(Effect.never))
      yield* settle
      const gauge = (metric: Metric.Metric.Gauge<number>) =>
        Effect.map(Metric.value(Metric.tagged(metric, "bulkhead", "adaptive-gauges")), (s) => s.value)
      expect([yield* gauge(Bulkhead.activeGauge), yield* gauge(Bulkhead.queuedGauge)]).toEqual([1, 1])
      // every queue_full rejection at one limit is the same error value
      const first = yield* Effect.flip(limiter.protect(Effect.void))
      expect(yield* Effect.flip(limiter.protect(Effect.void))).toBe(first)
      yield* Fiber.interrupt(waiting)
      expect([yield* gauge(Bulkhead.activeGauge), yield* gauge(Bulkhead.queuedGauge)]).toEqual([1, 0])
      expect(yield* limiter.state).toMatchObject({ active: 1, queued: 0 })
      yield* Fiber.interrupt(busy)
      expect([yield* gauge(Bulkhead.activeGauge), yield* gauge(Bulkhead.queuedGauge)]).toEqual([0, 0])
    }))

  it.effect("a freed slot admits one waiter when the limit has room for one", () =>
    Effect.gen(function*() {
      const limiter = yield* AdaptiveLimit.make({ name: "adaptive-drain", initialLimit: 1, maxQueued: 2 })
      const holder = yield* Effect.fork(limiter.protect(Effect.never))
      yield* settle
      const waiters = yield* Effect.forEach([1, 2], () => Effect.fork(limiter.protect(Effect.never)))
      yield* settle
      // an interruption is not measured: the limit stays 1
      yield* Fiber.interrupt(holder)
      yield* settle
      expect(yield* limiter.state).toMatchObject({ limit: 1, active: 1, queued: 1, admitted: 2 })
      yield* Effect.forEach(waiters, Fiber.interrupt)
      expect(yield* limiter.state).toMatchObject({ active: 0, queued: 0 })
    }))

  it.effect("a waiter interrupted after it was handed a slot passes the slot on", () =>
    Effect.gen(function*() {
      const limiter = yield* AdaptiveLimit.make({ name: "adaptive-handed", initialLimit: 1, maxQueued: 2 })
      const gate = yield* Deferred.make<void>()
      const started: Array<string> = []
      // a defect is not measured: the limit stays 1
      const holder = yield* Effect.fork(limiter.protect(Effect.zipRight(Deferred.await(gate), Effect.die("done"))))
      yield* settle
      const first = yield* Effect.fork(limiter.protect(Effect.sync(() => started.push("first"))))
      const second = yield* Effect.fork(limiter.protect(Effect.sync(() => started.push("second"))))
      yield* settle
      yield* Effect.uninterruptible(Effect.zipRight(Deferred.succeed(gate, void 0), Fiber.interruptFork(first)))
      const held = yield* Fiber.await(holder)
      expect(Exit.isFailure(held) && Cause.squash(held.cause)).toBe("done")
      yield* Fiber.await(first)
      yield* Fiber.join(second)
      expect(started).toEqual(["second"])
      expect(yield* limiter.state).toMatchObject({ active: 0, queued: 0 })
    }))

  it.effect("a caller handed the slot at any point of queueing, even before it starts waiting, runs at once", () =>
    Effect.gen(function*() {
      for (let budget = 10; budget < 60; budget++) {
        const limiter = yield* AdaptiveLimit.make({ name: "adaptive-scan", initialLimit: 1, maxQueued: 1 })
        const gate = yield* Deferred.make<void>()
        const holder = yield* Effect.fork(limiter.protect(Effect.zipRight(Deferred.await(gate), Effect.die("done"))))
        yield* settle
        const caller = yield* Effect.fork(
          limiter.protect(Effect.succeed(budget)).pipe(Effect.withMaxOpsBeforeYield(budget))
        )
        yield* Effect.yieldNow()
        yield* Deferred.succeed(gate, undefined)
        // the holder ends with its own defect, nothing else: handing the slot over raised nothing
        const held = yield* Fiber.await(holder)
        expect(Exit.isFailure(held) && Cause.squash(held.cause)).toBe("done")
        let exit = yield* Fiber.poll(caller)
        for (let turn = 0; turn < 100 && Option.isNone(exit); turn++) {
          yield* Effect.yieldNow()
          exit = yield* Fiber.poll(caller)
        }
        expect({ budget, exit }).toEqual({ budget, exit: Option.some(Exit.succeed(budget)) })
        expect(yield* limiter.state).toMatchObject({ active: 0, queued: 0, admitted: 2 })
      }
    }))

  it.effect("priorities: withPriority and run pick the class; outside [0, priorities) is a defect", () =>
    Effect.gen(function*() {
      const limiter = yield* AdaptiveLimit.make({
        name: "adaptive-priorities",
        initialLimit: 1,
        maxQueued: 3,
        priorities: 3,
        defaultPriority: 1
      })
      const busy = yield* Effect.fork(limiter.protect(Effect.never))
      yield* settle
      const waiting = [
        yield* Effect.fork(Effect.never.pipe(limiter.withPriority(2))),
        yield* Effect.fork(limiter.run(Effect.never, 0)),
        yield* Effect.fork(limiter.protect(Effect.never))
      ]
      yield* settle
      expect((yield* limiter.state).queuedByPriority).toEqual([1, 1, 1])
      for (const priority of [-1, 0.5, 3]) {
        const exit = yield* Effect.exit(limiter.run(Effect.void, priority))
        expect(Exit.isFailure(exit) && String(exit.cause)).toContain(
          `AdaptiveLimit "adaptive-priorities": priority must be a whole number in [0, 3), got ${priority}`
        )
      }
      yield* Effect.forEach([busy, ...waiting], Fiber.interrupt)
    }))

  it.effect("Config: each key is read, bounds are allowed, values below them fail with the key's own message", () =>
    Effect.gen(function*() {
      const read = (entries: ReadonlyArray<readonly [string, string]>) =>
        Effect.provide(
          AdaptiveLimit.AdaptiveLimit,
          AdaptiveLimit.layerConfig("adaptive-config").pipe(
            Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(entries))))
          )
        )
      const limiter = yield* read([
        ["ALGORITHM", "gradient"],
        ["MIN_LIMIT", "1"],
        ["INITIAL_LIMIT", "1"],
        ["MAX_QUEUED", "0"],
        ["MAX_WAIT", "250 millis"],
        ["PRIORITIES", "3"]
      ])
      expect(yield* limiter.state).toMatchObject({
        algorithm: "gradient",
        limit: 1,
        minLimit: 1,
        maxQueued: 0,
        queuedByPriority: [0, 0, 0]
      })
      const busy = yield* Effect.fork(limiter.protect(Effect.never))
      yield* settle
      expect((yield* Effect.flip(limiter.protect(Effect.void))).reason).toBe("queue_full")
      yield* Fiber.interrupt(busy)
      const queued = yield* read([["INITIAL_LIMIT", "1"], ["MAX_QUEUED", "1"], ["MAX_WAIT", "250 millis"]])
      const holder = yield* Effect.fork(queued.protect(Effect.never))
      yield* settle
      const waiting = yield* Effect.fork(Effect.flip(queued.protect(Effect.void)))
      yield* settle
      yield* TestClock.adjust("250 millis")
      expect(yield* Fiber.join(waiting)).toMatchObject({ reason: "wait_timeout", maxWaitMillis: 250 })
      yield* Fiber.interrupt(holder)
      expect(String(yield* Effect.flip(read([["MIN_LIMIT", "0"]])))).toContain(
        "at MIN_LIMIT: \"must be a whole number >= 1\""
      )
      expect(String(yield* Effect.flip(read([["MAX_WAIT", "0 seconds"]])))).toContain(
        "at MAX_WAIT: \"must be a duration > 0\""
      )
    }))

  it.scoped("its readiness check: up while calls wait but the queue has room; absent with health: false", () =>
    Effect.gen(function*() {
      const health = yield* Health.Health
      const component = (name: string) =>
        Effect.map(health.report, (r) => r.components.find((c) => c.name === `adaptive_limit:${name}`))
      const build = <I>(layer: Layer.Layer<I>) => Layer.build(layer)
      const limiter = Context.get(
        yield* build(AdaptiveLimit.layer({ name: "adaptive-health", initialLimit: 1, maxQueued: 2 })),
        AdaptiveLimit.AdaptiveLimit
      )
      const busy = yield* Effect.forEach([1, 2], () => Effect.fork(limiter.protect(Effect.never)))
      yield* settle
      expect(yield* component("adaptive-health")).toMatchObject({
        kind: "readiness",
        status: "up",
        details: { limit: 1, active: 1, queued: 1, maxQueued: 2 }
      })
      yield* build(AdaptiveLimit.layer({ name: "adaptive-unchecked", health: false }))
      expect(yield* component("adaptive-unchecked")).toBeUndefined()
      yield* Effect.forEach(busy, Fiber.interrupt)
    }).pipe(Effect.provide(Health.layer())))

  it.effect("protect runs its effect under the limiter held by a tag", () =>
    Effect.gen(function*() {
      expect(yield* Effect.succeed("ok").pipe(AdaptiveLimit.protect(AdaptiveLimit.AdaptiveLimit))).toBe("ok")
      const limiter = yield* AdaptiveLimit.AdaptiveLimit
      expect((yield* limiter.state).admitted).toBe(1)
    }).pipe(Effect.provide(AdaptiveLimit.layer({ name: "adaptive-tagged", health: false }))))
})
