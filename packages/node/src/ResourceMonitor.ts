/**
 * Watches the process's resources — CPU, memory (RSS against the configured or cgroup limit), V8
 * heap, event-loop delay and the disk of a configured path — on a `Schedule`. Each resource has
 * three thresholds (default 80% warning, 85% degraded, 90% critical). Crossing one logs once and
 * updates the `bulwark_resource_level` gauge; at degraded or critical the `resources` readiness
 * check turns degraded (the process asks for no new traffic). Falling back clears it, with
 * hysteresis so that a value hovering at a threshold does not flap.
 *
 * Samples come through the {@link Sampler} service: {@link layerSamplerNode} reads the machine,
 * tests provide their own. With a `Status` registry in its context, the resources show on `/status`
 * and the dashboard.
 *
 * @since 0.1.0
 */
import { Health } from "@bulwark/core"
import * as InternalDuration from "@bulwark/core/internal/duration"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { monitorEventLoopDelay } from "node:perf_hooks"
import * as v8 from "node:v8"
import * as Levels from "./internal/resourceLevel.js"
import * as Status from "./Status.js"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * The resources watched.
 *
 * @since 0.1.0
 * @category models
 */
export type Resource = "cpu" | "memory" | "heap" | "event_loop" | "disk"

/**
 * @since 0.1.0
 * @category models
 */
export const resources: ReadonlyArray<Resource> = ["cpu", "memory", "heap", "event_loop", "disk"]

/**
 * How far a resource is from its limit: `used / limit` is the ratio the thresholds apply to.
 * Units are the resource's own (CPU: cores busy vs cores available; memory, heap, disk: bytes;
 * event loop: milliseconds of p99 delay vs the configured budget).
 *
 * @since 0.1.0
 * @category models
 */
export interface Usage {
  readonly used: number
  readonly limit: number
}

/**
 * One sample; a resource left out is not watched (the disk, when no path is configured).
 *
 * @since 0.1.0
 * @category models
 */
export type Readings = { readonly [R in Resource]?: Usage | undefined }

/**
 * A resource's level.
 *
 * @since 0.1.0
 * @category models
 */
export type Level = Levels.Level

/**
 * @since 0.1.0
 * @category models
 */
export interface Thresholds {
  /** Default: 0.8. */
  readonly warning?: number | undefined
  /** Default: 0.85. */
  readonly degraded?: number | undefined
  /** Default: 0.9. */
  readonly critical?: number | undefined
}

/**
 * Where samples come from.
 *
 * @since 0.1.0
 * @category models
 */
export interface SamplerService {
  readonly sample: Effect.Effect<Readings>
}

/**
 * The sampler service.
 *
 * @since 0.1.0
 * @category tags
 */
export class Sampler extends Context.Tag("@bulwark/node/ResourceMonitor/Sampler")<Sampler, SamplerService>() {}

/**
 * A resource's state as the monitor sees it.
 *
 * @since 0.1.0
 * @category models
 */
export interface ResourceState {
  readonly resource: Resource
  readonly ratio: number
  readonly level: Level
  readonly usage: Usage
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** Every resource sampled so far, with its level. */
  readonly state: Effect.Effect<ReadonlyArray<ResourceState>>
  /** Takes one sample now (besides the schedule). */
  readonly sampleNow: Effect.Effect<void>
}

/**
 * The monitor.
 *
 * @since 0.1.0
 * @category tags
 */
export class ResourceMonitor extends Context.Tag("@bulwark/node/ResourceMonitor")<ResourceMonitor, Service>() {}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Thresholds for every resource, as ratios in (0, 1]. Default: 0.8 / 0.85 / 0.9. */
  readonly thresholds?: Thresholds | undefined
  /** Per-resource thresholds, over {@link Options.thresholds}. */
  readonly resourceThresholds?: { readonly [R in Resource]?: Thresholds | undefined } | undefined
  /**
   * How far below a level's threshold a ratio must fall before the level is left, in [0, 1).
   * Default: 0.05 (five percentage points).
   */
  readonly hysteresis?: number | undefined
  /** When to sample. Default: every 5 seconds. */
  readonly schedule?: Schedule.Schedule<unknown, unknown> | undefined
  /** The readiness check's name. Default: `"resources"`. */
  readonly checkName?: string | undefined
}

// -----------------------------------------------------------------------------
// metrics
// -----------------------------------------------------------------------------

/**
 * Each resource's usage ratio at the last sample (`resource` label).
 *
 * @since 0.1.0
 * @category metrics
 */
export const usageGauge = Metric.gauge("bulwark_resource_usage_ratio", {
  description: "Usage of a resource against its limit, at the last sample"
})

/**
 * Each resource's level: 0 ok, 1 warning, 2 degraded, 3 critical (`resource` label).
 *
 * @since 0.1.0
 * @category metrics
 */
export const levelGauge = Metric.gauge("bulwark_resource_level", {
  description: "Level of a resource: 0 ok, 1 warning, 2 degraded, 3 critical"
})

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

const percent = (ratio: number) => `${(ratio * 100).toFixed(1)}%`

const logCrossing = (resource: Resource, from: Level, to: Level, ratio: number, t: Levels.Thresholds) => {
  const rising = Levels.rank(to) > Levels.rank(from)
  const message = rising
    ? `Resource ${resource} at ${percent(ratio)}: ${to} (threshold ${percent(t[to as Exclude<Level, "ok">])})`
    : `Resource ${resource} back to ${to} at ${percent(ratio)} (was ${from})`
  const log = !rising ? Effect.logInfo : to === "critical" ? Effect.logError : Effect.logWarning
  return log(message).pipe(Effect.annotateLogs({ "bulwark.resource": resource, "bulwark.level": to }))
}

/**
 * Makes a monitor that samples through the {@link Sampler} in the context, on the schedule, for
 * the lifetime of the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}) =>
  Effect.gen(function*() {
    const base: Levels.Thresholds = {
      warning: options.thresholds?.warning ?? 0.8,
      degraded: options.thresholds?.degraded ?? 0.85,
      critical: options.thresholds?.critical ?? 0.9
    }
    const hysteresis = options.hysteresis ?? 0.05
    Levels.validate(base, hysteresis, "ResourceMonitor: thresholds")
    const thresholdsOf = {} as Record<Resource, Levels.Thresholds>
    for (const r of resources) {
      const own = options.resourceThresholds?.[r]
      thresholdsOf[r] = {
        warning: own?.warning ?? base.warning,
        degraded: own?.degraded ?? base.degraded,
        critical: own?.critical ?? base.critical
      }
      Levels.validate(thresholdsOf[r], hysteresis, `ResourceMonitor: resourceThresholds.${r}`)
    }
    const checkName = options.checkName ?? "resources"
    const sampler = yield* Sampler
    const states = new Map<Resource, ResourceState>()
    const current = Effect.sync(() => resources.flatMap((r) => states.get(r) ?? []))
    // shown by /status and the dashboard when a Status registry is provided
    const status = yield* Effect.serviceOption(Status.Status)
    const notify = Option.isSome(status) ? status.value.notify : Effect.void
    if (Option.isSome(status)) {
      yield* status.value.trackResources(Effect.map(current, (all) =>
        all.map((s) => ({
          resource: s.resource,
          level: s.level,
          ratio: s.ratio,
          used: s.usage.used,
          limit: s.usage.limit
        }))))
    }

    const record = (resource: Resource, usage: Usage) =>
      Effect.suspend(() => {
        const ratio = usage.limit > 0 ? usage.used / usage.limit : 0
        const t = thresholdsOf[resource]
        const from = states.get(resource)?.level ?? "ok"
        const to = Levels.next(from, ratio, t, hysteresis)
        states.set(resource, { resource, ratio, level: to, usage })
        const tagged = (m: Metric.Metric.Gauge<number>) => Metric.tagged(m, "resource", resource)
        return Effect.zipRight(
          Metric.set(tagged(usageGauge), ratio),
          from === to ? Effect.void : Effect.zipRight(
            Metric.set(tagged(levelGauge), Levels.rank(to)),
            Effect.zipRight(logCrossing(resource, from, to, ratio, t), notify)
          )
        )
      })

    const sampleNow = Effect.flatMap(sampler.sample, (readings) =>
      Effect.forEach(resources, (r) => {
        const usage = readings[r]
        return usage === undefined ? Effect.void : record(r, usage)
      }, { discard: true }))

    yield* Health.registerIfPresent(
      checkName,
      Effect.sync((): Health.ComponentHealth => {
        const details: Record<string, unknown> = {}
        let worst: Level = "ok"
        for (const s of states.values()) {
          details[s.resource] = { level: s.level, ratio: Math.round(s.ratio * 1000) / 1000 }
          if (Levels.rank(s.level) > Levels.rank(worst)) worst = s.level
        }
        return { status: Levels.rank(worst) >= Levels.rank("degraded") ? "degraded" : "up", details }
      }),
      { kind: "readiness" }
    )

    const schedule = options.schedule ?? Schedule.spaced("5 seconds")
    // a sampler that fails or dies is logged and the next sample is taken as scheduled
    const guarded = sampleNow.pipe(
      Effect.catchAllCause((cause) => Effect.logWarning("ResourceMonitor: sampling failed", cause))
    )
    yield* Effect.forkScoped(Effect.repeat(guarded, schedule))

    return {
      state: current,
      sampleNow
    } satisfies Service
  })

/**
 * Provides a monitor; needs a {@link Sampler} (see {@link layerSamplerNode}) and registers its
 * readiness check with `Health` when one is provided.
 *
 * @example
 * ```ts
 * import { ResourceMonitor } from "@bulwark/node"
 * import { Health } from "@bulwark/core"
 * import { Layer } from "effect"
 *
 * const Resources = ResourceMonitor.layer({ thresholds: { warning: 0.75 } }).pipe(
 *   Layer.provide(ResourceMonitor.layerSamplerNode({ diskPath: "/var/lib/app" })),
 *   Layer.provideMerge(Health.layer())
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<ResourceMonitor, never, Sampler> =>
  Layer.scoped(ResourceMonitor, make(options))

// -----------------------------------------------------------------------------
// the machine
// -----------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category models
 */
export interface NodeSamplerOptions {
  /** The path whose file system's use is watched. Default: none (the disk is not watched). */
  readonly diskPath?: string | undefined
  /** The memory limit RSS is measured against, in bytes. Default: the cgroup's limit, or the machine's memory. */
  readonly memoryLimit?: number | undefined
  /** The p99 event-loop delay that counts as 100%. A duration > 0. Default: 200 milliseconds. */
  readonly eventLoopDelayLimit?: Duration.DurationInput | undefined
}

const readNumber = (file: string): number | undefined => {
  try {
    const text = fs.readFileSync(file, "utf8").trim()
    const n = Number(text.split(/\s+/)[0])
    return Number.isFinite(n) && n > 0 ? n : undefined
  } catch {
    return undefined
  }
}

/**
 * Where the cgroup files are read by default: `/sys/fs/cgroup`, the cgroup v2 mount point (v1's
 * memory controller under it, at `memory/`).
 *
 * @since 0.1.0
 * @category the machine
 */
export const cgroupRoot = "/sys/fs/cgroup"

/**
 * The cgroup's memory limit in bytes (v2 `memory.max`, v1 `memory/memory.limit_in_bytes`), if
 * any, read under `root` (default {@link cgroupRoot}).
 *
 * @since 0.1.0
 * @category the machine
 */
export const cgroupMemoryLimit = (root: string = cgroupRoot): number | undefined => {
  const limit = readNumber(path.join(root, "memory.max")) ??
    readNumber(path.join(root, "memory", "memory.limit_in_bytes"))
  // v1 reports "no limit" as a huge number
  return limit !== undefined && limit < 2 ** 60 ? limit : undefined
}

/**
 * The CPUs available: the cgroup's quota (`cpu.max` under `root`, default {@link cgroupRoot})
 * when set, else the machine's.
 *
 * @since 0.1.0
 * @category the machine
 */
export const availableCpus = (root: string = cgroupRoot): number => {
  try {
    const [quota, period] = fs.readFileSync(path.join(root, "cpu.max"), "utf8").trim().split(/\s+/)
    const q = Number(quota)
    const p = Number(period)
    if (Number.isFinite(q) && Number.isFinite(p) && q > 0 && p > 0) return q / p
  } catch {
    // no cgroup v2 quota
  }
  return os.availableParallelism()
}

/**
 * A sampler reading this process and machine: CPU from `process.cpuUsage` against the available
 * CPUs, RSS against the memory limit, V8 heap against its limit, the p99 event-loop delay from
 * `perf_hooks.monitorEventLoopDelay` since the previous sample, the disk from `statfs`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSamplerNode = (options: NodeSamplerOptions = {}): Layer.Layer<Sampler> =>
  Layer.scoped(
    Sampler,
    Effect.gen(function*() {
      if (options.memoryLimit !== undefined && !(options.memoryLimit > 0)) {
        throw new RangeError(`ResourceMonitor: memoryLimit must be a number of bytes > 0, got ${options.memoryLimit}`)
      }
      const delayLimitMillis = InternalDuration.toMillis(options.eventLoopDelayLimit ?? "200 millis")
      if (!(delayLimitMillis > 0)) {
        throw new RangeError(
          `ResourceMonitor: eventLoopDelayLimit must be a duration > 0, got ${String(options.eventLoopDelayLimit)}`
        )
      }
      const memoryLimit = options.memoryLimit ?? cgroupMemoryLimit() ?? os.totalmem()
      const cpus = availableCpus()
      const histogram = yield* Effect.acquireRelease(
        Effect.sync(() => {
          const h = monitorEventLoopDelay({ resolution: 10 })
          h.enable()
          return h
        }),
        (h) => Effect.sync(() => h.disable())
      )
      let lastCpu = process.cpuUsage()
      let lastAt = process.hrtime.bigint()
      const sample = Effect.sync((): Readings => {
        const now = process.hrtime.bigint()
        const cpu = process.cpuUsage(lastCpu)
        const elapsedMicros = Number(now - lastAt) / 1000
        lastCpu = process.cpuUsage()
        lastAt = now
        const busyCores = elapsedMicros > 0 ? (cpu.user + cpu.system) / elapsedMicros : 0
        const heap = v8.getHeapStatistics()
        // p99 of the delays since the last sample (the histogram records nanoseconds)
        const delayMillis = histogram.count > 0 ? histogram.percentile(99) / 1e6 : 0
        histogram.reset()
        let disk: Usage | undefined
        if (options.diskPath !== undefined) {
          const s = fs.statfsSync(options.diskPath)
          const used = (s.blocks - s.bfree) * s.bsize
          disk = { used, limit: used + s.bavail * s.bsize }
        }
        return {
          cpu: { used: busyCores, limit: cpus },
          memory: { used: process.memoryUsage.rss(), limit: memoryLimit },
          heap: { used: heap.used_heap_size, limit: heap.heap_size_limit },
          event_loop: { used: delayMillis, limit: delayLimitMillis },
          ...(disk !== undefined ? { disk } : {})
        }
      })
      return { sample }
    })
  )

// -----------------------------------------------------------------------------
// config
// -----------------------------------------------------------------------------

const ratio = (key: string, fallback: number) =>
  Config.number(key).pipe(
    Config.validate({ message: "must be a ratio in (0, 1]", validation: (n) => n > 0 && n <= 1 }),
    Config.withDefault(fallback)
  )

/**
 * The monitor's options read from `Config`: `WARNING_THRESHOLD`, `DEGRADED_THRESHOLD`,
 * `CRITICAL_THRESHOLD` (ratios in (0, 1]), `HYSTERESIS` and `INTERVAL` (a duration), each optional
 * with the defaults of {@link Options}. Thresholds that do not rise fail with a `ConfigError`
 * naming `CRITICAL_THRESHOLD`.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Options> = Config.all({
  warning: ratio("WARNING_THRESHOLD", 0.8),
  degraded: ratio("DEGRADED_THRESHOLD", 0.85),
  critical: ratio("CRITICAL_THRESHOLD", 0.9),
  hysteresis: Config.number("HYSTERESIS").pipe(
    Config.validate({ message: "must be in [0, 1)", validation: (n) => n >= 0 && n < 1 }),
    Config.withDefault(0.05)
  ),
  interval: Config.duration("INTERVAL").pipe(
    Config.validate({ message: "must be a duration > 0", validation: (d) => Duration.toMillis(d) > 0 }),
    Config.withDefault(Duration.seconds(5))
  )
}).pipe(
  Config.mapOrFail(({ critical, degraded, hysteresis, interval, warning }) =>
    warning <= degraded && degraded <= critical
      ? Either.right<Options>({
        thresholds: { warning, degraded, critical },
        hysteresis,
        schedule: Schedule.spaced(interval)
      })
      : Either.left(ConfigError.InvalidData(
        ["CRITICAL_THRESHOLD"],
        `thresholds must rise: WARNING_THRESHOLD (${warning}) <= DEGRADED_THRESHOLD (${degraded}) <= CRITICAL_THRESHOLD (${critical})`
      ))
  )
)

/**
 * The node sampler's options read from `Config`: `DISK_PATH`, `MEMORY_LIMIT` (bytes) and
 * `EVENT_LOOP_DELAY_LIMIT` (a duration), each optional.
 *
 * @since 0.1.0
 * @category config
 */
export const samplerConfig: Config.Config<NodeSamplerOptions> = Config.all({
  diskPath: Config.option(Config.nonEmptyString("DISK_PATH")),
  memoryLimit: Config.option(
    Config.integer("MEMORY_LIMIT").pipe(
      Config.validate({ message: "must be a number of bytes > 0", validation: (n) => n > 0 })
    )
  ),
  eventLoopDelayLimit: Config.duration("EVENT_LOOP_DELAY_LIMIT").pipe(
    Config.validate({ message: "must be a duration > 0", validation: (d) => Duration.toMillis(d) > 0 }),
    Config.withDefault(Duration.millis(200))
  )
}).pipe(Config.map(({ diskPath, eventLoopDelayLimit, memoryLimit }): NodeSamplerOptions => ({
  eventLoopDelayLimit,
  ...(Option.isSome(diskPath) ? { diskPath: diskPath.value } : {}),
  ...(Option.isSome(memoryLimit) ? { memoryLimit: memoryLimit.value } : {})
})))

/**
 * {@link layer} with the node sampler, both read from `Config` (see {@link config} and
 * {@link samplerConfig}).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config<Options> = config,
  sampler: Config.Config<NodeSamplerOptions> = samplerConfig
): Layer.Layer<ResourceMonitor, ConfigError.ConfigError> =>
  Layer.unwrapEffect(
    Effect.map(Effect.all([options, sampler]), ([o, s]) => layer(o).pipe(Layer.provide(layerSamplerNode(s))))
  )
