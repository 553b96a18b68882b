import { BreakerStore, CircuitBreaker, Failure, Health } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  Chunk,
  ConfigProvider,
  Data,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Logger,
  LogLevel,
  Metric,
  MetricLabel,
  Option,
  Queue,
  Schedule,
  Stream,
  TestClock
} from "effect"
import { failTimes, ok, Refused, refused, rejection } from "./breakers.js"

class BadInput extends Data.TaggedError("BadInput")<{}> {}

const classifierLayer = Failure.layerClassifier({
  tables: [Failure.table<Refused | BadInput>({ Refused: "connection", BadInput: "validation" })]
})

const captureLogs = () => {
  const lines: Array<{ level: string; message: string; breaker: unknown }> = []
  const logger = Logger.make(({ annotations, logLevel, message }) => {
    lines.push({
      level: logLevel.label,
      message: String(Array.isArray(message) ? message[0] : message),
      breaker: [...annotations].find(([k]) => k === "bulwark.breaker")?.[1]
    })
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

describe("CircuitBreaker", () => {
  it.scoped("the default options, step by step: five failures open it for a minute, three probes close it", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "pool" })

      // four failures in a row: still closed
      yield* failTimes(breaker, 4)
      expect(yield* breaker.state).toBe("Closed")
      // the fifth opens it (inclusive threshold)
      yield* failTimes(breaker, 1)
      expect(yield* breaker.state).toBe("Open")
      const first = yield* rejection(breaker.protect(ok))
      expect(first.breaker).toBe("pool")
      expect(Duration.toMillis(first.retryAfter)).toBe(60_000)
      expect(first.message).toBe("Circuit \"pool\" is open; next attempt in 1m")

      // 60 s before half-open
      yield* TestClock.adjust("59999 millis")
      expect(Duration.toMillis((yield* rejection(breaker.protect(ok))).retryAfter)).toBe(1)
      yield* TestClock.adjust("1 millis")
      expect(yield* breaker.state).toBe("HalfOpen")

      // 3 calls admitted in half-open, the 4th rejected at once
      const gate = yield* Deferred.make<void>()
      const probes = yield* Effect.forEach(
        [1, 2, 3],
        () => Effect.fork(breaker.protect(Effect.as(Deferred.await(gate), "probe"))),
        { concurrency: "unbounded" }
      )
      yield* Effect.yieldNow()
      const fourth = yield* rejection(breaker.protect(ok))
      expect(fourth.state).toBe("HalfOpen")
      expect((yield* breaker.metrics).probesInFlight).toBe(3)

      // 3 successes close it
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Fiber.join(Fiber.all(probes))).toEqual(["probe", "probe", "probe"])
      expect(yield* breaker.state).toBe("Closed")

      // one failure in half-open re-opens
      yield* failTimes(breaker, 5)
      yield* TestClock.adjust("60 seconds")
      yield* breaker.protect(ok)
      expect(yield* breaker.state).toBe("HalfOpen")
      yield* failTimes(breaker, 1)
      expect(yield* breaker.state).toBe("Open")
      expect(Duration.toMillis((yield* rejection(breaker.protect(ok))).retryAfter)).toBe(60_000)
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("10,000 fibers hitting a half-open breaker: exactly the permitted probes run", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "crowd", halfOpenProbes: 3, openDuration: "1 second" })
      yield* failTimes(breaker, 5)
      yield* TestClock.adjust("1 second")
      const gate = yield* Deferred.make<void>()
      let ran = 0
      const call = breaker.protect(Effect.suspend(() => {
        ran++
        return Deferred.await(gate)
      }))
      const fibers = yield* Effect.forEach(Array.from({ length: 10_000 }), () => Effect.fork(Effect.exit(call)))
      yield* Effect.yieldNow()
      expect(ran).toBe(3)
      yield* Deferred.succeed(gate, undefined)
      const exits = yield* Effect.forEach(fibers, Fiber.join)
      const rejected = exits.filter((exit) =>
        Exit.isFailure(exit) &&
        Option.exists(Cause.failureOption(exit.cause), (e) => e instanceof CircuitBreaker.CircuitOpenError)
      )
      expect(exits.filter(Exit.isSuccess)).toHaveLength(3)
      expect(rejected).toHaveLength(9_997)
      const metrics = yield* breaker.metrics
      expect(metrics.rejections).toBe(9_997)
      expect(metrics.state).toBe("Closed")
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("validation errors do not trip it, defects do, interruption never counts", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "svc", policy: CircuitBreaker.consecutive(2) })
      for (let i = 0; i < 10; i++) yield* Effect.exit(breaker.protect(Effect.fail(new BadInput())))
      yield* Effect.exit(breaker.protect(Effect.interrupt))
      expect(yield* breaker.metrics).toMatchObject({ state: "Closed", ignored: 10, failures: 0, successes: 0 })
      yield* Effect.exit(breaker.protect(Effect.die("bug")))
      yield* Effect.exit(breaker.protect(refused))
      expect(yield* breaker.metrics).toMatchObject({ state: "Open", failures: 2 })
    }).pipe(Effect.provide(classifierLayer), Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("an interrupted probe frees its slot and counts as neither", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "svc",
        policy: CircuitBreaker.consecutive(1),
        halfOpenProbes: 1,
        successThreshold: 1,
        openDuration: "1 second"
      })
      yield* failTimes(breaker, 1)
      yield* TestClock.adjust("1 second")
      const probe = yield* Effect.fork(breaker.protect(Effect.never))
      yield* Effect.yieldNow()
      expect((yield* rejection(breaker.protect(ok))).state).toBe("HalfOpen")
      yield* Fiber.interrupt(probe)
      expect(yield* breaker.metrics).toMatchObject({ state: "HalfOpen", probesInFlight: 0, failures: 1 })
      expect(yield* breaker.protect(ok)).toBe("ok")
      expect(yield* breaker.state).toBe("Closed")
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("a probe interrupted at any point of its admission frees its slot", () =>
    Effect.gen(function*() {
      // the caller yields every `budget` operations; scanning the budget moves the point where
      // the interruption lands across every step of `protect`
      for (let budget = 10; budget < 60; budget++) {
        const breaker = yield* CircuitBreaker.make({
          name: "svc",
          policy: CircuitBreaker.consecutive(1),
          halfOpenProbes: 1,
          successThreshold: 1,
          openDuration: "1 second"
        })
        yield* failTimes(breaker, 1)
        yield* TestClock.adjust("1 second")
        const probe = yield* Effect.fork(breaker.protect(Effect.never).pipe(Effect.withMaxOpsBeforeYield(budget)))
        yield* Effect.yieldNow()
        yield* Fiber.interrupt(probe)
        expect({ budget, probesInFlight: (yield* breaker.metrics).probesInFlight }).toEqual({
          budget,
          probesInFlight: 0
        })
        expect(yield* breaker.protect(ok)).toBe("ok")
        expect(yield* breaker.state).toBe("Closed")
      }
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("an isFailure that throws frees the probe slot and surfaces as a defect", () =>
    Effect.gen(function*() {
      let broken = false
      const breaker = yield* CircuitBreaker.make({
        name: "svc",
        policy: CircuitBreaker.consecutive(1),
        halfOpenProbes: 1,
        successThreshold: 1,
        openDuration: "1 second",
        isFailure: () => {
          if (broken) throw new Error("predicate bug")
          return true
        }
      })
      yield* failTimes(breaker, 1)
      yield* TestClock.adjust("1 second")
      broken = true
      const exit = yield* Effect.exit(breaker.protect(refused))
      expect(Exit.isFailure(exit) && Option.isSome(Cause.failureOption(exit.cause))).toBe(true)
      expect(Exit.isFailure(exit) && Cause.pretty(exit.cause)).toMatch(/predicate bug/)
      expect(yield* breaker.metrics).toMatchObject({ state: "HalfOpen", probesInFlight: 0, failures: 1 })
      broken = false
      // the slot is free: the next probe runs and closes the breaker
      expect(yield* breaker.protect(ok)).toBe("ok")
      expect(yield* breaker.state).toBe("Closed")
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("isFailure decides which typed failures count", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "svc",
        policy: CircuitBreaker.consecutive(1),
        isFailure: (error) => error instanceof BadInput
      })
      yield* Effect.exit(breaker.protect(refused))
      expect(yield* breaker.state).toBe("Closed")
      yield* Effect.exit(breaker.protect(Effect.fail(new BadInput())))
      expect(yield* breaker.state).toBe("Open")
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("an outcome counts against the state its call was admitted in", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "svc", policy: CircuitBreaker.consecutive(2) })
      const gate = yield* Deferred.make<void>()
      const slow = yield* Effect.fork(Effect.exit(breaker.protect(Effect.zipRight(Deferred.await(gate), refused))))
      yield* Effect.yieldNow()
      yield* failTimes(breaker, 1)
      yield* breaker.reset
      yield* failTimes(breaker, 1)
      // the call admitted before the reset finishes now: it is not counted against the new period
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(slow)
      expect(yield* breaker.metrics).toMatchObject({ state: "Closed", consecutiveFailures: 1, failures: 3 })
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("one protected effect, made once and run again across transitions, counts each run in its own period", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "svc",
        policy: CircuitBreaker.consecutive(2),
        openDuration: "1 second",
        halfOpenProbes: 1,
        successThreshold: 1
      })
      let failing = true
      const gate = yield* Deferred.make<void>()
      let gated = false
      const call = breaker.protect(Effect.suspend(() => {
        const run = failing ? refused : ok
        return gated ? Effect.zipRight(Deferred.await(gate), run) : run
      }))
      // a run admitted now and finishing after the reset below must not count in the new period
      gated = true
      const early = yield* Effect.fork(Effect.exit(call))
      yield* Effect.yieldNow()
      gated = false
      yield* breaker.reset
      yield* Effect.exit(call)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(early)
      expect(yield* breaker.metrics).toMatchObject({ state: "Closed", consecutiveFailures: 1, failures: 2 })
      // the same effect value opens the breaker, probes it and closes it again
      yield* Effect.exit(call)
      expect(yield* breaker.state).toBe("Open")
      expect(yield* rejection(call)).toMatchObject({ state: "Open" })
      yield* TestClock.adjust("1 second")
      failing = false
      expect(yield* call).toBe("ok")
      expect(yield* breaker.state).toBe("Closed")
      failing = true
      yield* Effect.exit(call)
      expect(yield* breaker.metrics).toMatchObject({ state: "Closed", consecutiveFailures: 1, failures: 4 })
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("failure rate over the last N calls, inclusive, after the minimum number of calls", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "svc",
        policy: CircuitBreaker.countWindow({ size: 4, rateThreshold: 0.5, minimumCalls: 4 })
      })
      yield* failTimes(breaker, 2)
      yield* breaker.protect(ok)
      expect(yield* breaker.state).toBe("Closed") // 3 calls < minimum
      yield* breaker.protect(ok)
      // 2 of 4 failed: exactly 50% opens
      expect(yield* breaker.state).toBe("Open")
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("failure rate over a time window forgets old buckets", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "svc",
        policy: CircuitBreaker.timeWindow({ window: "10 seconds", buckets: 10, rateThreshold: 0.5, minimumCalls: 4 })
      })
      yield* failTimes(breaker, 3)
      yield* TestClock.adjust("10 seconds")
      // the three failures left the window: one more failure is 1 of 1, under the minimum
      yield* failTimes(breaker, 1)
      expect(yield* breaker.metrics).toMatchObject({ state: "Closed", windowCalls: 1, failureRate: 1 })
      yield* TestClock.adjust("5 seconds")
      yield* breaker.protect(ok)
      yield* breaker.protect(ok)
      yield* failTimes(breaker, 1)
      expect(yield* breaker.state).toBe("Open")
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("slow calls open the breaker by their own rate", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "svc",
        policy: CircuitBreaker.countWindow({ size: 4, rateThreshold: 1, minimumCalls: 4 }),
        slowCall: { duration: "1 second", rateThreshold: 0.75 }
      })
      const slowCall = breaker.protect(Effect.as(TestClock.adjust("1 second"), "late"))
      yield* slowCall
      yield* slowCall
      yield* breaker.protect(ok)
      yield* slowCall
      expect(yield* breaker.metrics).toMatchObject({ state: "Open", slowCalls: 3, successes: 4 })
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("the open duration grows by its Schedule and starts again after a close", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "svc",
        policy: CircuitBreaker.consecutive(1),
        successThreshold: 1,
        openDuration: Schedule.exponential("1 second")
      })
      const retryAfter = Effect.map(rejection(breaker.protect(ok)), (e) => Duration.toMillis(e.retryAfter))
      yield* failTimes(breaker, 1)
      expect(yield* retryAfter).toBe(1_000)
      yield* TestClock.adjust("1 second")
      yield* failTimes(breaker, 1)
      expect(yield* retryAfter).toBe(2_000)
      yield* TestClock.adjust("2 seconds")
      yield* failTimes(breaker, 1)
      expect(yield* retryAfter).toBe(4_000)
      yield* TestClock.adjust("4 seconds")
      yield* breaker.protect(ok)
      expect(yield* breaker.state).toBe("Closed")
      yield* failTimes(breaker, 1)
      expect(yield* retryAfter).toBe(1_000)
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("isolate rejects with an infinite retry-after until released; disable keeps measuring", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "svc", policy: CircuitBreaker.consecutive(1) })
      yield* breaker.isolate
      const e = yield* rejection(breaker.protect(ok))
      expect(e.state).toBe("Isolated")
      expect(Duration.isFinite(e.retryAfter)).toBe(false)
      expect(e.message).toBe("Circuit \"svc\" is isolated until released")
      yield* TestClock.adjust("1 day")
      expect(yield* breaker.state).toBe("Isolated")
      yield* breaker.release
      expect(yield* breaker.protect(ok)).toBe("ok")

      yield* breaker.disable
      yield* failTimes(breaker, 5)
      expect(yield* breaker.metrics).toMatchObject({ state: "Disabled", failures: 5, consecutiveFailures: 5 })
      yield* breaker.release
      expect(yield* breaker.state).toBe("Closed")
      yield* breaker.release // no effect when not isolated or disabled
      yield* failTimes(breaker, 1)
      expect(yield* breaker.state).toBe("Open")
      yield* breaker.reset
      expect(yield* breaker.state).toBe("Closed")
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("changes streams every transition", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "svc",
        policy: CircuitBreaker.consecutive(1),
        successThreshold: 1,
        openDuration: "1 second"
      })
      const collected = yield* breaker.changes.pipe(Stream.take(4), Stream.runCollect, Effect.fork)
      for (let i = 0; i < 10; i++) yield* Effect.yieldNow()
      yield* failTimes(breaker, 1)
      yield* TestClock.adjust("1 second")
      yield* breaker.protect(ok)
      yield* breaker.isolate
      const transitions = Chunk.toArray(yield* Fiber.join(collected))
      expect(transitions.map((t) => [t.from, t.to, t.at])).toEqual([
        ["Closed", "Open", 0],
        ["Open", "HalfOpen", 1000],
        ["HalfOpen", "Closed", 1000],
        ["Closed", "Isolated", 1000]
      ])
      expect(transitions.every((t) => t.breaker === "svc")).toBe(true)
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("logs an error when it opens and an info line when it closes", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "svc",
        policy: CircuitBreaker.consecutive(2),
        successThreshold: 1,
        openDuration: "1 second"
      })
      yield* failTimes(breaker, 2)
      yield* TestClock.adjust("1 second")
      yield* breaker.protect(ok)
      expect(logs.lines).toEqual([
        {
          level: "ERROR",
          message: "Circuit \"svc\" opened: 2 consecutive failures; next attempt in 1s",
          breaker: "svc"
        },
        { level: "INFO", message: "Circuit \"svc\" closed: 1 probes succeeded", breaker: "svc" }
      ])
    }).pipe(Effect.provide(logs.layer))
  })

  it.scoped("rejection is classified and carries its retry-after hint", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "svc", policy: CircuitBreaker.consecutive(1) })
      yield* failTimes(breaker, 1)
      const e = yield* rejection(breaker.protect(ok))
      const c = Failure.defaultClassifier.classify(e)
      expect(c).toMatchObject({ category: "resource", code: "CIRCUIT_OPEN", tripsBreaker: false })
      expect(Option.map(c.retryAfter, Duration.toMillis)).toEqual(Option.some(60_000))
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.effect("invalid options are a defect that names the field", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<[CircuitBreaker.Options, RegExp]> = [
        [{ policy: CircuitBreaker.consecutive(-1) }, /policy\.threshold must be a whole number >= 1, got -1/],
        [
          { policy: CircuitBreaker.countWindow({ size: 10, rateThreshold: 1.5 }) },
          /policy\.rateThreshold must be a rate in \(0, 1\], got 1\.5/
        ],
        [{ policy: CircuitBreaker.countWindow({ size: 10, rateThreshold: 0 }) }, /policy\.rateThreshold/],
        [
          { policy: { _tag: "TimeWindow", window: Duration.zero, buckets: 10, rateThreshold: 0.5, minimumCalls: 1 } },
          /policy\.window must be a finite duration > 0/
        ],
        [{ halfOpenProbes: 0 }, /halfOpenProbes must be a whole number >= 1, got 0/],
        [{ openDuration: -5 }, /openDuration must be a finite duration >= 0 or a Schedule, got -5/],
        [{ successThreshold: 1.5 }, /successThreshold/],
        [{ slowCall: { duration: "1 second" } }, /slowCall must be used with a window policy/]
      ]
      for (const [options, message] of cases) {
        const exit = yield* Effect.exit(Effect.scoped(CircuitBreaker.make(options)))
        expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
        if (Exit.isFailure(exit)) expect(Cause.pretty(exit.cause)).toMatch(message)
      }
      const layerExit = yield* Effect.exit(
        Layer.build(CircuitBreaker.layer({ halfOpenProbes: -2 })).pipe(Effect.scoped)
      )
      expect(Exit.isFailure(layerExit)).toBe(true)
    }))

  it.effect("layerConfig reads every option and names the key of a bad value", () =>
    Effect.gen(function*() {
      const provider = ConfigProvider.fromMap(
        new Map([
          ["POLICY", "count"],
          ["FAILURE_RATE_THRESHOLD", "0.25"],
          ["WINDOW_SIZE", "4"],
          ["MINIMUM_CALLS", "4"],
          ["OPEN_DURATION", "5 seconds"]
        ])
      )
      const breaker = yield* CircuitBreaker.CircuitBreaker.pipe(
        Effect.provide(CircuitBreaker.layerConfig()),
        Effect.withConfigProvider(provider)
      )
      yield* breaker.protect(ok)
      yield* breaker.protect(ok)
      yield* breaker.protect(ok)
      yield* failTimes(breaker, 1)
      const e = yield* rejection(breaker.protect(ok))
      expect(Duration.toMillis(e.retryAfter)).toBe(5_000)

      const bad = yield* Effect.flip(
        CircuitBreaker.CircuitBreaker.pipe(
          Effect.provide(CircuitBreaker.layerConfig()),
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["FAILURE_RATE_THRESHOLD", "1.5"]])))
        )
      )
      expect(String(bad)).toMatch(/FAILURE_RATE_THRESHOLD/)
      expect(String(bad)).toMatch(/rate in \(0, 1\]/)
    }).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.None)))

  it.effect("layerConfig without MINIMUM_CALLS keeps the policy's default minimum", () =>
    Effect.gen(function*() {
      const read = (entries: ReadonlyArray<[string, string]>) =>
        CircuitBreaker.config().pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(entries))))
      const count = yield* read([["POLICY", "count"], ["WINDOW_SIZE", "4"]])
      expect(count.policy).toMatchObject({ _tag: "CountWindow", size: 4, minimumCalls: 4 })
      const time = yield* read([["POLICY", "time"]])
      expect(time.policy).toMatchObject({ _tag: "TimeWindow", minimumCalls: 10 })

      // one failure in an empty window must not open a count-window breaker of size 4
      const breaker = yield* CircuitBreaker.CircuitBreaker.pipe(
        Effect.provide(CircuitBreaker.layerConfig()),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["POLICY", "count"], ["WINDOW_SIZE", "4"]])))
      )
      yield* failTimes(breaker, 1)
      expect(yield* breaker.state).toBe("Closed")
      yield* breaker.protect(ok)
      yield* breaker.protect(ok)
      expect(yield* breaker.state).toBe("Closed")
      yield* failTimes(breaker, 1)
      expect(yield* breaker.state).toBe("Open")
    }).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("a Tag per dependency, with its own layer and name", () =>
    Effect.gen(function*() {
      class PaymentsBreaker extends CircuitBreaker.Tag("payments")<PaymentsBreaker>() {}
      class SearchBreaker extends CircuitBreaker.Tag("search-api")<SearchBreaker>() {}
      const layer = Layer.merge(
        PaymentsBreaker.layer({ policy: CircuitBreaker.consecutive(1) }),
        SearchBreaker.layerConfig()
      )
      const [payments, search] = yield* Effect.all([PaymentsBreaker, SearchBreaker]).pipe(
        Effect.provide(layer),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["SEARCH_API.FAILURE_THRESHOLD", "2"]])))
      )
      expect([payments.name, search.name, PaymentsBreaker.breakerName]).toEqual(["payments", "search-api", "payments"])
      yield* failTimes(payments, 1)
      yield* failTimes(search, 1)
      expect([yield* payments.state, yield* search.state]).toEqual(["Open", "Closed"])
      yield* failTimes(search, 1)
      expect(yield* search.state).toBe("Open")
      const e = yield* rejection(payments.protect(ok))
      expect(e.breaker).toBe("payments")
      // the tag's own protect takes the breaker from the context
      const piped = yield* Effect.flip(
        ok.pipe(PaymentsBreaker.protect, Effect.provideService(PaymentsBreaker, payments))
      )
      expect(piped).toBeInstanceOf(CircuitBreaker.CircuitOpenError)
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("state exports as a versioned snapshot and imports into another breaker", () =>
    Effect.gen(function*() {
      const a = yield* CircuitBreaker.make({ name: "svc", policy: CircuitBreaker.consecutive(1) })
      const b = yield* CircuitBreaker.make({ name: "svc", policy: CircuitBreaker.consecutive(1) })
      yield* failTimes(a, 1)
      const snapshot = yield* a.exportState
      const json = BreakerStore.encodeSnapshot(snapshot)
      expect(json).toMatchObject({ version: 1, breaker: "svc", state: "Open", openUntil: 60_000, opens: 1 })
      yield* b.importState(yield* BreakerStore.decodeSnapshot(JSON.parse(JSON.stringify(json))))
      expect(Duration.toMillis((yield* rejection(b.protect(ok))).retryAfter)).toBe(60_000)
      const unknownVersion = yield* Effect.flip(BreakerStore.decodeSnapshot({ ...json, version: 2 }))
      expect(String(unknownVersion)).toMatch(/version/)
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("breakers that share a store follow each other's transitions", () =>
    Effect.gen(function*() {
      const a = yield* CircuitBreaker.make({ name: "svc", policy: CircuitBreaker.consecutive(1) })
      const b = yield* CircuitBreaker.make({ name: "svc", policy: CircuitBreaker.consecutive(1) })
      const other = yield* CircuitBreaker.make({ name: "other", policy: CircuitBreaker.consecutive(1) })
      yield* failTimes(a, 1)
      for (let i = 0; i < 5; i++) yield* Effect.yieldNow()
      expect([yield* a.state, yield* b.state, yield* other.state]).toEqual(["Open", "Open", "Closed"])
      yield* b.reset
      for (let i = 0; i < 5; i++) yield* Effect.yieldNow()
      expect(yield* a.state).toBe("Closed")
      // a breaker made later starts from the stored state
      yield* failTimes(b, 1)
      for (let i = 0; i < 5; i++) yield* Effect.yieldNow()
      const late = yield* CircuitBreaker.make({ name: "svc" })
      expect(yield* late.state).toBe("Open")
    }).pipe(Effect.provide(BreakerStore.layerMemory), Logger.withMinimumLogLevel(LogLevel.None)))

  it.effect("time-window policy: memory does not grow with the number of calls", () =>
    Effect.gen(function*() {
      const gc = (globalThis as { gc?: () => void }).gc
      expect(gc, "run with --expose-gc (set in vitest.config.ts)").toBeTypeOf("function")
      const breaker = yield* CircuitBreaker.make({
        name: "busy",
        policy: CircuitBreaker.timeWindow({ window: "10 seconds", buckets: 10, rateThreshold: 1, minimumCalls: 10 })
      })
      // call i runs at floor(i / 100) * 7 ms
      let i = 0
      const run = (n: number) =>
        Effect.gen(function*() {
          for (const end = i + n; i < end; i++) {
            if (i % 100 === 0 && i > 0) yield* TestClock.adjust("7 millis")
            yield* breaker.protect(ok)
          }
        })
      yield* run(20_000)
      gc!()
      const before = process.memoryUsage().heapUsed
      yield* run(200_000)
      gc!()
      const grown = process.memoryUsage().heapUsed - before
      // 200,000 more calls: a window that kept anything per call would grow by megabytes
      expect(grown).toBeLessThan(1_000_000)
      const now = Math.floor((i - 1) / 100) * 7
      let expected = 0
      for (let j = 0; j < i; j++) {
        if (Math.floor((Math.floor(j / 100) * 7) / 1000) > Math.floor(now / 1000) - 10) expected++
      }
      const metrics = yield* breaker.metrics
      expect(metrics).toMatchObject({ state: "Closed", calls: 220_000, successes: 220_000, windowCalls: expected })
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.scoped("metrics are labelled with the breaker's name", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "metered", policy: CircuitBreaker.consecutive(2) })
      yield* breaker.protect(ok)
      yield* failTimes(breaker, 2)
      yield* Effect.exit(breaker.protect(ok))
      const name = MetricLabel.make("breaker", "metered")
      const calls = (outcome: string) =>
        Metric.value(
          CircuitBreaker.callsTotal.pipe(
            Metric.taggedWithLabels([name, MetricLabel.make("outcome", outcome)])
          )
        ).pipe(Effect.map((state) => state.count))
      expect([yield* calls("success"), yield* calls("failure"), yield* calls("rejected")]).toEqual([1, 2, 1])
      const failures = yield* Metric.value(
        CircuitBreaker.failuresTotal.pipe(
          Metric.taggedWithLabels([
            name,
            MetricLabel.make("category", "system"),
            MetricLabel.make("code", "REFUSED")
          ])
        )
      )
      expect(failures.count).toBe(2)
      const opened = yield* Metric.value(
        CircuitBreaker.transitionsTotal.pipe(
          Metric.taggedWithLabels([name, MetricLabel.make("to", "Open")])
        )
      )
      expect(opened.count).toBe(1)
      const state = yield* Metric.value(CircuitBreaker.stateGauge.pipe(Metric.taggedWithLabels([name])))
      expect(state.value).toBe(1)
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("a store that never answers does not slow calls down", () =>
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
      const breaker = yield* CircuitBreaker.make({ name: "svc", policy: CircuitBreaker.consecutive(1) }).pipe(
        Effect.provideService(BreakerStore.BreakerStore, stuck)
      )
      yield* failTimes(breaker, 1)
      expect((yield* rejection(breaker.protect(ok))).state).toBe("Open")
      yield* breaker.reset
      expect(yield* breaker.protect(ok)).toBe("ok")
      for (let i = 0; i < 5; i++) yield* Effect.yieldNow()
      // the first snapshot is stuck in the store; the breaker went on deciding
      expect(published).toBe(1)
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("its readiness check: closed and disabled are up; open and isolated are degraded", () =>
    Effect.gen(function*() {
      const health = yield* Health.Health
      const breaker = yield* CircuitBreaker.make({ name: "svc", policy: CircuitBreaker.consecutive(1) })
      const status = Effect.map(health.report, (r) => r.components.map((c) => [c.name, c.kind, c.status]))
      expect(yield* status).toEqual([["breaker:svc", "readiness", "up"]])
      yield* failTimes(breaker, 1)
      expect(yield* status).toEqual([["breaker:svc", "readiness", "degraded"]])
      yield* breaker.isolate
      expect(yield* status).toEqual([["breaker:svc", "readiness", "degraded"]])
      yield* breaker.disable
      expect(yield* breaker.state).toBe("Disabled")
      expect(yield* status).toEqual([["breaker:svc", "readiness", "up"]])
      expect(yield* health.report).toMatchObject({ status: "up", ready: true })
    }).pipe(Effect.provide(Health.layer()), Logger.withMinimumLogLevel(LogLevel.None)))
})
