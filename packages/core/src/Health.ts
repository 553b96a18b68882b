/**
 * A registry of health checks and their aggregation into liveness and readiness, split by cause:
 * a defect or a supervisor that gave up makes the process not live (restart it); a program backing
 * off, an open breaker or a full bulkhead makes it not ready (degraded: stop sending traffic).
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as InternalDescribe from "./internal/describe.js"
import * as InternalDuration from "./internal/duration.js"

/**
 * The status of one component or of the whole process.
 *
 * @since 0.1.0
 * @category models
 */
export const Status = Schema.Literal("up", "degraded", "down")

/**
 * @since 0.1.0
 * @category models
 */
export type Status = typeof Status.Type

/**
 * What a check looks at: `liveness` (is the process able to work at all? if not, restart it) or
 * `readiness` (should it receive traffic now?).
 *
 * @since 0.1.0
 * @category models
 */
export const Kind = Schema.Literal("liveness", "readiness")

/**
 * @since 0.1.0
 * @category models
 */
export type Kind = typeof Kind.Type

const Details = Schema.Record({ key: Schema.String, value: Schema.Unknown })

/**
 * What a check returns.
 *
 * @since 0.1.0
 * @category models
 */
export const ComponentHealth = Schema.Struct({
  status: Status,
  details: Schema.optional(Details)
}).annotations({ identifier: "ComponentHealth" })

/**
 * @since 0.1.0
 * @category models
 */
export interface ComponentHealth {
  readonly status: Status
  readonly details?: Readonly<Record<string, unknown>> | undefined
}

/**
 * One component's line in a report.
 *
 * @since 0.1.0
 * @category models
 */
export const ComponentReport = Schema.Struct({
  name: Schema.String,
  kind: Kind,
  status: Status,
  details: Schema.optional(Details)
}).annotations({ identifier: "ComponentReport" })

/**
 * @since 0.1.0
 * @category models
 */
export type ComponentReport = typeof ComponentReport.Type

/**
 * The aggregated report. `live` is false when any liveness check is down; `ready` is false when
 * the process is not live or any readiness check is not up. `status` is `down` when not live,
 * `degraded` when live but not ready or when any check is degraded, `up` otherwise.
 *
 * @since 0.1.0
 * @category models
 */
export const HealthReport = Schema.Struct({
  status: Status,
  live: Schema.Boolean,
  ready: Schema.Boolean,
  checkedAt: Schema.Date,
  components: Schema.Array(ComponentReport)
}).annotations({ identifier: "HealthReport" })

/**
 * @since 0.1.0
 * @category models
 */
export type HealthReport = typeof HealthReport.Type

/**
 * Encodes a report to JSON (dates as ISO-8601 strings).
 *
 * @since 0.1.0
 * @category serialisation
 */
export const encodeReport: (report: HealthReport) => typeof HealthReport.Encoded = Schema.encodeSync(HealthReport)

/**
 * A health check: an effect that describes one component. A check that fails, dies, takes
 * longer than the registry's check timeout or returns a status other than `up`, `degraded` or
 * `down` counts as `down`, with the reason in its details.
 *
 * @since 0.1.0
 * @category models
 */
export type Check = Effect.Effect<ComponentHealth, unknown>

/**
 * @since 0.1.0
 * @category models
 */
export interface RegisterOptions {
  /** Which side of the report the check decides. */
  readonly kind: Kind
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /**
   * Registers a check under a name until the scope closes. Registering a name again replaces
   * the previous check.
   */
  readonly register: (name: string, check: Check, options: RegisterOptions) => Effect.Effect<void, never, Scope.Scope>
  /** Runs every check (concurrently) and aggregates them. */
  readonly report: Effect.Effect<HealthReport>
}

/**
 * The health registry.
 *
 * @since 0.1.0
 * @category tags
 */
export class Health extends Context.Tag("@bulwark/core/Health")<Health, Service>() {}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** How long a check may take before it counts as down; a duration > 0. Default: 5 seconds. */
  readonly checkTimeout?: Duration.DurationInput | undefined
}

const isStatus = Schema.is(Status)

const readField = (u: unknown, key: string): unknown => {
  if (typeof u !== "object" || u === null) return undefined
  try {
    return (u as Record<string, unknown>)[key]
  } catch {
    return undefined
  }
}

/**
 * A check's result as a report line. What a check returns is not trusted: an unknown status
 * (or no result at all) is `down` with a reason that names it, and details that are not a
 * record are replaced by a reason, so that a report always encodes.
 */
const toReport = (name: string, kind: Kind, result: unknown): ComponentReport => {
  const status = readField(result, "status")
  if (!isStatus(status)) {
    const got = typeof status === "string" ? JSON.stringify(status) : InternalDescribe.describe(status)
    return {
      name,
      kind,
      status: "down",
      details: { error: `check returned an unknown status ${got} (expected "up", "degraded" or "down")` }
    }
  }
  const details = readField(result, "details")
  if (details === undefined) return { name, kind, status }
  if (typeof details !== "object" || details === null || Array.isArray(details)) {
    return {
      name,
      kind,
      status,
      details: { error: `check returned details that are not a record: ${InternalDescribe.describe(details)}` }
    }
  }
  return { name, kind, status, details: details as Readonly<Record<string, unknown>> }
}

/**
 * Aggregates component reports into liveness, readiness and an overall status.
 *
 * @since 0.1.0
 * @category aggregation
 */
export const aggregate = (components: ReadonlyArray<ComponentReport>, checkedAt: Date): HealthReport => {
  let live = true
  let ready = true
  let anyDegraded = false
  for (const c of components) {
    if (c.status === "degraded") anyDegraded = true
    if (c.kind === "liveness" && c.status === "down") live = false
    if (c.kind === "readiness" && c.status !== "up") ready = false
  }
  ready = ready && live
  const status: Status = !live ? "down" : !ready || anyDegraded ? "degraded" : "up"
  return { status, live, ready, checkedAt, components }
}

/**
 * Builds a health registry.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Service> =>
  Effect.sync(() => {
    const timeoutMillis = InternalDuration.toMillis(options.checkTimeout ?? "5 seconds")
    // a zero timeout (or a negative one clamped to zero) would report every check as down
    if (!(timeoutMillis > 0)) {
      throw new RangeError(`Health: checkTimeout must be a duration > 0, got ${String(options.checkTimeout)}`)
    }
    const timeout = Duration.millis(timeoutMillis)
    const checks = new Map<string, { readonly check: Check; readonly kind: Kind; readonly token: object }>()
    const register = (name: string, check: Check, registerOptions: RegisterOptions) =>
      Effect.suspend(() => {
        const token = {}
        checks.set(name, { check, kind: registerOptions.kind, token })
        return Effect.addFinalizer(() =>
          Effect.sync(() => {
            if (checks.get(name)?.token === token) checks.delete(name)
          })
        )
      })
    const runCheck = (name: string, kind: Kind, check: Check): Effect.Effect<ComponentReport> =>
      check.pipe(
        Effect.timeoutOption(timeout),
        Effect.map(Option.match({
          onNone: (): ComponentReport => ({
            name,
            kind,
            status: "down",
            details: { error: `check timed out after ${Duration.format(timeout)}` }
          }),
          onSome: (h): ComponentReport => toReport(name, kind, h)
        })),
        Effect.catchAllCause((cause) =>
          Effect.succeed<ComponentReport>({
            name,
            kind,
            status: "down",
            details: {
              error: InternalDescribe.describe(
                Option.getOrElse(
                  Option.orElse(Cause.failureOption(cause), () => Cause.dieOption(cause)),
                  () => "interrupted"
                )
              )
            }
          })
        )
      )
    const report = Effect.suspend(() => {
      const entries = [...checks].map(([name, c]) => runCheck(name, c.kind, c.check))
      return Effect.zipWith(
        Effect.all(entries, { concurrency: "unbounded" }),
        Clock.currentTimeMillis,
        (components, now) => aggregate(components, new Date(now))
      )
    })
    return { register, report }
  })

/**
 * Provides a health registry.
 *
 * @example
 * ```ts
 * import { Health } from "@bulwark/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const health = yield* Health.Health
 *   yield* health.register("database", Effect.succeed({ status: "up" as const }), { kind: "readiness" })
 *   const report = yield* health.report
 *   return report.ready
 * }).pipe(Effect.scoped, Effect.provide(Health.layer()))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Health> => Layer.effect(Health, make(options))

/**
 * Registers a check with the `Health` service when one is provided; does nothing otherwise.
 * Bulwark's own modules (supervisors, breakers, bulkheads) register through this.
 *
 * @since 0.1.0
 * @category accessors
 */
export const registerIfPresent = (
  name: string,
  check: Check,
  options: RegisterOptions
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.flatMap(
    Effect.serviceOption(Health),
    (health) => Option.isSome(health) ? health.value.register(name, check, options) : Effect.void
  )
