/**
 * One place through which everything that needs a person's attention is announced: a breaker
 * opening, a supervisor escalating, a retry budget running out, a resource crossing its threshold.
 * The default Layer writes an error log; users provide their own sink (a webhook, a pager).
 * Alerts are rate-limited per key, so a flapping breaker cannot flood the sink.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Failure from "./Failure.js"
import { describe } from "./internal/describe.js"
import * as InternalDuration from "./internal/duration.js"

/**
 * The kinds Bulwark itself raises. Any other string is accepted for the user's own alerts.
 *
 * @since 0.1.0
 * @category models
 */
export const KnownKind = Schema.Literal(
  "breaker_open",
  "supervisor_escalation",
  "retry_budget_exhausted",
  "resource_threshold"
)

/**
 * @since 0.1.0
 * @category models
 */
export type Kind = typeof KnownKind.Type | (string & {})

/**
 * An alert: what happened (`kind`), to what (`key`, the unit of rate limiting, e.g.
 * `"breaker:payments"`), how bad it is, a message a person can act on and structured annotations.
 * `suppressed` is set on delivery: how many alerts with the same key were held back by the rate
 * limit since the previous delivered one.
 *
 * @since 0.1.0
 * @category models
 */
export const Alert = Schema.Struct({
  key: Schema.String,
  kind: Schema.String,
  severity: Failure.Severity,
  message: Schema.String,
  annotations: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown })),
  suppressed: Schema.optional(Schema.Number)
}).annotations({ identifier: "Alert" })

/**
 * @since 0.1.0
 * @category models
 */
export interface Alert {
  readonly key: string
  readonly kind: Kind
  readonly severity: Failure.Severity
  readonly message: string
  readonly annotations?: Readonly<Record<string, unknown>> | undefined
  readonly suppressed?: number | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** Announces an alert; it reaches the sink unless the rate limit for its key holds it back. */
  readonly alert: (alert: Alert) => Effect.Effect<void>
}

/**
 * The alerts service.
 *
 * @since 0.1.0
 * @category tags
 */
export class Alerts extends Context.Tag("@bulwark/core/Alerts")<Alerts, Service>() {}

/**
 * Where delivered alerts go.
 *
 * @since 0.1.0
 * @category models
 */
export type Handler = (alert: Alert) => Effect.Effect<void>

/**
 * Options for the rate limit.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * At most this many alerts per key are delivered within any `interval` (a sliding window).
   * Default: 1.
   */
  readonly maxPerKey?: number | undefined
  /** The length of the rate-limit window for a key. A delivery exactly `interval` ago no longer counts. Default: 1 minute. */
  readonly interval?: Duration.DurationInput | undefined
}

const alertsDelivered = Metric.counter("bulwark_alerts_delivered_total", {
  description: "Alerts delivered to the sink",
  incremental: true
})

const alertsSuppressed = Metric.counter("bulwark_alerts_suppressed_total", {
  description: "Alerts held back by the per-key rate limit",
  incremental: true
})

interface KeyState {
  /** times of the deliveries within the last interval, oldest first (at most maxPerKey) */
  readonly delivered: Array<number>
  suppressed: number
}

/** At most this many keys are tracked; beyond it the least recently alerted keys are forgotten. */
const maxTrackedKeys = 10_000
/** An eviction brings the tracked keys down to this, so that its scan is paid once per 1,000 new keys. */
const evictDownTo = 9_000

/**
 * Builds an alerts service around a handler. A handler that fails or dies is logged and never
 * fails the caller. The rate limit keeps state for at most 10,000 keys: beyond that the least
 * recently alerted keys are forgotten (a forgotten key's next alert is delivered, without a
 * suppressed count).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (handler: Handler, options: Options = {}): Effect.Effect<Service> =>
  Effect.sync(() => {
    const maxPerKey = options.maxPerKey ?? 1
    if (!Number.isInteger(maxPerKey) || maxPerKey < 1) {
      throw new TypeError(`Alerts: maxPerKey must be a whole number >= 1, got ${describe(maxPerKey)}`)
    }
    const intervalMillis = InternalDuration.toMillis(options.interval ?? "1 minute")
    // an infinite window would silence a key for the life of the process after maxPerKey alerts
    if (!(intervalMillis > 0 && Number.isFinite(intervalMillis))) {
      throw new TypeError(`Alerts: interval must be a finite duration > 0, got ${describe(options.interval)}`)
    }
    const keys = new Map<string, KeyState>()
    const expire = (state: KeyState, now: number) => {
      while (state.delivered.length > 0 && now - state.delivered[0]! >= intervalMillis) state.delivered.shift()
    }
    // keys are kept least recently alerted first (a Map iterates in insertion order): idle keys
    // go first, then, when every key is still busy, the least recently alerted ones, so that the
    // state stays bounded whatever the number of distinct keys
    const evict = (now: number) => {
      for (const [key, state] of keys) {
        expire(state, now)
        if (state.delivered.length === 0 && state.suppressed === 0) keys.delete(key)
      }
      for (const key of keys.keys()) {
        if (keys.size <= evictDownTo) break
        keys.delete(key)
      }
    }
    // a sliding window per key: an alert is delivered when fewer than maxPerKey alerts with its
    // key were delivered within the last interval
    const admit = (key: string, now: number): Option.Option<number> => {
      let state = keys.get(key)
      if (state === undefined) {
        if (keys.size >= maxTrackedKeys) evict(now)
        state = { delivered: [], suppressed: 0 }
      } else {
        keys.delete(key)
      }
      keys.set(key, state)
      expire(state, now)
      if (state.delivered.length >= maxPerKey) {
        state.suppressed++
        return Option.none()
      }
      state.delivered.push(now)
      const suppressed = state.suppressed
      state.suppressed = 0
      return Option.some(suppressed)
    }
    const alert = (a: Alert): Effect.Effect<void> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const admitted = admit(a.key, now)
        if (Option.isNone(admitted)) return Metric.increment(Metric.tagged(alertsSuppressed, "kind", a.kind))
        const delivered: Alert = admitted.value > 0 ? { ...a, suppressed: admitted.value } : a
        return handler(delivered).pipe(
          Effect.catchAllCause((cause) =>
            Effect.logError("Alert handler failed", cause).pipe(Effect.annotateLogs("bulwark.alert", a.key))
          ),
          Effect.zipRight(Metric.increment(Metric.tagged(alertsDelivered, "kind", a.kind)))
        )
      })
    return { alert }
  })

/**
 * The default sink: an error log (fatal for critical alerts) annotated with the alert's key,
 * kind, severity, suppressed count and annotations.
 *
 * @since 0.1.0
 * @category constructors
 */
export const logHandler: Handler = (alert) => {
  const annotations: Record<string, unknown> = {
    "bulwark.alert": alert.key,
    "bulwark.alert.kind": alert.kind,
    "bulwark.alert.severity": alert.severity,
    ...(alert.suppressed !== undefined ? { "bulwark.alert.suppressed": alert.suppressed } : {}),
    ...alert.annotations
  }
  const message = alert.suppressed !== undefined && alert.suppressed > 0
    ? `${alert.message} (${alert.suppressed} similar alerts suppressed)`
    : alert.message
  const log = alert.severity === "critical" ? Effect.logFatal(message) : Effect.logError(message)
  return Effect.annotateLogs(log, annotations)
}

/**
 * Alerts to a user sink, rate-limited per key.
 *
 * @example
 * ```ts
 * import { Alerts } from "@bulwark/core"
 * import { Effect } from "effect"
 *
 * const PagerAlerts = Alerts.layer((alert) => Effect.log(`page on-call: ${alert.message}`), {
 *   maxPerKey: 1,
 *   interval: "5 minutes"
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (handler: Handler, options: Options = {}): Layer.Layer<Alerts> =>
  Layer.effect(Alerts, make(handler, options))

/**
 * Alerts as error logs with annotations, rate-limited per key: the default.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerLog = (options: Options = {}): Layer.Layer<Alerts> => layer(logHandler, options)

/**
 * Announces an alert through the `Alerts` service when one is provided; does nothing otherwise.
 * Bulwark's own modules announce through this.
 *
 * @since 0.1.0
 * @category accessors
 */
export const announce = (alert: Alert): Effect.Effect<void> =>
  Effect.flatMap(
    Effect.serviceOption(Alerts),
    (service) => Option.isSome(service) ? service.value.alert(alert) : Effect.void
  )
