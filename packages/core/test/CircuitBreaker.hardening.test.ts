/**
 * What a breaker does with hostile or odd input: bounds on its options, snapshots that try to pin
 * it open, a wall clock that jumps, negative durations in every written form, a scope that closes
 * right after a transition, and snapshots that carry an open-duration schedule along.
 */
import { Backoff, BreakerStore, CircuitBreaker } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  Clock,
  ConfigProvider,
  Duration,
  Effect,
  Exit,
  Fiber,
  Logger,
  LogLevel,
  Option,
  Queue,
  Schedule,
  TestClock
} from "effect"
import { failTimes, ok } from "./breakers.js"

const retryAfter = (breaker: CircuitBreaker.CircuitBreaker) =>
  Effect.flatMap(Effect.flip(breaker.protect(ok)), (e) =>
    e instanceof CircuitBreaker.CircuitOpenError
      ? Effect.succeed(Duration.toMillis(e.retryAfter))
      : Effect.dieMessage(`not a rejection: ${String(e)}`))

/** The defect message of making a breaker with these options. */
const defectOf = (make: () => Effect.Effect<unknown, unknown, never>) =>
  Effect.map(Effect.exit(make()), (exit) => {
    expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
    return Exit.isFailure(exit) ? Cause.pretty(exit.cause) : ""
  })
const makeDefect = (options: CircuitBreaker.Options) => defectOf(() => Effect.scoped(CircuitBreaker.make(options)))

const readConfig = (entries: ReadonlyArray<[string, string]>) =>
  Effect.flip(CircuitBreaker.config().pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(entries)))))

/** A clock whose wall time is the test clock's plus `skew`, and whose monotonic time is the test clock's. */
const skewedClock = (base: Clock.Clock, skew: { millis: number }): Clock.Clock => ({
  [Clock.ClockTypeId]: Clock.ClockTypeId,
  unsafeCurrentTimeMillis: () => base.unsafeCurrentTimeMillis() + skew.millis,
  currentTimeMillis: Effect.sync(() => base.unsafeCurrentTimeMillis() + skew.millis),
  unsafeCurrentTimeNanos: () => base.unsafeCurrentTimeNanos(),
  currentTimeNanos: base.currentTimeNanos,
  sleep: (duration) => base.sleep(duration)
})

const HOUR = 3_600_000

describe("CircuitBreaker hardening", () => {
  it.scoped("an imported or store-applied Open state drives the open-duration schedule", () =>
    Effect.gen(function*() {
      const options: CircuitBreaker.Options = {
        name: "svc",
        policy: CircuitBreaker.consecutive(1),
        openDuration: Backoff.fromDelays([1000, 2000, 4000]),
        halfOpenProbes: 1,
        successThreshold: 1
      }
      const a = yield* CircuitBreaker.make(options)
      yield* failTimes(a, 1)
      expect(yield* retryAfter(a)).toBe(1000)
      yield* TestClock.adjust("1 second")
      yield* failTimes(a, 1)
      expect(yield* retryAfter(a)).toBe(2000)
      const snapshot = yield* a.exportState
      expect(snapshot).toMatchObject({ state: "Open", opens: 2 })

      // imported: the next failed probe opens it for the third delay
      const b = yield* CircuitBreaker.make(options)
      yield* b.importState(snapshot)
      expect(yield* retryAfter(b)).toBe(2000)
      yield* TestClock.adjust("2 seconds")
      yield* failTimes(b, 1)
      expect(yield* retryAfter(b)).toBe(4000)
      expect((yield* b.metrics).opens).toBe(3)

      // applied from a store, by a breaker made later
      const store = yield* BreakerStore.makeMemory
      yield* store.publish({ ...snapshot, origin: "elsewhere", openUntil: (yield* Clock.currentTimeMillis) + 2000 })
      const c = yield* CircuitBreaker.make(options).pipe(Effect.provideService(BreakerStore.BreakerStore, store))
      expect(yield* retryAfter(c)).toBe(2000)
      yield* TestClock.adjust("2 seconds")
      yield* failTimes(c, 1)
      expect(yield* retryAfter(c)).toBe(4000)
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("an imported HalfOpen state keeps its place in the schedule too", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "svc",
        policy: CircuitBreaker.consecutive(1),
        openDuration: Schedule.exponential("1 second"),
        halfOpenProbes: 1
      })
      yield* breaker.importState({
        version: 1,
        breaker: "svc",
        state: "HalfOpen",
        since: 0,
        openUntil: null,
        opens: 3,
        origin: "elsewhere"
      })
      yield* failTimes(breaker, 1)
      // opens 1, 2, 3 used 1 s, 2 s, 4 s: the fourth uses 8 s
      expect(yield* retryAfter(breaker)).toBe(8000)
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.effect("a snapshot waiting to be published when the scope closes is published first", () =>
    Effect.gen(function*() {
      const store = yield* BreakerStore.makeMemory
      yield* Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "svc", policy: CircuitBreaker.consecutive(1) })
        // the scope closes right after the transition, before the publishing fiber ran
        yield* failTimes(breaker, 1)
      }).pipe(Effect.scoped, Effect.provideService(BreakerStore.BreakerStore, store))
      const stored = yield* store.load("svc")
      expect(Option.map(stored, (s) => s.state)).toEqual(Option.some("Open"))
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.effect("closing waits for the store's answer to a snapshot no publish was running for", () =>
    Effect.gen(function*() {
      const memory = yield* BreakerStore.makeMemory
      // a remote store that answers a second after each publish, and whose feed has ended
      const slow: BreakerStore.BreakerStore = {
        ...memory,
        publish: (snapshot) => Effect.zipRight(Effect.sleep("1 second"), memory.publish(snapshot)),
        subscribe: () => Effect.tap(Queue.unbounded<BreakerStore.Snapshot>(), Queue.shutdown)
      }
      const closing = yield* Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "svc", policy: CircuitBreaker.consecutive(1) })
        for (let i = 0; i < 5; i++) yield* Effect.yieldNow()
        // the scope closes before the publishing fiber took the Open snapshot: with the feed's
        // fiber already ended, nothing else runs first, and the publisher is interrupted waiting
        yield* failTimes(breaker, 1)
      }).pipe(Effect.scoped, Effect.provideService(BreakerStore.BreakerStore, slow), Effect.fork)
      for (let i = 0; i < 10; i++) yield* Effect.yieldNow()
      // the store has not answered: closing is still waiting for it
      expect(Option.isNone(yield* Fiber.poll(closing))).toBe(true)
      expect(Option.isNone(yield* memory.load("svc"))).toBe(true)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      expect(Option.map(yield* memory.load("svc"), (s) => s.state)).toEqual(Option.some("Open"))
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.effect("a store still busy publishing when the scope closes still gets the last state", () =>
    Effect.gen(function*() {
      const memory = yield* BreakerStore.makeMemory
      // a remote store: each publish takes a few turns of the scheduler
      const slow: BreakerStore.BreakerStore = {
        ...memory,
        publish: (snapshot) =>
          Effect.zipRight(
            Effect.forEach([1, 2, 3], () => Effect.yieldNow(), { discard: true }),
            memory.publish(snapshot)
          )
      }
      yield* Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "svc", policy: CircuitBreaker.consecutive(1) })
        yield* failTimes(breaker, 1)
        yield* Effect.yieldNow()
        // the Open snapshot is being published; the Closed one waits behind it
        yield* breaker.reset
      }).pipe(Effect.scoped, Effect.provideService(BreakerStore.BreakerStore, slow))
      for (let i = 0; i < 10; i++) yield* Effect.yieldNow()
      const stored = yield* memory.load("svc")
      expect(Option.map(stored, (s) => s.state)).toEqual(Option.some("Closed"))
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.effect("a store that never answers does not hold up closing", () =>
    Effect.gen(function*() {
      let published = 0
      const stuck: BreakerStore.BreakerStore = {
        load: () => Effect.succeed(Option.none()),
        publish: () =>
          Effect.suspend(() => {
            published++
            return Effect.never
          }),
        subscribe: () => Queue.unbounded<BreakerStore.Snapshot>()
      }
      yield* Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "svc", policy: CircuitBreaker.consecutive(1) })
        yield* failTimes(breaker, 1)
        for (let i = 0; i < 5; i++) yield* Effect.yieldNow()
        yield* breaker.reset
      }).pipe(Effect.scoped, Effect.provideService(BreakerStore.BreakerStore, stuck))
      for (let i = 0; i < 5; i++) yield* Effect.yieldNow()
      // closing finished; the last state was sent to the store without waiting for an answer
      expect(published).toBe(2)
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.effect("time windows are bounded: buckets at most 10,000 and at least 1 ms wide", () =>
    Effect.gen(function*() {
      expect(
        yield* makeDefect({
          policy: CircuitBreaker.timeWindow({ window: "10 millis", buckets: 60_000, rateThreshold: 0.5 })
        })
      ).toMatch(/policy\.buckets must be a whole number in \[1, 10000\], got 60000/)
      expect(
        yield* makeDefect({
          policy: CircuitBreaker.timeWindow({ window: "10 millis", buckets: 20, rateThreshold: 0.5 })
        })
      ).toMatch(/policy\.buckets must be at most window \/ 1 ms = 10 .*got 20/)
      expect(
        yield* makeDefect({
          policy: CircuitBreaker.timeWindow({ window: "1 hour", buckets: 10_001, rateThreshold: 0.5 })
        })
      ).toMatch(/policy\.buckets/)
      // the largest window allowed works
      const widest = yield* CircuitBreaker.make({
        name: "wide",
        policy: CircuitBreaker.timeWindow({
          window: "10 seconds",
          buckets: 10_000,
          rateThreshold: 0.5,
          minimumCalls: 2
        })
      }).pipe(Effect.scoped)
      expect(widest.name).toBe("wide")

      // a window that is not a duration names the field
      expect(() => CircuitBreaker.timeWindow({ window: "abc" as Duration.DurationInput, rateThreshold: 0.5 })).toThrow(
        /policy\.window must be a finite duration > 0, got abc/
      )

      const buckets = yield* readConfig([["POLICY", "time"], ["WINDOW_BUCKETS", "200000000"]])
      expect(String(buckets)).toMatch(/WINDOW_BUCKETS/)
      expect(String(buckets)).toMatch(/10000/)
      const narrow = yield* readConfig([["POLICY", "time"], ["WINDOW_DURATION", "10 millis"], ["WINDOW_BUCKETS", "60"]])
      expect(String(narrow)).toMatch(/WINDOW_BUCKETS/)
      expect(String(narrow)).toMatch(/at least 1 ms wide/)
    }))

  it.effect("a time window of tiny buckets on the live clock answers (no spin)", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "live",
        policy: CircuitBreaker.timeWindow({ window: "10 millis", buckets: 10, rateThreshold: 0.5, minimumCalls: 100 })
      })
      for (let i = 0; i < 50; i++) yield* breaker.protect(ok)
      expect((yield* breaker.metrics).calls).toBe(50)
    }).pipe(Effect.scoped, Effect.withClock(Clock.make())))

  it.effect("snapshots with times that are not finite are rejected when decoded", () =>
    Effect.gen(function*() {
      const good = { version: 1, breaker: "svc", state: "Open", since: 0, openUntil: 1000, opens: 1, origin: "x" }
      expect(Option.isSome(yield* Effect.option(BreakerStore.decodeSnapshot(good)))).toBe(true)
      for (const bad of [Infinity, -Infinity, Number.NaN]) {
        for (const field of ["since", "openUntil"]) {
          const error = yield* Effect.flip(BreakerStore.decodeSnapshot({ ...good, [field]: bad }))
          expect(String(error)).toMatch(new RegExp(field))
        }
      }
    }))

  it.scoped("a snapshot cannot keep a breaker open longer than its own open duration allows", () =>
    Effect.gen(function*() {
      const poisoned: BreakerStore.Snapshot = {
        version: 1,
        breaker: "svc",
        state: "Open",
        since: 0,
        openUntil: 10 * 365 * 24 * HOUR,
        opens: 1,
        origin: "elsewhere"
      }
      const options = { name: "svc", openDuration: "1 minute", halfOpenProbes: 1, successThreshold: 1 } as const
      const imported = yield* CircuitBreaker.make(options)
      yield* imported.importState(poisoned)
      expect(yield* retryAfter(imported)).toBe(60_000)
      // not decoded, straight in: Infinity is bounded the same way
      const infinite = yield* CircuitBreaker.make(options)
      yield* infinite.importState({ ...poisoned, openUntil: Infinity })
      expect(yield* retryAfter(infinite)).toBe(60_000)

      // through a store, for breakers made later
      const store = yield* BreakerStore.makeMemory
      yield* store.publish(poisoned)
      const later = yield* CircuitBreaker.make(options).pipe(Effect.provideService(BreakerStore.BreakerStore, store))
      expect(yield* retryAfter(later)).toBe(60_000)
      yield* TestClock.adjust("1 minute")
      expect(yield* later.state).toBe("HalfOpen")
      expect(yield* later.protect(ok)).toBe("ok")
      expect(yield* later.state).toBe("Closed")
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.effect("a wall clock stepping back an hour neither extends an open period nor does a step forward cut it", () =>
    Effect.gen(function*() {
      const base = yield* Effect.clock
      const skew = { millis: 0 }
      const clock = skewedClock(base, skew)
      const make = CircuitBreaker.make({ name: "svc", policy: CircuitBreaker.consecutive(1) }).pipe(
        Effect.withClock(clock)
      )

      const back = yield* make
      yield* failTimes(back, 1)
      skew.millis = -HOUR
      expect(yield* retryAfter(back)).toBe(60_000)
      yield* TestClock.adjust("10 seconds")
      // the snapshot tells the time left in the (new) wall time
      expect((yield* back.exportState).openUntil).toBe(10_000 - HOUR + 50_000)
      yield* TestClock.adjust("50 seconds")
      expect(yield* back.state).toBe("HalfOpen")

      skew.millis = 0
      const forward = yield* make
      yield* failTimes(forward, 1)
      skew.millis = HOUR
      expect(yield* forward.state).toBe("Open")
      expect(yield* retryAfter(forward)).toBe(60_000)
      yield* TestClock.adjust("59 seconds")
      expect(yield* forward.state).toBe("Open")
      yield* TestClock.adjust("1 second")
      expect(yield* forward.state).toBe("HalfOpen")
    }).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.None)))

  it.effect("negative durations in every written form are rejected, naming the field or key", () =>
    Effect.gen(function*() {
      const openDurations: ReadonlyArray<[Duration.DurationInput, RegExp]> = [
        ["-5 seconds", /openDuration must be a finite duration >= 0 or a Schedule, got -5 seconds/],
        [-5n, /openDuration must be .* got -5n/],
        [[-5, 0], /openDuration must be .* got \[-5, 0\]/],
        [-5, /openDuration must be .* got -5/]
      ]
      for (const [openDuration, message] of openDurations) {
        expect(yield* makeDefect({ openDuration })).toMatch(message)
      }
      expect(
        yield* makeDefect({
          policy: CircuitBreaker.countWindow({ size: 10, rateThreshold: 0.5 }),
          slowCall: { duration: "-1 seconds" }
        })
      ).toMatch(/slowCall\.duration must be a finite duration > 0, got -1 seconds/)
      expect(() => CircuitBreaker.timeWindow({ window: "-5 seconds", rateThreshold: 0.5 })).toThrow(
        /policy\.window must be a finite duration > 0, got -5 seconds/
      )
      expect(() => CircuitBreaker.timeWindow({ window: [-5, 0], rateThreshold: 0.5 })).toThrow(/policy\.window/)

      for (
        const [key, value] of [
          ["OPEN_DURATION", "-30 seconds"],
          ["WINDOW_DURATION", "-1 seconds"],
          ["SLOW_CALL_DURATION", "-1 seconds"],
          ["OPEN_DURATION", "soon"]
        ] as const
      ) {
        const error = yield* readConfig([["POLICY", "time"], [key, value]])
        expect(String(error)).toMatch(new RegExp(key))
        expect(String(error)).toMatch(new RegExp(value))
      }
      // zero is a valid open duration
      const zero = yield* CircuitBreaker.config().pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["OPEN_DURATION", "0 seconds"]])))
      )
      expect(Duration.toMillis(Duration.decode(zero.openDuration as Duration.DurationInput))).toBe(0)
    }))
})
