import { Bulkhead, CircuitBreaker, Deadline, Failure, Health, Policy, Retry } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  Clock,
  Config,
  ConfigProvider,
  Context,
  Data,
  Deferred,
  Duration,
  Effect,
  Exit,
  FastCheck as fc,
  Fiber,
  Layer,
  Metric,
  MetricLabel,
  MetricState,
  Option,
  Schedule,
  TestClock
} from "effect"
import { stepsOf } from "./steps.js"

/** Lets every forked fiber run until it blocks. */
const settle = Effect.gen(function*() {
  for (let i = 0; i < 5; i++) yield* Effect.yieldNow()
})

/** A call that records its start in `log` and finishes when `gate` opens. */
const gated = (log: Array<string>, label: string, gate: Deferred.Deferred<void>) =>
  Effect.sync(() => log.push(label)).pipe(Effect.zipRight(Deferred.await(gate)), Effect.as(label))

class Down extends Data.TaggedError("Down")<{}> {}

/** A policy with a breaker, this bulkhead and retries: the bulkhead joins the breaker's admission. */
const fusedPolicy = (bulkhead: Bulkhead.Bulkhead, name: string, retry: Partial<Retry.Options<unknown>> = {}) =>
  Effect.map(
    CircuitBreaker.make({ name, policy: CircuitBreaker.consecutive(100) }),
    (breaker) =>
      Policy.make({
        bulkhead: bulkhead.protect,
        breaker: breaker.protect,
        retry: Retry.policy({ maxRetries: 2, schedule: Schedule.spaced("0 millis"), ...retry })
      })
  )

describe("Bulkhead", () => {
  it.effect("runs up to maxConcurrent calls at once, queues up to maxQueued, rejects the rest at once", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "payments", maxConcurrent: 2, maxQueued: 1 })
      const gate = yield* Deferred.make<void>()
      const started: Array<string> = []
      const a = yield* Effect.fork(bulkhead.protect(gated(started, "a", gate)))
      const b = yield* Effect.fork(bulkhead.protect(gated(started, "b", gate)))
      const c = yield* Effect.fork(bulkhead.protect(gated(started, "c", gate)))
      yield* settle
      expect(started).toEqual(["a", "b"])
      expect(yield* bulkhead.state).toMatchObject({ active: 2, queued: 1 })
      const rejected = yield* Effect.flip(bulkhead.protect(Effect.succeed("d")))
      expect(rejected).toBeInstanceOf(Bulkhead.BulkheadRejectedError)
      expect(rejected).toMatchObject({ bulkhead: "payments", reason: "queue_full", maxConcurrent: 2, maxQueued: 1 })
      expect(rejected.message).toBe(
        "Bulkhead \"payments\" rejected the call: 2 calls running and 1 waiting (queue full)"
      )
      yield* Deferred.succeed(gate, void 0)
      expect(yield* Fiber.join(a)).toBe("a")
      expect(yield* Fiber.join(b)).toBe("b")
      expect(yield* Fiber.join(c)).toBe("c")
      expect(started).toEqual(["a", "b", "c"])
      expect(yield* bulkhead.state).toMatchObject({
        active: 0,
        queued: 0,
        admitted: 3,
        rejected: { queue_full: 1, wait_timeout: 0 }
      })
    }))

  it.effect("frees the slot when the call fails, dies or is interrupted", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1 })
      expect(yield* Effect.exit(bulkhead.protect(Effect.fail("boom")))).toEqual(Exit.fail("boom"))
      expect(Exit.isFailure(yield* Effect.exit(bulkhead.protect(Effect.die("bug"))))).toBe(true)
      const running = yield* Effect.fork(bulkhead.protect(Effect.never))
      yield* settle
      expect((yield* bulkhead.state).active).toBe(1)
      yield* Fiber.interrupt(running)
      expect((yield* bulkhead.state).active).toBe(0)
      expect(yield* bulkhead.protect(Effect.succeed(1))).toBe(1)
    }))

  it.effect("a call that waits longer than maxWait is rejected with wait_timeout and leaves the queue", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "search", maxConcurrent: 1, maxQueued: 5, maxWait: "2 seconds" })
      const busy = yield* Effect.fork(bulkhead.protect(Effect.never))
      yield* settle
      const waiting = yield* Effect.fork(Effect.flip(bulkhead.protect(Effect.succeed(1))))
      yield* settle
      expect((yield* bulkhead.state).queued).toBe(1)
      yield* TestClock.adjust("1999 millis")
      expect(Option.isNone(yield* Fiber.poll(waiting))).toBe(true)
      yield* TestClock.adjust("1 millis")
      const error = yield* Fiber.join(waiting)
      expect(error).toMatchObject({ bulkhead: "search", reason: "wait_timeout", maxWaitMillis: 2000 })
      expect(error.message).toBe("Bulkhead \"search\" rejected the call: no slot freed within 2000ms (wait timeout)")
      expect(yield* bulkhead.state).toMatchObject({ queued: 0, rejected: { queue_full: 0, wait_timeout: 1 } })
      yield* Fiber.interrupt(busy)
    }))

  it.effect("under load the highest priority class is admitted first, FIFO within a class", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueued: 10, priorities: 3 })
      const gate = yield* Deferred.make<void>()
      const started: Array<string> = []
      const holder = yield* Effect.fork(bulkhead.protect(gated(started, "holder", gate)))
      yield* settle
      const arrivals: Array<[string, number]> = [["low1", 0], ["mid1", 1], ["high1", 2], ["low2", 0], ["high2", 2]]
      const fibers = []
      for (const [label, priority] of arrivals) {
        fibers.push(yield* Effect.fork(bulkhead.run(Effect.sync(() => started.push(label)), priority)))
        yield* settle
      }
      expect((yield* bulkhead.state).queuedByPriority).toEqual([2, 1, 2])
      yield* Deferred.succeed(gate, void 0)
      yield* Fiber.join(holder)
      yield* Fiber.joinAll(fibers)
      expect(started).toEqual(["holder", "high1", "high2", "mid1", "low1", "low2"])
    }))

  it.effect("withPriority is a policy function, and a priority outside the classes is a defect", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueued: 2, priorities: 2 })
      expect(yield* Effect.succeed(7).pipe(bulkhead.withPriority(1))).toBe(7)
      const exit = yield* Effect.exit(bulkhead.run(Effect.void, 5))
      expect(Exit.isFailure(exit) && String(exit.cause)).toMatch(/priority must be a whole number in \[0, 2\), got 5/)
    }))

  it.effect("an interrupted waiter gives its place back at once; the next caller is admitted when a slot frees", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueued: 2 })
      const gate = yield* Deferred.make<void>()
      const started: Array<string> = []
      const holder = yield* Effect.fork(bulkhead.protect(gated(started, "holder", gate)))
      yield* settle
      const aborted1 = yield* Effect.fork(bulkhead.protect(Effect.sync(() => started.push("aborted1"))))
      const aborted2 = yield* Effect.fork(bulkhead.protect(Effect.sync(() => started.push("aborted2"))))
      yield* settle
      expect((yield* bulkhead.state).queued).toBe(2)
      yield* Fiber.interrupt(aborted1)
      yield* Fiber.interrupt(aborted2)
      // the places are given back at once: the queue has room again
      expect((yield* bulkhead.state).queued).toBe(0)
      const next = yield* Effect.fork(bulkhead.protect(Effect.sync(() => started.push("next"))))
      const afterNext = yield* Effect.fork(bulkhead.protect(Effect.sync(() => started.push("afterNext"))))
      yield* settle
      expect((yield* bulkhead.state).queued).toBe(2)
      yield* Deferred.succeed(gate, void 0)
      yield* Fiber.join(holder)
      yield* Fiber.join(next)
      yield* Fiber.join(afterNext)
      expect(started).toEqual(["holder", "next", "afterNext"])
      expect(yield* bulkhead.state).toMatchObject({ active: 0, queued: 0 })
    }))

  it.effect("a waiter interrupted after it was handed a slot passes the slot on", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueued: 2 })
      const gate = yield* Deferred.make<void>()
      const started: Array<string> = []
      const holder = yield* Effect.fork(bulkhead.protect(gated(started, "holder", gate)))
      yield* settle
      const first = yield* Effect.fork(bulkhead.protect(Effect.sync(() => started.push("first"))))
      const second = yield* Effect.fork(bulkhead.protect(Effect.sync(() => started.push("second"))))
      yield* settle
      // the holder finishes and hands its slot to `first`; `first` is interrupted before it runs
      yield* Effect.uninterruptible(
        Effect.zipRight(Deferred.succeed(gate, void 0), Fiber.interruptFork(first))
      )
      yield* Fiber.join(holder)
      yield* Fiber.await(first)
      yield* Fiber.join(second)
      expect(started).toContain("second")
      expect(yield* bulkhead.state).toMatchObject({ active: 0, queued: 0 })
    }))

  it.effect("a caller interrupted at any point of queueing gives its place back", () =>
    Effect.gen(function*() {
      // the caller yields every `budget` operations; scanning the budget moves the point where
      // the interruption lands across every step of `run`
      for (let budget = 10; budget < 60; budget++) {
        const bulkhead = yield* Bulkhead.make({ name: "payments", maxConcurrent: 1, maxQueued: 1 })
        const gate = yield* Deferred.make<void>()
        const holder = yield* Effect.fork(bulkhead.protect(Deferred.await(gate)))
        yield* settle
        const caller = yield* Effect.fork(
          bulkhead.protect(Effect.void).pipe(Effect.withMaxOpsBeforeYield(budget))
        )
        yield* Effect.yieldNow()
        yield* Fiber.interrupt(caller)
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(holder)
        yield* settle
        const { active, queued } = yield* bulkhead.state
        expect({ budget, active, queued }).toEqual({ budget, active: 0, queued: 0 })
      }
    }))

  it.effect("a caller handed the slot at any point of queueing, even before it starts waiting, runs at once", () =>
    Effect.gen(function*() {
      // the caller yields every `budget` operations, and the slot frees at its first yield:
      // scanning the budget moves that point across every step of queueing and waiting
      for (let budget = 10; budget < 60; budget++) {
        const bulkhead = yield* Bulkhead.make({ name: "payments", maxConcurrent: 1, maxQueued: 1 })
        const gate = yield* Deferred.make<void>()
        const holder = yield* Effect.fork(bulkhead.protect(Deferred.await(gate)))
        yield* settle
        const caller = yield* Effect.fork(
          bulkhead.protect(Effect.succeed(budget)).pipe(Effect.withMaxOpsBeforeYield(budget))
        )
        yield* Effect.yieldNow()
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(holder)
        // the caller goes on a few operations at a time: give it the turns it needs, not a wait forever
        let exit = yield* Fiber.poll(caller)
        for (let turn = 0; turn < 100 && Option.isNone(exit); turn++) {
          yield* Effect.yieldNow()
          exit = yield* Fiber.poll(caller)
        }
        expect({ budget, exit }).toEqual({ budget, exit: Option.some(Exit.succeed(budget)) })
        expect(yield* bulkhead.state).toMatchObject({ active: 0, queued: 0, admitted: 2 })
      }
    }))

  it.effect("an admitted caller interrupted at any step, before or during its work, gives its slot back", () =>
    Effect.gen(function*() {
      // the caller yields every `budget` operations, and is interrupted at its first yield:
      // scanning the budget moves that point across every step of the uncontended admit
      const points = new Set<string>()
      for (let budget = 10; budget < 60; budget++) {
        const bulkhead = yield* Bulkhead.make({ name: "payments", maxConcurrent: 1 })
        const gate = yield* Deferred.make<void>()
        let started = false
        const caller = yield* Effect.fork(
          bulkhead.protect(Effect.sync(() => started = true).pipe(Effect.zipRight(Deferred.await(gate)))).pipe(
            Effect.withMaxOpsBeforeYield(budget)
          )
        )
        yield* Effect.yieldNow()
        const { active } = yield* bulkhead.state
        points.add(`${active}:${started}`)
        yield* Fiber.interrupt(caller)
        expect({ budget, active: (yield* bulkhead.state).active }).toEqual({ budget, active: 0 })
        // the next call gets the slot at once
        expect(yield* bulkhead.protect(Effect.succeed(budget))).toBe(budget)
      }
      // the interruption landed before the admit, between the admit and the work, and in the work
      expect([...points].sort()).toEqual(["0:false", "1:false", "1:true"])
    }))

  it.effect("keeps metrics tagged with the bulkhead: active, queued, rejected by reason", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "metrics-test", maxConcurrent: 1, maxQueued: 1 })
      const busy = yield* Effect.fork(bulkhead.protect(Effect.never))
      const waiting = yield* Effect.fork(bulkhead.protect(Effect.void))
      yield* settle
      yield* Effect.flip(bulkhead.protect(Effect.void))
      yield* Effect.flip(bulkhead.protect(Effect.void))
      const active = yield* Metric.value(Metric.tagged(Bulkhead.activeGauge, "bulkhead", "metrics-test"))
      const queued = yield* Metric.value(Metric.tagged(Bulkhead.queuedGauge, "bulkhead", "metrics-test"))
      const rejected = yield* Metric.value(
        Metric.taggedWithLabels(Bulkhead.rejectedCounter, [
          MetricLabel.make("bulkhead", "metrics-test"),
          MetricLabel.make("reason", "queue_full"),
          MetricLabel.make("category", "resource"),
          MetricLabel.make("code", "BULKHEAD_QUEUE_FULL")
        ])
      )
      expect(active).toEqual(MetricState.gauge(1))
      expect(queued).toEqual(MetricState.gauge(1))
      expect(rejected).toEqual(MetricState.counter(2))
      yield* Fiber.interrupt(waiting)
      yield* Fiber.interrupt(busy)
    }))

  it("classifies its rejection as resource, not retryable, not tripping a breaker", () => {
    const error = new Bulkhead.BulkheadRejectedError({
      bulkhead: "x",
      reason: "queue_full",
      maxConcurrent: 1,
      maxQueued: 0
    })
    expect(Failure.defaultClassifier.classify(error)).toMatchObject({
      category: "resource",
      code: "BULKHEAD_QUEUE_FULL",
      strategy: "failover",
      retryable: false,
      tripsBreaker: false
    })
  })

  it.effect("literal options that break a rule are a defect naming the field", () =>
    Effect.gen(function*() {
      for (
        const [options, pattern] of [
          [{ maxConcurrent: 0 }, /maxConcurrent must be a whole number >= 1, got 0/],
          [{ maxQueued: -1 }, /maxQueued must be a whole number >= 0, got -1/],
          [{ maxWait: 0 }, /maxWait must be a duration > 0/],
          [{ priorities: 2, defaultPriority: 2 }, /defaultPriority must be a whole number in \[0, 2\), got 2/],
          [{ priorities: 2 ** 32 }, /priorities must be a whole number in \[1, 1000\], got 4294967296/],
          [{ priorities: 1001 }, /priorities must be a whole number in \[1, 1000\], got 1001/],
          [{ maxWait: "-5 seconds" }, /maxWait must be a duration > 0, got "-5 seconds"/],
          [{ maxWait: -5n }, /maxWait must be a duration > 0, got -5/]
        ] as const
      ) {
        const exit = yield* Effect.exit(Bulkhead.make(options))
        expect(Exit.isFailure(exit) && String(exit.cause)).toMatch(pattern)
      }
    }))

  class PaymentsBulkhead extends Bulkhead.Tag("payments")<PaymentsBulkhead>() {}
  class SearchBulkhead extends Bulkhead.Tag("search")<SearchBulkhead>() {}

  it.effect("one bulkhead per dependency through Tag, each with its own limits", () =>
    Effect.gen(function*() {
      const payments = yield* PaymentsBulkhead
      const search = yield* SearchBulkhead
      expect(payments.options).toMatchObject({ name: "payments", maxConcurrent: 1 })
      expect(search.options).toMatchObject({ name: "search", maxConcurrent: 3 })
      const busy = yield* Effect.fork(Effect.never.pipe(PaymentsBulkhead.protect))
      yield* settle
      const rejected = yield* Effect.flip(Effect.void.pipe(PaymentsBulkhead.protect))
      expect(rejected.bulkhead).toBe("payments")
      expect(yield* Effect.succeed("ok").pipe(Bulkhead.protect(SearchBulkhead))).toBe("ok")
      yield* Fiber.interrupt(busy)
    }).pipe(Effect.provide(Layer.merge(
      PaymentsBulkhead.layer({ maxConcurrent: 1 }),
      SearchBulkhead.layer({ maxConcurrent: 3 })
    ))))

  it.effect("its Layer registers a readiness check: degraded while saturated, up otherwise", () =>
    Effect.gen(function*() {
      const health = yield* Health.Health
      const component = Effect.map(health.report, (r) => r.components.find((c) => c.name === "bulkhead:payments"))
      expect(yield* component).toMatchObject({ kind: "readiness", status: "up" })
      const busy = yield* Effect.fork(Effect.never.pipe(PaymentsBulkhead.protect))
      yield* settle
      const report = yield* health.report
      expect(report.ready).toBe(false)
      expect(yield* component).toMatchObject({
        status: "degraded",
        details: { active: 1, queued: 0, maxConcurrent: 1, maxQueued: 0 }
      })
      yield* Fiber.interrupt(busy)
      expect(yield* component).toMatchObject({ status: "up" })
    }).pipe(Effect.provide(PaymentsBulkhead.layer({ maxConcurrent: 1 }).pipe(Layer.provideMerge(Health.layer())))))

  it.effect("layerConfig reads the limits from Config and fails with a ConfigError naming the key", () =>
    Effect.gen(function*() {
      const good = ConfigProvider.fromMap(
        new Map([["MAX_CONCURRENT", "4"], ["MAX_QUEUED", "8"], ["MAX_WAIT", "1 second"]])
      )
      const bulkhead = yield* Effect.provide(
        Bulkhead.Bulkhead,
        Bulkhead.layerConfig("db").pipe(
          Layer.provide(Layer.setConfigProvider(good))
        )
      )
      expect(bulkhead.options).toMatchObject({ name: "db", maxConcurrent: 4, maxQueued: 8 })
      expect(bulkhead.options.maxWait).toEqual(Option.some(Duration.seconds(1)))
      const bad = ConfigProvider.fromMap(new Map([["PAYMENTS_MAX_CONCURRENT", "0"]]), { pathDelim: "_" })
      const error = yield* Effect.flip(
        Effect.provide(
          PaymentsBulkhead,
          PaymentsBulkhead.layerConfig().pipe(Layer.provide(Layer.setConfigProvider(bad)))
        )
      )
      expect(String(error)).toMatch(/PAYMENTS.MAX_CONCURRENT.*must be a whole number >= 1/)
    }))

  it.effect("Config keys name the variable a user sets, prefix included; bounds and empty values are errors", () =>
    Effect.gen(function*() {
      const read = (entries: ReadonlyArray<readonly [string, string]>) =>
        Effect.flip(
          Effect.provide(
            PaymentsBulkhead,
            PaymentsBulkhead.layerConfig().pipe(
              Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(entries), { pathDelim: "_" })))
            )
          )
        ).pipe(Effect.map(String))
      expect(yield* read([["PAYMENTS_MAX_CONCURRENT", "0"]])).toMatch(
        /at PAYMENTS_MAX_CONCURRENT: "must be a whole number >= 1"/
      )
      expect(yield* read([["PAYMENTS_PRIORITIES", "4294967296"]])).toMatch(
        /at PAYMENTS_PRIORITIES: "must be a whole number in \[1, 1000\]"/
      )
      expect(yield* read([["PAYMENTS_PRIORITIES", "2"], ["PAYMENTS_DEFAULT_PRIORITY", "2"]])).toMatch(
        /at PAYMENTS_DEFAULT_PRIORITY: "must be a whole number below PRIORITIES \(2\), got 2"/
      )
      for (const key of ["MAX_CONCURRENT", "MAX_QUEUED", "PRIORITIES", "DEFAULT_PRIORITY", "MAX_WAIT"]) {
        for (const empty of ["", "  "]) {
          expect(yield* read([[`PAYMENTS_${key}`, empty]])).toMatch(new RegExp(`at PAYMENTS_${key}: `))
        }
      }
    }))

  it.effect("with the most classes, the highest waiting class is admitted first, across 32-class words", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueued: 10, priorities: Bulkhead.maxPriorities })
      const gate = yield* Deferred.make<void>()
      const started: Array<string> = []
      const holder = yield* Effect.fork(bulkhead.protect(gated(started, "holder", gate)))
      yield* settle
      const arrivals: Array<[string, number]> = [
        ["p0", 0],
        ["p999a", 999],
        ["p31", 31],
        ["p32", 32],
        ["p500", 500],
        ["p999b", 999],
        ["p33", 33]
      ]
      const fibers = new Map<string, Fiber.RuntimeFiber<unknown, unknown>>()
      for (const [label, priority] of arrivals) {
        fibers.set(label, yield* Effect.fork(bulkhead.run(Effect.sync(() => started.push(label)), priority)))
        yield* settle
      }
      // a class emptied by an interrupted waiter is skipped
      yield* Fiber.interrupt(fibers.get("p500")!)
      yield* Fiber.interrupt(fibers.get("p33")!)
      expect((yield* bulkhead.state).queued).toBe(5)
      yield* Deferred.succeed(gate, void 0)
      yield* Fiber.join(holder)
      for (const label of ["p0", "p999a", "p31", "p32", "p999b"]) yield* Fiber.join(fibers.get(label)!)
      expect(started).toEqual(["holder", "p999a", "p999b", "p32", "p31", "p0"])
      expect(yield* bulkhead.state).toMatchObject({ active: 0, queued: 0 })
    }))

  it("its rejection is tagged BulkheadRejectedError and classified by reason: resource, minor, failover, no retry", () => {
    const fields = { bulkhead: "x", maxConcurrent: 1, maxQueued: 0 }
    const full = new Bulkhead.BulkheadRejectedError({ ...fields, reason: "queue_full" })
    const late = new Bulkhead.BulkheadRejectedError({ ...fields, reason: "wait_timeout" })
    expect(full._tag).toBe("BulkheadRejectedError")
    const rule = { category: "resource", severity: "minor", strategy: "failover", retryable: false, maxRetries: 0 }
    expect(Failure.defaultClassifier.classify(full)).toMatchObject({
      ...rule,
      code: "BULKHEAD_QUEUE_FULL",
      tripsBreaker: false
    })
    expect(Failure.defaultClassifier.classify(late)).toMatchObject({
      ...rule,
      code: "BULKHEAD_WAIT_TIMEOUT",
      tripsBreaker: false
    })
    expect(late.message).toBe("Bulkhead \"x\" rejected the call: no slot freed within 0ms (wait timeout)")
  })

  it("its service tag and metric keys have fixed names and descriptions", () => {
    expect(Bulkhead.Bulkhead.key).toBe("@bulwark/core/Bulkhead")
    const { active, queued, rejected } = Bulkhead.metricKeys
    expect([active.name, queued.name, rejected.name]).toEqual([
      "bulwark_bulkhead_active",
      "bulwark_bulkhead_queued",
      "bulwark_bulkhead_rejected_total"
    ])
    expect([active.description, queued.description, rejected.description]).toEqual([
      Option.some("Calls running inside the bulkhead"),
      Option.some("Calls waiting for a slot of the bulkhead"),
      Option.some("Calls the bulkhead rejected, by reason")
    ])
    expect(rejected.keyType.incremental).toBe(true)
  })

  it.effect("without options: named default, 10 calls at once, no queue, no wait limit, one class", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make()
      expect(bulkhead.options).toEqual({
        name: "default",
        maxConcurrent: 10,
        maxQueued: 0,
        maxWait: Option.none(),
        priorities: 1,
        defaultPriority: 0
      })
    }))

  it.effect("a name that is not a string is a defect naming the field, with the whole message", () =>
    Effect.gen(function*() {
      const message = (options: Bulkhead.Options) =>
        Effect.map(
          Effect.exit(Bulkhead.make(options)),
          (exit) => Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "built"
        )
      expect(yield* message({ name: 42 as unknown as string })).toContain(
        "Bulkhead \"42\": name must be a string, got 42"
      )
      expect(yield* message({ name: "db", maxConcurrent: 0 })).toContain(
        "Bulkhead \"db\": maxConcurrent must be a whole number >= 1, got 0"
      )
    }))

  it.effect("every queue_full rejection of a bulkhead is the same error value", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "shared-rejection", maxConcurrent: 1 })
      const busy = yield* Effect.fork(bulkhead.protect(Effect.never))
      yield* settle
      const first = yield* Effect.flip(bulkhead.protect(Effect.void))
      const second = yield* Effect.flip(bulkhead.protect(Effect.void))
      expect(second).toBe(first)
      yield* Fiber.interrupt(busy)
    }))

  it.effect("a priority outside [0, priorities) is a defect: negative, fractional or equal to priorities; 0 is valid", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueued: 2, priorities: 2, defaultPriority: 1 })
      expect(yield* bulkhead.run(Effect.succeed("low"), 0)).toBe("low")
      for (const priority of [-1, 0.5, 2]) {
        const exit = yield* Effect.exit(bulkhead.run(Effect.void, priority))
        expect(Exit.isFailure(exit) && String(exit.cause)).toMatch(
          `priority must be a whole number in [0, 2), got ${priority}`
        )
      }
    }))

  it.effect("a waiter that gives up counts a wait_timeout rejection and leaves the queued gauge at its new size", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({
        name: "bulkhead-wait-metrics",
        maxConcurrent: 1,
        maxQueued: 2,
        maxWait: "1 second"
      })
      const busy = yield* Effect.fork(bulkhead.protect(Effect.never))
      yield* settle
      const late = yield* Effect.fork(bulkhead.protect(Effect.void))
      const interrupted = yield* Effect.fork(bulkhead.protect(Effect.void))
      yield* settle
      const queued = Metric.tagged(Bulkhead.queuedGauge, "bulkhead", "bulkhead-wait-metrics")
      expect(yield* Metric.value(queued)).toEqual(MetricState.gauge(2))
      yield* Fiber.interrupt(interrupted)
      expect(yield* Metric.value(queued)).toEqual(MetricState.gauge(1))
      yield* TestClock.adjust("1 second")
      yield* Fiber.await(late)
      expect(yield* Metric.value(queued)).toEqual(MetricState.gauge(0))
      const rejected = yield* Metric.value(
        Metric.taggedWithLabels(Bulkhead.rejectedCounter, [
          MetricLabel.make("bulkhead", "bulkhead-wait-metrics"),
          MetricLabel.make("reason", "wait_timeout"),
          MetricLabel.make("category", "resource"),
          MetricLabel.make("code", "BULKHEAD_WAIT_TIMEOUT")
        ])
      )
      expect(rejected).toEqual(MetricState.counter(1))
      yield* Fiber.interrupt(busy)
    }))

  it.effect("a waiter whose deadline passes first is rejected with wait_timeout and the time it had left", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "deadline-waiter", maxConcurrent: 1, maxQueued: 1 })
      const busy = yield* Effect.fork(bulkhead.protect(Effect.never))
      yield* settle
      const waiting = yield* Effect.fork(
        Effect.flip(bulkhead.protect(Effect.void).pipe(Deadline.within("1500 millis")))
      )
      yield* settle
      yield* TestClock.adjust("1500 millis")
      const error = yield* Fiber.join(waiting)
      expect(error).toMatchObject({ bulkhead: "deadline-waiter", reason: "wait_timeout", maxWaitMillis: 1500 })
      expect(error.message).toBe(
        "Bulkhead \"deadline-waiter\" rejected the call: no slot freed within 1500ms (wait timeout)"
      )
      expect(yield* bulkhead.state).toMatchObject({ queued: 0, rejected: { queue_full: 0, wait_timeout: 1 } })
      yield* Fiber.interrupt(busy)
    }))

  it.scoped("in a policy with a breaker, an uncontended call takes a slot in the breaker's admission step and gives it back", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "fused-admission", maxConcurrent: 1 })
      const policy = yield* fusedPolicy(bulkhead, "fused-admission")
      const alone = yield* stepsOf(bulkhead.protect(Effect.succeed(1)))
      const whole = yield* stepsOf(Effect.succeed(1).pipe(policy))
      expect({ alone, whole }).toEqual({ alone, whole: alone - 1 })
      const active = Effect.map(bulkhead.state, (s) => s.active)
      expect(yield* active.pipe(policy)).toBe(1)
      expect(yield* active).toBe(0)
      const gauge = Metric.tagged(Bulkhead.activeGauge, "bulkhead", "fused-admission")
      expect(yield* Metric.value(gauge).pipe(policy)).toEqual(MetricState.gauge(1))
      expect(yield* Metric.value(gauge)).toEqual(MetricState.gauge(0))
    }))

  it.scoped("in a policy with a breaker, every failed attempt is retried, the call's own failures and the bulkhead's rejections alike", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "fused-retries", maxConcurrent: 1 })
      const policy = yield* fusedPolicy(bulkhead, "fused-retries", { while: () => true })
      let attempts = 0
      const down = Effect.suspend(() => {
        attempts++
        return Effect.fail(new Down())
      })
      expect(yield* Effect.flip(down.pipe(policy))).toBeInstanceOf(Down)
      expect(attempts).toBe(3)
      // the slot is busy: each attempt is rejected at once, and the rejection is retried as the call's failure
      const busy = yield* Effect.fork(bulkhead.protect(Effect.never))
      yield* settle
      expect(yield* Effect.flip(down.pipe(policy))).toMatchObject({ reason: "queue_full" })
      expect(attempts).toBe(3)
      expect((yield* bulkhead.state).rejected.queue_full).toBe(3)
      yield* Fiber.interrupt(busy)
    }))

  it.scoped("in a policy with a breaker, a wait that times out is retried as the call's failure", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({
        name: "fused-waits",
        maxConcurrent: 1,
        maxQueued: 1,
        maxWait: "100 millis"
      })
      const policy = yield* fusedPolicy(bulkhead, "fused-waits", { while: () => true, maxRetries: 1 })
      const busy = yield* Effect.fork(bulkhead.protect(Effect.never))
      yield* settle
      const waiting = yield* Effect.fork(Effect.flip(Effect.void.pipe(policy)))
      yield* settle
      yield* TestClock.adjust("100 millis")
      yield* settle
      yield* TestClock.adjust("100 millis")
      expect(yield* Fiber.join(waiting)).toMatchObject({ reason: "wait_timeout" })
      expect((yield* bulkhead.state).rejected.wait_timeout).toBe(2)
      yield* Fiber.interrupt(busy)
    }))

  it.scoped("its readiness check is up while calls wait but the queue has room, and absent with health: false", () =>
    Effect.gen(function*() {
      const health = yield* Health.Health
      const component = (name: string) =>
        Effect.map(health.report, (r) => r.components.find((c) => c.name === `bulkhead:${name}`))
      const build = <I>(layer: Layer.Layer<I>) => Layer.build(layer)
      const queueing = Context.get(
        yield* build(Bulkhead.layer({ name: "queueing", maxQueued: 2 })),
        Bulkhead.Bulkhead
      )
      const busy = yield* Effect.forEach(
        Array.from({ length: 11 }),
        () => Effect.fork(queueing.protect(Effect.never))
      )
      yield* settle
      expect(yield* component("queueing")).toMatchObject({
        kind: "readiness",
        status: "up",
        details: { active: 10, queued: 1, maxConcurrent: 10, maxQueued: 2, rejectedQueueFull: 0 }
      })
      yield* build(Bulkhead.layer({ name: "unchecked", health: false }))
      expect(yield* component("unchecked")).toBeUndefined()
      yield* Effect.forEach(busy, Fiber.interrupt)
    }).pipe(Effect.provide(Health.layer())))

  it.scoped("the Layers read from Config register the readiness check too", () =>
    Effect.gen(function*() {
      const health = yield* Health.Health
      const names = Effect.map(health.report, (r) => r.components.map((c) => c.name))
      const provider = Layer.setConfigProvider(ConfigProvider.fromMap(new Map()))
      yield* Layer.build(Bulkhead.layerConfig("configured").pipe(Layer.provide(provider)))
      class Inventory extends Bulkhead.Tag("inventory")<Inventory>() {}
      yield* Layer.build(Inventory.layerConfig().pipe(Layer.provide(provider)))
      expect(yield* names).toEqual(expect.arrayContaining(["bulkhead:configured", "bulkhead:inventory"]))
    }).pipe(Effect.provide(Health.layer())))

  it.effect("Config accepts each bound itself, checks DEFAULT_PRIORITY against the default of one class, and MAX_WAIT > 0", () =>
    Effect.gen(function*() {
      const read = (entries: ReadonlyArray<readonly [string, string]>) =>
        Effect.provide(
          Bulkhead.Bulkhead,
          Bulkhead.layerConfig("bounds").pipe(
            Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(entries))))
          )
        )
      const bulkhead = yield* read([
        ["MAX_CONCURRENT", "1"],
        ["MAX_QUEUED", "0"],
        ["PRIORITIES", "1000"],
        ["DEFAULT_PRIORITY", "999"]
      ])
      expect(bulkhead.options).toMatchObject({ maxConcurrent: 1, maxQueued: 0, priorities: 1000, defaultPriority: 999 })
      expect(String(yield* Effect.flip(read([["DEFAULT_PRIORITY", "1"]])))).toMatch(
        /at DEFAULT_PRIORITY: "must be a whole number below PRIORITIES \(1\), got 1"/
      )
      expect(String(yield* Effect.flip(read([["MAX_WAIT", "0 seconds"]])))).toMatch(
        /at MAX_WAIT: "must be a duration > 0"/
      )
    }))

  it.effect("layerConfig with a Config of its own fails with a ConfigError at the key of the field that breaks a rule", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Effect.provide(Bulkhead.Bulkhead, Bulkhead.layerConfig("own", Config.succeed({ maxConcurrent: 0 })))
      )
      expect(String(error)).toContain(
        "at MAX_CONCURRENT: \"Bulkhead \"own\": maxConcurrent must be a whole number >= 1, got 0\""
      )
    }))

  it.effect.prop(
    "concurrency never exceeds the limit, the queue never exceeds its bound, nothing admitted is lost",
    {
      limits: fc.record({
        maxConcurrent: fc.integer({ min: 1, max: 4 }),
        maxQueued: fc.integer({ min: 0, max: 5 }),
        maxWait: fc.option(fc.integer({ min: 1, max: 50 }), { nil: undefined }),
        priorities: fc.integer({ min: 1, max: 3 })
      }),
      calls: fc.array(
        fc.record({
          arrival: fc.integer({ min: 0, max: 60 }),
          duration: fc.integer({ min: 0, max: 40 }),
          priority: fc.nat(),
          interruptAfter: fc.option(fc.integer({ min: 0, max: 80 }), { nil: undefined })
        }),
        { maxLength: 25 }
      )
    },
    ({ calls, limits }) =>
      Effect.gen(function*() {
        const bulkhead = yield* Bulkhead.make(limits)
        let running = 0
        let maxRunning = 0
        let maxQueued = 0
        const sample = Effect.flatMap(bulkhead.state, (s) =>
          Effect.sync(() => {
            maxQueued = Math.max(maxQueued, s.queued)
          }))
        const work = (status: { admitted: boolean; finished: boolean }, duration: number) =>
          Effect.acquireUseRelease(
            Effect.sync(() => {
              status.admitted = true
              running++
              maxRunning = Math.max(maxRunning, running)
            }),
            () => Effect.zipRight(Effect.sleep(Duration.millis(duration)), sample),
            () => Effect.sync(() => running--)
          ).pipe(Effect.tap(() => Effect.sync(() => status.finished = true)))
        const fibers = []
        for (const call of calls) {
          const status = { admitted: false, finished: false, interruptedAt: -1 }
          const fiber = yield* Effect.fork(
            Effect.zipRight(
              Effect.sleep(Duration.millis(call.arrival)),
              Effect.zipRight(sample, bulkhead.run(work(status, call.duration), call.priority % limits.priorities))
            ).pipe(Effect.onInterrupt(() =>
              Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => status.interruptedAt = now))
            ))
          )
          fibers.push({ fiber, status, call })
          if (call.interruptAfter !== undefined) {
            yield* Effect.fork(
              Effect.zipRight(Effect.sleep(Duration.millis(call.interruptAfter)), Fiber.interrupt(fiber))
            )
          }
        }
        yield* TestClock.adjust("500 millis")
        let admitted = 0
        for (const { call, fiber, status } of fibers) {
          const exit = yield* Fiber.await(fiber)
          if (status.admitted) {
            admitted++
          }
          if (Exit.isSuccess(exit)) {
            expect(status.finished).toBe(true)
          } else if (!Exit.isInterrupted(exit)) {
            // the only failure a call meets is a typed rejection, and a rejected call never ran
            const failure = Cause.failureOption(exit.cause)
            expect(Option.getOrUndefined(failure)).toBeInstanceOf(Bulkhead.BulkheadRejectedError)
            expect(status.admitted).toBe(false)
          } else {
            // interrupted: only the test interrupts, and only the calls it chose, never before it asked;
            // an admitted call's slot was given back (checked below)
            expect(status.interruptedAt).toBe(call.interruptAfter)
            expect(status.finished).toBe(false)
          }
        }
        const state = yield* bulkhead.state
        expect(maxRunning).toBeLessThanOrEqual(limits.maxConcurrent)
        expect(maxQueued).toBeLessThanOrEqual(limits.maxQueued)
        expect(running).toBe(0)
        expect(state).toMatchObject({ active: 0, queued: 0 })
        expect(state.admitted).toBeGreaterThanOrEqual(admitted)
      }),
    { fastCheck: { numRuns: 50 } }
  )
})
