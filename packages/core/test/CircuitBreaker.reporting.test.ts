/**
 * What a breaker tells the outside, word for word: its log lines and their annotations, the alert
 * it raises when it opens, its metrics (names, descriptions, labels, values), its readiness check,
 * its snapshots and transitions, and the rejections it hands out.
 */
import { Alerts, Bulkhead, CircuitBreaker, Failure, Health, Policy } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  Chunk,
  Data,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Logger,
  LogLevel,
  Metric,
  MetricLabel,
  Option,
  Ref,
  Stream,
  TestClock
} from "effect"
import { failTimes, ok, Refused, refused, rejection } from "./breakers.js"
import { stepsOf } from "./steps.js"

class BadInput extends Data.TaggedError("BadInput")<{}> {}

/** Every log line with its level and all its annotations. */
const captureLogs = () => {
  const lines: Array<[string, string, Record<string, unknown>]> = []
  const logger = Logger.make(({ annotations, logLevel, message }) => {
    lines.push([
      logLevel.label,
      String(Array.isArray(message) ? message[0] : message),
      Object.fromEntries([...annotations])
    ])
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

/** The value of a counter of the breaker metrics with exactly these labels. */
const counter = (metric: Metric.Metric.Counter<number>, labels: Record<string, string>) =>
  Metric.value(
    metric.pipe(Metric.taggedWithLabels(Object.entries(labels).map(([k, v]) => MetricLabel.make(k, v))))
  ).pipe(Effect.map((state) => state.count))

const gauge = (breaker: string) =>
  Metric.value(CircuitBreaker.stateGauge.pipe(Metric.taggedWithLabels([MetricLabel.make("breaker", breaker)]))).pipe(
    Effect.map((state) => state.value)
  )

/** The metric keys in the registry that carry this `breaker` label: name, description, incremental. */
const keysOf = (breaker: string) =>
  [...Metric.unsafeSnapshot()]
    .filter((p) => p.metricKey.tags.some((t) => t.key === "breaker" && t.value === breaker))
    .map((p) => ({
      name: p.metricKey.name,
      description: Option.getOrUndefined(p.metricKey.description),
      incremental: (p.metricKey.keyType as { readonly incremental?: boolean }).incremental ?? false,
      tags: p.metricKey.tags.map((t) => `${t.key}=${t.value}`).sort().join(",")
    }))
    .sort((a, b) => `${a.name} ${a.tags}`.localeCompare(`${b.name} ${b.tags}`))

describe("CircuitBreaker reporting", () => {
  it.scoped("log lines of every transition, with the breaker and its state as annotations", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "logged",
        policy: CircuitBreaker.consecutive(1),
        openDuration: "3 seconds",
        halfOpenProbes: 1,
        successThreshold: 1
      })
      yield* breaker.reset // already closed: nothing to say
      yield* TestClock.adjust("5 seconds")
      yield* failTimes(breaker, 1)
      yield* breaker.reset
      yield* breaker.isolate
      yield* breaker.isolate // already isolated: nothing to say
      yield* breaker.release
      yield* breaker.release // already released: nothing to say
      yield* breaker.disable
      yield* breaker.disable
      yield* breaker.release
      expect(logs.lines).toEqual([
        [
          "ERROR",
          "Circuit \"logged\" opened: 1 consecutive failures; next attempt in 3s",
          { "bulwark.breaker": "logged", "bulwark.breaker.state": "Open" }
        ],
        ["INFO", "Circuit \"logged\" closed: reset", {
          "bulwark.breaker": "logged",
          "bulwark.breaker.state": "Closed"
        }],
        [
          "ERROR",
          "Circuit \"logged\" isolated until released",
          { "bulwark.breaker": "logged", "bulwark.breaker.state": "Isolated" }
        ],
        ["INFO", "Circuit \"logged\" closed: released", {
          "bulwark.breaker": "logged",
          "bulwark.breaker.state": "Closed"
        }],
        [
          "WARN",
          "Circuit \"logged\" disabled: calls run unprotected until released",
          { "bulwark.breaker": "logged", "bulwark.breaker.state": "Disabled" }
        ],
        ["INFO", "Circuit \"logged\" closed: released", {
          "bulwark.breaker": "logged",
          "bulwark.breaker.state": "Closed"
        }]
      ])
    }).pipe(Effect.provide(logs.layer))
  })

  it.scoped("slow successes that open the breaker log the open", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "slowlog",
        policy: CircuitBreaker.countWindow({ size: 2, rateThreshold: 1 }),
        slowCall: { duration: "1 second" },
        openDuration: "10 seconds"
      })
      // a fast call late on the clock is not slow
      yield* TestClock.adjust("10 seconds")
      yield* breaker.protect(ok)
      expect((yield* breaker.metrics).slowCalls).toBe(0)
      const slow = breaker.protect(Effect.as(TestClock.adjust("1 second"), "late"))
      expect([yield* slow, yield* slow]).toEqual(["late", "late"])
      expect(yield* breaker.state).toBe("Open")
      expect(logs.lines.map(([level, message]) => [level, message])).toEqual([
        ["ERROR", "Circuit \"slowlog\" opened: slow-call rate 2/2 reached 1; next attempt in 10s"]
      ])
    }).pipe(Effect.provide(logs.layer))
  })

  it.scoped("an open raises an alert when an Alerts service is provided", () =>
    Effect.gen(function*() {
      const sent = yield* Ref.make<ReadonlyArray<Alerts.Alert>>([])
      const alerts = yield* Alerts.make((alert) => Ref.update(sent, (all) => [...all, alert]))
      const breaker = yield* CircuitBreaker.make({
        name: "alerting",
        policy: CircuitBreaker.consecutive(2),
        openDuration: "30 seconds"
      }).pipe(Effect.provideService(Alerts.Alerts, alerts))
      yield* TestClock.adjust("1 second")
      yield* failTimes(breaker, 2)
      expect(yield* Ref.get(sent)).toEqual([
        {
          key: "breaker:alerting",
          kind: "breaker_open",
          severity: "major",
          message: "Circuit \"alerting\" opened: 2 consecutive failures; next attempt in 30s",
          annotations: { breaker: "alerting", reason: "2 consecutive failures", retryAfterMillis: 30_000, opens: 1 }
        }
      ])
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("a classifier that throws: the failure counts, as UNCLASSIFIABLE, and a warning says so", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const throwing: Failure.Classifier = {
        ...Failure.defaultClassifier,
        classify: () => {
          throw new Error("classifier bug")
        }
      }
      const breaker = yield* CircuitBreaker.make({ name: "unclassified", policy: CircuitBreaker.consecutive(2) })
      const exit = yield* Effect.exit(
        breaker.protect(refused).pipe(Effect.provideService(Failure.Classifier, throwing))
      )
      expect(exit).toStrictEqual(Exit.fail(new Refused()))
      expect(yield* breaker.metrics).toMatchObject({ failures: 1, ignored: 0, consecutiveFailures: 1 })
      expect(logs.lines).toEqual([
        [
          "WARN",
          "Circuit \"unclassified\": the classifier failed on Refused (classifier bug); counted as a failure",
          { "bulwark.breaker": "unclassified" }
        ]
      ])
      const unknown = Failure.defaultClassifier.classify(new Error("x")).category
      expect(
        yield* counter(CircuitBreaker.failuresTotal, {
          breaker: "unclassified",
          category: unknown,
          code: "UNCLASSIFIABLE"
        })
      ).toBe(1)
    }).pipe(Effect.provide(logs.layer))
  })

  it.scoped("metrics: names, descriptions, every outcome and failure label, the state codes", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "labelled",
        policy: CircuitBreaker.consecutive(2),
        openDuration: "1 second",
        halfOpenProbes: 1,
        successThreshold: 1
      })
      const classifier = Failure.layerClassifier({
        tables: [Failure.table<BadInput>({ BadInput: "validation" })]
      })
      expect(yield* gauge("labelled")).toBe(0)
      yield* breaker.protect(ok)
      yield* Effect.exit(breaker.protect(Effect.fail(new BadInput()))).pipe(Effect.provide(classifier))
      yield* Effect.exit(breaker.protect(Effect.interrupt))
      yield* Effect.exit(breaker.protect(refused))
      yield* Effect.exit(breaker.protect(Effect.die("bug")))
      expect(yield* gauge("labelled")).toBe(1)
      yield* Effect.exit(breaker.protect(ok))
      yield* TestClock.adjust("1 second")
      expect(yield* breaker.state).toBe("HalfOpen")
      expect(yield* gauge("labelled")).toBe(2)
      yield* breaker.isolate
      expect(yield* gauge("labelled")).toBe(3)
      yield* breaker.disable
      expect(yield* gauge("labelled")).toBe(4)
      yield* breaker.release
      expect(yield* gauge("labelled")).toBe(0)

      const calls = (outcome: string) => counter(CircuitBreaker.callsTotal, { breaker: "labelled", outcome })
      expect({
        success: yield* calls("success"),
        failure: yield* calls("failure"),
        ignored: yield* calls("ignored"),
        rejected: yield* calls("rejected")
      }).toEqual({ success: 1, failure: 2, ignored: 1, rejected: 1 })
      const failures = (category: string, code: string) =>
        counter(CircuitBreaker.failuresTotal, { breaker: "labelled", category, code })
      expect([yield* failures("system", "DEFECT"), yield* failures("system", "REFUSED")]).toEqual([1, 1])
      const to = (state: string) => counter(CircuitBreaker.transitionsTotal, { breaker: "labelled", to: state })
      expect([
        yield* to("Open"),
        yield* to("HalfOpen"),
        yield* to("Isolated"),
        yield* to("Disabled"),
        yield* to("Closed")
      ]).toEqual([1, 1, 1, 1, 1])

      const calls_ = {
        description: "Calls seen by a circuit breaker, by outcome (success, failure, ignored, rejected)"
      }
      const failures_ = { description: "Failures counted by a circuit breaker, by category and code" }
      const transitions_ = { description: "Circuit breaker state transitions, by target state" }
      const state_ = { description: "Circuit breaker state: 0 closed, 1 open, 2 half-open, 3 isolated, 4 disabled" }
      const keys = keysOf("labelled")
      const key = (name: string, tags: string) => keys.find((k) => k.name === name && k.tags === tags)
      expect([
        key("bulwark_breaker_calls_total", "breaker=labelled,outcome=ignored"),
        key("bulwark_breaker_failures_total", "breaker=labelled,category=system,code=DEFECT"),
        key("bulwark_breaker_transitions_total", "breaker=labelled,to=HalfOpen"),
        key("bulwark_breaker_state", "breaker=labelled")
      ]).toEqual([
        { name: "bulwark_breaker_calls_total", ...calls_, incremental: true, tags: "breaker=labelled,outcome=ignored" },
        {
          name: "bulwark_breaker_failures_total",
          ...failures_,
          incremental: true,
          tags: "breaker=labelled,category=system,code=DEFECT"
        },
        {
          name: "bulwark_breaker_transitions_total",
          ...transitions_,
          incremental: true,
          tags: "breaker=labelled,to=HalfOpen"
        },
        { name: "bulwark_breaker_state", ...state_, incremental: false, tags: "breaker=labelled" }
      ])
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("failures of two categories are counted under their own labels", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "two-categories", policy: CircuitBreaker.consecutive(10) })
      yield* Effect.exit(breaker.protect(refused))
      yield* Effect.exit(breaker.protect(Effect.die("bug")))
      yield* Effect.exit(breaker.protect(refused))
      const tags = keysOf("two-categories").filter((k) => k.name === "bulwark_breaker_failures_total").map((k) =>
        k.tags
      )
      expect(tags).toEqual([
        "breaker=two-categories,category=system,code=DEFECT",
        "breaker=two-categories,category=system,code=REFUSED"
      ])
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("metricLabel names the breaker label of its metrics in place of the name", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "keyed-1", metricLabel: "keyed-breakers" })
      yield* breaker.protect(ok)
      expect(yield* counter(CircuitBreaker.callsTotal, { breaker: "keyed-breakers", outcome: "success" })).toBe(1)
      expect(keysOf("keyed-1")).toEqual([])
    }))

  it.scoped("the readiness check's details: state, time left while open, failures and rejections", () =>
    Effect.gen(function*() {
      const health = yield* Health.Health
      const breaker = yield* CircuitBreaker.make({
        name: "detailed",
        policy: CircuitBreaker.consecutive(1),
        openDuration: "10 seconds"
      })
      yield* CircuitBreaker.make({ name: "unchecked", health: false })
      const components = Effect.map(health.report, (r) => r.components.map((c) => [c.name, c.status, c.details]))
      expect(yield* components).toEqual([["breaker:detailed", "up", { state: "Closed", failures: 0, rejections: 0 }]])
      yield* failTimes(breaker, 1)
      yield* TestClock.adjust("4 seconds")
      yield* Effect.exit(breaker.protect(ok))
      expect(yield* components).toEqual([
        ["breaker:detailed", "degraded", { state: "Open", retryAfterMillis: 6_000, failures: 1, rejections: 1 }]
      ])
      yield* TestClock.adjust("6 seconds")
      expect(yield* components).toEqual([
        ["breaker:detailed", "degraded", { state: "HalfOpen", failures: 1, rejections: 1 }]
      ])
    }).pipe(Effect.provide(Health.layer()), Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("a snapshot has an end only while open", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "snap",
        policy: CircuitBreaker.consecutive(1),
        openDuration: "10 seconds"
      })
      yield* TestClock.adjust("1 second")
      expect(yield* breaker.exportState).toMatchObject({ state: "Closed", openUntil: null })
      yield* failTimes(breaker, 1)
      yield* TestClock.adjust("4 seconds")
      expect(yield* breaker.exportState).toMatchObject({ state: "Open", since: 1_000, openUntil: 11_000, opens: 1 })
      yield* TestClock.adjust("6 seconds")
      expect(yield* breaker.exportState).toMatchObject({ state: "HalfOpen", openUntil: null })
      yield* breaker.isolate
      expect(yield* breaker.exportState).toMatchObject({ state: "Isolated", openUntil: null })
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("rejections: half-open ones say retry now; an isolated rejection is not reused once half-open", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "rejecting",
        policy: CircuitBreaker.consecutive(1),
        openDuration: "1 second",
        halfOpenProbes: 1
      })
      yield* breaker.isolate
      // a rejection leaves the stack trace limit as it found it
      const limit = Error.stackTraceLimit
      Error.stackTraceLimit = 7
      let after = 0
      const isolated = yield* Effect.ensuring(
        rejection(breaker.protect(ok)),
        Effect.sync(() => {
          after = Error.stackTraceLimit
          Error.stackTraceLimit = limit
        })
      )
      expect(after).toBe(7)
      expect([isolated.state, Duration.isFinite(isolated.retryAfter)]).toEqual(["Isolated", false])
      yield* breaker.release
      yield* failTimes(breaker, 1)
      yield* TestClock.adjust("1 second")
      const gate = yield* Deferred.make<void>()
      const probe = yield* Effect.fork(breaker.protect(Deferred.await(gate)))
      yield* Effect.yieldNow()
      const halfOpen = yield* rejection(breaker.protect(ok))
      expect([halfOpen.state, Duration.toMillis(halfOpen.retryAfter), halfOpen.message]).toEqual([
        "HalfOpen",
        0,
        "Circuit \"rejecting\" is half-open with every probe slot taken; next attempt in 0"
      ])
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(probe)
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("every subscriber to changes sees every transition", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "watched", policy: CircuitBreaker.consecutive(1) })
      const first = yield* breaker.changes.pipe(Stream.take(2), Stream.runCollect, Effect.fork)
      for (let i = 0; i < 10; i++) yield* Effect.yieldNow()
      const second = yield* breaker.changes.pipe(Stream.take(2), Stream.runCollect, Effect.fork)
      for (let i = 0; i < 10; i++) yield* Effect.yieldNow()
      yield* failTimes(breaker, 1)
      yield* breaker.reset
      const seen = (chunk: Chunk.Chunk<CircuitBreaker.Transition>) => Chunk.toArray(chunk).map((t) => t.to)
      expect([seen(yield* Fiber.join(first)), seen(yield* Fiber.join(second))]).toEqual([
        ["Open", "Closed"],
        ["Open", "Closed"]
      ])
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("a protected effect made before a transition runs after it; interrupted calls count under no outcome", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "made-early" })
      const call = breaker.protect(ok)
      yield* breaker.disable
      expect(yield* call).toBe("ok")
      yield* Effect.exit(breaker.protect(Effect.interrupt))
      const outcomes = keysOf("made-early").filter((k) => k.name === "bulwark_breaker_calls_total").map((k) => k.tags)
      expect(outcomes).toEqual(["breaker=made-early,outcome=success"])
      // options that are not an object are not read
      const asAny = breaker.protect as unknown as (
        self: Effect.Effect<string>,
        options: unknown
      ) => Effect.Effect<string>
      expect([yield* asAny(ok, null), yield* asAny(ok, 1)]).toEqual(["ok", "ok"])
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("CircuitBreaker.protect runs the effect through the breaker of the context", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "from-context", policy: CircuitBreaker.consecutive(1) })
      const withBreaker = Effect.provideService(CircuitBreaker.CircuitBreaker, breaker)
      expect(yield* withBreaker(CircuitBreaker.protect(ok))).toBe("ok")
      const exit = yield* Effect.exit(withBreaker(CircuitBreaker.protect(refused, { isFailure: () => false })))
      expect(exit).toStrictEqual(Exit.fail(new Refused()))
      expect(yield* breaker.metrics).toMatchObject({ calls: 2, successes: 1, ignored: 1, failures: 0 })
    }))

  it.scoped("in a policy with a bulkhead: admitted in one step while closed or disabled, counted, rejected while open", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "fused",
        policy: CircuitBreaker.countWindow({ size: 10, rateThreshold: 1, minimumCalls: 2 }),
        slowCall: { duration: "1 second", rateThreshold: 1 }
      })
      const bulkhead = yield* Bulkhead.make({ name: "fused-breaker", maxConcurrent: 2 })
      const policy = Policy.make({ bulkhead: bulkhead.protect, breaker: breaker.protect })
      const alone = yield* stepsOf(bulkhead.protect(Effect.succeed(1)))
      const through = yield* stepsOf(Effect.succeed(1).pipe(policy))
      expect(through).toBe(alone - 1)
      // a fast call late on the clock is not slow; a slow one is
      yield* TestClock.adjust("10 seconds")
      yield* Effect.succeed(1).pipe(policy)
      expect(yield* breaker.metrics).toMatchObject({ calls: 2, successes: 2, slowCalls: 0 })
      yield* TestClock.adjust("1 second").pipe(policy)
      expect(yield* breaker.metrics).toMatchObject({ calls: 3, slowCalls: 1 })
      // a generation later (disabled) the same effect is admitted in one step too
      const same = Effect.succeed(1).pipe(policy)
      yield* breaker.disable
      expect(yield* stepsOf(same)).toBe(alone - 1)
      // a breaker whose first call in a policy comes a generation after it was made
      const later = yield* CircuitBreaker.make({ name: "fused-later" })
      yield* later.disable
      const laterPolicy = Policy.make({ bulkhead: bulkhead.protect, breaker: later.protect })
      expect(yield* stepsOf(Effect.succeed(1).pipe(laterPolicy))).toBe(alone - 1)
      yield* breaker.release
      yield* Effect.exit(refused.pipe(policy))
      yield* Effect.exit(refused.pipe(policy))
      expect(yield* breaker.state).toBe("Open")
      const exit = yield* Effect.exit(Effect.succeed(1).pipe(policy))
      expect(Exit.isFailure(exit) && Cause.failureOption(exit.cause).pipe(Option.map((e) => e._tag))).toEqual(
        Option.some("CircuitOpenError")
      )
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))
})
