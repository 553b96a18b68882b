import { Alerts } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  Clock,
  Duration,
  Effect,
  Exit,
  FastCheck,
  Logger,
  Metric,
  MetricState,
  Option,
  Ref,
  Schema,
  TestClock
} from "effect"
import { sized } from "./size.js"

const breakerOpen = (key = "breaker:payments"): Alerts.Alert => ({
  key,
  kind: "breaker_open",
  severity: "major",
  message: "Circuit \"payments\" opened",
  annotations: { breaker: "payments" }
})

describe("Alerts", () => {
  it.effect("rate-limits per key and reports the suppressed count on the next delivered alert", () =>
    Effect.gen(function*() {
      const sent = yield* Ref.make<Array<Alerts.Alert>>([])
      const alerts = yield* Alerts.make((a) => Ref.update(sent, (xs) => [...xs, a]), {
        maxPerKey: 2,
        interval: "1 minute"
      })
      for (let i = 0; i < 5; i++) yield* alerts.alert(breakerOpen())
      yield* alerts.alert(breakerOpen("breaker:search"))
      expect((yield* Ref.get(sent)).map((a) => [a.key, a.suppressed])).toEqual([
        ["breaker:payments", undefined],
        ["breaker:payments", undefined],
        ["breaker:search", undefined]
      ])
      yield* TestClock.adjust("1 minute")
      yield* alerts.alert(breakerOpen())
      expect((yield* Ref.get(sent))[3]).toMatchObject({ key: "breaker:payments", suppressed: 3 })
    }))

  it.effect("the state per key is bounded: beyond 10,000 busy keys the least recently alerted are forgotten", () =>
    Effect.gen(function*() {
      const sent = yield* Ref.make<Array<Alerts.Alert>>([])
      const alerts = yield* Alerts.make((a) => Ref.update(sent, (xs) => [...xs, a]), { interval: "1 minute" })
      // two keys with an alert held back each: "old" is then left alone, "recent" alerted again later
      for (const key of ["old", "recent"]) {
        yield* alerts.alert(breakerOpen(key))
        yield* alerts.alert(breakerOpen(key))
      }
      for (let i = 0; i < 5_000; i++) yield* alerts.alert(breakerOpen(`flood:${i}`))
      yield* alerts.alert(breakerOpen("recent"))
      for (let i = 5_000; i < 10_000; i++) yield* alerts.alert(breakerOpen(`flood:${i}`))
      yield* TestClock.adjust("1 minute")
      yield* Ref.set(sent, [])
      yield* alerts.alert(breakerOpen("old"))
      yield* alerts.alert(breakerOpen("recent"))
      expect((yield* Ref.get(sent)).map((a) => [a.key, a.suppressed])).toEqual([
        ["old", undefined],
        ["recent", 2]
      ])
    }))

  it.effect("the log layer writes an error log with the alert's annotations", () =>
    Effect.gen(function*() {
      const lines: Array<{ level: string; message: string; annotations: Record<string, unknown> }> = []
      const logger = Logger.make(({ annotations, logLevel, message }) => {
        lines.push({
          level: logLevel.label,
          message: Array.isArray(message) ? message.join(" ") : String(message),
          annotations: Object.fromEntries(annotations)
        })
      })
      yield* Alerts.announce(breakerOpen()).pipe(
        Effect.provide(Alerts.layerLog()),
        Effect.provide(Logger.replace(Logger.defaultLogger, logger))
      )
      expect(lines).toEqual([{
        level: "ERROR",
        message: "Circuit \"payments\" opened",
        annotations: {
          "bulwark.alert": "breaker:payments",
          "bulwark.alert.kind": "breaker_open",
          "bulwark.alert.severity": "major",
          breaker: "payments"
        }
      }])
      // no suppressed count on an alert that has none, not even an undefined one
      expect(Object.keys(lines[0]!.annotations)).not.toContain("bulwark.alert.suppressed")
    }))

  it.effect("a failing handler never fails the caller", () =>
    Effect.gen(function*() {
      const alerts = yield* Alerts.make(() => Effect.die("webhook down"))
      expect(yield* Effect.exit(alerts.alert(breakerOpen()))).toEqual(Exit.void)
    }))

  it.effect("announce without an Alerts service does nothing", () =>
    Effect.gen(function*() {
      expect(yield* Effect.exit(Alerts.announce(breakerOpen()))).toEqual(Exit.void)
    }))

  it.effect("an invalid rate limit is a defect naming the field", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Alerts.make(() => Effect.void, { maxPerKey: 0 }))
      expect(Exit.isFailure(exit) && Cause.pretty(exit.cause)).toContain("maxPerKey")
      const garbled = yield* Effect.exit(Alerts.make(() => Effect.void, { interval: "soon" as Duration.DurationInput }))
      expect(Exit.isFailure(garbled) && Cause.pretty(garbled.cause)).toContain("interval must be a finite duration > 0")
      for (const interval of ["-5 seconds", -5n, [-5, 0], -1, Infinity, 0] as const) {
        const exit = yield* Effect.exit(
          Alerts.make(() => Effect.void, { interval: interval as Duration.DurationInput })
        )
        expect(Exit.isFailure(exit) && Cause.pretty(exit.cause)).toContain(
          "Alerts: interval must be a finite duration > 0"
        )
      }
    }))

  it("alerts are Schema values", () => {
    expect(Schema.decodeUnknownSync(Alerts.Alert)({ ...breakerOpen(), suppressed: 2 })).toMatchObject({ suppressed: 2 })
    const { message: _message, ...withoutMessage } = breakerOpen()
    for (
      const invalid of [withoutMessage, { ...breakerOpen(), severity: "dire" }, { ...breakerOpen(), suppressed: "2" }]
    ) {
      expect(Schema.is(Alerts.Alert)(invalid)).toBe(false)
    }
  })

  it("the Schemas name Bulwark's own kinds and the Alert; the service's tag is @bulwark/core/Alerts", () => {
    for (const kind of ["breaker_open", "supervisor_escalation", "retry_budget_exhausted", "resource_threshold"]) {
      expect(Schema.is(Alerts.KnownKind)(kind)).toBe(true)
    }
    expect(Schema.is(Alerts.KnownKind)("")).toBe(false)
    expect(String(Alerts.Alert.ast)).toBe("Alert")
    expect(Alerts.Alerts.key).toBe("@bulwark/core/Alerts")
  })
})

const capture = () => {
  const lines: Array<{ level: string; message: string; annotations: Record<string, unknown> }> = []
  const logger = Logger.make(({ annotations, logLevel, message }) => {
    lines.push({
      level: logLevel.label,
      message: Array.isArray(message) ? message.join(" ") : String(message),
      annotations: Object.fromEntries(annotations)
    })
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

const counted = (kind: string) =>
  [...Metric.unsafeSnapshot()].filter((p) => p.metricKey.tags.some((t) => t.key === "kind" && t.value === kind))

describe("Alerts: the log sink, the counters, the bounds", () => {
  it.effect("logHandler: a critical alert is a fatal log; a suppressed count is in the message and an annotation", () =>
    Effect.gen(function*() {
      const { layer, lines } = capture()
      yield* Alerts.logHandler({ ...breakerOpen(), severity: "critical", suppressed: 3 }).pipe(Effect.provide(layer))
      yield* Alerts.logHandler({ ...breakerOpen(), suppressed: 0 }).pipe(Effect.provide(layer))
      expect(lines).toEqual([{
        level: "FATAL",
        message: "Circuit \"payments\" opened (3 similar alerts suppressed)",
        annotations: {
          "bulwark.alert": "breaker:payments",
          "bulwark.alert.kind": "breaker_open",
          "bulwark.alert.severity": "critical",
          "bulwark.alert.suppressed": 3,
          breaker: "payments"
        }
      }, {
        level: "ERROR",
        message: "Circuit \"payments\" opened",
        annotations: {
          "bulwark.alert": "breaker:payments",
          "bulwark.alert.kind": "breaker_open",
          "bulwark.alert.severity": "major",
          "bulwark.alert.suppressed": 0,
          breaker: "payments"
        }
      }])
    }))

  it.effect("a handler that dies is logged as an error annotated with the alert's key, and still counted as delivered", () =>
    Effect.gen(function*() {
      const { layer, lines } = capture()
      const alerts = yield* Alerts.make(() => Effect.die(new Error("webhook down")))
      yield* alerts.alert({ ...breakerOpen(), kind: "handler_failed_kind" }).pipe(Effect.provide(layer))
      expect(lines.map((l) => [l.level, l.message, l.annotations])).toEqual([
        ["ERROR", expect.stringContaining("Alert handler failed"), { "bulwark.alert": "breaker:payments" }]
      ])
      expect(counted("handler_failed_kind").map((p) => [p.metricKey.name, p.metricState])).toEqual([
        ["bulwark_alerts_delivered_total", MetricState.counter(1)]
      ])
    }))

  it.effect("the counters: bulwark_alerts_delivered_total and bulwark_alerts_suppressed_total by kind, counting up, with descriptions", () =>
    Effect.gen(function*() {
      const alerts = yield* Alerts.make(() => Effect.void)
      for (let i = 0; i < 3; i++) yield* alerts.alert({ ...breakerOpen(), kind: "counted_kind" })
      const pairs = counted("counted_kind").sort((a, b) => a.metricKey.name.localeCompare(b.metricKey.name))
      expect(pairs.map((p) => [p.metricKey.name, p.metricKey.description, p.metricState])).toEqual([
        ["bulwark_alerts_delivered_total", Option.some("Alerts delivered to the sink"), MetricState.counter(1)],
        [
          "bulwark_alerts_suppressed_total",
          Option.some("Alerts held back by the per-key rate limit"),
          MetricState.counter(2)
        ]
      ])
      for (const p of pairs) expect(p.metricKey.keyType).toMatchObject({ incremental: true })
    }))

  it.effect("maxPerKey must be a whole number: the defect says so and shows the value", () =>
    Effect.gen(function*() {
      for (const maxPerKey of [1.5, 0, -1]) {
        const exit = yield* Effect.exit(Alerts.make(() => Effect.void, { maxPerKey }))
        expect(Exit.isFailure(exit) && Cause.pretty(exit.cause)).toContain(
          `Alerts: maxPerKey must be a whole number >= 1, got ${maxPerKey}`
        )
      }
      expect(Exit.isSuccess(yield* Effect.exit(Alerts.make(() => Effect.void, { maxPerKey: 1 })))).toBe(true)
    }))

  it.effect("the default window is one minute: an alert 59 s after a delivery is held back, one at 60 s delivered", () =>
    Effect.gen(function*() {
      const sent = yield* Ref.make<Array<Alerts.Alert>>([])
      const alerts = yield* Alerts.make((a) => Ref.update(sent, (xs) => [...xs, a]))
      yield* alerts.alert(breakerOpen())
      yield* TestClock.adjust("59 seconds")
      yield* alerts.alert(breakerOpen())
      yield* TestClock.adjust("1 second")
      yield* alerts.alert(breakerOpen())
      expect((yield* Ref.get(sent)).map((a) => a.suppressed)).toEqual([undefined, 1])
    }))

  it.effect("at the key bound, idle keys are forgotten first: a key with alerts held back keeps its count", () =>
    Effect.gen(function*() {
      const sent = yield* Ref.make<Array<Alerts.Alert>>([])
      const alerts = yield* Alerts.make((a) => Ref.update(sent, (xs) => [...xs, a]), { interval: "1 minute" })
      // the oldest key has an alert held back; 9,999 others then go idle
      yield* alerts.alert(breakerOpen("held"))
      yield* alerts.alert(breakerOpen("held"))
      for (let i = 0; i < 9_999; i++) yield* alerts.alert(breakerOpen(`idle:${i}`))
      yield* TestClock.adjust("1 minute")
      // the 10,001st key makes room by forgetting the idle keys, not the oldest ones
      yield* alerts.alert(breakerOpen("new"))
      yield* Ref.set(sent, [])
      yield* alerts.alert(breakerOpen("held"))
      expect((yield* Ref.get(sent)).map((a) => [a.key, a.suppressed])).toEqual([["held", 1]])
    }))

  it.effect("the 10,001st key makes the first eviction, which leaves exactly 9,000 keys", () =>
    Effect.gen(function*() {
      const sent = yield* Ref.make<Array<Alerts.Alert>>([])
      const alerts = yield* Alerts.make((a) => Ref.update(sent, (xs) => [...xs, a]), { interval: "1 minute" })
      // every key stays busy (alerted within the minute); "first" and "kept" have an alert held back
      yield* alerts.alert(breakerOpen("first"))
      yield* alerts.alert(breakerOpen("first"))
      for (let i = 1; i < 1_000; i++) yield* alerts.alert(breakerOpen(`busy:${i}`))
      yield* alerts.alert(breakerOpen("kept"))
      yield* alerts.alert(breakerOpen("kept"))
      for (let i = 1_001; i < 10_000; i++) yield* alerts.alert(breakerOpen(`busy:${i}`))
      // 10,000 keys tracked: the next new key evicts the 1,000 least recently alerted ("first" among
      // them) down to 9,000, so "kept", now the oldest key, keeps its count
      yield* alerts.alert(breakerOpen("new"))
      yield* TestClock.adjust("1 minute")
      yield* Ref.set(sent, [])
      yield* alerts.alert(breakerOpen("first"))
      yield* alerts.alert(breakerOpen("kept"))
      expect((yield* Ref.get(sent)).map((a) => [a.key, a.suppressed])).toEqual([
        ["first", undefined],
        ["kept", 1]
      ])
    }))
})

describe("Alerts rate limit (property)", () => {
  it.effect.prop(
    "per key and window, at most maxPerKey alerts are delivered, and none is lost from the count",
    [
      FastCheck.array(
        FastCheck.record({
          key: FastCheck.constantFrom("a", "b", "c"),
          gapSeconds: FastCheck.integer({ min: 0, max: 90 })
        }),
        { maxLength: 60 }
      ),
      FastCheck.integer({ min: 1, max: 3 })
    ],
    ([events, maxPerKey]) =>
      Effect.gen(function*() {
        const sent: Array<{ key: string; at: number; suppressed: number }> = []
        const alerts = yield* Alerts.make(
          (a) =>
            Effect.flatMap(Clock.currentTimeMillis, (at) =>
              Effect.sync(() => {
                sent.push({ key: a.key, at, suppressed: a.suppressed ?? 0 })
              })),
          { maxPerKey, interval: "1 minute" }
        )
        for (const e of events) {
          yield* TestClock.adjust(`${e.gapSeconds} seconds`)
          yield* alerts.alert({ ...breakerOpen(e.key), key: e.key })
        }
        const model = {
          sent: [] as Array<{ key: string; at: number; suppressed: number }>,
          pending: new Map(["a", "b", "c"].map((k) => [k, 0])),
          windows: new Map(["a", "b", "c"].map((k) => [k, [] as Array<number>]))
        }
        let now = 0
        for (const e of events) {
          now += e.gapSeconds * 1000
          const window = model.windows.get(e.key)!.filter((at) => now - at < 60_000)
          if (window.length < maxPerKey) {
            model.sent.push({ key: e.key, at: now, suppressed: model.pending.get(e.key)! })
            model.pending.set(e.key, 0)
            window.push(now)
          } else {
            model.pending.set(e.key, model.pending.get(e.key)! + 1)
          }
          model.windows.set(e.key, window)
        }
        for (const key of ["a", "b", "c"]) {
          const delivered = sent.filter((s) => s.key === key)
          // never more than maxPerKey deliveries within any one minute
          for (const d of delivered) {
            expect(delivered.filter((o) => o.at >= d.at && o.at - d.at < 60_000).length).toBeLessThanOrEqual(maxPerKey)
          }
          // none is lost: every alert was delivered, reported as suppressed on a later delivery,
          // or is still held back (counted by the reference model below)
          const total = events.filter((e) => e.key === key).length
          const reported = delivered.reduce((n, d) => n + d.suppressed, 0)
          expect(delivered.length + reported + model.pending.get(key)!).toBe(total)
          // an alert for a key with no delivery in the last minute is always delivered
          if (total > 0) expect(delivered.length).toBeGreaterThanOrEqual(1)
        }
        // exactly the deliveries of a sliding-window reference model, in order
        expect(sent).toEqual(model.sent)
      }),
    // each sample steps the TestClock up to 60 times: 30 samples in `pnpm test`, 100 when deep
    { fastCheck: { numRuns: sized(30, 100) } }
  )
})
