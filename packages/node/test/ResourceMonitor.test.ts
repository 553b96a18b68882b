import { Health } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  type Config,
  type ConfigError,
  ConfigProvider,
  Context,
  Duration,
  Effect,
  Exit,
  FastCheck as fc,
  HashMap,
  Layer,
  List,
  Logger,
  Metric,
  Option,
  Ref,
  Schedule,
  TestClock
} from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
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

/** A sampler that answers the readings given, the same every time. */
const fixed = (readings: ResourceMonitor.Readings) =>
  Layer.succeed(ResourceMonitor.Sampler, { sample: Effect.succeed(readings) })

/** Every log line with its level and annotations. */
const allLogs = Effect.gen(function*() {
  const entries: Array<{ level: string; text: string; annotations: Record<string, unknown>; cause: string }> = []
  const logger = Logger.make(({ annotations, cause, logLevel, message }) => {
    entries.push({
      level: logLevel.label,
      text: (Array.isArray(message) ? message : [message]).map(String).join(" "),
      annotations: Object.fromEntries(HashMap.toEntries(annotations)),
      cause: Cause.pretty(cause)
    })
  })
  return { entries, logger: Logger.replace(Logger.defaultLogger, logger) }
})

describe("ResourceMonitor details", () => {
  it("its tags and gauges have their published names", () => {
    expect(ResourceMonitor.Sampler.key).toBe("@bulwark/node/ResourceMonitor/Sampler")
    expect(ResourceMonitor.ResourceMonitor.key).toBe("@bulwark/node/ResourceMonitor")
  })

  it.scoped("the gauges are named and described", () =>
    Effect.gen(function*() {
      yield* Layer.build(ResourceMonitor.layer().pipe(Layer.provide(fixed({ cpu: { used: 1, limit: 4 } }))))
      yield* Effect.yieldNow()
      const pairs = yield* Metric.snapshot
      const described = (name: string) => pairs.find((p) => p.metricKey.name === name)?.metricKey.description
      expect(described("bulwark_resource_usage_ratio")).toEqual(
        Option.some("Usage of a resource against its limit, at the last sample")
      )
      expect(described("bulwark_resource_level")).toEqual(
        Option.some("Level of a resource: 0 ok, 1 warning, 2 degraded, 3 critical")
      )
    }))

  it.scoped("a crossing's log carries the resource and the level as annotations", () =>
    Effect.gen(function*() {
      const { entries, logger } = yield* allLogs
      yield* Layer.build(
        ResourceMonitor.layer().pipe(Layer.provide(fixed({ heap: { used: 81, limit: 100 } })), Layer.provide(logger))
      )
      yield* Effect.yieldNow()
      const crossing = entries.find((e) => e.text.startsWith("Resource heap"))
      expect(crossing).toMatchObject({
        level: "WARN",
        text: "Resource heap at 81.0%: warning (threshold 80.0%)",
        annotations: { "bulwark.resource": "heap", "bulwark.level": "warning" }
      })
    }))

  it.scoped("a sampler that fails is logged as such, with its cause", () =>
    Effect.gen(function*() {
      const { entries, logger } = yield* allLogs
      const broken = Layer.succeed(ResourceMonitor.Sampler, { sample: Effect.die(new Error("statfs failed")) })
      yield* Layer.build(ResourceMonitor.layer().pipe(Layer.provide(broken), Layer.provide(logger)))
      yield* Effect.yieldNow()
      const warning = entries.find((e) => e.level === "WARN")
      expect(warning?.text).toBe("ResourceMonitor: sampling failed")
      expect(warning?.cause).toContain("statfs failed")
    }))

  it.scoped("a limit of 0 reads as a ratio of 0; the readiness check is \"resources\" with each ratio to 3 places", () =>
    Effect.gen(function*() {
      const context = yield* Layer.build(
        ResourceMonitor.layer().pipe(
          Layer.provide(fixed({
            cpu: { used: 0.9, limit: 1 },
            memory: { used: 5, limit: 0 },
            heap: { used: 12_345, limit: 100_000 }
          })),
          Layer.provideMerge(Health.layer())
        )
      )
      yield* Effect.yieldNow()
      const monitor = Context.get(context, ResourceMonitor.ResourceMonitor)
      expect(yield* monitor.sampleNow).toBeUndefined()
      expect((yield* monitor.state).map((s) => [s.resource, s.ratio, s.level])).toEqual([
        ["cpu", 0.9, "critical"],
        ["memory", 0, "ok"],
        ["heap", 0.12345, "ok"]
      ])
      const report = yield* Effect.flatMap(Health.Health, (h) => h.report).pipe(Effect.provide(context))
      expect(report.ready).toBe(false)
      expect(report.components.find((c) => c.name === "resources")).toMatchObject({
        status: "degraded",
        details: {
          cpu: { level: "critical", ratio: 0.9 },
          memory: { level: "ok", ratio: 0 },
          heap: { level: "ok", ratio: 0.123 }
        }
      })
    }))

  it("bad thresholds are named after their field", () => {
    const build = (options: ResourceMonitor.Options) =>
      Layer.build(ResourceMonitor.layer(options).pipe(Layer.provide(scripted([0])))).pipe(Effect.scoped, Effect.runSync)
    expect(() => build({ thresholds: { warning: 0 } })).toThrow(/^ResourceMonitor: thresholds: warning/)
  })

  it("the node sampler rejects a memoryLimit or eventLoopDelayLimit out of range, with the field named", () => {
    const build = (options: ResourceMonitor.NodeSamplerOptions) =>
      Layer.build(ResourceMonitor.layerSamplerNode(options)).pipe(Effect.scoped, Effect.runSync)
    for (const memoryLimit of [0, -1, Number.NaN]) {
      expect(() => build({ memoryLimit })).toThrow(
        `ResourceMonitor: memoryLimit must be a number of bytes > 0, got ${memoryLimit}`
      )
    }
    expect(() => build({ memoryLimit: 1 })).not.toThrow()
    for (const eventLoopDelayLimit of [0, "-1 millis"] as const) {
      expect(() => build({ eventLoopDelayLimit })).toThrow(
        `ResourceMonitor: eventLoopDelayLimit must be a duration > 0, got ${eventLoopDelayLimit}`
      )
    }
    expect(() => build({ eventLoopDelayLimit: "1 millis" })).not.toThrow()
  })

  describe("cgroup limits", () => {
    const root = (files: Record<string, string>) => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bulwark-cgroup-"))
      for (const [file, text] of Object.entries(files)) {
        fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true })
        fs.writeFileSync(path.join(dir, file), text)
      }
      return dir
    }

    it("memory: v2 memory.max, else v1 memory.limit_in_bytes; none when unlimited, zero or absent", () => {
      expect(ResourceMonitor.cgroupMemoryLimit(root({ "memory.max": "536870912\n" }))).toBe(536_870_912)
      expect(ResourceMonitor.cgroupMemoryLimit(root({ "memory.max": "max\n" }))).toBeUndefined()
      expect(ResourceMonitor.cgroupMemoryLimit(root({ "memory/memory.limit_in_bytes": "1073741824\n" }))).toBe(
        1_073_741_824
      )
      expect(ResourceMonitor.cgroupMemoryLimit(root({
        "memory.max": "268435456\n",
        "memory/memory.limit_in_bytes": "1073741824\n"
      }))).toBe(268_435_456)
      // v1 says "no limit" with a huge number
      expect(ResourceMonitor.cgroupMemoryLimit(root({ "memory/memory.limit_in_bytes": "9223372036854771712\n" })))
        .toBeUndefined()
      expect(ResourceMonitor.cgroupMemoryLimit(root({ "memory/memory.limit_in_bytes": String(2 ** 60) })))
        .toBeUndefined()
      expect(ResourceMonitor.cgroupMemoryLimit(root({ "memory.max": "0\n" }))).toBeUndefined()
      expect(ResourceMonitor.cgroupMemoryLimit(root({ "memory.max": "-5\n" }))).toBeUndefined()
      expect(ResourceMonitor.cgroupMemoryLimit(root({}))).toBeUndefined()
    })

    it("CPUs: the cpu.max quota over its period, else the machine's", () => {
      expect(ResourceMonitor.availableCpus(root({ "cpu.max": "150000 100000\n" }))).toBe(1.5)
      expect(ResourceMonitor.availableCpus(root({ "cpu.max": "max 100000\n" }))).toBe(os.availableParallelism())
      expect(ResourceMonitor.availableCpus(root({ "cpu.max": "0 100000\n" }))).toBe(os.availableParallelism())
      expect(ResourceMonitor.availableCpus(root({ "cpu.max": "100000 0\n" }))).toBe(os.availableParallelism())
      expect(ResourceMonitor.availableCpus(root({}))).toBe(os.availableParallelism())
    })

    it("CPUs: a quota or period that is not a finite number > 0 counts as no quota", () => {
      for (const cpuMax of ["Infinity 100000", "100000 Infinity", "-Infinity 100000", "-50000 100000"]) {
        expect(ResourceMonitor.availableCpus(root({ "cpu.max": `${cpuMax}\n` }))).toBe(os.availableParallelism())
      }
    })

    it("both read under cgroupRoot, /sys/fs/cgroup, by default", () => {
      expect(ResourceMonitor.cgroupRoot).toBe("/sys/fs/cgroup")
      expect(ResourceMonitor.availableCpus()).toBe(ResourceMonitor.availableCpus(ResourceMonitor.cgroupRoot))
      expect(ResourceMonitor.cgroupMemoryLimit()).toBe(ResourceMonitor.cgroupMemoryLimit(ResourceMonitor.cgroupRoot))
    })
  })

  it.live("the node sampler measures busy CPU, the event loop's delay in milliseconds and the disk as df does", () =>
    Effect.gen(function*() {
      const sampler = yield* ResourceMonitor.Sampler
      yield* sampler.sample
      // keep one core busy for 300 ms
      const start = Date.now()
      let x = 0
      while (Date.now() - start < 300) x += Math.sqrt(x + 1)
      expect(x).toBeGreaterThan(0)
      yield* Effect.sleep("20 millis")
      const readings = yield* sampler.sample
      // p99 of the loop's delays since the last sample, in milliseconds (the 20 ms wait recorded some)
      expect(readings.event_loop!.used).toBeGreaterThan(0)
      expect(readings.event_loop!.used).toBeLessThan(60_000)
      expect(readings.event_loop!.limit).toBe(500)
      // cores busy: some of one core, never more than the machine has
      expect(readings.cpu!.used).toBeGreaterThan(0.05)
      expect(readings.cpu!.used).toBeLessThanOrEqual(os.availableParallelism() + 0.5)
      expect(readings.memory!.limit).toBe(8 * 1024 ** 3)
      const df = execFileSync("df", ["-B1", "--output=used,avail", os.tmpdir()], { encoding: "utf8" })
      const [used, avail] = df.trim().split("\n")[1]!.trim().split(/\s+/).map(Number)
      expect(readings.disk!.used / used!).toBeCloseTo(1, 1)
      expect(readings.disk!.limit / (used! + avail!)).toBeCloseTo(1, 1)
    }).pipe(
      Effect.provide(ResourceMonitor.layerSamplerNode({
        diskPath: os.tmpdir(),
        memoryLimit: 8 * 1024 ** 3,
        eventLoopDelayLimit: "500 millis"
      }))
    ))

  it.live("the node sampler counts the CPU time spent in the kernel as busy, as well as the user time", () =>
    Effect.gen(function*() {
      const sampler = yield* ResourceMonitor.Sampler
      // this test's CPU time is measured inside the sampler's window, its wall time outside it
      const start = process.hrtime.bigint()
      yield* sampler.sample
      const own = yield* Effect.sync(() => {
        const before = process.cpuUsage()
        const fd = fs.openSync("/dev/zero", "r")
        const buffer = Buffer.alloc(1024 * 1024)
        try {
          // reading /dev/zero keeps the kernel busy: mostly system time
          let used = process.cpuUsage(before)
          for (let i = 0; i < 100_000 && used.system < 100_000; i++) {
            fs.readSync(fd, buffer, 0, buffer.length, null)
            if (i % 10 === 9) used = process.cpuUsage(before)
          }
          return process.cpuUsage(before)
        } finally {
          fs.closeSync(fd)
        }
      })
      const readings = yield* sampler.sample
      const elapsedMicros = Number(process.hrtime.bigint() - start) / 1000
      // a good share of it in the kernel (the process's user time also counts its other threads)
      expect(own.system).toBeGreaterThanOrEqual(100_000)
      // the sampler's window holds all of this CPU time and lasts no longer than this wall time
      expect(readings.cpu!.used).toBeGreaterThanOrEqual((own.user + own.system) / elapsedMicros)
    }).pipe(Effect.provide(ResourceMonitor.layerSamplerNode())))

  it.live("the node sampler stops measuring the event loop when its scope closes", () =>
    Effect.gen(function*() {
      const sampler = yield* Effect.scoped(
        Effect.map(Layer.build(ResourceMonitor.layerSamplerNode()), (ctx) => Context.get(ctx, ResourceMonitor.Sampler))
      )
      // the first sample clears what was measured before the scope closed
      yield* sampler.sample
      // a measuring histogram would record some of the loop's turns meanwhile (it turns every 10 ms)
      yield* Effect.sleep("50 millis")
      expect((yield* sampler.sample).event_loop!.used).toBe(0)
    }))

  it.effect("Config: each key named, the bounds of each value, and rising thresholds that may be equal", () =>
    Effect.gen(function*() {
      const read = <A>(config: Config.Config<A>, map: Record<string, string>) =>
        Effect.exit(Effect.withConfigProvider(config, ConfigProvider.fromMap(new Map(Object.entries(map)))))
      const failure = <A>(exit: Exit.Exit<A, ConfigError.ConfigError>) => String(Exit.isFailure(exit) && exit.cause)
      const thresholds = (exit: Exit.Exit<ResourceMonitor.Options, ConfigError.ConfigError>) =>
        Exit.isSuccess(exit) ? exit.value.thresholds : "failed"
      for (const key of ["WARNING_THRESHOLD", "DEGRADED_THRESHOLD", "CRITICAL_THRESHOLD"]) {
        for (const bad of ["0", "-0.5", "1.01"]) {
          const message = failure(yield* read(ResourceMonitor.config, { [key]: bad }))
          expect(message).toContain(key)
          expect(message).toContain("must be a ratio in (0, 1]")
        }
      }
      expect(thresholds(yield* read(ResourceMonitor.config, { CRITICAL_THRESHOLD: "1" }))).toEqual({
        warning: 0.8,
        degraded: 0.85,
        critical: 1
      })
      const equal = { WARNING_THRESHOLD: "0.9", DEGRADED_THRESHOLD: "0.9", CRITICAL_THRESHOLD: "0.9" }
      expect(thresholds(yield* read(ResourceMonitor.config, equal))).toEqual({
        warning: 0.9,
        degraded: 0.9,
        critical: 0.9
      })
      expect(failure(yield* read(ResourceMonitor.config, { DEGRADED_THRESHOLD: "0.95" }))).toContain(
        "thresholds must rise"
      )
      for (const bad of ["-0.1", "1"]) {
        const message = failure(yield* read(ResourceMonitor.config, { HYSTERESIS: bad }))
        expect(message).toContain("HYSTERESIS")
        expect(message).toContain("must be in [0, 1)")
      }
      const noHysteresis = yield* read(ResourceMonitor.config, { HYSTERESIS: "0" })
      expect(Exit.isSuccess(noHysteresis) && noHysteresis.value.hysteresis).toBe(0)
      for (const bad of ["0 seconds", "soon"]) {
        expect(failure(yield* read(ResourceMonitor.config, { INTERVAL: bad }))).toContain("INTERVAL")
      }
      expect(failure(yield* read(ResourceMonitor.config, { INTERVAL: "0 seconds" }))).toContain(
        "must be a duration > 0"
      )

      const sampler = yield* read(ResourceMonitor.samplerConfig, {
        DISK_PATH: "/var/lib/app",
        MEMORY_LIMIT: "1",
        EVENT_LOOP_DELAY_LIMIT: "50 millis"
      })
      expect(sampler).toEqual(Exit.succeed({
        diskPath: "/var/lib/app",
        memoryLimit: 1,
        eventLoopDelayLimit: Duration.millis(50)
      }))
      expect(yield* read(ResourceMonitor.samplerConfig, {})).toEqual(
        Exit.succeed({ eventLoopDelayLimit: Duration.millis(200) })
      )
      const zero = failure(yield* read(ResourceMonitor.samplerConfig, { MEMORY_LIMIT: "0" }))
      expect(zero).toContain("MEMORY_LIMIT")
      expect(zero).toContain("must be a number of bytes > 0")
      for (const bad of ["0 millis", "-5 millis"]) {
        const message = failure(yield* read(ResourceMonitor.samplerConfig, { EVENT_LOOP_DELAY_LIMIT: bad }))
        expect(message).toContain("EVENT_LOOP_DELAY_LIMIT")
        expect(message).toContain("must be a duration > 0")
      }
    }))

  it.scoped("layerConfig: the monitor and the node sampler from Config", () =>
    Effect.gen(function*() {
      const provider = ConfigProvider.fromMap(new Map([["WARNING_THRESHOLD", "0.01"], ["MEMORY_LIMIT", "1"]]))
      const context = yield* Layer.build(
        ResourceMonitor.layerConfig().pipe(Layer.provide(Layer.setConfigProvider(provider)))
      )
      const monitor = Context.get(context, ResourceMonitor.ResourceMonitor)
      yield* monitor.sampleNow
      const memory = (yield* monitor.state).find((s) => s.resource === "memory")
      // RSS against a limit of one byte: far past critical
      expect(memory?.usage.limit).toBe(1)
      expect(memory?.level).toBe("critical")
    }))
})
