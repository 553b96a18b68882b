/**
 * A circuit breaker stops calling a dependency that keeps failing, gives it time to recover, then
 * lets a few probe calls through before trusting it again. It is a service: one per dependency,
 * provided by a Layer, with its state observable as data.
 *
 * A failed call is classified when it fails, by the `Failure.Classifier` in the context of the
 * fiber that called `protect` (a successful call never reads it); nothing is read from the
 * context the breaker was made in but its `Clock` and its `BreakerStore`. An `isFailure`
 * predicate, given to the breaker or to one call, decides instead of the classification.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricKey from "effect/MetricKey"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleIntervals from "effect/ScheduleIntervals"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Alerts from "./Alerts.js"
import * as BreakerStore from "./BreakerStore.js"
import * as Failure from "./Failure.js"
import * as Health from "./Health.js"
import * as BreakerState from "./internal/breakerState.js"
import * as InternalConfig from "./internal/config.js"
import { describe } from "./internal/describe.js"
import * as InternalDuration from "./internal/duration.js"
import * as Fusion from "./internal/fusion.js"
import * as Synchronous from "./internal/synchronous.js"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * The states of a breaker: `Closed` (calls run), `Open` (calls are rejected until the open
 * duration has passed), `HalfOpen` (a few probe calls run), `Isolated` (forced open until
 * released) and `Disabled` (forced closed: calls run and are measured, the state never changes).
 *
 * @since 0.1.0
 * @category models
 */
export const State = BreakerStore.BreakerState

/**
 * @since 0.1.0
 * @category models
 */
export type State = BreakerStore.BreakerState

/**
 * A breaker's exported state (see {@link CircuitBreaker.exportState}).
 *
 * @since 0.1.0
 * @category models
 */
export const Snapshot = BreakerStore.Snapshot

/**
 * @since 0.1.0
 * @category models
 */
export type Snapshot = BreakerStore.Snapshot

/**
 * One change of state. `at` is the time from `Clock` in milliseconds.
 *
 * @since 0.1.0
 * @category models
 */
export interface Transition {
  readonly breaker: string
  readonly from: State
  readonly to: State
  readonly at: number
}

/**
 * A point-in-time view of a breaker's counters. The totals count since the breaker was made;
 * the window figures are the ones the breaker decides on now.
 *
 * @since 0.1.0
 * @category models
 */
export interface Metrics {
  readonly state: State
  /** Calls admitted (rejections not included). */
  readonly calls: number
  readonly successes: number
  /** Outcomes that count as failures: failures the classification says trip the breaker, and defects. */
  readonly failures: number
  /** Failures that count as neither success nor failure (validation errors, by default). */
  readonly ignored: number
  /** Calls that lasted at least `slowCall.duration` (0 when slow calls are not measured). */
  readonly slowCalls: number
  /** Calls rejected with `CircuitOpenError`. */
  readonly rejections: number
  /** Failures in a row now (reset by a success and by every transition). */
  readonly consecutiveFailures: number
  /** Calls in the current window (rate policies; 0 for the consecutive policy). */
  readonly windowCalls: number
  /** Failure rate in the current window, in [0, 1] (0 when it is empty). */
  readonly failureRate: number
  /** Slow-call rate in the current window, in [0, 1] (0 when it is empty). */
  readonly slowCallRate: number
  /** Probe calls running now (half-open). */
  readonly probesInFlight: number
  /** Times the breaker opened since it last closed. */
  readonly opens: number
}

/**
 * Rejection by a breaker that is open, isolated, or half-open with every probe slot taken.
 * `retryAfter` is the time until the breaker admits a call again: infinite while isolated, zero
 * when half-open (a slot frees when a probe finishes).
 *
 * @since 0.1.0
 * @category errors
 */
export class CircuitOpenError extends Schema.TaggedError<CircuitOpenError>()("CircuitOpenError", {
  breaker: Schema.String,
  state: Schema.Literal("Open", "HalfOpen", "Isolated"),
  retryAfter: Schema.DurationFromSelf
}) {
  override get message(): string {
    const what = this.state === "HalfOpen" ? "half-open with every probe slot taken" : this.state === "Isolated"
      ? "isolated until released"
      : "open"
    return Duration.isFinite(this.retryAfter)
      ? `Circuit "${this.breaker}" is ${what}; next attempt in ${Duration.format(this.retryAfter)}`
      : `Circuit "${this.breaker}" is ${what}`
  }

  get [Failure.RuleKey](): Failure.RuleObject {
    return {
      category: "resource",
      code: "CIRCUIT_OPEN",
      severity: "minor",
      strategy: "failover",
      // a breaker's own rejection never counts against another breaker around it
      tripsBreaker: false,
      ...(Duration.isFinite(this.retryAfter) ? { retryAfter: this.retryAfter } : { retryable: false })
    }
  }
}

/**
 * How failures open a closed breaker.
 *
 * - `Consecutive`: `threshold` failures in a row open it (a success resets the count).
 * - `CountWindow`: over the last `size` calls, once at least `minimumCalls` were made, a failure
 *   rate `>= rateThreshold` opens it.
 * - `TimeWindow`: over the calls of the last `window` (kept in `buckets` buckets, so memory is
 *   fixed and each call costs O(1)), once at least `minimumCalls` were made, a failure rate
 *   `>= rateThreshold` opens it.
 *
 * @since 0.1.0
 * @category models
 */
export type Policy =
  | { readonly _tag: "Consecutive"; readonly threshold: number }
  | {
    readonly _tag: "CountWindow"
    readonly size: number
    readonly rateThreshold: number
    readonly minimumCalls: number
  }
  | {
    readonly _tag: "TimeWindow"
    readonly window: Duration.Duration
    readonly buckets: number
    readonly rateThreshold: number
    readonly minimumCalls: number
  }

/**
 * Opens after `threshold` failures in a row (default 5).
 *
 * @since 0.1.0
 * @category policies
 */
export const consecutive = (threshold = 5): Policy => ({ _tag: "Consecutive", threshold })

/**
 * Opens when the failure rate over the last `size` calls reaches `rateThreshold` (inclusive),
 * once at least `minimumCalls` (default: `size`) calls were made.
 *
 * @since 0.1.0
 * @category policies
 */
export const countWindow = (options: {
  readonly size: number
  readonly rateThreshold: number
  readonly minimumCalls?: number | undefined
}): Policy => ({
  _tag: "CountWindow",
  size: options.size,
  rateThreshold: options.rateThreshold,
  minimumCalls: options.minimumCalls ?? options.size
})

/**
 * Most buckets a time window may have: memory is three numbers per bucket, and a window slides
 * by whole buckets.
 *
 * @since 0.1.0
 * @category policies
 */
export const MAX_WINDOW_BUCKETS = 10_000

/**
 * Largest `size` of a count window: the window keeps one byte per call, so a million calls is
 * 1 MB per breaker; beyond that a rate over "the last N calls" is better said as a time window.
 *
 * @since 0.1.0
 * @category policies
 */
export const MAX_WINDOW_SIZE = 1_000_000

/**
 * Narrowest bucket of a time window, in milliseconds: `window / buckets` must be at least this
 * (a 10-second window has at most 10,000 buckets of 1 ms).
 *
 * @since 0.1.0
 * @category policies
 */
export const MIN_BUCKET_MILLIS = 1

/**
 * Opens when the failure rate over the last `window` reaches `rateThreshold` (inclusive), once
 * at least `minimumCalls` (default 10) calls were made in it. The window slides by buckets of
 * `window / buckets` (default 10 buckets; at most {@link MAX_WINDOW_BUCKETS}, each at least
 * {@link MIN_BUCKET_MILLIS} wide).
 *
 * A `window` that is not a duration > 0 (`"abc"`, `"-5 seconds"`) throws a `TypeError` naming
 * `policy.window`; the other fields are checked when the breaker is made.
 *
 * @since 0.1.0
 * @category policies
 */
export const timeWindow = (options: {
  readonly window: Duration.DurationInput
  readonly rateThreshold: number
  readonly minimumCalls?: number | undefined
  readonly buckets?: number | undefined
}): Policy => {
  const millis = InternalDuration.toMillis(options.window)
  if (!(millis > 0) || !Number.isFinite(millis)) {
    throw new TypeError(
      `CircuitBreaker.timeWindow: policy.window must be a finite duration > 0, got ${describeOption(options.window)}`
    )
  }
  return {
    _tag: "TimeWindow",
    window: Duration.millis(millis),
    buckets: options.buckets ?? 10,
    rateThreshold: options.rateThreshold,
    minimumCalls: options.minimumCalls ?? 10
  }
}

const describeOption = (value: unknown): string =>
  Duration.isDuration(value)
    ? Duration.format(value)
    : Array.isArray(value)
    ? `[${value.map(describe).join(", ")}]`
    : typeof value === "bigint"
    ? `${value}n`
    : describe(value)

/**
 * Options of a breaker. Every field is optional.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The name in errors, logs, metrics and the store. Default: `"default"`. */
  readonly name?: string | undefined
  /**
   * The `breaker` label on this breaker's metrics. Default: `name`. A registry gives all its
   * breakers its own name here, so that many keys cannot grow the metric registry.
   */
  readonly metricLabel?: string | undefined
  /** How failures open a closed breaker. Default: `consecutive(5)`. */
  readonly policy?: Policy | undefined
  /**
   * How long the breaker stays open before it lets probes through: a duration, or a `Schedule`
   * whose successive delays are used for successive opens (it restarts when the breaker
   * closes; once the schedule is done its last delay is kept; a state taken from a snapshot
   * moves it to the snapshot's `opens`). Default: 60 seconds.
   */
  readonly openDuration?: Duration.DurationInput | Schedule.Schedule<unknown, unknown> | undefined
  /** Probe calls admitted at once while half-open. Default: 3. */
  readonly halfOpenProbes?: number | undefined
  /** Probe successes that close the breaker. Default: 3. */
  readonly successThreshold?: number | undefined
  /**
   * Slow calls: a call that lasts at least `duration` is slow; a slow-call rate `>=
   * rateThreshold` (default 1) in the policy's window opens the breaker, and a slow probe
   * re-opens it. Needs a window policy. Default: slow calls are not measured.
   */
  readonly slowCall?: {
    readonly duration: Duration.DurationInput
    readonly rateThreshold?: number | undefined
  } | undefined
  /**
   * Decides whether a typed failure counts against the dependency, for every call (a call can
   * give its own, typed against its error: see {@link ProtectOptions}). When given, it is the
   * decision; the classification (made when the call fails, by the `Failure.Classifier` in the
   * calling fiber's context) is passed to it. Default: the classification's `tripsBreaker`
   * (validation errors do not count). Defects always count; interruption never does.
   */
  readonly isFailure?: ((error: unknown, classification: Failure.Classification) => boolean) | undefined
  /**
   * Register a readiness check named `breaker:<name>` with the `Health` service, when one is
   * provided: closed or disabled → up; open, half-open or isolated → degraded. Default: `true`
   * (a `BreakerRegistry`'s breakers do not register one each).
   */
  readonly health?: boolean | undefined
}

/**
 * Options of one call through a breaker.
 *
 * @since 0.1.0
 * @category models
 */
export interface ProtectOptions<E> {
  /**
   * Decides whether this call's typed failure counts against the dependency, typed against the
   * effect's error. It wins over the breaker's own `isFailure` and over the classification
   * (which it receives). Defects always count; interruption never does.
   */
  readonly isFailure?: ((error: E, classification: Failure.Classification) => boolean) | undefined
}

/**
 * A circuit breaker.
 *
 * @since 0.1.0
 * @category models
 */
export interface CircuitBreaker {
  readonly name: string
  /**
   * Runs an effect through the breaker: rejected at once with `CircuitOpenError` when the
   * breaker is open, otherwise run and its outcome counted. A failure is classified when it
   * happens, by the `Failure.Classifier` in the context of the fiber that runs `protect`.
   */
  readonly protect: <A, E, R>(
    self: Effect.Effect<A, E, R>,
    options?: ProtectOptions<NoInfer<E>>
  ) => Effect.Effect<A, E | CircuitOpenError, R>
  /** The current state (an open breaker whose open duration has passed reads as half-open). */
  readonly state: Effect.Effect<State>
  /** Every transition from now on. */
  readonly changes: Stream.Stream<Transition>
  readonly metrics: Effect.Effect<Metrics>
  /** Back to closed with empty counters, from any state. */
  readonly reset: Effect.Effect<void>
  /** Forces the breaker open until {@link CircuitBreaker.release} or {@link CircuitBreaker.reset}. */
  readonly isolate: Effect.Effect<void>
  /** Ends `isolate` or `disable`: back to closed with empty counters (no effect otherwise). */
  readonly release: Effect.Effect<void>
  /** Forces the breaker closed: every call runs and is still measured. */
  readonly disable: Effect.Effect<void>
  readonly exportState: Effect.Effect<Snapshot>
  /** Takes the state of a snapshot (of this breaker or another). */
  readonly importState: (snapshot: Snapshot) => Effect.Effect<void>
}

/**
 * The breaker service, when one breaker serves the whole program. For one breaker per
 * dependency use {@link Tag}.
 *
 * @since 0.1.0
 * @category tags
 */
export const CircuitBreaker: Context.Tag<CircuitBreaker, CircuitBreaker> = Context.GenericTag<CircuitBreaker>(
  "@bulwark/core/CircuitBreaker"
)

// -----------------------------------------------------------------------------
// options
// -----------------------------------------------------------------------------

interface Resolved {
  readonly name: string
  readonly metricLabel: string
  readonly policy: Policy
  readonly openDelay: number
  readonly openSchedule: Schedule.Schedule<unknown, unknown> | undefined
  readonly halfOpenProbes: number
  readonly successThreshold: number
  readonly slowMillis: number
  readonly slowRate: number
  readonly isFailure: ((error: unknown, classification: Failure.Classification) => boolean) | undefined
  readonly health: boolean
}

const isWhole = (n: unknown, min: number): boolean => typeof n === "number" && Number.isInteger(n) && n >= min
const isRate = (n: unknown): boolean => typeof n === "number" && n > 0 && n <= 1

/**
 * Checks options and fills in defaults; throws a `TypeError` naming the field and the rule.
 */
const resolve = (options: Options): Resolved => {
  const name = options.name ?? "default"
  const fail = (field: string, rule: string, value: unknown): never => {
    throw new TypeError(`CircuitBreaker "${name}": ${field} must be ${rule}, got ${describeOption(value)}`)
  }
  const policy = options.policy ?? consecutive(5)
  switch (policy._tag) {
    case "Consecutive":
      if (!isWhole(policy.threshold, 1)) fail("policy.threshold", "a whole number >= 1", policy.threshold)
      break
    case "CountWindow":
      if (!isWhole(policy.size, 1) || policy.size > MAX_WINDOW_SIZE) {
        fail("policy.size", `a whole number in [1, ${MAX_WINDOW_SIZE}]`, policy.size)
      }
      if (!isRate(policy.rateThreshold)) fail("policy.rateThreshold", "a rate in (0, 1]", policy.rateThreshold)
      if (!isWhole(policy.minimumCalls, 1) || policy.minimumCalls > policy.size) {
        fail("policy.minimumCalls", `a whole number in [1, size = ${policy.size}]`, policy.minimumCalls)
      }
      break
    case "TimeWindow": {
      const span = Duration.isDuration(policy.window) ? Duration.toMillis(policy.window) : Number.NaN
      if (!(span > 0) || !Number.isFinite(span)) fail("policy.window", "a finite duration > 0", policy.window)
      if (!isWhole(policy.buckets, 1) || policy.buckets > MAX_WINDOW_BUCKETS) {
        fail("policy.buckets", `a whole number in [1, ${MAX_WINDOW_BUCKETS}]`, policy.buckets)
      }
      if (span / policy.buckets < MIN_BUCKET_MILLIS) {
        fail(
          "policy.buckets",
          `at most window / ${MIN_BUCKET_MILLIS} ms = ${
            Math.floor(span / MIN_BUCKET_MILLIS)
          } (each bucket at least ${MIN_BUCKET_MILLIS} ms wide)`,
          policy.buckets
        )
      }
      if (!isRate(policy.rateThreshold)) fail("policy.rateThreshold", "a rate in (0, 1]", policy.rateThreshold)
      if (!isWhole(policy.minimumCalls, 1)) fail("policy.minimumCalls", "a whole number >= 1", policy.minimumCalls)
      break
    }
    default:
      fail("policy", "built with consecutive, countWindow or timeWindow", JSON.stringify(policy))
  }
  let openDelay = 60_000
  let openSchedule: Schedule.Schedule<unknown, unknown> | undefined = undefined
  if (Schedule.isSchedule(options.openDuration)) {
    openSchedule = options.openDuration as Schedule.Schedule<unknown, unknown>
  } else if (options.openDuration !== undefined) {
    openDelay = InternalDuration.toMillis(options.openDuration)
    if (!(openDelay >= 0) || !Number.isFinite(openDelay)) {
      fail("openDuration", "a finite duration >= 0 or a Schedule", options.openDuration)
    }
  }
  const halfOpenProbes = options.halfOpenProbes ?? 3
  if (!isWhole(halfOpenProbes, 1)) fail("halfOpenProbes", "a whole number >= 1", halfOpenProbes)
  const successThreshold = options.successThreshold ?? 3
  if (!isWhole(successThreshold, 1)) fail("successThreshold", "a whole number >= 1", successThreshold)
  let slowMillis = Infinity
  let slowRate = Infinity
  if (options.slowCall !== undefined) {
    if (policy._tag === "Consecutive") {
      fail("slowCall", "used with a window policy (countWindow or timeWindow)", "the consecutive policy")
    }
    slowMillis = InternalDuration.toMillis(options.slowCall.duration)
    if (!(slowMillis > 0) || !Number.isFinite(slowMillis)) {
      fail("slowCall.duration", "a finite duration > 0", options.slowCall.duration)
    }
    slowRate = options.slowCall.rateThreshold ?? 1
    if (!isRate(slowRate)) fail("slowCall.rateThreshold", "a rate in (0, 1]", slowRate)
  }
  return {
    name,
    metricLabel: options.metricLabel ?? name,
    policy,
    openDelay,
    openSchedule,
    halfOpenProbes,
    successThreshold,
    slowMillis,
    slowRate,
    isFailure: options.isFailure,
    health: options.health ?? true
  }
}

/**
 * Checks breaker options without making a breaker: throws a `TypeError` whose message names the
 * field and the rule, as {@link make} would fail. A registry uses it to reject bad options when
 * it is made, before any key has a breaker.
 *
 * @since 0.1.0
 * @category utils
 */
export const validateOptions = (options: Options = {}): void => {
  resolve(options)
}

// -----------------------------------------------------------------------------
// metrics
// -----------------------------------------------------------------------------

const callsKey = MetricKey.counter("bulwark_breaker_calls_total", {
  description: "Calls seen by a circuit breaker, by outcome (success, failure, ignored, rejected)",
  incremental: true
})
/**
 * `bulwark_breaker_calls_total{breaker, outcome}`: calls seen, by outcome (`success`, `failure`,
 * `ignored`, `rejected`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const callsTotal = Metric.fromMetricKey(callsKey)
/** `callsTotal` with its labels resolved once: an update looks nothing up. */
const callsOf = (labels: ReadonlyArray<MetricLabel.MetricLabel>) =>
  Metric.fromMetricKey(MetricKey.taggedWithLabels(callsKey, labels))
const noLabels: ReadonlyArray<MetricLabel.MetricLabel> = []
/**
 * `bulwark_breaker_failures_total{breaker, category, code}`: failures counted, by classification.
 *
 * @since 0.1.0
 * @category metrics
 */
export const failuresTotal = Metric.counter("bulwark_breaker_failures_total", {
  description: "Failures counted by a circuit breaker, by category and code",
  incremental: true
})
/**
 * `bulwark_breaker_transitions_total{breaker, to}`: state transitions, by target state.
 *
 * @since 0.1.0
 * @category metrics
 */
export const transitionsTotal = Metric.counter("bulwark_breaker_transitions_total", {
  description: "Circuit breaker state transitions, by target state",
  incremental: true
})
/**
 * `bulwark_breaker_state{breaker}`: 0 closed, 1 open, 2 half-open, 3 isolated, 4 disabled.
 *
 * @since 0.1.0
 * @category metrics
 */
export const stateGauge = Metric.gauge("bulwark_breaker_state", {
  description: "Circuit breaker state: 0 closed, 1 open, 2 half-open, 3 isolated, 4 disabled"
})
const stateCode: Record<State, number> = { Closed: 0, Open: 1, HalfOpen: 2, Isolated: 3, Disabled: 4 }
const outcomeLabels = {
  success: MetricLabel.make("outcome", "success"),
  failure: MetricLabel.make("outcome", "failure"),
  ignored: MetricLabel.make("outcome", "ignored"),
  rejected: MetricLabel.make("outcome", "rejected")
}
const toLabels = Object.fromEntries(
  BreakerStore.BreakerState.literals.map((to) => [to, MetricLabel.make("to", to)])
) as unknown as Record<State, MetricLabel.MetricLabel>

/**
 * The metric labels of the breakers of one name, made once and reused by every breaker of that
 * name (a test that makes a breaker per run, a registry that makes one per key). The metric
 * registry caches a label array by identity, so a fresh array is looked up in it afresh.
 * Bounded: past the bound a cache starts over.
 */
interface Labels {
  readonly name: MetricLabel.MetricLabel
  readonly success: ReadonlyArray<MetricLabel.MetricLabel>
  readonly failure: ReadonlyArray<MetricLabel.MetricLabel>
  readonly ignored: ReadonlyArray<MetricLabel.MetricLabel>
  readonly rejected: ReadonlyArray<MetricLabel.MetricLabel>
  readonly state: ReadonlyArray<MetricLabel.MetricLabel>
  /** Made on the first transition to each state: most breakers never leave Closed. */
  readonly transitions: Partial<Record<State, ReadonlyArray<MetricLabel.MetricLabel>>>
  /** By category and code. */
  readonly failures: Map<string, ReadonlyArray<MetricLabel.MetricLabel>>
  /** `callsTotal` by outcome, resolved on first use. */
  readonly calls: {
    success?: Metric.Metric.Counter<number>
    failure?: Metric.Metric.Counter<number>
    ignored?: Metric.Metric.Counter<number>
  }
}
const labelsByName = new Map<string, Labels>()
const maxCachedLabels = 1024

const labelsOf = (metricLabel: string): Labels => {
  let labels = labelsByName.get(metricLabel)
  if (labels === undefined) {
    if (labelsByName.size >= maxCachedLabels) labelsByName.clear()
    const name = MetricLabel.make("breaker", metricLabel)
    labels = {
      name,
      success: [name, outcomeLabels.success],
      failure: [name, outcomeLabels.failure],
      ignored: [name, outcomeLabels.ignored],
      rejected: [name, outcomeLabels.rejected],
      state: [name],
      transitions: {},
      failures: new Map(),
      calls: {}
    }
    labelsByName.set(metricLabel, labels)
  }
  return labels
}

const failureLabelsOf = (labels: Labels, category: string, code: string): ReadonlyArray<MetricLabel.MetricLabel> => {
  const key = `${category}/${code}`
  let found = labels.failures.get(key)
  if (found === undefined) {
    if (labels.failures.size >= maxCachedLabels) labels.failures.clear()
    found = [labels.name, MetricLabel.make("category", category), MetricLabel.make("code", code)]
    labels.failures.set(key, found)
  }
  return found
}

// -----------------------------------------------------------------------------
// the breaker
// -----------------------------------------------------------------------------

const makeError = (breaker: string, state: "Open" | "HalfOpen" | "Isolated", retryAfter: Duration.Duration) => {
  // a rejection is an expected, frequent event: no stack trace to capture
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return new CircuitOpenError({ breaker, state, retryAfter }, true)
  } finally {
    Error.stackTraceLimit = limit
  }
}

const stepDelay = (
  schedule: Schedule.Schedule<unknown, unknown>,
  now: number,
  state: unknown
): Effect.Effect<readonly [state: unknown, delay: number | undefined]> =>
  Effect.map(schedule.step(now, undefined, state), ([next, _, decision]) =>
    [
      next,
      ScheduleDecision.isDone(decision) ? undefined : Math.max(0, ScheduleIntervals.start(decision.intervals) - now)
    ] as const)

/**
 * Most steps an open-duration `Schedule` is advanced to follow a snapshot's `opens` count: a
 * snapshot that says a breaker opened a million times costs no more than this.
 */
const MAX_SCHEDULE_CATCH_UP = 1_000

/** A classification for a failure the classifier threw on: it counts, as an unknown error does. */
let unclassifiable: Failure.Classification | undefined = undefined
const unclassifiableClassification = (): Failure.Classification =>
  unclassifiable ??= { ...Failure.defaultClassifier.classify(new Error("unclassifiable")), code: "UNCLASSIFIABLE" }

/**
 * Makes a breaker. It lives as long as the scope (its transition stream and its store fibers
 * end with it; a snapshot still waiting to be published when the scope closes is published
 * first).
 *
 * The breaker reads time from the `Clock` of the context it is made in: the wall clock for the
 * times it reports and exchanges through a store, the monotonic clock (`Clock.currentTimeNanos`)
 * to measure how long it stays open, so a step of the wall clock neither extends nor cuts an
 * open period. It reads no classifier when it is made: a failed call is classified when it fails,
 * by the `Failure.Classifier` in the context of the fiber that called `protect` (a successful
 * call never reads it). Options that break a rule are a defect whose message names the field.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@bulwark/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make({ name: "payments", openDuration: "30 seconds" })
 *   const charge = Effect.succeed("charged")
 *   return yield* breaker.protect(charge)
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<CircuitBreaker, never, Scope.Scope> =>
  Effect.suspend(() => {
    let resolved: Resolved
    try {
      resolved = resolve(options)
    } catch (error) {
      return Effect.dieMessage((error as Error).message)
    }
    return Effect.flatMap(Effect.clock, (clock) => build(resolved, clock))
  })

type Predicate = (error: unknown, classification: Failure.Classification) => boolean

interface Handlers {
  readonly onSuccess: (a: unknown) => Effect.Effect<unknown>
  readonly onFailure: (cause: Cause.Cause<unknown>) => Effect.Effect<never, unknown>
}

/** Runs `self` with outcome handlers that return what it returned (or fail with its cause). */
const matchOutcome = <A, E, R>(self: Effect.Effect<A, E, R>, handlers: Handlers): Effect.Effect<A, E, R> =>
  Effect.matchCauseEffect(
    self,
    handlers as unknown as {
      readonly onSuccess: (a: A) => Effect.Effect<A>
      readonly onFailure: (cause: Cause.Cause<E>) => Effect.Effect<never, E>
    }
  )

const build = (
  o: Resolved,
  clock: Clock.Clock
): Effect.Effect<CircuitBreaker, never, Scope.Scope> =>
  Effect.gen(function*() {
    const name = o.name
    /** Wall time (epoch milliseconds): what the breaker reports and exchanges. */
    const now = () => clock.unsafeCurrentTimeMillis()
    /** Monotonic time in milliseconds: what measures how long the breaker stays open. */
    const mono = () => Number(clock.unsafeCurrentTimeNanos()) / 1_000_000
    const scope = yield* Effect.scope
    // the transition hub is made on first subscription: most breakers never have one
    let hub: PubSub.PubSub<Transition> | undefined = undefined
    const getHub = Effect.suspend(() =>
      hub !== undefined ? Effect.succeed(hub) : Effect.tap(
        PubSub.sliding<Transition>(1024),
        (made) => {
          hub = made
          return Scope.addFinalizer(scope, PubSub.shutdown(made))
        }
      )
    )
    const maybeStore = yield* Effect.serviceOption(BreakerStore.BreakerStore)
    const alerts = yield* Effect.serviceOption(Alerts.Alerts)
    const origin = `${name}#${(yield* Random.nextIntBetween(0, 2 ** 31 - 1)).toString(36)}`

    // ----- labels for metrics (constant arrays, shared per name: the metric registry caches by identity)
    const labels = labelsOf(o.metricLabel)
    const nameLabel = labels.name
    const successLabels = labels.success
    const failureLabels = labels.failure
    const ignoredLabels = labels.ignored
    const rejectedLabels = labels.rejected
    // resolved on first use (a registry of idle breakers holds none of them), once per name
    const calls = labels.calls
    const stateLabels = labels.state
    const transitionLabelsFor = (to: State) => labels.transitions[to] ??= [nameLabel, toLabels[to]]

    // ----- the open duration's first delay (a schedule is stepped once now)
    let firstOpenDelay = o.openDelay
    let scheduleAfterFirst: unknown = undefined
    if (o.openSchedule !== undefined) {
      const [s, d] = yield* stepDelay(o.openSchedule, now(), o.openSchedule.initial)
      firstOpenDelay = d ?? 0
      scheduleAfterFirst = s
    }

    // ----- store
    const outbox = Option.isSome(maybeStore) ? yield* Queue.sliding<Snapshot>(64) : undefined
    // the last snapshot offered to the store, the last one it took, and whether a publish is running
    let lastOffered: Snapshot | undefined = undefined
    let lastPublished: Snapshot | undefined = undefined
    let publishing = false
    const offer = (s: Snapshot): void => {
      lastOffered = s
      outbox!.unsafeOffer(s)
    }

    // ----- the rules, and what the shell does on every transition
    const machine: BreakerState.Machine = new BreakerState.Machine(
      {
        policy: o.policy,
        firstOpenDelay,
        scheduleAfterFirst,
        halfOpenProbes: o.halfOpenProbes,
        successThreshold: o.successThreshold,
        slowMillis: o.slowMillis,
        slowRate: o.slowRate
      },
      { wall: now, mono },
      (from, to, at, publish) => {
        hub?.unsafeOffer({ breaker: name, from, to, at })
        transitionsTotal.unsafeUpdate(1, transitionLabelsFor(to))
        stateGauge.unsafeUpdate(stateCode[to], stateLabels)
        if (publish && outbox !== undefined) offer(snapshot())
      }
    )

    const snapshot = (): Snapshot => ({
      version: 1,
      breaker: name,
      state: machine.state,
      since: machine.since,
      // the time left is measured on the monotonic clock, and told in wall time
      openUntil: machine.state === "Open" ? now() + Math.max(0, Math.ceil(machine.openUntilMono - mono())) : null,
      opens: machine.opens,
      origin
    })

    // steps the schedule once the breaker has opened, ready for the next open
    const stepSchedule = (at: number): Effect.Effect<void> =>
      o.openSchedule === undefined ? Effect.void : Effect.map(
        stepDelay(o.openSchedule, at, machine.scheduleState),
        ([s, d]) => machine.scheduleStepped(s, d)
      )
    /**
     * Puts the schedule where `count` opens leave it (the state came from a snapshot), and gives
     * the delay the `count`-th open used: the longest open period this breaker would have chosen.
     */
    const seekSchedule = (count: number, at: number): Effect.Effect<number> => {
      const schedule = o.openSchedule
      if (schedule === undefined) return Effect.succeed(o.openDelay)
      return Effect.gen(function*() {
        let s = scheduleAfterFirst
        let used = firstOpenDelay
        let done = false
        const steps = Math.min(count, MAX_SCHEDULE_CATCH_UP)
        // delays d1, d2, ...: the n-th open used dn, and the next one will use d(n+1)
        for (let n = 1; n < steps && !done; n++) {
          const [next, d] = yield* stepDelay(schedule, at, s)
          s = next
          if (d === undefined) done = true
          else used = d
        }
        let next = used
        if (!done) {
          const [after, d] = yield* stepDelay(schedule, at, s)
          s = after
          if (d !== undefined) next = d
        }
        machine.scheduleStepped(s, next)
        return used
      })
    }

    const logOpen = (at: number, reason: string) => {
      const retryAfterMillis = Math.max(0, machine.openUntil - at)
      const message = `Circuit "${name}" opened: ${reason}; next attempt in ${
        Duration.format(Duration.millis(retryAfterMillis))
      }`
      const logged = Effect.logError(message).pipe(
        Effect.annotateLogs({ "bulwark.breaker": name, "bulwark.breaker.state": "Open" })
      )
      if (Option.isNone(alerts)) return logged
      return Effect.zipRight(
        logged,
        alerts.value.alert({
          key: `breaker:${name}`,
          kind: "breaker_open",
          severity: "major",
          message,
          annotations: { breaker: name, reason, retryAfterMillis, opens: machine.opens }
        })
      )
    }
    const logClose = (reason: string) =>
      Effect.logInfo(`Circuit "${name}" closed: ${reason}`).pipe(
        Effect.annotateLogs({ "bulwark.breaker": name, "bulwark.breaker.state": "Closed" })
      )

    /** What follows a transition an outcome caused: the schedule steps, and a log says why. */
    const announce = (trip: BreakerState.Trip): Effect.Effect<void> =>
      trip.to === "Open"
        // the schedule must step even if the calling fiber is interrupted right now
        ? Effect.uninterruptible(Effect.zipRight(stepSchedule(trip.at), logOpen(trip.at, trip.reason)))
        : logClose(trip.reason)

    /** Counts an outcome. Returns the effect to run after it (logs of a transition), if any. */
    const settle = (
      gen: number,
      admittedIn: State,
      outcome: number,
      start: number
    ): Effect.Effect<void> | undefined => {
      if (outcome !== BreakerState.INTERRUPTED) {
        const counter = outcome === BreakerState.SUCCESS
          ? calls.success ??= callsOf(successLabels)
          : outcome === BreakerState.FAILURE
          ? calls.failure ??= callsOf(failureLabels)
          : calls.ignored ??= callsOf(ignoredLabels)
        counter.unsafeUpdate(1, noLabels)
      }
      const trip = machine.record(gen, admittedIn, outcome, start)
      return trip === undefined ? undefined : announce(trip)
    }

    const countFailure = (category: string, code: string): number => {
      failuresTotal.unsafeUpdate(1, failureLabelsOf(labels, category, code))
      return BreakerState.FAILURE
    }

    // rejections of the same millisecond of the same period share one error: a flood of
    // rejections costs neither a stack trace nor an allocation per call
    let rejection: Effect.Effect<never, CircuitOpenError> | undefined = undefined
    let rejectionAt = -1
    let rejectionGeneration = -1
    /** Rejects a call (the machine counted it); `m` is the monotonic time read when the breaker was open. */
    const reject = (m: number): Effect.Effect<never, CircuitOpenError> => {
      callsTotal.unsafeUpdate(1, rejectedLabels)
      const s = machine.state
      const key = s === "Open" ? Math.floor(m) : -2
      if (rejection === undefined || key !== rejectionAt || machine.generation !== rejectionGeneration) {
        rejection = Effect.failCause(Cause.fail(makeError(
          name,
          s === "Isolated" ? "Isolated" : s === "HalfOpen" ? "HalfOpen" : "Open",
          s === "Isolated" ? Duration.infinity : s === "Open" ? Duration.millis(machine.retryAfter(m)) : Duration.zero
        )))
        rejectionAt = key
        rejectionGeneration = machine.generation
      }
      return rejection
    }

    /**
     * Settles a failed call. A typed failure is classified now, by the classifier in the context
     * of the fiber that made the call. An `isFailure` that throws is a defect of its own: the call
     * counts as neither success nor failure (so a probe frees its slot) and the defect joins the
     * call's cause. A classifier that throws leaves the failure unclassified: it counts, and a
     * warning says so.
     */
    const settleFailure = (
      gen: number,
      admittedIn: State,
      start: number,
      cause: Cause.Cause<unknown>,
      isFailure: Predicate | undefined
    ): Effect.Effect<never, unknown> => {
      const finish = (outcome: number, extra?: Cause.Cause<unknown>): Effect.Effect<never, unknown> => {
        const after = settle(gen, admittedIn, outcome, start)
        const failed = Effect.failCause(extra === undefined ? cause : Cause.sequential(cause, extra))
        return after === undefined ? failed : Effect.zipRight(after, failed)
      }
      const failure = Cause.failureOption(cause)
      if (Option.isNone(failure)) {
        return Option.isSome(Cause.dieOption(cause))
          ? finish(countFailure("system", "DEFECT"))
          : finish(BreakerState.INTERRUPTED)
      }
      const error = failure.value
      return Effect.flatMap(Failure.currentClassifier, (classifier) => {
        let classification: Failure.Classification
        let warning: Effect.Effect<void> | undefined = undefined
        try {
          classification = classifier.classify(error)
        } catch (thrown) {
          classification = unclassifiableClassification()
          warning = Effect.logWarning(
            `Circuit "${name}": the classifier failed on ${describe(error)} (${describe(thrown)}); counted as a failure`
          ).pipe(Effect.annotateLogs({ "bulwark.breaker": name }))
        }
        let counts: boolean
        try {
          const decide = isFailure ?? o.isFailure
          counts = decide !== undefined ? decide(error, classification) : classification.tripsBreaker
        } catch (defect) {
          return finish(BreakerState.INTERRUPTED, Cause.die(defect))
        }
        const outcome = counts ? countFailure(classification.category, classification.code) : BreakerState.IGNORED
        return warning === undefined ? finish(outcome) : Effect.zipRight(warning, finish(outcome))
      })
    }

    const handlers = (gen: number, admittedIn: State, start: number, isFailure: Predicate | undefined): Handlers => ({
      onSuccess: (a) => {
        const after = settle(gen, admittedIn, BreakerState.SUCCESS, start)
        return after === undefined ? Effect.succeed(a) : Effect.as(after, a)
      },
      onFailure: (cause) => settleFailure(gen, admittedIn, start, cause, isFailure)
    })
    const protect = <A, E, R>(
      self: Effect.Effect<A, E, R>,
      options?: ProtectOptions<NoInfer<E>>
    ): Effect.Effect<A, E | CircuitOpenError, R> => {
      // `options` is read only when it is an object: `Effect.forEach(xs, breaker.protect)` passes an index
      const isFailure = typeof options === "object" && options !== null
        ? options.isFailure as Predicate | undefined
        : undefined
      type Matched = Effect.Effect<A, E, R>
      // an effect made once and run many times reuses its outcome handlers while the breaker
      // stays in the same generation (they hold nothing of one call unless slow calls are timed)
      let matched: Matched | undefined = undefined
      let matchedGeneration = -1
      return Effect.suspend((): Effect.Effect<A, E | CircuitOpenError, R> => {
        const admission = machine.admit()
        if (admission === BreakerState.ADMIT) {
          // interruption counts as nothing in these states, so a plain match is enough
          const gen = machine.generation
          if (machine.timed) return matchOutcome(self, handlers(gen, machine.state, now(), isFailure))
          if (matchedGeneration !== gen) {
            matched = matchOutcome(self, handlers(gen, machine.state, 0, isFailure))
            matchedGeneration = gen
          }
          return matched!
        }
        if (admission === BreakerState.PROBE) {
          const at = now()
          // a probe's slot must be freed even when it is interrupted: take it inside the
          // uninterruptible region (an interruption between taking it and entering the region
          // would keep it for good) and run the outcome uninterruptibly
          return Effect.uninterruptibleMask((restore) => {
            // the fiber may have yielded since the admission: if the slot is gone, decide afresh
            if (!machine.takeProbe()) return restore(protect(self, options))
            const gen = machine.generation
            return Effect.matchCauseEffect(restore(self), {
              onSuccess: (a) => {
                const after = settle(gen, "HalfOpen", BreakerState.SUCCESS, at)
                return after === undefined ? Effect.succeed(a) : Effect.as(after, a)
              },
              onFailure: (cause) => settleFailure(gen, "HalfOpen", at, cause, isFailure) as Effect.Effect<never, E>
            })
          })
        }
        return reject(machine.checkedAt)
      })
    }
    // a policy holding this breaker and a bulkhead admits a call through both in one step while
    // the breaker is closed (internal/fusion.ts); the handlers are those `protect` would use
    let fusedHandlers: Handlers | undefined = undefined
    let fusedGeneration = -1
    Fusion.registerBreaker(protect, {
      admitNow: () => {
        const s = machine.state
        if (s !== "Closed" && s !== "Disabled") return undefined
        machine.admit()
        const gen = machine.generation
        if (machine.timed) return handlers(gen, s, now(), undefined)
        if (fusedGeneration !== gen) {
          fusedHandlers = handlers(gen, s, 0, undefined)
          fusedGeneration = gen
        }
        return fusedHandlers
      }
    })

    const readState = Effect.sync(() => {
      machine.refresh(mono())
      return machine.state
    })

    const readMetrics = () => machine.metrics()
    const metrics = Synchronous.register(Effect.sync(readMetrics), readMetrics)

    const reset = Effect.suspend(() => machine.reset() === "Closed" ? Effect.void : logClose("reset"))
    const release = Effect.suspend(() => machine.release() ? logClose("released") : Effect.void)
    const isolate = Effect.suspend(() =>
      machine.force("Isolated")
        ? Effect.logError(`Circuit "${name}" isolated until released`).pipe(
          Effect.annotateLogs({ "bulwark.breaker": name, "bulwark.breaker.state": "Isolated" })
        )
        : Effect.void
    )
    const disable = Effect.suspend(() =>
      machine.force("Disabled")
        ? Effect.logWarning(`Circuit "${name}" disabled: calls run unprotected until released`).pipe(
          Effect.annotateLogs({ "bulwark.breaker": name, "bulwark.breaker.state": "Disabled" })
        )
        : Effect.void
    )

    const exportState = Effect.sync(() => {
      machine.refresh(mono())
      return snapshot()
    })

    /**
     * Takes the state of a snapshot (imported, or published by another breaker of the same name).
     * Its `opens` count drives the open-duration schedule as if this breaker had opened that many
     * times, and the time it stays open is at most the open duration this breaker would have
     * chosen for that open: a snapshot cannot pin a breaker open for longer than its own options
     * allow. Times that are not finite numbers are not trusted. From the store (`publish` false),
     * the state the breaker already has is a no-op, and an open of the count it is open for only
     * moves its end later.
     */
    const apply = (incoming: Snapshot, publish: boolean): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (!machine.changesOn(incoming)) return Effect.void
        const at = now()
        // from the store, an open held while other processes probe: open until the lease's end
        const lease = !publish && incoming.state === "Open" && incoming.leaseUntil !== undefined &&
            Number.isFinite(incoming.leaseUntil)
          ? incoming.leaseUntil - at
          : undefined
        // from the store, the state the breaker is in already (handed back): nothing to do
        if (!publish && lease === undefined && incoming.state === machine.state && incoming.since === machine.since) {
          return Effect.void
        }
        const count = BreakerState.Machine.opensOf(incoming)
        return Effect.map(count > 0 ? seekSchedule(count, at) : Effect.succeed(0), (own) => {
          const longest = lease === undefined ? own : Math.max(own, lease)
          // from the store, the same open again (the fleet keeping this breaker open a while
          // longer): its end moves later (or, for a hold, where the hold says), and nothing else
          // happens (no transition, metric or log)
          if (!publish && incoming.state === "Open" && machine.state === "Open" && machine.opens === count) {
            machine.extendOpen(incoming, at, longest, lease !== undefined)
            return
          }
          machine.apply(incoming, at, longest)
          if (publish && outbox !== undefined) offer(snapshot())
        })
      })

    const importState = (incoming: Snapshot) => apply(incoming, true)

    // ----- store wiring: load once, then publish and listen in the background
    if (Option.isSome(maybeStore) && outbox !== undefined) {
      const store = maybeStore.value
      const loaded = yield* store.load(name)
      if (Option.isSome(loaded) && loaded.value.origin !== origin) yield* apply(loaded.value, false)
      const inbox = yield* store.subscribe(name)
      // runs after the publisher below is interrupted (finalizers run in reverse order): the
      // last snapshot it did not get to publish is published now. When the store had not
      // answered the previous publish yet, the last one is sent without waiting for it: a store
      // that does not answer must not hold up closing.
      yield* Effect.addFinalizer(() =>
        Effect.suspend(() => {
          const last = lastOffered
          if (last === undefined || last === lastPublished) return Effect.void
          return publishing ? Effect.asVoid(Effect.forkDaemon(store.publish(last))) : store.publish(last)
        })
      )
      // the highest store revision this breaker published or took, and the newest store snapshot
      // that arrived while a transition of its own was on its way
      let revision = -1
      let waiting: Snapshot | undefined = undefined
      const take = (incoming: Snapshot): Effect.Effect<void> => {
        if (incoming.origin === origin) return Effect.void
        if (lastOffered !== lastPublished) {
          if (incoming.revision !== undefined && incoming.revision > (waiting?.revision ?? -1)) waiting = incoming
          return Effect.void
        }
        if (incoming.revision !== undefined) {
          // delivered before a newer publish of this breaker, or before what it took since
          if (incoming.revision <= revision) return Effect.void
          revision = incoming.revision
        }
        return apply(incoming, false)
      }
      const publishOne = (s: Snapshot) =>
        Effect.suspend(() => {
          publishing = true
          return Effect.flatMap(store.publish(s), (written) => {
            publishing = false
            lastPublished = s
            if (typeof written === "number") revision = Math.max(revision, written)
            // what arrived meanwhile and the store ordered after this publish is taken now
            const next = waiting
            waiting = undefined
            return next !== undefined && lastOffered === lastPublished ? take(next) : Effect.void
          })
        })
      // interruptible whatever region the breaker is made in (a registry makes its breakers
      // uninterruptibly): an uninterruptible loop would hang the closing of the scope
      yield* Effect.forkScoped(Effect.interruptible(Effect.forever(Effect.flatMap(Queue.take(outbox), publishOne))))
      // while a transition of this breaker is offered and not yet published, what arrives is older
      // than it: its publish goes on top of everything the store has (a shared store re-bases it
      // and hands back the outcome), so applying it now would only move the breaker backwards. A
      // store that numbers its deliveries tells which of them came after the publish (`take`)
      yield* Effect.forkScoped(Effect.interruptible(Effect.forever(Effect.flatMap(Queue.take(inbox), take))))
    }
    stateGauge.unsafeUpdate(stateCode[machine.state], stateLabels)

    if (o.health) {
      yield* Health.registerIfPresent(
        `breaker:${name}`,
        Effect.sync((): Health.ComponentHealth => {
          const m = mono()
          machine.refresh(m)
          const state = machine.state
          const status = state === "Closed" || state === "Disabled" ? "up" : "degraded"
          return {
            status,
            details: {
              state,
              ...(state === "Open" ? { retryAfterMillis: Math.max(0, machine.retryAfter(m)) } : {}),
              failures: machine.failures,
              rejections: machine.rejections
            }
          }
        }),
        { kind: "readiness" }
      )
    }

    // the stream is built when first asked for: most breakers are never watched
    let changes: Stream.Stream<Transition> | undefined = undefined
    return {
      name,
      protect,
      state: readState,
      get changes() {
        return changes ??= Stream.unwrapScoped(Effect.map(Effect.flatMap(getHub, PubSub.subscribe), Stream.fromQueue))
      },
      metrics,
      reset,
      isolate,
      release,
      disable,
      exportState,
      importState
    }
  })

// -----------------------------------------------------------------------------
// layers
// -----------------------------------------------------------------------------

/**
 * Provides one breaker as the {@link CircuitBreaker} service.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@bulwark/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.CircuitBreaker
 *   return yield* breaker.protect(Effect.succeed(1))
 * }).pipe(Effect.provide(CircuitBreaker.layer({ name: "payments" })))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<CircuitBreaker> => Layer.scoped(CircuitBreaker, make(options))

/**
 * Options read from configuration. Keys (under the prefix the config is nested in):
 * `POLICY` (`consecutive` | `count` | `time`, default `consecutive`), `FAILURE_THRESHOLD` (5),
 * `FAILURE_RATE_THRESHOLD` (0.5), `WINDOW_SIZE` (100 calls), `WINDOW_DURATION` (60 seconds),
 * `WINDOW_BUCKETS` (10; at most 10,000, each at least 1 ms wide), `MINIMUM_CALLS` (window size for `count`, 10 for `time`),
 * `OPEN_DURATION` (60 seconds), `HALF_OPEN_PROBES` (3), `SUCCESS_THRESHOLD` (3),
 * `SLOW_CALL_DURATION` (none), `SLOW_CALL_RATE_THRESHOLD` (1). A value that breaks a rule fails
 * with a `ConfigError` naming its key.
 *
 * @since 0.1.0
 * @category config
 */
export const config = (name?: string): Config.Config<Options> => {
  const wholeNumber = (key: string, min: number) =>
    InternalConfig.integer(key).pipe(
      Config.validate({ message: `must be a whole number >= ${min}`, validation: (n) => n >= min })
    )
  const whole = (key: string, min: number, fallback: number) => wholeNumber(key, min).pipe(Config.withDefault(fallback))
  const rate = (key: string, fallback: number) =>
    InternalConfig.number(key).pipe(
      Config.validate({ message: "must be a rate in (0, 1]", validation: (n) => n > 0 && n <= 1 }),
      Config.withDefault(fallback)
    )
  // a duration in any written form; a negative one ("-30 seconds") is an error, not zero
  const duration = (key: string, rule: string, valid: (millis: number) => boolean) =>
    Config.string(key).pipe(
      Config.mapOrFail((text) => {
        const millis = InternalDuration.toMillis(text)
        return valid(millis)
          ? Either.right(Duration.millis(millis))
          : Either.left(ConfigError.InvalidData([], `must be ${rule}, got ${JSON.stringify(text)}`))
      })
    )
  const positive = (key: string) =>
    duration(key, "a finite duration > 0", (millis) => millis > 0 && Number.isFinite(millis))
  const fields = Config.all({
    policy: Config.literal("consecutive", "count", "time")("POLICY").pipe(Config.withDefault("consecutive" as const)),
    failureThreshold: whole("FAILURE_THRESHOLD", 1, 5),
    failureRateThreshold: rate("FAILURE_RATE_THRESHOLD", 0.5),
    // one check for both bounds: a second `Config.validate` stacked on the first loses the key
    windowSize: InternalConfig.integer("WINDOW_SIZE").pipe(
      Config.validate({
        message: `must be a whole number in [1, ${MAX_WINDOW_SIZE}]`,
        validation: (n) => n >= 1 && n <= MAX_WINDOW_SIZE
      }),
      Config.withDefault(100)
    ),
    windowDuration: positive("WINDOW_DURATION").pipe(Config.withDefault(Duration.seconds(60))),
    windowBuckets: Config.integer("WINDOW_BUCKETS").pipe(
      Config.validate({
        message: `must be a whole number in [1, ${MAX_WINDOW_BUCKETS}]`,
        validation: (n) => n >= 1 && n <= MAX_WINDOW_BUCKETS
      }),
      Config.withDefault(10)
    ),
    // no default here: a missing key leaves the policy's own default (WINDOW_SIZE for count, 10 for time)
    minimumCalls: Config.option(wholeNumber("MINIMUM_CALLS", 1)),
    openDuration: duration(
      "OPEN_DURATION",
      "a finite duration >= 0",
      (millis) => millis >= 0 && Number.isFinite(millis)
    ).pipe(Config.withDefault(Duration.seconds(60))),
    halfOpenProbes: whole("HALF_OPEN_PROBES", 1, 3),
    successThreshold: whole("SUCCESS_THRESHOLD", 1, 3),
    slowCallDuration: Config.option(positive("SLOW_CALL_DURATION")),
    slowCallRateThreshold: rate("SLOW_CALL_RATE_THRESHOLD", 1)
  })
  return Config.mapOrFail(fields, (c): Either.Either<Options, ConfigError.ConfigError> => {
    const minimumCalls = Option.getOrUndefined(c.minimumCalls)
    if (c.policy === "count" && minimumCalls !== undefined && minimumCalls > c.windowSize) {
      return Either.left(
        ConfigError.InvalidData(["MINIMUM_CALLS"], `must be at most WINDOW_SIZE (${c.windowSize}), got ${minimumCalls}`)
      )
    }
    if (c.policy === "time" && Duration.toMillis(c.windowDuration) / c.windowBuckets < MIN_BUCKET_MILLIS) {
      return Either.left(
        ConfigError.InvalidData(
          ["WINDOW_BUCKETS"],
          `must leave buckets at least ${MIN_BUCKET_MILLIS} ms wide: at most ${
            Math.floor(Duration.toMillis(c.windowDuration) / MIN_BUCKET_MILLIS)
          } for WINDOW_DURATION ${Duration.format(c.windowDuration)}, got ${c.windowBuckets}`
        )
      )
    }
    if (c.policy === "consecutive" && Option.isSome(c.slowCallDuration)) {
      return Either.left(
        ConfigError.InvalidData(["SLOW_CALL_DURATION"], "needs POLICY count or time (slow calls are measured by rate)")
      )
    }
    const policy = c.policy === "consecutive"
      ? consecutive(c.failureThreshold)
      : c.policy === "count"
      ? countWindow({ size: c.windowSize, rateThreshold: c.failureRateThreshold, minimumCalls })
      : timeWindow({
        window: c.windowDuration,
        buckets: c.windowBuckets,
        rateThreshold: c.failureRateThreshold,
        minimumCalls
      })
    return Either.right({
      ...(name !== undefined ? { name } : {}),
      policy,
      openDuration: c.openDuration,
      halfOpenProbes: c.halfOpenProbes,
      successThreshold: c.successThreshold,
      ...(Option.isSome(c.slowCallDuration)
        ? { slowCall: { duration: c.slowCallDuration.value, rateThreshold: c.slowCallRateThreshold } }
        : {})
    })
  })
}

/**
 * Provides the {@link CircuitBreaker} service from configuration (see {@link config}).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config<Options> = config()
): Layer.Layer<CircuitBreaker, ConfigError.ConfigError> => Layer.scoped(CircuitBreaker, Effect.flatMap(options, make))

/**
 * A tag class for one breaker per dependency, with its own layers.
 *
 * @since 0.1.0
 * @category models
 */
export interface TagClass<Self, Name extends string>
  extends Context.TagClass<Self, `@bulwark/core/CircuitBreaker/${Name}`, CircuitBreaker>
{
  /** The breaker's name. */
  readonly breakerName: Name
  /**
   * Protects an effect with this breaker, taken from the context: `effect.pipe(PaymentsBreaker.protect)`,
   * or `PaymentsBreaker.protect(effect, { isFailure })` with a predicate typed against the effect's error.
   */
  readonly protect: <A, E, R>(
    self: Effect.Effect<A, E, R>,
    options?: ProtectOptions<NoInfer<E>>
  ) => Effect.Effect<A, E | CircuitOpenError, R | Self>
  /** Provides the breaker with these options (its name is the tag's). */
  readonly layer: (options?: Omit<Options, "name">) => Layer.Layer<Self>
  /**
   * Provides the breaker from configuration, by default {@link config} nested under the
   * breaker's name, upper-cased with every other character than letters and digits turned to
   * `_` (`payments-api` → `PAYMENTS_API_FAILURE_THRESHOLD`… with the environment provider).
   */
  readonly layerConfig: (options?: Config.Config<Options>) => Layer.Layer<Self, ConfigError.ConfigError>
}

/**
 * Declares one breaker per dependency as its own service.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@bulwark/core"
 * import { Effect } from "effect"
 *
 * class PaymentsBreaker extends CircuitBreaker.Tag("payments")<PaymentsBreaker>() {}
 *
 * const charge = Effect.gen(function*() {
 *   const breaker = yield* PaymentsBreaker
 *   return yield* breaker.protect(Effect.succeed("charged"))
 * }).pipe(Effect.provide(PaymentsBreaker.layer({ openDuration: "30 seconds" })))
 *
 * // or, without naming the service
 * const refund = Effect.succeed("refunded").pipe(PaymentsBreaker.protect)
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export const Tag = <const Name extends string>(name: Name) => <Self>(): TagClass<Self, Name> => {
  const base = Context.Tag(`@bulwark/core/CircuitBreaker/${name}`)<Self, CircuitBreaker>()
  const tag = base as unknown as Context.Tag<Self, CircuitBreaker>
  return Object.assign(base, {
    breakerName: name,
    protect: <A, E, R>(self: Effect.Effect<A, E, R>, options?: ProtectOptions<NoInfer<E>>) =>
      Effect.flatMap(tag, (breaker) => breaker.protect(self, options)),
    layer: (options: Omit<Options, "name"> = {}) => Layer.scoped(tag, make({ ...options, name })),
    layerConfig: (
      options: Config.Config<Options> = InternalConfig.nested(InternalConfig.prefixOf(name), config(name))
    ) => Layer.scoped(tag, Effect.flatMap(options, (o) => make({ ...o, name })))
  }) as unknown as TagClass<Self, Name>
}

/**
 * Protects an effect with the {@link CircuitBreaker} service in the context, optionally with a
 * per-call `isFailure` typed against the effect's error.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@bulwark/core"
 * import { Data, Effect } from "effect"
 *
 * class HttpError extends Data.TaggedError("HttpError")<{ readonly status: number }> {}
 * const call: Effect.Effect<string, HttpError> = Effect.fail(new HttpError({ status: 503 }))
 *
 * // only server errors count against the dependency
 * const guarded = CircuitBreaker.protect(call, { isFailure: (error) => error.status >= 500 })
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const protect = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  options?: ProtectOptions<NoInfer<E>>
): Effect.Effect<A, E | CircuitOpenError, R | CircuitBreaker> =>
  Effect.flatMap(CircuitBreaker, (breaker) => breaker.protect(self, options))
