/**
 * A bulkhead: a limit on how many calls to one dependency run at once, with a bounded waiting
 * queue in front of it. Work beyond both is rejected at once with a typed
 * {@link BulkheadRejectedError}, so an overloaded dependency sheds load instead of piling up
 * fibers. Waiters can have a deadline and a priority class: under load, higher classes are
 * admitted first, FIFO within a class.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricKey from "effect/MetricKey"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Deadline from "./Deadline.js"
import * as Failure from "./Failure.js"
import * as Health from "./Health.js"
import * as BulkheadState from "./internal/bulkheadState.js"
import * as InternalConfig from "./internal/config.js"
import * as InternalDuration from "./internal/duration.js"
import * as Fusion from "./internal/fusion.js"
import { instance } from "./internal/metric.js"
import * as Synchronous from "./internal/synchronous.js"
import * as WaitQueue from "./internal/waitQueue.js"

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * Why a bulkhead turned a call away: every slot was busy and the queue was full, or the call
 * waited in the queue longer than `maxWait`.
 *
 * @since 0.1.0
 * @category models
 */
export const RejectionReason = Schema.Literal("queue_full", "wait_timeout")

/**
 * @since 0.1.0
 * @category models
 */
export type RejectionReason = typeof RejectionReason.Type

/**
 * A bulkhead rejected the call. It carries the bulkhead's name, the reason and its limits.
 *
 * Classification: category `resource`, code `BULKHEAD_QUEUE_FULL` or `BULKHEAD_WAIT_TIMEOUT`,
 * severity `minor`, strategy `failover`, **not retryable** (retrying shed load adds to the
 * overload it protects against; a fallback is the useful answer) and it **does not trip a
 * circuit breaker** (the dependency did not fail; the caller's own limit did its job).
 *
 * @since 0.1.0
 * @category errors
 */
export class BulkheadRejectedError extends Schema.TaggedError<BulkheadRejectedError>()("BulkheadRejectedError", {
  bulkhead: Schema.String,
  reason: RejectionReason,
  maxConcurrent: Schema.Number,
  maxQueued: Schema.Number,
  maxWaitMillis: Schema.optional(Schema.Number)
}) {
  override get message(): string {
    return this.reason === "queue_full"
      ? `Bulkhead "${this.bulkhead}" rejected the call: ${this.maxConcurrent} calls running and ${this.maxQueued} waiting (queue full)`
      : `Bulkhead "${this.bulkhead}" rejected the call: no slot freed within ${
        this.maxWaitMillis ?? 0
      }ms (wait timeout)`
  }
  get [Failure.RuleKey](): Failure.RuleObject {
    return {
      category: "resource",
      code: this.reason === "queue_full" ? "BULKHEAD_QUEUE_FULL" : "BULKHEAD_WAIT_TIMEOUT",
      severity: "minor",
      strategy: "failover",
      retryable: false,
      maxRetries: 0,
      tripsBreaker: false
    }
  }
}

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * Options for a bulkhead.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The bulkhead's name, used in errors, metrics and logs. Default: `"default"`. */
  readonly name?: string | undefined
  /** How many calls may run at once; a whole number >= 1. Default: `10`. */
  readonly maxConcurrent?: number | undefined
  /** How many calls may wait for a slot; a whole number >= 0 (0: no queue). Default: `0`. */
  readonly maxQueued?: number | undefined
  /**
   * How long a call may wait in the queue before it is rejected with reason `wait_timeout`.
   * Default: no limit (it waits until a slot frees or it is interrupted).
   */
  readonly maxWait?: Duration.DurationInput | undefined
  /**
   * How many priority classes the queue has; a whole number in `[1, 1000]` (see
   * {@link maxPriorities}). Classes are numbered `0 … priorities - 1` and the highest number is
   * admitted first. Default: `1`.
   */
  readonly priorities?: number | undefined
  /** The class of a call that names none; in `[0, priorities)`. Default: `0` (the lowest). */
  readonly defaultPriority?: number | undefined
  /**
   * With the Layers: register a readiness check named `bulkhead:<name>` with the `Health`
   * service, when one is provided (see {@link registerHealth}). Default: `true`.
   */
  readonly health?: boolean | undefined
}

/**
 * The options with every default filled in.
 *
 * @since 0.1.0
 * @category models
 */
export interface ResolvedOptions {
  readonly name: string
  readonly maxConcurrent: number
  readonly maxQueued: number
  readonly maxWait: Option.Option<Duration.Duration>
  readonly priorities: number
  readonly defaultPriority: number
}

/**
 * A snapshot of a bulkhead: what runs, what waits (per priority class), how much was rejected.
 *
 * @since 0.1.0
 * @category models
 */
export interface State {
  readonly name: string
  readonly active: number
  readonly queued: number
  readonly queuedByPriority: ReadonlyArray<number>
  readonly maxConcurrent: number
  readonly maxQueued: number
  readonly admitted: number
  readonly rejected: { readonly queue_full: number; readonly wait_timeout: number }
}

/**
 * A bulkhead for one dependency.
 *
 * @since 0.1.0
 * @category models
 */
export interface Bulkhead {
  readonly options: ResolvedOptions
  /** Runs `self` in a slot of the bulkhead, with the default priority. A policy function. */
  readonly protect: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | BulkheadRejectedError, R>
  /** Runs `self` in a slot of the bulkhead; `priority` picks its queue class. */
  readonly run: <A, E, R>(
    self: Effect.Effect<A, E, R>,
    priority?: number
  ) => Effect.Effect<A, E | BulkheadRejectedError, R>
  /** A policy function that runs its effect with the given priority class. */
  readonly withPriority: (
    priority: number
  ) => <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | BulkheadRejectedError, R>
  /** The current state. */
  readonly state: Effect.Effect<State>
}

/**
 * The bulkhead service, for a program that needs only one. Use {@link Tag} for one bulkhead per
 * dependency.
 *
 * @since 0.1.0
 * @category tags
 */
export const Bulkhead: Context.Tag<Bulkhead, Bulkhead> = Context.GenericTag<Bulkhead>("@bulwark/core/Bulkhead")

// -----------------------------------------------------------------------------
// options
// -----------------------------------------------------------------------------

const isWhole = (n: unknown, min: number): n is number => Number.isInteger(n) && (n as number) >= min

/**
 * The most priority classes a bulkhead can have. A queue needs a handful of classes
 * (interactive, batch, background…); the bound keeps the memory a bulkhead holds per class small
 * and lets finding the highest waiting class take constant time.
 *
 * @since 0.1.0
 * @category models
 */
export const maxPriorities = 1000

const describeValue = (value: unknown): string => {
  if (typeof value === "string") return JSON.stringify(value)
  try {
    return String(value)
  } catch {
    return typeof value
  }
}

/**
 * Fills in defaults and checks the rules; returns the field and the broken rule on failure.
 */
const resolve = (
  options: Options
): Either.Either<ResolvedOptions, { readonly field: string; readonly message: string }> => {
  const name = options.name ?? "default"
  const maxConcurrent = options.maxConcurrent ?? 10
  const maxQueued = options.maxQueued ?? 0
  const priorities = options.priorities ?? 1
  const defaultPriority = options.defaultPriority ?? 0
  const bad = (field: string, rule: string, value: unknown) =>
    Either.left({ field, message: `Bulkhead "${name}": ${field} must be ${rule}, got ${describeValue(value)}` })
  if (typeof name !== "string") return bad("name", "a string", name)
  if (!isWhole(maxConcurrent, 1)) return bad("maxConcurrent", "a whole number >= 1", maxConcurrent)
  if (!isWhole(maxQueued, 0)) return bad("maxQueued", "a whole number >= 0", maxQueued)
  if (!isWhole(priorities, 1) || priorities > maxPriorities) {
    return bad("priorities", `a whole number in [1, ${maxPriorities}]`, priorities)
  }
  if (!isWhole(defaultPriority, 0) || defaultPriority >= priorities) {
    return bad("defaultPriority", `a whole number in [0, ${priorities})`, defaultPriority)
  }
  let maxWait: Option.Option<Duration.Duration> = Option.none()
  if (options.maxWait !== undefined) {
    const millis = InternalDuration.toMillis(options.maxWait)
    if (!(millis > 0)) return bad("maxWait", "a duration > 0", options.maxWait)
    maxWait = Option.some(Duration.millis(millis)) // infinite millis make Duration.infinity
  }
  return Either.right({ name, maxConcurrent, maxQueued, maxWait, priorities, defaultPriority })
}

// -----------------------------------------------------------------------------
// metrics
// -----------------------------------------------------------------------------

const activeKey = MetricKey.gauge("bulwark_bulkhead_active", { description: "Calls running inside the bulkhead" })
const queuedKey = MetricKey.gauge("bulwark_bulkhead_queued", {
  description: "Calls waiting for a slot of the bulkhead"
})
const rejectedKey = MetricKey.counter("bulwark_bulkhead_rejected_total", {
  description: "Calls the bulkhead rejected, by reason",
  incremental: true
})

/**
 * Calls running in a bulkhead (tagged `bulkhead`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const activeGauge: Metric.Metric.Gauge<number> = Metric.fromMetricKey(activeKey)

/**
 * Calls waiting in a bulkhead's queue (tagged `bulkhead`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const queuedGauge: Metric.Metric.Gauge<number> = Metric.fromMetricKey(queuedKey)

/**
 * Calls a bulkhead rejected, tagged in this order: `bulkhead`, `reason`, `category`, `code`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const rejectedCounter: Metric.Metric.Counter<number> = Metric.fromMetricKey(rejectedKey)

/**
 * The keys of the bulkhead metrics, for the modules that report under them (`AdaptiveLimit`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const metricKeys = { active: activeKey, queued: queuedKey, rejected: rejectedKey } as const

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

/** The metrics of the bulkheads of one name. */
interface Instruments {
  readonly active: Metric.Metric.Gauge<number>
  readonly queued: Metric.Metric.Gauge<number>
  readonly rejectedFull: Metric.Metric.Counter<number>
  readonly rejectedWait: Metric.Metric.Counter<number>
}

/**
 * The metrics of each name, resolved once and reused by every bulkhead of that name (a test that
 * makes a bulkhead per run, a registry that makes one per key): a metric resolved afresh looks
 * its key up in the metric registry on its first update. Bounded: past the bound the cache
 * starts over (the registry itself keeps every key it has seen).
 */
const instruments = new Map<string, Instruments>()
const maxInstruments = 1024

const instrumentsOf = (name: string): Instruments => {
  let found = instruments.get(name)
  if (found === undefined) {
    if (instruments.size >= maxInstruments) instruments.clear()
    found = {
      active: instance(activeKey, { bulkhead: name }),
      queued: instance(queuedKey, { bulkhead: name }),
      rejectedFull: instance(rejectedKey, {
        bulkhead: name,
        reason: "queue_full",
        category: "resource",
        code: "BULKHEAD_QUEUE_FULL"
      }),
      rejectedWait: instance(rejectedKey, {
        bulkhead: name,
        reason: "wait_timeout",
        category: "resource",
        code: "BULKHEAD_WAIT_TIMEOUT"
      })
    }
    instruments.set(name, found)
  }
  return found
}

const unsafeMake = (options: ResolvedOptions): Bulkhead => {
  const { defaultPriority, maxConcurrent, maxQueued, name, priorities } = options
  const state = BulkheadState.make(options)

  const {
    active: active$,
    queued: queued$,
    rejectedFull: rejectedFull$,
    rejectedWait: rejectedWait$
  } = instrumentsOf(name)
  const noTags: ReadonlyArray<never> = []

  // made on the first rejection (most bulkheads never reject one), then shared by every
  // rejection: a fast rejection must not capture a stack per call
  let queueFull:
    | { readonly fail: Effect.Effect<never, BulkheadRejectedError>; readonly cause: Cause.Cause<never> }
    | undefined = undefined
  const queueFullRejection = () => {
    if (queueFull === undefined) {
      const error = new BulkheadRejectedError({ bulkhead: name, reason: "queue_full", maxConcurrent, maxQueued })
      queueFull = { fail: Effect.fail(error), cause: Cause.fail(error) as Cause.Cause<never> }
    }
    return queueFull
  }
  const maxWaitMillis = Option.isSome(options.maxWait)
    ? Duration.toMillis(options.maxWait.value)
    : Number.POSITIVE_INFINITY
  let waitTimeout: BulkheadRejectedError | undefined = undefined

  /** Wakes the waiter a freed slot went to, if any, and reports the new occupancy. */
  const handOver = (waiter: WaitQueue.Waiter | undefined): void => {
    if (waiter === undefined) {
      active$.unsafeUpdate(state.active, noTags)
      return
    }
    queued$.unsafeUpdate(state.queued, noTags)
    if (waiter.resume !== undefined) waiter.resume(WaitQueue.grantResume)
  }

  const release = (): void => handOver(BulkheadState.release(state))

  /** The waiter gives up (interrupted or timed out); idempotent (see `BulkheadState.abandon`). */
  const abandon = (waiter: WaitQueue.Waiter): void => {
    if (waiter.abandoned) return
    const granted = waiter.granted
    const next = BulkheadState.abandon(state, waiter)
    if (granted) handOver(next)
    else queued$.unsafeUpdate(state.queued, noTags)
  }

  // called only when maxWait is set
  const onWaitTimeout = (): BulkheadRejectedError => {
    BulkheadState.rejectWaitTimeout(state)
    rejectedWait$.unsafeUpdate(1, noTags)
    return waitTimeout ??= new BulkheadRejectedError({
      bulkhead: name,
      reason: "wait_timeout",
      maxConcurrent,
      maxQueued,
      maxWaitMillis
    })
  }
  const onDeadline = (left: number): BulkheadRejectedError => {
    BulkheadState.rejectWaitTimeout(state)
    rejectedWait$.unsafeUpdate(1, noTags)
    return new BulkheadRejectedError({
      bulkhead: name,
      reason: "wait_timeout",
      maxConcurrent,
      maxQueued,
      maxWaitMillis: left
    })
  }

  /**
   * Builds `run`. With `report`, every typed failure the bulkhead lets out (the call's or its
   * own rejection) is also reported to it, from the handlers that run anyway (see
   * `internal/fusion.ts`: how `Policy.make` records the failures its call raised).
   */
  const makeRun = (report: ((cause: Cause.Cause<unknown>) => void) | undefined) => {
    // one handler for both outcomes of an admitted call, shared by every call: it gives the slot
    // back and passes the outcome on (no `Exit` built, no `flatMap` after it)
    const releasing = {
      onFailure: report === undefined
        ? (cause: Cause.Cause<unknown>) => {
          release()
          return Effect.failCause(cause)
        }
        : (cause: Cause.Cause<unknown>) => {
          release()
          report(cause)
          return Effect.failCause(cause)
        },
      onSuccess: (value: unknown) => {
        release()
        return Effect.succeed(value)
      }
    }
    const runAdmitted = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
      Effect.matchCauseEffect(self, releasing) as Effect.Effect<A, E, R>
    const rejectQueueFull = report === undefined
      ? () => queueFullRejection().fail
      : () => {
        const rejection = queueFullRejection()
        report(rejection.cause)
        return rejection.fail
      }

    /** The call found every slot busy: queue it, or reject it when the queue is full. */
    const queueUp = <A, E, R>(
      self: Effect.Effect<A, E, R>,
      priority: number,
      restore: <AX, EX, RX>(effect: Effect.Effect<AX, EX, RX>) => Effect.Effect<AX, EX, RX>
    ): Effect.Effect<A, E | BulkheadRejectedError, R> => {
      const waiter = BulkheadState.enqueue(state, priority)
      if (waiter === undefined) {
        rejectedFull$.unsafeUpdate(1, noTags)
        return rejectQueueFull()
      }
      queued$.unsafeUpdate(state.queued, noTags)
      // the wait ends at maxWait or at the caller's deadline, whichever comes first
      const bounded = Deadline.boundWait(WaitQueue.await_(waiter, abandon), maxWaitMillis, onWaitTimeout, onDeadline)
      // the wait can fail without its canceler running: interrupted before it registered (the
      // caller yielded after queueing), or timed out just as a slot was handed over; the place
      // or the slot is given back here either way
      return Effect.matchCauseEffect(restore(bounded), {
        onFailure: (cause) => {
          abandon(waiter)
          if (report !== undefined) report(cause)
          return Effect.failCause(cause)
        },
        onSuccess: () => runAdmitted(restore(self))
      })
    }

    return <A, E, R>(
      self: Effect.Effect<A, E, R>,
      priority: number = defaultPriority
    ): Effect.Effect<A, E | BulkheadRejectedError, R> =>
      // the mask's function runs when the call starts, already uninterruptible: the slot is taken
      // and its release registered before any interruption can land, and the work itself runs
      // with the caller's interruptibility
      Effect.uninterruptibleMask((restore) => {
        if (
          priority !== defaultPriority &&
          !(Number.isInteger(priority) && priority >= 0 && priority < priorities)
        ) {
          return Effect.dieMessage(
            `Bulkhead "${name}": priority must be a whole number in [0, ${priorities}), got ${priority}`
          )
        }
        if (BulkheadState.tryAcquire(state)) {
          active$.unsafeUpdate(state.active, noTags)
          return runAdmitted(restore(self))
        }
        return queueUp(self, priority, restore)
      })
  }

  const run = makeRun(undefined)
  const protect = Fusion.register(<A, E, R>(self: Effect.Effect<A, E, R>) => run(self), (report) => {
    const reporting = makeRun(report)
    return (self) => reporting(self)
  })
  // a policy holding this bulkhead and a breaker takes an uncontended slot in the step where the
  // breaker admits the call, and gives it back from its one outcome handler (internal/fusion.ts)
  Fusion.registerBulkhead(protect, {
    free: () => state.active < maxConcurrent,
    acquire: () => {
      BulkheadState.tryAcquire(state)
      active$.unsafeUpdate(state.active, noTags)
    },
    release
  })

  const readState = (): State => ({
    name,
    active: state.active,
    queued: state.queued,
    queuedByPriority: BulkheadState.queuedByPriority(state),
    maxConcurrent,
    maxQueued,
    admitted: state.admitted,
    rejected: { queue_full: state.rejectedQueueFull, wait_timeout: state.rejectedWaitTimeout }
  })

  return {
    options,
    run,
    protect,
    withPriority: (priority) => (self) => run(self, priority),
    state: Synchronous.register(Effect.sync(readState), readState)
  }
}

/**
 * Builds a bulkhead. Options that break a rule are a defect whose message names the field.
 *
 * @example
 * ```ts
 * import { Bulkhead } from "@bulwark/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const bulkhead = yield* Bulkhead.make({ name: "payments", maxConcurrent: 4, maxQueued: 16, maxWait: "2 seconds" })
 *   return yield* bulkhead.protect(Effect.succeed("charged"))
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Bulkhead> =>
  Effect.suspend(() => {
    const resolved = resolve(options)
    return Either.isLeft(resolved)
      ? Effect.dieMessage(resolved.left.message)
      : Effect.sync(() => unsafeMake(resolved.right))
  })

const wholeKey = (key: string, min: number, max = Number.MAX_SAFE_INTEGER) =>
  Config.option(
    InternalConfig.integer(key).pipe(
      Config.validate({
        message: max === Number.MAX_SAFE_INTEGER
          ? `must be a whole number >= ${min}`
          : `must be a whole number in [${min}, ${max}]`,
        validation: (n) => n >= min && n <= max
      })
    )
  )

/**
 * The configuration of a bulkhead read from `Config`: keys `MAX_CONCURRENT`, `MAX_QUEUED`,
 * `MAX_WAIT` (a duration), `PRIORITIES` (at most {@link maxPriorities}), `DEFAULT_PRIORITY`
 * (below `PRIORITIES`), all optional (the defaults of {@link Options}); a key that is set but
 * empty is an error, not `0`. Nest it (`Config.nested(Bulkhead.config, "PAYMENTS")`) to read
 * `PAYMENTS_MAX_CONCURRENT`… with the environment provider.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Options> = Config.all({
  maxConcurrent: wholeKey("MAX_CONCURRENT", 1),
  maxQueued: wholeKey("MAX_QUEUED", 0),
  maxWait: Config.option(
    Config.duration("MAX_WAIT").pipe(
      Config.validate({ message: "must be a duration > 0", validation: (d) => Duration.toMillis(d) > 0 })
    )
  ),
  priorities: wholeKey("PRIORITIES", 1, maxPriorities),
  defaultPriority: wholeKey("DEFAULT_PRIORITY", 0)
}).pipe(
  // checked here rather than when the bulkhead is built, so that the error's key carries the
  // prefix the config is nested under (`PAYMENTS_DEFAULT_PRIORITY`)
  Config.mapOrFail((c): Either.Either<Options, ConfigError.ConfigError> => {
    const priorities = Option.getOrElse(c.priorities, () => 1)
    if (Option.isSome(c.defaultPriority) && c.defaultPriority.value >= priorities) {
      return Either.left(
        ConfigError.InvalidData(
          ["DEFAULT_PRIORITY"],
          `must be a whole number below PRIORITIES (${priorities}), got ${c.defaultPriority.value}`
        )
      )
    }
    return Either.right({
      maxConcurrent: Option.getOrUndefined(c.maxConcurrent),
      maxQueued: Option.getOrUndefined(c.maxQueued),
      maxWait: Option.getOrUndefined(c.maxWait),
      priorities: Option.getOrUndefined(c.priorities),
      defaultPriority: Option.getOrUndefined(c.defaultPriority)
    })
  })
)

const configKey = (field: string): string => field.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase()

const fromConfig = (name: string, options: Config.Config<Options>): Effect.Effect<Bulkhead, ConfigError.ConfigError> =>
  Effect.flatMap(options, (read) => {
    const resolved = resolve({ ...read, name })
    return Either.isLeft(resolved)
      ? Effect.fail(ConfigError.InvalidData([configKey(resolved.left.field)], resolved.left.message))
      : Effect.sync(() => unsafeMake(resolved.right))
  })

/**
 * Registers a readiness check named `bulkhead:<name>` with the `Health` service, when one is
 * provided, until the scope closes: `degraded` while the bulkhead is saturated (every slot
 * busy and the queue full, so the next call would be rejected), `up` otherwise; the details
 * carry the occupancy, the limits and the rejection counts. The Layers do this unless
 * `health: false`.
 *
 * @since 0.1.0
 * @category health
 */
export const registerHealth = (bulkhead: Bulkhead): Effect.Effect<void, never, Scope.Scope> =>
  Health.registerIfPresent(
    `bulkhead:${bulkhead.options.name}`,
    Effect.map(bulkhead.state, (state): Health.ComponentHealth => ({
      status: state.active >= state.maxConcurrent && state.queued >= state.maxQueued ? "degraded" : "up",
      details: {
        active: state.active,
        queued: state.queued,
        maxConcurrent: state.maxConcurrent,
        maxQueued: state.maxQueued,
        rejectedQueueFull: state.rejected.queue_full,
        rejectedWaitTimeout: state.rejected.wait_timeout
      }
    })),
    { kind: "readiness" }
  )

const withHealth = (health: boolean | undefined) => (bulkhead: Bulkhead) =>
  health === false ? Effect.succeed(bulkhead) : Effect.as(registerHealth(bulkhead), bulkhead)

/**
 * Provides the {@link Bulkhead} service.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Bulkhead> =>
  Layer.scoped(Bulkhead, Effect.flatMap(make(options), withHealth(options.health)))

/**
 * Provides the {@link Bulkhead} service from `Config` (see {@link config}); a value that breaks
 * a rule fails the Layer with a `ConfigError` naming the key.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  name: string,
  options: Config.Config<Options> = config
): Layer.Layer<Bulkhead, ConfigError.ConfigError> =>
  Layer.scoped(Bulkhead, Effect.flatMap(fromConfig(name, options), withHealth(true)))

/**
 * The class {@link Tag} returns: a Tag for one dependency's bulkhead, with its Layers.
 *
 * @since 0.1.0
 * @category models
 */
export interface TagClass<Self, Name extends string>
  extends Context.TagClass<Self, `@bulwark/core/Bulkhead/${Name}`, Bulkhead>
{
  /** The dependency's name; also the bulkhead's name. */
  readonly bulkheadName: Name
  /** Provides this bulkhead. */
  readonly layer: (options?: Omit<Options, "name">) => Layer.Layer<Self>
  /**
   * Provides this bulkhead from `Config`; by default {@link config} nested under the name,
   * upper-cased with every character other than letters and digits turned to `_`
   * (`payments-api` → `PAYMENTS_API_MAX_CONCURRENT`… with the environment provider).
   */
  readonly layerConfig: (options?: Config.Config<Options>) => Layer.Layer<Self, ConfigError.ConfigError>
  /** A policy function that runs its effect in this bulkhead (taken from the context). */
  readonly protect: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | BulkheadRejectedError, R | Self>
}

/**
 * Declares a Tag for one dependency's bulkhead, so that each dependency gets its own limits.
 *
 * @example
 * ```ts
 * import { Bulkhead } from "@bulwark/core"
 * import { Effect } from "effect"
 *
 * class PaymentsBulkhead extends Bulkhead.Tag("payments")<PaymentsBulkhead>() {}
 *
 * const charge = Effect.succeed("charged").pipe(PaymentsBulkhead.protect)
 * const main = charge.pipe(Effect.provide(PaymentsBulkhead.layer({ maxConcurrent: 4, maxQueued: 16 })))
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export const Tag = <const Name extends string>(dependency: Name) => <Self>(): TagClass<Self, Name> => {
  const tag = Context.Tag(`@bulwark/core/Bulkhead/${dependency}`)<Self, Bulkhead>()
  const Class = class extends tag {
    static readonly bulkheadName = dependency
    static layer(options: Omit<Options, "name"> = {}): Layer.Layer<Self> {
      return Layer.scoped(tag, Effect.flatMap(make({ ...options, name: dependency }), withHealth(options.health)))
    }
    static layerConfig(
      options: Config.Config<Options> = InternalConfig.nested(InternalConfig.prefixOf(dependency), config)
    ): Layer.Layer<Self, ConfigError.ConfigError> {
      return Layer.scoped(tag, Effect.flatMap(fromConfig(dependency, options), withHealth(true)))
    }
    static protect<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | BulkheadRejectedError, R | Self> {
      return Effect.flatMap(tag, (bulkhead) => bulkhead.protect(self))
    }
  }
  return Class as unknown as TagClass<Self, Name>
}

/**
 * A policy function that runs its effect in the bulkhead held by `tag` (use it with the
 * {@link Bulkhead} service or a per-dependency {@link Tag}).
 *
 * @since 0.1.0
 * @category combinators
 */
export const protect =
  <Id>(tag: Context.Tag<Id, Bulkhead>) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | BulkheadRejectedError, R | Id> =>
    Effect.flatMap(tag, (bulkhead) => bulkhead.protect(self))
