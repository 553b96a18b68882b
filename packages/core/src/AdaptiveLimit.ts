/**
 * An adaptive concurrency limit: a bulkhead whose limit follows the latency it observes, as
 * Netflix's concurrency-limits library does. A fixed bulkhead size is wrong most of the time
 * (too low wastes capacity, too high lets a slow dependency's queue grow until every caller
 * times out); this one finds the dependency's knee, the concurrency beyond which latency only
 * grows, and follows it when the dependency's capacity changes.
 *
 * It is a Policy stage in the bulkhead's place, with the bulkhead's queue, priority classes
 * and rejection error (`Bulkhead.BulkheadRejectedError`, whose `maxConcurrent` is the limit at
 * the time). Two algorithms:
 *
 * - {@link aimd}: additive increase on success, multiplicative decrease on a timeout or an
 *   overload failure (classified `timeout` or `resource`), at most once per round trip;
 * - {@link gradient}: the limit is scaled by the ratio of the long-term to the short-term
 *   latency, plus a queue-size allowance to probe upwards (the default).
 *
 * Time comes only from `Clock`, so tests drive it with `TestClock`. The limit, the measured
 * latencies and the rejections are metrics, and the readiness check reports them.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricKey from "effect/MetricKey"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Bulkhead from "./Bulkhead.js"
import * as Deadline from "./Deadline.js"
import * as Failure from "./Failure.js"
import * as Health from "./Health.js"
import * as LimitState from "./internal/adaptiveLimitState.js"
import * as InternalDuration from "./internal/duration.js"
import { instance } from "./internal/metric.js"
import * as WaitQueue from "./internal/waitQueue.js"

// -----------------------------------------------------------------------------
// algorithms
// -----------------------------------------------------------------------------

/**
 * Options of the AIMD algorithm.
 *
 * @since 0.1.0
 * @category models
 */
export interface AimdOptions {
  /** The factor applied to the limit on a drop, in (0, 1). Default: `0.9`. */
  readonly backoffRatio?: number | undefined
  /** Added to the limit once per round trip while the limit is in use; > 0. Default: `1`. */
  readonly increase?: number | undefined
  /** A success at least this slow counts as a drop too. Default: none (only failures drop). */
  readonly slowLatency?: Duration.DurationInput | undefined
}

/**
 * Options of the gradient algorithm.
 *
 * @since 0.1.0
 * @category models
 */
export interface GradientOptions {
  /**
   * How far the short-term latency may rise above the long-term one before the limit falls;
   * >= 1. Default: `1` (only the queue-size allowance is tolerated).
   */
  readonly tolerance?: number | undefined
  /** The weight of each new estimate, in (0, 1]. Default: `0.5`. */
  readonly smoothing?: number | undefined
  /** Samples in the short-term latency average; a whole number >= 1. Default: `10`. */
  readonly shortWindow?: number | undefined
  /** Round trips in the long-term latency average; a whole number >= 2. Default: `600`. */
  readonly longWindow?: number | undefined
  /**
   * The allowance for calls queued at the dependency, added to each estimate so that the
   * limit keeps probing upwards: a number >= 0, or a function of the limit. Default: the
   * square root of the limit.
   */
  readonly queueSize?: number | ((limit: number) => number) | undefined
}

/**
 * A limit algorithm, built by {@link aimd} or {@link gradient}.
 *
 * @since 0.1.0
 * @category models
 */
export type Algorithm =
  | { readonly _tag: "aimd"; readonly options: AimdOptions }
  | { readonly _tag: "gradient"; readonly options: GradientOptions }

/**
 * AIMD: the limit grows by `increase` once per round trip while it is in use and is multiplied
 * by `backoffRatio` on a timeout or an overload failure (at most once per round trip, so a burst
 * of timeouts from one congested moment cuts once).
 *
 * @since 0.1.0
 * @category algorithms
 */
export const aimd = (options: AimdOptions = {}): Algorithm => ({ _tag: "aimd", options })

/**
 * Gradient: once per round trip, the limit becomes `limit × clamp(tolerance × long / short,
 * 0.5, 1) + queueSize(limit)`, smoothed; a timeout or an overload failure scales by 0.5. The
 * short-term latency is an average over the last samples, the long-term one over many round
 * trips, so the limit settles where latency starts to grow: the dependency's knee.
 *
 * @since 0.1.0
 * @category algorithms
 */
export const gradient = (options: GradientOptions = {}): Algorithm => ({ _tag: "gradient", options })

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * Options for an adaptive limit.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The limiter's name, used in errors, metrics and logs. Default: `"default"`. */
  readonly name?: string | undefined
  /** The algorithm. Default: {@link gradient}`()`. */
  readonly algorithm?: Algorithm | undefined
  /** The lowest limit; a whole number >= 1. Default: `1`. */
  readonly minLimit?: number | undefined
  /** The highest limit; a whole number >= `minLimit`. Default: `1000`. */
  readonly maxLimit?: number | undefined
  /** The limit before any call has been measured, in [minLimit, maxLimit]. Default: `20`. */
  readonly initialLimit?: number | undefined
  /** How many calls may wait for a slot; a whole number >= 0. Default: `0`. */
  readonly maxQueued?: number | undefined
  /** How long a call may wait in the queue. Default: no limit (the caller's deadline still bounds it). */
  readonly maxWait?: Duration.DurationInput | undefined
  /** How many priority classes the queue has (highest first); a whole number >= 1. Default: `1`. */
  readonly priorities?: number | undefined
  /** The class of a call that names none; in `[0, priorities)`. Default: `0`. */
  readonly defaultPriority?: number | undefined
  /**
   * Which classified failures say the dependency is overloaded (a drop). Default: categories
   * `timeout` and `resource`.
   */
  readonly isDrop?: ((classification: Failure.Classification) => boolean) | undefined
  /** With the Layer: register a readiness check `adaptive_limit:<name>`. Default: `true`. */
  readonly health?: boolean | undefined
}

/**
 * A snapshot of an adaptive limit.
 *
 * @since 0.1.0
 * @category models
 */
export interface State {
  readonly name: string
  readonly algorithm: "aimd" | "gradient"
  /** The whole number of calls admitted at once now. */
  readonly limit: number
  /** The algorithm's fractional estimate behind `limit`. */
  readonly estimate: number
  readonly minLimit: number
  readonly maxLimit: number
  readonly active: number
  readonly queued: number
  readonly queuedByPriority: ReadonlyArray<number>
  readonly maxQueued: number
  readonly admitted: number
  readonly rejected: { readonly queue_full: number; readonly wait_timeout: number }
  /** Calls measured so far. */
  readonly samples: number
  /** The short-term and long-term latency averages, in milliseconds (0 before any sample). */
  readonly shortLatencyMillis: number
  readonly longLatencyMillis: number
}

/**
 * An adaptive limit for one dependency.
 *
 * @since 0.1.0
 * @category models
 */
export interface AdaptiveLimit {
  readonly name: string
  /** Runs `self` under the limit, with the default priority. A policy function. */
  readonly protect: <A, E, R>(
    self: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | Bulkhead.BulkheadRejectedError, R>
  /** Runs `self` under the limit; `priority` picks its queue class. */
  readonly run: <A, E, R>(
    self: Effect.Effect<A, E, R>,
    priority?: number
  ) => Effect.Effect<A, E | Bulkhead.BulkheadRejectedError, R>
  /** A policy function that runs its effect with the given priority class. */
  readonly withPriority: (
    priority: number
  ) => <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | Bulkhead.BulkheadRejectedError, R>
  /** The current state. */
  readonly state: Effect.Effect<State>
}

/**
 * The adaptive limit service, for a program that needs one.
 *
 * @since 0.1.0
 * @category tags
 */
export const AdaptiveLimit: Context.Tag<AdaptiveLimit, AdaptiveLimit> = Context.GenericTag<AdaptiveLimit>(
  "@bulwark/core/AdaptiveLimit"
)

// -----------------------------------------------------------------------------
// options
// -----------------------------------------------------------------------------

interface Resolved {
  readonly name: string
  readonly config: LimitState.LimitConfig
  readonly maxQueued: number
  readonly maxWaitMillis: number
  readonly priorities: number
  readonly defaultPriority: number
  readonly isDrop: (classification: Failure.Classification) => boolean
}

/** A literal option that breaks a rule; `field` names it. */
class InvalidOption extends RangeError {
  constructor(readonly field: string, message: string) {
    super(message)
  }
}

const defaultIsDrop = (c: Failure.Classification): boolean => c.category === "timeout" || c.category === "resource"

const resolve = (options: Options): Resolved => {
  const name = options.name ?? "default"
  const bad = (field: string, rule: string, value: unknown): never => {
    throw new InvalidOption(field, `AdaptiveLimit "${name}": ${field} must be ${rule}, got ${String(value)}`)
  }
  const whole = (field: string, value: number, min: number) =>
    Number.isInteger(value) && value >= min ? value : bad(field, `a whole number >= ${min}`, value)
  const minLimit = whole("minLimit", options.minLimit ?? 1, 1)
  const maxLimit = whole("maxLimit", options.maxLimit ?? Math.max(1000, minLimit), minLimit)
  const initialLimit = options.initialLimit ?? Math.min(maxLimit, Math.max(minLimit, 20))
  if (!(initialLimit >= minLimit && initialLimit <= maxLimit)) {
    bad("initialLimit", `a number in [${minLimit}, ${maxLimit}]`, initialLimit)
  }
  const maxQueued = whole("maxQueued", options.maxQueued ?? 0, 0)
  const priorities = whole("priorities", options.priorities ?? 1, 1)
  const defaultPriority = whole("defaultPriority", options.defaultPriority ?? 0, 0)
  if (defaultPriority >= priorities) bad("defaultPriority", `a whole number in [0, ${priorities})`, defaultPriority)
  let maxWaitMillis = Number.POSITIVE_INFINITY
  if (options.maxWait !== undefined) {
    maxWaitMillis = InternalDuration.toMillis(options.maxWait)
    if (!(maxWaitMillis > 0)) bad("maxWait", "a duration > 0", options.maxWait)
  }
  const bounds = { minLimit, maxLimit, initialLimit }
  const algorithm = options.algorithm ?? gradient()
  let config: LimitState.LimitConfig
  if (algorithm._tag === "aimd") {
    const o = algorithm.options
    const backoffRatio = o.backoffRatio ?? 0.9
    if (!(backoffRatio > 0 && backoffRatio < 1)) bad("backoffRatio", "a number in (0, 1)", backoffRatio)
    const increase = o.increase ?? 1
    if (!(increase > 0 && Number.isFinite(increase))) bad("increase", "a number > 0", increase)
    let slowLatency = Number.POSITIVE_INFINITY
    if (o.slowLatency !== undefined) {
      slowLatency = InternalDuration.toMillis(o.slowLatency)
      if (!(slowLatency > 0)) bad("slowLatency", "a duration > 0", o.slowLatency)
    }
    config = { _tag: "aimd", ...bounds, backoffRatio, increase, slowLatency }
  } else {
    const o = algorithm.options
    const tolerance = o.tolerance ?? 1
    if (!(tolerance >= 1 && Number.isFinite(tolerance))) bad("tolerance", "a number >= 1", tolerance)
    const smoothing = o.smoothing ?? 0.5
    if (!(smoothing > 0 && smoothing <= 1)) bad("smoothing", "a number in (0, 1]", smoothing)
    const shortWindow = whole("shortWindow", o.shortWindow ?? 10, 1)
    const longWindow = whole("longWindow", o.longWindow ?? 600, 2)
    const q = o.queueSize
    if (typeof q === "number" && !(q >= 0 && Number.isFinite(q))) bad("queueSize", "a number >= 0", q)
    const queueSize = q === undefined ? LimitState.defaultQueueSize : typeof q === "number" ? () => q : q
    config = { _tag: "gradient", ...bounds, tolerance, smoothing, shortWindow, longWindow, queueSize }
  }
  return {
    name,
    config,
    maxQueued,
    maxWaitMillis,
    priorities,
    defaultPriority,
    isDrop: options.isDrop ?? defaultIsDrop
  }
}

// -----------------------------------------------------------------------------
// metrics
// -----------------------------------------------------------------------------

const limitKey = MetricKey.gauge("bulwark_adaptive_limit", {
  description: "The current limit of an adaptive concurrency limit"
})
const latencyKey = MetricKey.histogram(
  "bulwark_adaptive_limit_latency_ms",
  MetricBoundaries.exponential({ start: 1, factor: 2, count: 18 }),
  "Latency of the calls an adaptive concurrency limit measured, in milliseconds"
)
const averageKey = MetricKey.gauge("bulwark_adaptive_limit_latency_average_ms", {
  description: "Short-term and long-term latency averages of an adaptive concurrency limit, in milliseconds"
})

/**
 * The current limit of an adaptive limit (tagged `bulkhead`). Its calls in flight, queue and
 * rejections are counted by the bulkhead metrics (`Bulkhead.activeGauge`, `queuedGauge`,
 * `rejectedCounter`) under the same `bulkhead` tag.
 *
 * @since 0.1.0
 * @category metrics
 */
export const limitGauge: Metric.Metric.Gauge<number> = Metric.fromMetricKey(limitKey)

/**
 * The latency of each call an adaptive limit measured, in milliseconds (tagged `bulkhead`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const latencyHistogram: Metric.Metric.Histogram<number> = Metric.fromMetricKey(latencyKey)

/**
 * The latency averages an adaptive limit compares, in milliseconds (tagged `bulkhead` and
 * `term`: `short` or `long`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const latencyGauge: Metric.Metric.Gauge<number> = Metric.fromMetricKey(averageKey)

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

const unsafeMake = (resolved: Resolved): AdaptiveLimit => {
  const { config, maxQueued, maxWaitMillis, name, priorities } = resolved
  const queue = WaitQueue.makeQueue(priorities)
  let limits = LimitState.initial(config)
  let limit = LimitState.admitLimit(limits)
  let active = 0
  let queued = 0
  let admitted = 0
  let rejectedFull = 0
  let rejectedWait = 0

  const noTags: ReadonlyArray<never> = []
  const active$ = instance(Bulkhead.metricKeys.active, { bulkhead: name })
  const queued$ = instance(Bulkhead.metricKeys.queued, { bulkhead: name })
  const rejected = (reason: Bulkhead.RejectionReason, code: string) =>
    instance(Bulkhead.metricKeys.rejected, { bulkhead: name, reason, category: "resource", code })
  const rejectedFull$ = rejected("queue_full", "BULKHEAD_QUEUE_FULL")
  const rejectedWait$ = rejected("wait_timeout", "BULKHEAD_WAIT_TIMEOUT")
  const limit$ = instance(limitKey, { bulkhead: name })
  const latency$ = instance(latencyKey, { bulkhead: name })
  const short$ = instance(averageKey, { bulkhead: name, term: "short" })
  const long$ = instance(averageKey, { bulkhead: name, term: "long" })
  limit$.unsafeUpdate(limit, noTags)

  // preallocated, one per limit value: a fast rejection must not capture a stack per call
  const queueFull = new Map<number, Bulkhead.BulkheadRejectedError>()
  const rejectQueueFull = (): Bulkhead.BulkheadRejectedError => {
    rejectedFull++
    rejectedFull$.unsafeUpdate(1, noTags)
    let error = queueFull.get(limit)
    if (error === undefined) {
      error = new Bulkhead.BulkheadRejectedError({
        bulkhead: name,
        reason: "queue_full",
        maxConcurrent: limit,
        maxQueued
      })
      queueFull.set(limit, error)
    }
    return error
  }
  const rejectWait = (waitedMillis: number) => (): Bulkhead.BulkheadRejectedError => {
    rejectedWait++
    rejectedWait$.unsafeUpdate(1, noTags)
    return new Bulkhead.BulkheadRejectedError({
      bulkhead: name,
      reason: "wait_timeout",
      maxConcurrent: limit,
      maxQueued,
      maxWaitMillis: waitedMillis
    })
  }
  const onMaxWait = rejectWait(maxWaitMillis)
  const onDeadline = (left: number) => rejectWait(left)()

  /** Admits waiters, highest class first, while the limit has room. */
  const drain = (): void => {
    while (active < limit) {
      const waiter = WaitQueue.shift(queue)
      if (waiter === undefined) break
      queued--
      active++
      admitted++
      waiter.granted = true
      if (waiter.resume !== undefined) waiter.resume(WaitQueue.grantResume)
    }
    queued$.unsafeUpdate(queued, noTags)
    active$.unsafeUpdate(active, noTags)
  }

  const release = (): void => {
    active--
    drain()
  }

  const abandon = (waiter: WaitQueue.Waiter): void => {
    if (waiter.abandoned) return
    waiter.abandoned = true
    if (waiter.granted) {
      release()
    } else {
      WaitQueue.unlink(queue, waiter)
      queued--
      queued$.unsafeUpdate(queued, noTags)
    }
  }

  /** Feeds one measured call to the algorithm and applies the new limit. */
  const record = (sample: LimitState.Sample, now: number): void => {
    limits = LimitState.update(config, limits, sample, now)
    limit = LimitState.admitLimit(limits)
    latency$.unsafeUpdate(sample.latency, noTags)
    short$.unsafeUpdate(limits.shortLatency, noTags)
    long$.unsafeUpdate(limits.longLatency, noTags)
    limit$.unsafeUpdate(limit, noTags)
  }

  /** Runs an admitted call: measures it, feeds the algorithm, frees the slot. */
  const measured = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.clockWith((clock) => {
      const startedAt = clock.unsafeCurrentTimeMillis()
      const inflight = active
      return Effect.flatMap(Effect.exit(self), (exit) => {
        const now = clock.unsafeCurrentTimeMillis()
        const finish = (dropped: boolean | undefined) => {
          if (dropped !== undefined) record({ latency: now - startedAt, startedAt, inflight, dropped }, now)
          release()
          return exit
        }
        if (Exit.isSuccess(exit)) return finish(false)
        // interruption and defects say nothing about the dependency's capacity
        const failure = Cause.failureOption(exit.cause)
        if (Option.isNone(failure) || Cause.isDie(exit.cause)) return finish(undefined)
        return Effect.flatten(
          Effect.map(Failure.classify(failure.value), (classification) => finish(resolved.isDrop(classification)))
        )
      })
    })

  const run = <A, E, R>(
    self: Effect.Effect<A, E, R>,
    priority: number = resolved.defaultPriority
  ): Effect.Effect<A, E | Bulkhead.BulkheadRejectedError, R> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.suspend(() => {
        if (
          priority !== resolved.defaultPriority &&
          !(Number.isInteger(priority) && priority >= 0 && priority < priorities)
        ) {
          return Effect.dieMessage(
            `AdaptiveLimit "${name}": priority must be a whole number in [0, ${priorities}), got ${priority}`
          )
        }
        if (active < limit && queued === 0) {
          active++
          admitted++
          active$.unsafeUpdate(active, noTags)
          return measured(restore(self))
        }
        if (queued >= maxQueued) return Effect.fail(rejectQueueFull())
        const waiter = WaitQueue.makeWaiter(priority)
        WaitQueue.push(queue, waiter)
        queued++
        queued$.unsafeUpdate(queued, noTags)
        // the wait ends at maxWait or at the caller's deadline, whichever comes first
        const bounded = Deadline.boundWait(WaitQueue.await_(waiter, abandon), maxWaitMillis, onMaxWait, onDeadline)
        return Effect.matchCauseEffect(restore(bounded), {
          onFailure: (cause) => {
            abandon(waiter)
            return Effect.failCause(cause)
          },
          onSuccess: () => measured(restore(self))
        })
      })
    )

  return {
    name,
    run,
    protect: (self) => run(self),
    withPriority: (priority) => (self) => run(self, priority),
    state: Effect.sync(() => ({
      name,
      algorithm: config._tag,
      limit,
      estimate: limits.limit,
      minLimit: config.minLimit,
      maxLimit: config.maxLimit,
      active,
      queued,
      queuedByPriority: queue.lanes.map((lane) => lane.size),
      maxQueued,
      admitted,
      rejected: { queue_full: rejectedFull, wait_timeout: rejectedWait },
      samples: limits.samples,
      shortLatencyMillis: limits.shortLatency,
      longLatencyMillis: limits.longLatency
    }))
  }
}

/**
 * Builds an adaptive limit. Options that break a rule are a defect whose message names the
 * field.
 *
 * @example
 * ```ts
 * import { AdaptiveLimit } from "@bulwark/core"
 * import { Effect } from "effect"
 *
 * declare const search: Effect.Effect<ReadonlyArray<string>>
 *
 * const program = Effect.gen(function*() {
 *   const limiter = yield* AdaptiveLimit.make({
 *     name: "search",
 *     algorithm: AdaptiveLimit.gradient(),
 *     minLimit: 2,
 *     maxLimit: 200,
 *     maxQueued: 50,
 *     maxWait: "200 millis"
 *   })
 *   return yield* limiter.protect(search)
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<AdaptiveLimit> =>
  Effect.suspend(() => {
    let resolved: Resolved
    try {
      resolved = resolve(options)
    } catch (error) {
      return Effect.die(error)
    }
    return Effect.sync(() => unsafeMake(resolved))
  })

const wholeKey = (key: string, min: number) =>
  Config.option(
    Config.integer(key).pipe(
      Config.validate({ message: `must be a whole number >= ${min}`, validation: (n) => n >= min })
    )
  )

/**
 * The configuration of an adaptive limit read from `Config`: keys `ALGORITHM` (`aimd` or
 * `gradient`, with their default settings), `MIN_LIMIT`, `MAX_LIMIT`, `INITIAL_LIMIT`,
 * `MAX_QUEUED`, `MAX_WAIT` (a duration), `PRIORITIES`, all optional (the defaults of
 * {@link Options}). Nest it (`Config.nested(AdaptiveLimit.config, "SEARCH")`) to read
 * `SEARCH_MIN_LIMIT`… with the environment provider.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Options> = Config.all({
  algorithm: Config.option(Config.literal("aimd", "gradient")("ALGORITHM")),
  minLimit: wholeKey("MIN_LIMIT", 1),
  maxLimit: wholeKey("MAX_LIMIT", 1),
  initialLimit: wholeKey("INITIAL_LIMIT", 1),
  maxQueued: wholeKey("MAX_QUEUED", 0),
  maxWait: Config.option(
    Config.duration("MAX_WAIT").pipe(
      Config.validate({ message: "must be a duration > 0", validation: (d) => Duration.toMillis(d) > 0 })
    )
  ),
  priorities: wholeKey("PRIORITIES", 1)
}).pipe(
  Config.map((c): Options => ({
    algorithm: Option.isNone(c.algorithm) ? undefined : c.algorithm.value === "aimd" ? aimd() : gradient(),
    minLimit: Option.getOrUndefined(c.minLimit),
    maxLimit: Option.getOrUndefined(c.maxLimit),
    initialLimit: Option.getOrUndefined(c.initialLimit),
    maxQueued: Option.getOrUndefined(c.maxQueued),
    maxWait: Option.getOrUndefined(c.maxWait),
    priorities: Option.getOrUndefined(c.priorities)
  }))
)

const configKey = (field: string): string => field.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase()

/**
 * Registers a readiness check named `adaptive_limit:<name>` with the `Health` service, when one
 * is provided, until the scope closes: `degraded` while the limiter is saturated (the limit
 * reached and the queue full, so the next call would be rejected), `up` otherwise; the details
 * carry the limit, the occupancy, the latency averages and the rejection counts.
 *
 * @since 0.1.0
 * @category health
 */
export const registerHealth = (limiter: AdaptiveLimit): Effect.Effect<void, never, Scope.Scope> =>
  Health.registerIfPresent(
    `adaptive_limit:${limiter.name}`,
    Effect.map(limiter.state, (state): Health.ComponentHealth => ({
      status: state.active >= state.limit && state.queued >= state.maxQueued ? "degraded" : "up",
      details: {
        algorithm: state.algorithm,
        limit: state.limit,
        minLimit: state.minLimit,
        maxLimit: state.maxLimit,
        active: state.active,
        queued: state.queued,
        maxQueued: state.maxQueued,
        shortLatencyMillis: Math.round(state.shortLatencyMillis),
        longLatencyMillis: Math.round(state.longLatencyMillis),
        rejectedQueueFull: state.rejected.queue_full,
        rejectedWaitTimeout: state.rejected.wait_timeout
      }
    })),
    { kind: "readiness" }
  )

/**
 * Provides the {@link AdaptiveLimit} service, with its readiness check unless `health: false`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<AdaptiveLimit> =>
  Layer.scoped(
    AdaptiveLimit,
    Effect.flatMap(
      make(options),
      (limiter) => options.health === false ? Effect.succeed(limiter) : Effect.as(registerHealth(limiter), limiter)
    )
  )

/**
 * Provides the {@link AdaptiveLimit} service from `Config` (see {@link config}), with its
 * readiness check; a value that breaks a rule fails the Layer with a `ConfigError` naming the
 * key (`MAX_LIMIT`, …).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  name: string,
  options: Config.Config<Options> = config
): Layer.Layer<AdaptiveLimit, ConfigError.ConfigError> =>
  Layer.scoped(
    AdaptiveLimit,
    Effect.flatMap(options, (read) => {
      let resolved: Resolved
      try {
        resolved = resolve({ ...read, name })
      } catch (error) {
        return error instanceof InvalidOption
          ? Effect.fail(ConfigError.InvalidData([configKey(error.field)], error.message))
          : Effect.die(error)
      }
      const limiter = unsafeMake(resolved)
      return Effect.as(registerHealth(limiter), limiter)
    })
  )

/**
 * A policy function that runs its effect under the adaptive limit held by `tag`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const protect =
  <Id>(tag: Context.Tag<Id, AdaptiveLimit>) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | Bulkhead.BulkheadRejectedError, R | Id> =>
    Effect.flatMap(tag, (limiter) => limiter.protect(self))
