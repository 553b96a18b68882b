import { Deadline, Failure, Testing, Timeout } from "@bulwark/core"
import { afterEach, beforeEach, describe, expect, it, vi } from "@effect/vitest"
import {
  Cause,
  Clock,
  Deferred,
  Duration,
  Effect,
  Equal,
  Exit,
  FastCheck as fc,
  Fiber,
  FiberId,
  FiberRef,
  Metric,
  MetricState,
  Option,
  TestClock
} from "effect"
import { Armed, TimerLane } from "../src/internal/timerLane.js"
import * as VirtualTimer from "../src/internal/virtualTimer.js"

/**
 * A clock with a timer of its own (as the testing kit's virtual clock has), standing at 0: it
 * counts its time reads and records the timers armed on it, which never fire.
 */
const timerClock = () => {
  const reads = { count: 0 }
  const armed: Array<number> = []
  const read = () => {
    reads.count++
    return 0
  }
  const clock: Clock.Clock & VirtualTimer.VirtualTimer = {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: read,
    currentTimeMillis: Effect.sync(read),
    unsafeCurrentTimeNanos: () => BigInt(read()),
    currentTimeNanos: Effect.sync(() => BigInt(read())),
    sleep: () => Effect.never,
    [VirtualTimer.TypeId]: (millis) => {
      armed.push(millis)
      return () => {}
    }
  }
  return { armed, clock, reads }
}

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
    expect(error._tag).toBe("TimeoutError")
    expect(error.message).toBe("The operation timed out after 1s and was interrupted")
    expect(Failure.defaultClassifier.classify(error)).toMatchObject({
      category: "timeout",
      code: "TIMEOUT",
      retryable: true,
      tripsBreaker: true
    })
  })

  it.effect("an unnamed timeout's error has no operation: it equals a TimeoutError built with the duration alone", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Effect.flip(Effect.never.pipe(Timeout.timeout("1 second"))))
      yield* TestClock.adjust("1 second")
      const error = yield* Fiber.join(fiber)
      expect(Object.keys(error)).not.toContain("operation")
      expect(Equal.equals(error, new Timeout.TimeoutError({ duration: Duration.seconds(1) }))).toBe(true)
    }))

  it.effect("the counter is exported as bulwark_timeout_total, a counter that only counts up, with its description", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(
        Effect.exit(Effect.never.pipe(Timeout.timeout("1 second", { name: "exported" })))
      )
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      const pair = [...Metric.unsafeSnapshot()].find((p) =>
        p.metricKey.tags.some((t) => t.key === "operation" && t.value === "exported")
      )
      expect(pair?.metricKey.name).toBe("bulwark_timeout_total")
      expect(pair?.metricKey.description).toEqual(Option.some("Calls interrupted by a timeout"))
      expect(pair?.metricKey.keyType).toMatchObject({ incremental: true })
      expect(pair?.metricState).toEqual(MetricState.counter(1))
    }))

  it.effect("a closer deadline: fails after exactly the time left, with a TimeoutError of that duration", () =>
    Effect.gen(function*() {
      const named = yield* Effect.fork(
        Effect.flip(Effect.never.pipe(Timeout.timeout("1 second", { name: "quotes" }), Deadline.within("300 millis")))
      )
      const unnamed = yield* Effect.fork(
        Effect.flip(Effect.never.pipe(Timeout.timeout("1 second"), Deadline.within("300 millis")))
      )
      yield* TestClock.adjust("299 millis")
      expect(named.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      const error = yield* Fiber.join(named)
      expect(Duration.toMillis(error.duration)).toBe(300)
      expect(error.operation).toBe("quotes")
      expect(error.message).toBe("Operation \"quotes\" timed out after 300ms and was interrupted")
      const plain = yield* Fiber.join(unnamed)
      expect(Object.keys(plain)).not.toContain("operation")
      expect(Equal.equals(plain, new Timeout.TimeoutError({ duration: Duration.millis(300) }))).toBe(true)
    }))

  it.effect("a deadline that has passed fails at once with a TimeoutError of 0 ms, counted, without running the work", () =>
    Effect.gen(function*() {
      let runs = 0
      const counter = Metric.tagged(Timeout.timeoutsCounter, "operation", "passed")
      for (const deadline of [Deadline.within(0), Deadline.at(-1)]) {
        const error = yield* Effect.sync(() => runs++).pipe(
          Timeout.timeout("1 second", { name: "passed" }),
          deadline,
          Effect.flip
        )
        expect(error.duration).toEqual(Duration.zero)
        expect(error.operation).toBe("passed")
      }
      expect(runs).toBe(0)
      expect(yield* Metric.value(counter)).toEqual(MetricState.counter(2))
    }))

  describe("on the testing kit's virtual clock", () => {
    it.effect("the work runs in the caller's fiber, and a hang ends with a TimeoutError exactly at the limit", () =>
      Effect.gen(function*() {
        const same: Array<boolean> = []
        const subject: Testing.Subject = {
          policy: (self) =>
            Effect.flatMap(Effect.fiberId, (caller) =>
              Effect.flatMap(Effect.fiberId, (inside) => {
                same.push(FiberId.threadName(inside) === FiberId.threadName(caller))
                return self
              }).pipe(Timeout.timeout(500)))
        }
        const timeline = yield* Testing.runScript(subject, {
          calls: [{ at: 0, outcomes: [{ _tag: "Hang" }] }, { at: 100, outcomes: [{ _tag: "Success", latency: 50 }] }],
          seed: 1
        })
        expect(same).toEqual([true, true])
        expect(timeline.calls.map((c) => [c.exit._tag, c.end])).toEqual([["Failure", 500], ["Success", 150]])
        const exit = timeline.calls[0]!.exit
        expect(exit._tag === "Failure" && exit.error).toBeInstanceOf(Timeout.TimeoutError)
      }))
  })

  it.effect("without a deadline it reads no time on a clock with a timer of its own: it only arms that timer", () =>
    Effect.gen(function*() {
      const { armed, clock, reads } = timerClock()
      const value = yield* Effect.succeed("value").pipe(Timeout.timeout("1 second"), Effect.withClock(clock))
      expect(value).toBe("value")
      expect(armed).toEqual([1000])
      expect(reads.count).toBe(0)
    }))

  describe("the error each limit and name raise, made once and kept for policies made again", () => {
    // a clock whose timer fires as soon as the work waits: a policy's error without waiting its limit
    const firing: Clock.Clock & VirtualTimer.VirtualTimer = Object.assign(Object.create(Clock.make()), {
      [VirtualTimer.TypeId]: (_millis: number, fire: () => void) => {
        queueMicrotask(fire)
        return () => {}
      }
    })
    const raised = (policy: ReturnType<typeof Timeout.timeout>) =>
      Effect.flip(Effect.never.pipe(policy, Effect.withClock(firing)))

    it.effect("limits in nanoseconds and names are told apart: each error names its own limit and operation", () =>
      Effect.gen(function*() {
        const short = yield* raised(Timeout.timeout(Duration.nanos(1_500_000n), { name: "nanos" }))
        const long = yield* raised(Timeout.timeout(Duration.nanos(2_500_000n), { name: "nanos" }))
        expect([short.duration, long.duration]).toEqual([Duration.nanos(1_500_000n), Duration.nanos(2_500_000n)])
        // an operation named "undefined" is not the unnamed one
        const named = yield* raised(Timeout.timeout("1234 millis", { name: "undefined" }))
        const unnamed = yield* raised(Timeout.timeout("1234 millis"))
        expect(named.operation).toBe("undefined")
        expect(Object.keys(unnamed)).not.toContain("operation")
        expect(unnamed.message).toBe("The operation timed out after 1s 234ms and was interrupted")
      }))

    it.effect("at most 256 are kept: past that the store starts over, so errors of old limits are made afresh", () =>
      Effect.gen(function*() {
        const limit = (name: string) => Timeout.timeout("4321 millis", { name })
        const first = yield* raised(limit("bound-0"))
        const kept = Effect.suspend(() => Effect.map(raised(limit("bound-0")), (error) => error === first))
        expect(yield* kept).toBe(true)
        // other tests of this file may have filled part of the store: make new ones until it starts over
        let made = 0
        while ((yield* kept) && made < 300) limit(`bound-fill-${made++}`)
        expect(made).toBeLessThanOrEqual(256)
        // it started over with the one that did not fit, then "bound-0" was made again by `kept`:
        // with those two kept, 254 more fit and the 255th starts it over again
        const again = yield* raised(limit("bound-0"))
        for (let i = 0; i < 254; i++) limit(`bound-more-${i}`)
        expect(yield* raised(limit("bound-0"))).toBe(again)
        limit("bound-more-254")
        expect(yield* raised(limit("bound-0"))).not.toBe(again)
      }))

    it.effect("a deadline further away than the limit leaves the limit: the timer waits the limit, the error names it", () =>
      Effect.gen(function*() {
        const armed: Array<number> = []
        const clock: Clock.Clock & VirtualTimer.VirtualTimer = Object.assign(Object.create(Clock.make()), {
          unsafeCurrentTimeMillis: () => 1_000_000,
          [VirtualTimer.TypeId]: (millis: number, fire: () => void) => {
            armed.push(millis)
            queueMicrotask(fire)
            return () => {}
          }
        })
        const error = yield* Effect.flip(
          Effect.never.pipe(Timeout.timeout("1 second"), Deadline.at(1_005_000), Effect.withClock(clock))
        )
        expect(armed).toEqual([1000])
        expect(error.duration).toEqual(Duration.seconds(1))
      }))
  })

  it.effect.prop(
    "whatever the limit, an unnamed timeout's error has no operation, and one named \"undefined\" keeps its name",
    { millis: fc.integer({ min: 1, max: 1_000_000_000 }) },
    ({ millis }) =>
      Effect.gen(function*() {
        const unnamed = yield* Effect.fork(Effect.flip(Effect.never.pipe(Timeout.timeout(millis))))
        const named = yield* Effect.fork(
          Effect.flip(Effect.never.pipe(Timeout.timeout(millis, { name: "undefined" })))
        )
        yield* TestClock.adjust(millis)
        const plain = yield* Fiber.join(unnamed)
        expect(Object.keys(plain)).not.toContain("operation")
        expect(plain.duration).toEqual(Duration.millis(millis))
        expect((yield* Fiber.join(named)).operation).toBe("undefined")
      })
  )

  it.effect.prop(
    "limits written in nanoseconds keep their own duration in the error",
    { a: fc.integer({ min: 1, max: 1_000_000 }), b: fc.integer({ min: 1, max: 1_000_000 }) },
    ({ a, b }) =>
      Effect.gen(function*() {
        const nanos = [BigInt(a) * 1_000_000n, BigInt(b) * 1_000_000n] as const
        const fibers = yield* Effect.forEach(nanos, (n) =>
          Effect.fork(Effect.flip(Effect.never.pipe(Timeout.timeout(n)))))
        yield* TestClock.adjust(Math.max(a, b))
        const errors = yield* Effect.forEach(fibers, Fiber.join)
        expect(errors.map((e) =>
          e.duration
        )).toEqual(nanos.map((n) => Duration.nanos(n)))
      })
  )

  it("a duration that is not positive is rejected when the policy is built", () => {
    expect(() => Timeout.timeout(0)).toThrow(/duration must be a duration > 0, got 0/)
    for (const duration of [-1, Number.NaN, "-5 seconds", -5n, [-5, 0], [0, -1], "abc", "0 millis"] as const) {
      expect(() => Timeout.timeout(duration as Duration.DurationInput)).toThrow(
        /Timeout.timeout: duration must be a duration > 0/
      )
    }
  })

  describe("on the live clock", () => {
    // Node timers alive in this process: the live path arms exactly one per waiting call
    const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === "Timeout").length
    // a wait that never ends and, unlike Effect.never, holds no timer of its own
    const forever = Effect.async<never>(() => {})

    it.live("runs the work in the caller's fiber, with no forked fiber", () =>
      Effect.gen(function*() {
        const caller = yield* Effect.fiberId
        const inside = yield* Effect.fiberId.pipe(Timeout.timeout("1 second"))
        expect(FiberId.threadName(inside)).toBe(FiberId.threadName(caller))
      }))

    it.live("raises the TimeoutError only after the interrupted work's finalizers, and the caller goes on", () =>
      Effect.gen(function*() {
        const log: Array<string> = []
        const work = Effect.acquireRelease(
          Effect.sync(() => log.push("acquired")),
          () => Effect.sleep("5 millis").pipe(Effect.zipRight(Effect.sync(() => log.push("released"))))
        ).pipe(Effect.zipRight(forever), Effect.scoped)
        const error = yield* Effect.flip(work.pipe(Timeout.timeout("5 millis", { name: "live" })))
        log.push("timed out")
        expect(error).toBeInstanceOf(Timeout.TimeoutError)
        expect(error.operation).toBe("live")
        expect(log).toEqual(["acquired", "released", "timed out"])
        // the interruption the timer delivered was taken back: the caller's fiber is not interrupted
        yield* Effect.sleep("1 millis")
        expect(yield* Effect.exit(Effect.yieldNow())).toEqual(Exit.void)
      }))

    it.live("a defect in the interrupted work's finalizers is kept beside the TimeoutError", () =>
      Effect.gen(function*() {
        const exit = yield* Effect.exit(
          forever.pipe(Effect.ensuring(Effect.die("finalizer bug")), Timeout.timeout("5 millis"))
        )
        expect(Exit.isFailure(exit)).toBe(true)
        if (Exit.isFailure(exit)) {
          expect(Cause.failureOption(exit.cause).pipe(Option.getOrUndefined)).toBeInstanceOf(Timeout.TimeoutError)
          expect([...Cause.defects(exit.cause)]).toEqual(["finalizer bug"])
          expect(Cause.isInterrupted(exit.cause)).toBe(false)
        }
      }))

    it.live("returns the value, or the work's own failure, and clears its timer", () =>
      Effect.gen(function*() {
        const before = timers()
        expect(yield* Effect.sleep("2 millis").pipe(Effect.as("value"), Timeout.timeout("1 hour"))).toBe("value")
        expect(yield* Effect.exit(Effect.fail("own error" as const).pipe(Timeout.timeout("1 hour")))).toEqual(
          Exit.fail("own error")
        )
        expect(timers()).toBe(before)
      }))

    it.live("interrupting the caller while it waits clears the timer and ends interrupted", () =>
      Effect.gen(function*() {
        const before = timers()
        const fiber = yield* Effect.fork(forever.pipe(Timeout.timeout("1 hour")))
        for (let i = 0; i < 100 && timers() === before; i++) yield* Effect.yieldNow()
        expect(timers()).toBe(before + 1)
        const exit = yield* Fiber.interrupt(fiber)
        expect(Exit.isInterrupted(exit)).toBe(true)
        expect(timers()).toBe(before)
      }))

    it.live("the waiting calls of one policy share one Node timer, up to the longest wait a Node timer takes", () =>
      Effect.gen(function*() {
        for (const limit of ["1 hour", 2 ** 31 - 1] as const) {
          const before = timers()
          const policy = Timeout.timeout(limit)
          const fibers = yield* Effect.forEach([1, 2, 3], () => Effect.fork(forever.pipe(policy)))
          for (let i = 0; i < 100 && timers() === before; i++) yield* Effect.yieldNow()
          yield* Effect.yieldNow()
          expect(timers()).toBe(before + 1)
          yield* Fiber.interruptAll(fibers)
          expect(timers()).toBe(before)
        }
      }))

    it.live("a deadline exactly the longest Node timer (2^31 - 1 ms) away still gets a timer of its own", () =>
      Effect.gen(function*() {
        // the live clock reads Date.now(): frozen, the time left is exactly the deadline's budget
        vi.useFakeTimers({ toFake: ["Date"] })
        try {
          const before = timers()
          const fiber = yield* Effect.fork(forever.pipe(Timeout.timeout(2 ** 31), Deadline.within(2 ** 31 - 1)))
          for (let i = 0; i < 100 && timers() === before; i++) yield* Effect.yieldNow()
          expect(timers()).toBe(before + 1)
          yield* Fiber.interrupt(fiber)
          expect(timers()).toBe(before)
        } finally {
          vi.useRealTimers()
        }
      }))

    it.live("a limit beyond the longest Node timer (2^31 - 1 ms) arms none: the work is never cut short", () =>
      Effect.gen(function*() {
        // a Node timer that long would fire after 1 ms instead
        const work = Effect.sleep("20 millis").pipe(Effect.as("value"))
        expect(yield* work.pipe(Timeout.timeout(2 ** 31))).toBe("value")
        const before = timers()
        const fiber = yield* Effect.fork(forever.pipe(Timeout.timeout(2 ** 31)))
        for (let i = 0; i < 20; i++) yield* Effect.yieldNow()
        expect(timers()).toBe(before)
        yield* Fiber.interrupt(fiber)
      }))

    it.live("the outer of two nested timeouts fires: its own error, and the caller goes on", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(
          forever.pipe(Timeout.timeout("1 hour", { name: "inner" }), Timeout.timeout("5 millis", { name: "outer" }))
        )
        expect(error.operation).toBe("outer")
        expect(yield* Effect.exit(Effect.sleep("1 millis"))).toEqual(Exit.void)
      }))

    it.live("fibers the work forked and left running end with it, as they would in a fiber of its own", () =>
      Effect.gen(function*() {
        const child = yield* Effect.fork(forever).pipe(Timeout.timeout("1 second"))
        expect(Exit.isInterrupted(yield* Fiber.await(child))).toBe(true)
      }))

    it.live("a fiber the caller forked before is not touched by the timeout", () =>
      Effect.gen(function*() {
        const background = yield* Effect.fork(forever)
        const error = yield* Effect.flip(forever.pipe(Timeout.timeout("5 millis")))
        expect(error).toBeInstanceOf(Timeout.TimeoutError)
        expect(Option.isNone(yield* Fiber.poll(background))).toBe(true)
        yield* Fiber.interrupt(background)
      }))

    it.live("work that cannot be interrupted finishes first, then the TimeoutError is raised", () =>
      Effect.gen(function*() {
        const log: Array<string> = []
        const work = Effect.sleep("10 millis").pipe(Effect.zipRight(Effect.sync(() => log.push("finished"))))
        const error = yield* Effect.flip(Effect.uninterruptible(work.pipe(Timeout.timeout("2 millis"))))
        log.push("timed out")
        expect(error).toBeInstanceOf(Timeout.TimeoutError)
        expect(log).toEqual(["finished", "timed out"])
        expect(yield* Effect.exit(Effect.sleep("1 millis"))).toEqual(Exit.void)
      }))

    it.live("a timeout takes its interruption back: the fiber reads as not interrupted, and times out again", () =>
      Effect.gen(function*() {
        for (let round = 0; round < 2; round++) {
          const error = yield* Effect.flip(forever.pipe(Timeout.timeout("2 millis")))
          expect(error).toBeInstanceOf(Timeout.TimeoutError)
          expect(Cause.isEmpty(yield* FiberRef.get(FiberRef.interruptedCause))).toBe(true)
        }
      }))

    it.live("policies made again with the same limit and name raise the same TimeoutError, made once", () =>
      Effect.gen(function*() {
        const first = yield* Effect.flip(forever.pipe(Timeout.timeout("2 millis", { name: "shared" })))
        const again = yield* Effect.flip(forever.pipe(Timeout.timeout("2 millis", { name: "shared" })))
        const other = yield* Effect.flip(forever.pipe(Timeout.timeout("2 millis", { name: "other" })))
        const unnamed = yield* Effect.flip(forever.pipe(Timeout.timeout(2)))
        expect(again).toBe(first)
        expect(other).not.toBe(first)
        expect([other.operation, unnamed.operation]).toEqual(["other", undefined])
        expect(unnamed.duration).toEqual(Duration.millis(2))
      }))

    it.live("an interruption from elsewhere wins over a timeout that fired at the same time", () =>
      Effect.gen(function*() {
        const gate = yield* Deferred.make<void>()
        const fiber = yield* Effect.fork(
          Effect.uninterruptible(Deferred.await(gate).pipe(Timeout.timeout("1 millis", { name: "both" })))
        )
        yield* Effect.sleep("10 millis")
        fiber.unsafeInterruptAsFork(yield* Effect.fiberId)
        yield* Deferred.succeed(gate, undefined)
        const exit = yield* Fiber.await(fiber)
        expect(Exit.isInterrupted(exit)).toBe(true)
        // the timeout did fire (and counted) before the other interruption took over
        const counted = yield* Metric.value(Metric.tagged(Timeout.timeoutsCounter, "operation", "both"))
        expect(counted).toEqual(MetricState.counter(1))
      }))

    it.live("a FiberRef the work set directly keeps its value after a timeout (documented)", () =>
      Effect.gen(function*() {
        const ref = FiberRef.unsafeMake("before")
        yield* Effect.flip(
          FiberRef.set(ref, "set by the work").pipe(Effect.zipRight(forever), Timeout.timeout("1 millis"))
        )
        expect(yield* FiberRef.get(ref)).toBe("set by the work")
        const scoped = yield* Effect.flip(forever.pipe(Effect.locally(ref, "local"), Timeout.timeout("1 millis")))
        expect(scoped).toBeInstanceOf(Timeout.TimeoutError)
        expect(yield* FiberRef.get(ref)).toBe("set by the work")
      }))

    it.live("a closer deadline shortens the wait; a passed one fails at once without running the work", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(forever.pipe(Timeout.timeout("1 hour"), Deadline.within("5 millis")))
        expect(Duration.toMillis(error.duration)).toBeGreaterThan(0)
        expect(Duration.toMillis(error.duration)).toBeLessThanOrEqual(5)
        let ran = false
        const passed = yield* Effect.flip(
          Effect.sync(() => (ran = true)).pipe(Timeout.timeout("1 hour"), Deadline.at(Date.now() - 1))
        )
        expect(passed.duration).toEqual(Duration.zero)
        expect(ran).toBe(false)
      }))
  })

  describe("a lane of timers of one duration", () => {
    class Task extends Armed {
      constructor(readonly run: () => void) {
        super()
      }
      fire() {
        this.run()
      }
    }
    const arm = (lane: TimerLane, run: () => void): Armed => {
      const task = new Task(run)
      lane.arm(task)
      return task
    }
    beforeEach(() => {
      vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] })
    })
    afterEach(() => {
      vi.restoreAllMocks()
      vi.useRealTimers()
    })

    it("fires each timer at its own deadline, in arming order, under one Node timer", () => {
      const lane = new TimerLane(100)
      const fired: Array<string> = []
      arm(lane, () => fired.push("a"))
      vi.advanceTimersByTime(40)
      arm(lane, () => fired.push("b"))
      expect(vi.getTimerCount()).toBe(1)
      vi.advanceTimersByTime(60)
      expect(fired).toEqual(["a"])
      vi.advanceTimersByTime(39)
      expect(fired).toEqual(["a"])
      vi.advanceTimersByTime(1)
      expect(fired).toEqual(["a", "b"])
      expect(vi.getTimerCount()).toBe(0)
    })

    it("a cancelled timer never fires, and the lane waits on for the next one", () => {
      const lane = new TimerLane(100)
      const fired: Array<string> = []
      const a = arm(lane, () => fired.push("a"))
      vi.advanceTimersByTime(50)
      arm(lane, () => fired.push("b"))
      a.cancel()
      a.cancel()
      vi.advanceTimersByTime(50)
      expect(fired).toEqual([])
      vi.advanceTimersByTime(49)
      expect(fired).toEqual([])
      vi.advanceTimersByTime(1)
      expect(fired).toEqual(["b"])
    })

    it("cancelling a timer in the middle or at the tail leaves the others to fire in order, and later timers join the tail", () => {
      const lane = new TimerLane(100)
      const fired: Array<string> = []
      const start = performance.now()
      const at = (label: string) => () => fired.push(`${label}@${performance.now() - start}`)
      arm(lane, at("a"))
      vi.advanceTimersByTime(10)
      const b = arm(lane, at("b"))
      vi.advanceTimersByTime(10)
      arm(lane, at("c"))
      b.cancel()
      vi.advanceTimersByTime(10)
      const d = arm(lane, at("d"))
      d.cancel()
      vi.advanceTimersByTime(10)
      arm(lane, at("e"))
      vi.advanceTimersByTime(200)
      expect(fired).toEqual(["a@100", "c@120", "e@140"])
    })

    it("a timer due within the millisecond after the one that fires goes with it: no Node timer for that millisecond", () => {
      const lane = new TimerLane(100)
      const fired: Array<string> = []
      arm(lane, () => fired.push("a"))
      vi.advanceTimersByTime(1)
      arm(lane, () => fired.push("b"))
      vi.advanceTimersByTime(99)
      expect(fired).toEqual(["a", "b"])
      expect(vi.getTimerCount()).toBe(0)
    })

    it("its one Node timer keeps the process alive only while a timer of the lane waits", () => {
      const setTimeoutSpy = vi.spyOn(globalThis, "setTimeout")
      const lane = new TimerLane(100)
      const nodeTimer = () => setTimeoutSpy.mock.results.at(-1)!.value as ReturnType<typeof setTimeout>
      arm(lane, () => {}).cancel()
      expect(nodeTimer().hasRef()).toBe(false)
      // armed again before that Node timer fired: the same Node timer holds the process again
      vi.advanceTimersByTime(50)
      const a = arm(lane, () => {})
      expect(nodeTimer().hasRef()).toBe(true)
      const b = arm(lane, () => {})
      a.cancel()
      expect(nodeTimer().hasRef()).toBe(true)
      b.cancel()
      expect(nodeTimer().hasRef()).toBe(false)
      const c = arm(lane, () => {})
      expect(nodeTimer().hasRef()).toBe(true)
      expect(setTimeoutSpy).toHaveBeenCalledTimes(1)
      // the Node timer fires with nothing due: the one armed for the waiting timer holds the process
      // until that timer is cancelled
      vi.advanceTimersByTime(50)
      expect(setTimeoutSpy).toHaveBeenCalledTimes(2)
      expect(nodeTimer().hasRef()).toBe(true)
      c.cancel()
      expect(nodeTimer().hasRef()).toBe(false)
    })

    it("a timer armed while the lane fires waits its full duration under the lane's one Node timer", () => {
      const lane = new TimerLane(100)
      const fired: Array<string> = []
      arm(lane, () => {
        fired.push("a")
        arm(lane, () => fired.push("b"))
      })
      vi.advanceTimersByTime(100)
      expect(fired).toEqual(["a"])
      expect(vi.getTimerCount()).toBe(1)
      vi.advanceTimersByTime(99)
      expect(fired).toEqual(["a"])
      vi.advanceTimersByTime(1)
      expect(fired).toEqual(["a", "b"])
      expect(vi.getTimerCount()).toBe(0)
    })

    it("a timer armed alone fires after its own duration; cancelled, its Node timer is cleared and it never fires", () => {
      const fired: Array<string> = []
      const kept = new Task(() => fired.push("kept"))
      const cancelled = new Task(() => fired.push("cancelled"))
      kept.armAlone(30)
      cancelled.armAlone(20)
      expect(vi.getTimerCount()).toBe(2)
      cancelled.cancel()
      expect(vi.getTimerCount()).toBe(1)
      vi.advanceTimersByTime(29)
      expect(fired).toEqual([])
      vi.advanceTimersByTime(1)
      expect(fired).toEqual(["kept"])
      expect(vi.getTimerCount()).toBe(0)
    })

    it("re-arms after it emptied: a timer armed later waits its full duration", () => {
      const lane = new TimerLane(100)
      const fired: Array<string> = []
      arm(lane, () => fired.push("a")).cancel()
      vi.advanceTimersByTime(90)
      arm(lane, () => fired.push("b"))
      vi.advanceTimersByTime(99)
      expect(fired).toEqual([])
      vi.advanceTimersByTime(1)
      expect(fired).toEqual(["b"])
    })
  })
})
