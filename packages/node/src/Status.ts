/**
 * What the process is made of, for people and dashboards: the breakers, bulkheads, retry budgets
 * and supervisors it tracks, read into one serialisable snapshot (`/status`, the dashboard).
 *
 * Components are tracked explicitly (`Status.trackBreaker(breaker)` …) for the lifetime of a
 * scope; a `FiberSupervisor` in the context of {@link layer} is tracked on its own.
 *
 * @since 0.1.0
 */
import { type Bulkhead, CircuitBreaker, FiberSupervisor, Health, type RetryBudget } from "@bulwark/core"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"

// -----------------------------------------------------------------------------
// schemas
// -----------------------------------------------------------------------------

/**
 * One transition of a breaker, as kept for the dashboard.
 *
 * @since 0.1.0
 * @category models
 */
export const BreakerTransition = Schema.Struct({
  from: CircuitBreaker.State,
  to: CircuitBreaker.State,
  at: Schema.Number
}).annotations({ identifier: "BreakerTransition" })

/**
 * A breaker: its state, its window rates, when it admits calls again and its recent transitions.
 * `retryAfterMillis` is set while the breaker is open; `null` otherwise (an isolated breaker
 * stays open until released).
 *
 * @since 0.1.0
 * @category models
 */
export const BreakerStatus = Schema.Struct({
  name: Schema.String,
  state: CircuitBreaker.State,
  failureRate: Schema.Number,
  slowCallRate: Schema.Number,
  calls: Schema.Number,
  failures: Schema.Number,
  rejections: Schema.Number,
  consecutiveFailures: Schema.Number,
  retryAfterMillis: Schema.NullOr(Schema.Number),
  transitions: Schema.Array(BreakerTransition)
}).annotations({ identifier: "BreakerStatus" })

/**
 * @since 0.1.0
 * @category models
 */
export type BreakerStatus = typeof BreakerStatus.Type

/**
 * A bulkhead: what runs, what waits, what it rejected (the core's `Bulkhead.State`).
 *
 * @since 0.1.0
 * @category models
 */
export const BulkheadStatus = Schema.Struct({
  name: Schema.String,
  active: Schema.Number,
  queued: Schema.Number,
  queuedByPriority: Schema.Array(Schema.Number),
  maxConcurrent: Schema.Number,
  maxQueued: Schema.Number,
  admitted: Schema.Number,
  rejected: Schema.Struct({ queue_full: Schema.Number, wait_timeout: Schema.Number })
}).annotations({ identifier: "BulkheadStatus" })

/**
 * A retry budget (the core's `RetryBudget.Snapshot`).
 *
 * @since 0.1.0
 * @category models
 */
export const RetryBudgetStatus = Schema.Struct({
  name: Schema.String,
  calls: Schema.Number,
  retries: Schema.Number,
  available: Schema.Number
}).annotations({ identifier: "RetryBudgetStatus" })

/**
 * A watched resource (see `ResourceMonitor`): its usage against its limit and its level.
 *
 * @since 0.1.0
 * @category models
 */
export const ResourceStatus = Schema.Struct({
  resource: Schema.String,
  level: Schema.Literal("ok", "warning", "degraded", "critical"),
  ratio: Schema.Number,
  used: Schema.Number,
  limit: Schema.Number
}).annotations({ identifier: "ResourceStatus" })

/**
 * @since 0.1.0
 * @category models
 */
export type ResourceStatus = typeof ResourceStatus.Type

/**
 * The whole picture: health (when a `Health` registry is provided), breakers, bulkheads, retry
 * budgets and the supervisor tree with per-program metrics.
 *
 * @since 0.1.0
 * @category models
 */
export const StatusSnapshot = Schema.Struct({
  service: Schema.String,
  checkedAt: Schema.Date,
  health: Schema.optional(Health.HealthReport),
  breakers: Schema.Array(BreakerStatus),
  bulkheads: Schema.Array(BulkheadStatus),
  retryBudgets: Schema.Array(RetryBudgetStatus),
  supervisors: Schema.Array(FiberSupervisor.Snapshot),
  resources: Schema.Array(ResourceStatus)
}).annotations({ identifier: "StatusSnapshot" })

/**
 * @since 0.1.0
 * @category models
 */
export type StatusSnapshot = typeof StatusSnapshot.Type

/**
 * Encodes a snapshot to its JSON shape (dates as ISO-8601 strings).
 *
 * @since 0.1.0
 * @category serialisation
 */
export const encodeSnapshot: (snapshot: StatusSnapshot) => typeof StatusSnapshot.Encoded = Schema.encodeSync(
  StatusSnapshot
)

// -----------------------------------------------------------------------------
// service
// -----------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category models
 */
export interface Service {
  readonly service: string
  /** Tracks a breaker until the scope closes (its transitions are kept for the dashboard). */
  readonly trackBreaker: (breaker: CircuitBreaker.CircuitBreaker) => Effect.Effect<void, never, Scope.Scope>
  /** Tracks a bulkhead until the scope closes. */
  readonly trackBulkhead: (bulkhead: Bulkhead.Bulkhead) => Effect.Effect<void, never, Scope.Scope>
  /** Tracks a retry budget until the scope closes. */
  readonly trackRetryBudget: (budget: RetryBudget.RetryBudget) => Effect.Effect<void, never, Scope.Scope>
  /** Tracks a supervisor until the scope closes. */
  readonly trackSupervisor: (supervisor: FiberSupervisor.Service) => Effect.Effect<void, never, Scope.Scope>
  /** Tracks watched resources (a `ResourceMonitor` does this by itself) until the scope closes. */
  readonly trackResources: (
    resources: Effect.Effect<ReadonlyArray<ResourceStatus>>
  ) => Effect.Effect<void, never, Scope.Scope>
  /** Tells the followers of {@link Service.changes} that something worth showing at once happened. */
  readonly notify: Effect.Effect<void>
  /** Reads everything now. */
  readonly snapshot: Effect.Effect<StatusSnapshot>
  /**
   * A tick for every event worth showing at once (a breaker transition, a program's status
   * change). Counters that move on every call (bulkhead occupancy) are not pushed: read them on
   * an interval.
   */
  readonly changes: Stream.Stream<number>
}

/**
 * The status registry.
 *
 * @since 0.1.0
 * @category tags
 */
export class Status extends Context.Tag("@bulwark/node/Status")<Status, Service>() {}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The service's name in the snapshot and on the dashboard. Default: `"bulwark"`. */
  readonly service?: string | undefined
  /** How many recent transitions are kept per breaker. An integer >= 1. Default: 10. */
  readonly transitionsKept?: number | undefined
}

interface TrackedBreaker {
  readonly breaker: CircuitBreaker.CircuitBreaker
  readonly transitions: Array<typeof BreakerTransition.Type>
}

const removeOnClose = <A>(list: Array<A>, item: A): Effect.Effect<void, never, Scope.Scope> =>
  Effect.zipRight(
    Effect.sync(() => list.push(item)),
    Effect.addFinalizer(() =>
      Effect.sync(() => {
        const i = list.indexOf(item)
        if (i >= 0) list.splice(i, 1)
      })
    )
  )

/**
 * Makes a status registry.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Service> =>
  Effect.gen(function*() {
    const service = options.service ?? "bulwark"
    if (service.length === 0) throw new TypeError("Status: service must not be empty")
    const kept = options.transitionsKept ?? 10
    if (!Number.isInteger(kept) || kept < 1) {
      throw new RangeError(`Status: transitionsKept must be an integer >= 1, got ${kept}`)
    }
    const breakers: Array<TrackedBreaker> = []
    const bulkheads: Array<Bulkhead.Bulkhead> = []
    const budgets: Array<RetryBudget.RetryBudget> = []
    const supervisors: Array<FiberSupervisor.Service> = []
    const resourceSources: Array<Effect.Effect<ReadonlyArray<ResourceStatus>>> = []
    const version = yield* SubscriptionRef.make(0)
    const bump = SubscriptionRef.update(version, (n) => n + 1)

    // a follower subscribes when its fiber first runs: wait until it waits for an event, so that
    // nothing that happens after tracking is missed
    const follow = (listen: Effect.Effect<void>) =>
      Effect.flatMap(Effect.forkScoped(listen), (fiber) =>
        Effect.repeat(Effect.zipRight(Effect.yieldNow(), Fiber.status(fiber)), {
          until: (status) =>
            status._tag !== "Running"
        }))

    const trackBreaker = (breaker: CircuitBreaker.CircuitBreaker) =>
      Effect.gen(function*() {
        const tracked: TrackedBreaker = { breaker, transitions: [] }
        yield* removeOnClose(breakers, tracked)
        yield* follow(Stream.runForEach(breaker.changes, (t) =>
          Effect.zipRight(
            Effect.sync(() => {
              tracked.transitions.push({ from: t.from, to: t.to, at: t.at })
              if (tracked.transitions.length > kept) {
                tracked.transitions.shift()
              }
            }),
            bump
          )))
        yield* bump
      })

    const trackSupervisor = (supervisor: FiberSupervisor.Service) =>
      Effect.gen(function*() {
        yield* removeOnClose(supervisors, supervisor)
        yield* follow(Stream.runForEach(supervisor.changes, () =>
          bump))
        yield* bump
      })

    const breakerStatus = (tracked: TrackedBreaker, now: number): Effect.Effect<BreakerStatus> =>
      Effect.zipWith(tracked.breaker.metrics, tracked.breaker.exportState, (m, s): BreakerStatus => ({
        name: tracked.breaker.name,
        state: m.state,
        failureRate: m.failureRate,
        slowCallRate: m.slowCallRate,
        calls: m.calls,
        failures: m.failures,
        rejections: m.rejections,
        consecutiveFailures: m.consecutiveFailures,
        retryAfterMillis: m.state === "Open" && s.openUntil !== null ? Math.max(0, s.openUntil - now) : null,
        transitions: [...tracked.transitions]
      }))

    const snapshot = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const health = yield* Effect.serviceOption(Health.Health)
      const report = Option.isSome(health) ? Option.some(yield* health.value.report) : Option.none()
      const all = yield* Effect.all({
        breakers: Effect.forEach([...breakers], (b) => breakerStatus(b, now)),
        bulkheads: Effect.forEach([...bulkheads], (b) => b.state),
        retryBudgets: Effect.forEach([...budgets], (b) => b.snapshot),
        supervisors: Effect.forEach([...supervisors], (s) => s.snapshot),
        resources: Effect.map(Effect.forEach([...resourceSources], (r) => r), (all) => all.flat())
      })
      return {
        service,
        checkedAt: new Date(now),
        ...(Option.isSome(report) ? { health: report.value } : {}),
        ...all
      } satisfies StatusSnapshot
    })

    return {
      service,
      trackBreaker,
      trackBulkhead: (bulkhead) => Effect.zipRight(removeOnClose(bulkheads, bulkhead), bump),
      trackRetryBudget: (budget) => Effect.zipRight(removeOnClose(budgets, budget), bump),
      trackSupervisor,
      trackResources: (resources) => Effect.zipRight(removeOnClose(resourceSources, resources), bump),
      notify: bump,
      snapshot,
      changes: version.changes
    } satisfies Service
  })

/**
 * Provides a status registry. A `FiberSupervisor` in its context is tracked for the Layer's
 * lifetime.
 *
 * @example
 * ```ts
 * import { Status } from "@bulwark/node"
 * import { CircuitBreaker } from "@bulwark/core"
 * import { Effect, Layer } from "effect"
 *
 * // track the program's breaker, so /status and the dashboard show it
 * const TrackBreaker = Layer.scopedDiscard(
 *   Effect.flatMap(CircuitBreaker.CircuitBreaker, Status.trackBreaker)
 * )
 * const StatusLive = TrackBreaker.pipe(
 *   Layer.provideMerge(Status.layer({ service: "billing" })),
 *   Layer.provide(CircuitBreaker.layer({ name: "payments" }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Status> =>
  Layer.scoped(
    Status,
    Effect.gen(function*() {
      const status = yield* make(options)
      const supervisor = yield* Effect.serviceOption(FiberSupervisor.FiberSupervisor)
      if (Option.isSome(supervisor)) yield* status.trackSupervisor(supervisor.value)
      return status
    })
  )

/**
 * The options read from `Config`: `SERVICE` and `TRANSITIONS_KEPT`, each optional with the
 * defaults of {@link Options}; a bad value fails with a `ConfigError` naming the key.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Options> = Config.all({
  service: Config.nonEmptyString("SERVICE").pipe(Config.withDefault("bulwark")),
  transitionsKept: Config.integer("TRANSITIONS_KEPT").pipe(
    Config.validate({ message: "must be an integer >= 1", validation: (n) => n >= 1 }),
    Config.withDefault(10)
  )
})

/**
 * {@link layer} with its options read from `Config` (see {@link config}).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (options: Config.Config<Options> = config): Layer.Layer<Status, ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(options, layer))

/**
 * Tracks a breaker with the `Status` registry in the context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const trackBreaker = (
  breaker: CircuitBreaker.CircuitBreaker
): Effect.Effect<void, never, Status | Scope.Scope> => Effect.flatMap(Status, (status) => status.trackBreaker(breaker))

/**
 * Tracks a bulkhead with the `Status` registry in the context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const trackBulkhead = (bulkhead: Bulkhead.Bulkhead): Effect.Effect<void, never, Status | Scope.Scope> =>
  Effect.flatMap(Status, (status) => status.trackBulkhead(bulkhead))

/**
 * Tracks a retry budget with the `Status` registry in the context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const trackRetryBudget = (budget: RetryBudget.RetryBudget): Effect.Effect<void, never, Status | Scope.Scope> =>
  Effect.flatMap(Status, (status) => status.trackRetryBudget(budget))

/**
 * Tracks a supervisor with the `Status` registry in the context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const trackSupervisor = (
  supervisor: FiberSupervisor.Service
): Effect.Effect<void, never, Status | Scope.Scope> =>
  Effect.flatMap(Status, (status) => status.trackSupervisor(supervisor))
