import { Health } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import {
  ConfigProvider,
  Effect,
  Exit,
  FastCheck as fc,
  Layer,
  List,
  Logger,
  Metric,
  Ref,
  Schedule,
  TestClock
} from "effect"
import * as os from "node:os"
import * as Levels from "../src/internal/resourceLevel.js"
import * as ResourceMonitor from "../src/ResourceMonitor.js"
import * as Status from "../src/Status.js"

const thresholds: Levels.Thresholds = { warning: 0.8, degraded: 0.85, critical: 0.9 }

describe("resource levels (model)", () => {
  it("rises at once, inclusive of the threshold", () => {
    expect(Levels.next("ok", 0.8, thresholds, 0.05)).toBe("warning")
    expect(Levels.next("ok", 0.9, thresholds, 0.05)).toBe("critical")
    expect(Levels.next("warning", 0.85, thresholds, 0.05)).toBe("degraded")
  })

  it("falls only below the threshold minus the hysteresis", () => {
    expect(Levels.next("warning", 0.76, thresholds, 0.05)).toBe("warning")
    expect(Levels.next("warning", 0.74, thresholds, 0.05)).toBe("ok")
    expect(Levels.next("critical", 0.86, thresholds, 0.05)).toBe("critical")
    expect(Levels.next("critical", 0.84, thresholds, 0.05)).toBe("degraded")
    expect(Levels.next("critical", 0.1, thresholds, 0.05)).toBe("ok")
  })

  it("falling never lands above the level it falls from, however wide the hysteresis", () => {
    // 0.45 + 0.3 reaches critical: held there would be a rise; the level stays warning
    const close: Levels.Thresholds = { warning: 0.5, degraded: 0.6, critical: 0.7 }
    expect(Levels.next("warning", 0.45, close, 0.3)).toBe("warning")
    expect(Levels.next("degraded", 0.45, close, 0.3)).toBe("degraded")
  })

  it("validate: ratios in (0, 1], rising or equal thresholds, hysteresis in [0, 1)", () => {
    const check = (t: Levels.Thresholds, hysteresis = 0.05) => {
      try {
        Levels.validate(t, hysteresis, "where")
        return "ok"
      } catch (e) {
        return (e as Error).message
      }
    }
    expect(check({ warning: 0, degraded: 0.5, critical: 0.9 })).toBe("where: warning must be a ratio in (0, 1], got 0")
    expect(check({ warning: 0.5, degraded: 0.9, critical: 1 })).toBe("ok")
    expect(check({ warning: 0.5, degraded: 0.9, critical: 1.01 })).toBe(
      "where: critical must be a ratio in (0, 1], got 1.01"
    )
    // equal neighbours are allowed; a fall between any two is not
    expect(check({ warning: 0.8, degraded: 0.8, critical: 0.8 })).toBe("ok")
    expect(check({ warning: 0.5, degraded: 0.9, critical: 0.8 })).toBe(
      "where: thresholds must rise: warning (0.5) <= degraded (0.9) <= critical (0.8)"
    )
    expect(check(thresholds, 0)).toBe("ok")
    expect(check(thresholds, -0.01)).toBe("where: hysteresis must be in [0, 1), got -0.01")
    expect(check(thresholds, 1)).toBe("where: hysteresis must be in [0, 1), got 1")
  })

  it.prop(
    "a value hovering within the hysteresis band of a threshold never leaves the level it reached",
    [fc.array(fc.double({ min: 0.8 - 0.0499, max: 0.8499, noNaN: true }), { minLength: 1, maxLength: 50 })],
    ([ratios]) => {
      let level: Levels.Level = Levels.next("ok", 0.8, thresholds, 0.05)
      for (const r of ratios) {
        level = Levels.next(level, r, thresholds, 0.05)
        expect(level).toBe("warning")
      }
    }
  )
})

/** A sampler that replays the memory ratios it is given, one per sample. */
const scripted = (ratios: ReadonlyArray<number>) =>
  Layer.effect(
    ResourceMonitor.Sampler,
    Effect.map(Ref.make(0), (index) => ({
      sample: Effect.map(Ref.getAndUpdate(index, (i) => i + 1), (i): ResourceMonitor.Readings => ({
        memory: { used: ratios[Math.min(i, ratios.length - 1)]! * 1000, limit: 1000 }
      }))
    }))
  )

const capture = Effect.gen(function*() {
  const lines = yield* Ref.make(List.empty<string>())
  const logger = Logger.make(({ logLevel, message }) => {
    const text = (Array.isArray(message) ? message : [message]).join(" ")
    if (text.startsWith("Resource ")) Effect.runSync(Ref.update(lines, List.prepend(`${logLevel.label} ${text}`)))
  })
  return { lines: Effect.map(Ref.get(lines), (l) => List.toArray(List.reverse(l))), logger }
})

describe("ResourceMonitor", () => {
  it.scoped("logs each crossing once, moves the gauge, and degrades readiness with hysteresis", () =>
    Effect.gen(function*() {
      const { lines, logger } = yield* capture
      const ratios = [0.5, 0.82, 0.83, 0.86, 0.84, 0.79, 0.7]
      const context = yield* Layer.build(
        ResourceMonitor.layer({ schedule: Schedule.spaced("1 second") }).pipe(
          Layer.provide(scripted(ratios)),
          Layer.provideMerge(Status.layer()),
          Layer.provideMerge(Health.layer()),
          Layer.provide(Logger.replace(Logger.defaultLogger, logger))
        )
      )
      const health = Effect.provide(Effect.flatMap(Health.Health, (h) => h.report), context)
      const level = Metric.value(Metric.tagged(ResourceMonitor.levelGauge, "resource", "memory"))
      const ready: Array<boolean> = []
      const levels: Array<number> = []
      for (let i = 0; i < ratios.length; i++) {
        // the first sample is taken at once, the others a second apart
        if (i > 0) yield* TestClock.adjust("1 second")
        else yield* Effect.yieldNow()
        ready.push((yield* health).ready)
        levels.push((yield* level).value)
      }
      //             0.5    0.82   0.83   0.86   0.84   0.79   0.70
      expect(levels).toEqual([0, 1, 1, 2, 2, 1, 0])
      expect(ready).toEqual([true, true, true, false, false, true, true])
      expect(yield* lines).toEqual([
        "WARN Resource memory at 82.0%: warning (threshold 80.0%)",
        "WARN Resource memory at 86.0%: degraded (threshold 85.0%)",
        "INFO Resource memory back to warning at 79.0% (was degraded)",
        "INFO Resource memory back to ok at 70.0% (was warning)"
      ])
      const usage = yield* Metric.value(Metric.tagged(ResourceMonitor.usageGauge, "resource", "memory"))
      expect(usage.value).toBeCloseTo(0.7)
      // shown on /status and the dashboard
      const snapshot = yield* Effect.provide(Effect.flatMap(Status.Status, (s) => s.snapshot), context)
      expect(snapshot.resources).toEqual([{ resource: "memory", level: "ok", ratio: 0.7, used: 700, limit: 1000 }])
    }))

  it.scoped("logs critical as an error and keeps sampling after a sampler failure", () =>
    Effect.gen(function*() {
      const { lines, logger } = yield* capture
      const calls = yield* Ref.make(0)
      const sampler = Layer.succeed(ResourceMonitor.Sampler, {
        sample: Effect.flatMap(Ref.getAndUpdate(calls, (n) => n + 1), (n) =>
          n === 0
            ? Effect.die(new Error("statfs failed"))
            : Effect.succeed<ResourceMonitor.Readings>({ disk: { used: 95, limit: 100 } }))
      })
      const context = yield* Layer.build(
        ResourceMonitor.layer({ schedule: Schedule.spaced("1 second") }).pipe(
          Layer.provide(sampler),
          Layer.provide(Logger.replace(Logger.defaultLogger, logger))
        )
      )
      yield* TestClock.adjust("1 second")
      const monitor = Effect.provide(ResourceMonitor.ResourceMonitor, context)
      expect(yield* Effect.flatMap(monitor, (m) => m.state)).toEqual([
        { resource: "disk", ratio: 0.95, level: "critical", usage: { used: 95, limit: 100 } }
      ])
      expect(yield* lines).toEqual(["ERROR Resource disk at 95.0%: critical (threshold 90.0%)"])
    }))

  it.live("reads the real machine", () =>
    Effect.gen(function*() {
      const sampler = yield* ResourceMonitor.Sampler
      yield* sampler.sample
      // some work and some waiting between the two samples
      let x = 0
      for (let i = 0; i < 200_000; i++) x += Math.sqrt(i)
      expect(x).toBeGreaterThan(0)
      yield* Effect.sleep("50 millis")
      const readings = yield* sampler.sample
      expect(readings.cpu!.used).toBeGreaterThan(0)
      expect(readings.cpu!.limit).toBeGreaterThan(0)
      expect(readings.memory!.used).toBeGreaterThan(10 * 1024 * 1024)
      expect(readings.memory!.used).toBeLessThan(readings.memory!.limit)
      expect(readings.heap!.used).toBeGreaterThan(0)
      expect(readings.heap!.used).toBeLessThan(readings.heap!.limit)
      expect(readings.event_loop!.used).toBeGreaterThanOrEqual(0)
      expect(readings.event_loop!.limit).toBe(200)
      expect(readings.disk!.used).toBeGreaterThan(0)
      expect(readings.disk!.used).toBeLessThanOrEqual(readings.disk!.limit)
    }).pipe(Effect.provide(ResourceMonitor.layerSamplerNode({ diskPath: os.tmpdir() }))))

  it.effect("reads its options from Config and names the bad key", () =>
    Effect.gen(function*() {
      const read = (map: Record<string, string>) =>
        Effect.exit(Effect.withConfigProvider(
          ResourceMonitor.config,
          ConfigProvider.fromMap(new Map(Object.entries(map)), { pathDelim: "_" })
        ))
      const good = yield* read({ WARNING_THRESHOLD: "0.7", INTERVAL: "10 seconds" })
      expect(Exit.isSuccess(good) && good.value.thresholds).toEqual({ warning: 0.7, degraded: 0.85, critical: 0.9 })
      const notRatio = yield* read({ DEGRADED_THRESHOLD: "85" })
      expect(String(Exit.isFailure(notRatio) && notRatio.cause)).toContain("DEGRADED_THRESHOLD")
      const unordered = yield* read({ WARNING_THRESHOLD: "0.95" })
      expect(String(Exit.isFailure(unordered) && unordered.cause)).toMatch(/CRITICAL_THRESHOLD.*thresholds must rise/)
      const sampler = yield* Effect.exit(Effect.withConfigProvider(
        ResourceMonitor.samplerConfig,
        ConfigProvider.fromMap(new Map([["MEMORY_LIMIT", "-1"]]))
      ))
      expect(String(Exit.isFailure(sampler) && sampler.cause)).toContain("MEMORY_LIMIT")
    }))

  it("rejects bad literal options with the field named", () => {
    const build = (options: ResourceMonitor.Options) =>
      Layer.build(ResourceMonitor.layer(options).pipe(Layer.provide(scripted([0])))).pipe(Effect.scoped, Effect.runSync)
    expect(() => build({ thresholds: { warning: 0.9, degraded: 0.8 } })).toThrow(/warning \(0.9\) <= degraded \(0.8\)/)
    expect(() => build({ resourceThresholds: { disk: { critical: 1.5 } } })).toThrow(
      /resourceThresholds.disk: critical/
    )
    expect(() => build({ hysteresis: 1 })).toThrow(/hysteresis/)
  })
})
