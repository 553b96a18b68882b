import { Backoff, Bulkhead, Deadline, Failure, Policy, Retry, Timeout } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Clock, Data, Deferred, Duration, Effect, Exit, Fiber, Option, TestClock } from "effect"

class Unavailable extends Data.TaggedError("Unavailable")<{ readonly attempt: number }> {}

/** Lets every forked fiber run until it blocks. */
const settle = Effect.gen(function*() {
  for (let i = 0; i < 5; i++) yield* Effect.yieldNow()
})

const millisOf = (o: Option.Option<Duration.Duration>) => Option.map(o, Duration.toMillis)

describe("Deadline", () => {
  it.effect("within sets the time left; a nested within keeps the earlier deadline; forks inherit it", () =>
    Effect.gen(function*() {
      expect(yield* Deadline.remaining).toEqual(Option.none())
      const seen = yield* Effect.gen(function*() {
        const outer = millisOf(yield* Deadline.remaining)
        yield* TestClock.adjust("500 millis")
        const later = millisOf(yield* Deadline.remaining)
        const shorter = yield* Deadline.remaining.pipe(Effect.map(millisOf), Deadline.within("1 second"))
        const longer = yield* Deadline.remaining.pipe(Effect.map(millisOf), Deadline.within("10 seconds"))
        const forked = yield* Effect.fork(Deadline.remaining).pipe(Effect.flatMap(Fiber.join), Effect.map(millisOf))
        const cleared = yield* Deadline.clear(Deadline.remaining)
        return { outer, later, shorter, longer, forked, cleared }
      }).pipe(Deadline.within("2 seconds"))
      expect(seen).toEqual({
        outer: Option.some(2000),
        later: Option.some(1500),
        shorter: Option.some(1000),
        longer: Option.some(1500),
        forked: Option.some(1500),
        cleared: Option.none()
      })
      // once passed, the time left is zero, not negative
      const passed = yield* TestClock.adjust("3 seconds").pipe(
        Effect.zipRight(Deadline.remainingMillis),
        Deadline.within("1 second")
      )
      expect(passed).toBe(0)
      expect(() => Deadline.within("-1 second")).toThrow(/Deadline.within: duration must be a duration >= 0/)
    }))

  it.effect("Timeout.timeout waits only for the time left when the deadline is closer", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.never.pipe(
        Timeout.timeout("5 seconds", { name: "users" }),
        Deadline.within("2 seconds"),
        Effect.flip,
        Effect.fork
      )
      yield* TestClock.adjust("1999 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      const error = yield* Fiber.join(fiber)
      expect(error).toBeInstanceOf(Timeout.TimeoutError)
      expect(Duration.toMillis(error.duration)).toBe(2000)
      expect(error.operation).toBe("users")
      // its own limit still applies when it is the shorter one
      const own = yield* Effect.never.pipe(
        Timeout.timeout("1 second"),
        Deadline.within("2 seconds"),
        Effect.flip,
        Effect.fork
      )
      yield* TestClock.adjust("1 second")
      expect(Duration.toMillis((yield* Fiber.join(own)).duration)).toBe(1000)
    }))

  it.effect("Timeout.timeout does not start the work once the deadline has passed", () =>
    Effect.gen(function*() {
      let runs = 0
      const fiber = yield* Effect.sync(() => runs++).pipe(
        Timeout.timeout("1 second"),
        Effect.delay("2 seconds"),
        Deadline.within("1 second"),
        Effect.flip,
        Effect.fork
      )
      yield* TestClock.adjust("2 seconds")
      const error = yield* Fiber.join(fiber)
      expect(runs).toBe(0)
      expect(error).toBeInstanceOf(Timeout.TimeoutError)
      expect(Duration.toMillis(error.duration)).toBe(0)
    }))

  it.effect("Retry does not start a backoff that would end past the deadline: it fails at once, with the last failure", () =>
    Effect.gen(function*() {
      let attempt = 0
      const call = Effect.suspend(() => Effect.fail(new Unavailable({ attempt: ++attempt })))
      const policy = Retry.policy<Unavailable>({
        classify: () => "connection",
        schedule: Backoff.fromDelays(["500 millis", "3 seconds"])
      })
      const fiber = yield* call.pipe(Retry.retry(policy), Deadline.within("2 seconds"), Effect.flip, Effect.fork)
      yield* TestClock.adjust("500 millis")
      // the second failure, at 500 ms: a 3 s backoff cannot end before the deadline (1.5 s left)
      const error = yield* Fiber.join(fiber)
      expect(attempt).toBe(2)
      expect(error).toBeInstanceOf(Deadline.DeadlineExceededError)
      const exceeded = error as Deadline.DeadlineExceededError
      expect(exceeded).toMatchObject({ stage: "retry", remainingMillis: 1500, neededMillis: 3000 })
      expect(exceeded.cause).toEqual(new Unavailable({ attempt: 2 }))
      expect(exceeded.message).toBe("Deadline exceeded before the retry: 1500ms left (retry needed 3000ms)")
      const classification = yield* Failure.classify(exceeded)
      expect(classification).toMatchObject({
        category: "timeout",
        code: "DEADLINE_EXCEEDED",
        retryable: false,
        tripsBreaker: false
      })
      // a backoff that ends exactly at the deadline is not past it: it is started
      attempt = 0
      const exact = yield* call.pipe(Retry.retry(policy), Deadline.within("3500 millis"), Effect.flip, Effect.fork)
      yield* TestClock.adjust("500 millis")
      yield* TestClock.adjust("3 seconds")
      expect(attempt).toBe(3)
      yield* Fiber.interrupt(exact)
      // without a deadline the same policy waits the 3 s and tries a third time
      attempt = 0
      const free = yield* call.pipe(Retry.retry(policy), Effect.flip, Effect.fork)
      yield* TestClock.adjust("500 millis")
      yield* TestClock.adjust("3 seconds")
      expect(attempt).toBe(3)
      yield* Fiber.interrupt(free)
    }))

  it.effect("a bulkhead does not queue a caller whose deadline passes before its maximum wait", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "db", maxConcurrent: 1, maxQueued: 4, maxWait: "5 seconds" })
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(bulkhead.protect(Deferred.await(gate)))
      yield* settle
      // 1 second left, 5 seconds of maximum wait: turned away at once, never queued
      const rejected = yield* bulkhead.protect(Effect.void).pipe(Deadline.within("1 second"), Effect.flip)
      expect(rejected).toMatchObject({ bulkhead: "db", reason: "wait_timeout", maxWaitMillis: 1000 })
      expect(yield* bulkhead.state).toMatchObject({ queued: 0, rejected: { queue_full: 0, wait_timeout: 1 } })
      // a caller whose deadline has passed is turned away at once too
      const late = yield* bulkhead.protect(Effect.void).pipe(
        Effect.delay("2 seconds"),
        Deadline.within("1 second"),
        Effect.flip,
        Effect.fork
      )
      yield* TestClock.adjust("2 seconds")
      expect(yield* Fiber.join(late)).toMatchObject({ reason: "wait_timeout", maxWaitMillis: 0 })
      // 10 seconds left: it queues, and is admitted when the slot frees
      const patient = yield* bulkhead.protect(Effect.succeed("in")).pipe(Deadline.within("10 seconds"), Effect.fork)
      yield* settle
      expect((yield* bulkhead.state).queued).toBe(1)
      yield* Deferred.succeed(gate, void 0)
      expect(yield* Fiber.join(patient)).toBe("in")
      yield* Fiber.join(holder)
    }))

  it.effect("without a maximum wait, a bulkhead's queue wait ends at the caller's deadline", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "db", maxConcurrent: 1, maxQueued: 4 })
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(bulkhead.protect(Deferred.await(gate)))
      yield* settle
      const waiter = yield* bulkhead.protect(Effect.void).pipe(Deadline.within("1 second"), Effect.flip, Effect.fork)
      yield* settle
      expect((yield* bulkhead.state).queued).toBe(1)
      yield* TestClock.adjust("999 millis")
      expect(Option.isNone(yield* Fiber.poll(waiter))).toBe(true)
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(waiter)).toMatchObject({ bulkhead: "db", reason: "wait_timeout", maxWaitMillis: 1000 })
      expect((yield* bulkhead.state).queued).toBe(0)
      yield* Deferred.succeed(gate, void 0)
      yield* Fiber.join(holder)
    }))

  it.effect("the Policy's total timeout sets the deadline for every stage inside it", () =>
    Effect.gen(function*() {
      let seen: Option.Option<number> = Option.none()
      const call = Effect.flatMap(Deadline.remaining, (left) => {
        seen = millisOf(left)
        return Effect.fail(new Unavailable({ attempt: 1 }))
      })
      const policy = Policy.make({
        totalTimeout: "3 seconds",
        timeout: "10 seconds",
        retry: Retry.policy<Unavailable>({ classify: () => "connection", schedule: Backoff.fromDelays(["5 seconds"]) })
      })
      const error = yield* call.pipe(policy, Effect.flip)
      expect(seen).toEqual(Option.some(3000))
      // the 5 s backoff would end past the 3 s budget: no retry, a DeadlineExceededError at once
      expect(error).toBeInstanceOf(Deadline.DeadlineExceededError)
      expect((error as Deadline.DeadlineExceededError).cause).toEqual(new Unavailable({ attempt: 1 }))
    }))
})

/** A `Clock` that counts how often the time is read, and otherwise is the test's own clock. */
const countingClock = Effect.map(Effect.clock, (clock) => {
  const reads = { count: 0 }
  const counting: Clock.Clock = {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => {
      reads.count++
      return clock.unsafeCurrentTimeMillis()
    },
    currentTimeMillis: Effect.sync(() => {
      reads.count++
      return clock.unsafeCurrentTimeMillis()
    }),
    unsafeCurrentTimeNanos: () => {
      reads.count++
      return clock.unsafeCurrentTimeNanos()
    },
    currentTimeNanos: Effect.sync(() => {
      reads.count++
      return clock.unsafeCurrentTimeNanos()
    }),
    sleep: (duration) => clock.sleep(duration)
  }
  return { counting, reads }
})

describe("Deadline, its building blocks", () => {
  it.effect("DeadlineExceededError: its tag, and a message without the time needed when that is not known", () =>
    Effect.gen(function*() {
      const error = new Deadline.DeadlineExceededError({ stage: "queue", remainingMillis: 0 })
      expect(error._tag).toBe("DeadlineExceededError")
      expect(error.message).toBe("Deadline exceeded before the queue: 0ms left")
      const caught = yield* Effect.fail(error).pipe(Effect.catchTag("DeadlineExceededError", Effect.succeed))
      expect(caught).toBe(error)
    }))

  it.effect("a budget of zero is accepted: the deadline is now, and no time is left", () =>
    Effect.gen(function*() {
      expect(millisOf(yield* Deadline.remaining.pipe(Deadline.within(0)))).toEqual(Option.some(0))
      expect(millisOf(yield* Deadline.within(Deadline.remaining, "0 millis"))).toEqual(Option.some(0))
    }))

  it.effect("without a deadline, remainingMillis, shorten and boundWait do not read the Clock", () =>
    Effect.gen(function*() {
      const { counting, reads } = yield* countingClock
      const withoutDeadline = yield* Effect.all({
        remaining: Deadline.remainingMillis,
        shortened: Deadline.shorten(1000, (left) => Effect.succeed(left)),
        waited: Deadline.boundWait(Effect.void, 1000, () => "max", () => "deadline")
      }).pipe(Effect.withClock(counting))
      expect(withoutDeadline).toEqual({ remaining: Number.POSITIVE_INFINITY, shortened: undefined, waited: undefined })
      expect(reads.count).toBe(0)
      // with a deadline each of them reads it once (within itself reads it once more)
      yield* Deadline.remainingMillis.pipe(Deadline.within("1 second"), Effect.withClock(counting))
      expect(reads.count).toBe(2)
    }))

  it.effect("shorten keeps the stage's own limit when it ends by the deadline, even exactly at it", () =>
    Effect.gen(function*() {
      const limitFor = (limitMillis: number) =>
        Deadline.shorten(limitMillis, (left) => Effect.succeed(left)).pipe(Deadline.within("1 second"))
      expect(yield* limitFor(999)).toBeUndefined()
      expect(yield* limitFor(1000)).toBeUndefined()
      expect(yield* limitFor(1001)).toBe(1000)
      expect(yield* limitFor(Number.POSITIVE_INFINITY)).toBe(1000)
    }))

  it.effect("boundWait without a deadline: the queue's maximum wait, or no timer at all when there is none", () =>
    Effect.gen(function*() {
      const bounded = yield* Deadline.boundWait(Effect.never, 100, () => "max", () => "deadline").pipe(
        Effect.flip,
        Effect.fork
      )
      yield* TestClock.adjust("99 millis")
      expect(Option.isNone(yield* Fiber.poll(bounded))).toBe(true)
      yield* TestClock.adjust("1 millis")
      // polled, not joined: a wait that never ends must fail this test, not hang it
      expect(yield* Fiber.poll(bounded)).toEqual(Option.some(Exit.succeed("max")))
      // no maximum wait and no deadline: the wait is left alone, no timer is started beside it
      const unbounded = yield* Deadline.boundWait(Effect.never, Number.POSITIVE_INFINITY, () => "max", () => "deadline")
        .pipe(Effect.fork)
      yield* settle
      expect(Chunk.toReadonlyArray(yield* TestClock.sleeps())).toEqual([])
      yield* Fiber.interrupt(unbounded)
    }))

  it.effect("boundWait once the deadline has passed: fails at once, even when a slot is free", () =>
    Effect.gen(function*() {
      let waited = false
      const free = Effect.sync(() => {
        waited = true
      })
      const late = yield* Deadline.boundWait(free, Number.POSITIVE_INFINITY, () => "max", (left) => `deadline ${left}`)
        .pipe(Effect.delay("2 seconds"), Deadline.within("1 second"), Effect.flip, Effect.fork)
      yield* TestClock.adjust("2 seconds")
      expect(yield* Fiber.join(late)).toBe("deadline 0")
      expect(waited).toBe(false)
    }))
})
