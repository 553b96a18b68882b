/**
 * Timeouts that interrupt the work and fail with a typed, classified {@link TimeoutError}.
 *
 * The interrupted work's finalizers have finished before the `TimeoutError` is raised, so a
 * caller that sees the error can rely on the work's resources having been released.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as Schema from "effect/Schema"
import * as Deadline from "./Deadline.js"
import * as Failure from "./Failure.js"
import { describe } from "./internal/describe.js"
import * as InternalDuration from "./internal/duration.js"

/**
 * The work did not finish within its time limit and was interrupted.
 *
 * Classification: category `timeout`, code `TIMEOUT`; the rest comes from the decision matrix's
 * `timeout` row (major, backoff retry, 2 retries, trips a breaker).
 *
 * @since 0.1.0
 * @category errors
 */
export class TimeoutError extends Schema.TaggedError<TimeoutError>()("TimeoutError", {
  duration: Schema.DurationFromSelf,
  operation: Schema.optional(Schema.String)
}) {
  override get message(): string {
    const what = this.operation === undefined ? "The operation" : `Operation "${this.operation}"`
    return `${what} timed out after ${Duration.format(this.duration)} and was interrupted`
  }
  get [Failure.RuleKey](): Failure.RuleObject {
    return { category: "timeout", code: "TIMEOUT" }
  }
}

/**
 * Timeouts raised (tagged `operation` when the timeout is named).
 *
 * @since 0.1.0
 * @category metrics
 */
export const timeoutsCounter = Metric.counter("bulwark_timeout_total", {
  description: "Calls interrupted by a timeout",
  incremental: true
})

/**
 * Options for {@link timeout}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** A name for the operation, carried by the error and the metric tag. Default: none. */
  readonly name?: string | undefined
}

/**
 * A policy function that interrupts its effect once `duration` has passed on `Clock` and
 * fails with {@link TimeoutError}; when the `Deadline` is closer, it waits only for the time
 * left (and fails at once, without running the work, once the deadline has passed). The error
 * is raised only after the interrupted work's finalizers have finished; a defect in those finalizers is kept beside the error (a bug is
 * never dropped). A duration that is not a positive duration is a defect.
 *
 * @example
 * ```ts
 * import { Timeout } from "@bulwark/core"
 * import { Effect } from "effect"
 *
 * const slow = Effect.sleep("5 seconds").pipe(Effect.as("done"))
 * const bounded = slow.pipe(Timeout.timeout("1 second", { name: "fetchUser" }))
 * // Effect<string, TimeoutError>
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const timeout = (
  duration: Duration.DurationInput,
  options: Options = {}
): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | TimeoutError, R> => {
  // negative values in every written form ("-5 seconds", -5n, [-5, 0]) are rejected, not clamped
  const millis = InternalDuration.toMillis(duration)
  if (!(millis > 0)) {
    throw new RangeError(`Timeout.timeout: duration must be a duration > 0, got ${describe(duration)}`)
  }
  const limit = millis === Infinity ? Duration.infinity : Duration.decode(duration)
  // preallocated: a timeout must not capture a stack per call
  const error = new TimeoutError(
    options.name === undefined ? { duration: limit } : { duration: limit, operation: options.name }
  )
  const counter = options.name === undefined
    ? timeoutsCounter
    : Metric.tagged(timeoutsCounter, "operation", options.name)
  const timedOut = Cause.fail(error)
  const run = <A, E, R>(self: Effect.Effect<A, E, R>, limit: Duration.Duration, timedOut: Cause.Cause<TimeoutError>) =>
    Effect.suspend(() => {
      // the interrupted work's exit is otherwise dropped by the race: a finalizer that died on
      // the way out would vanish. Its defects are kept, after the TimeoutError.
      let died: Cause.Cause<never> | undefined
      const watched = Effect.onExit(self, (exit) => {
        if (Exit.isFailure(exit) && Cause.isDie(exit.cause)) {
          died = Cause.defects(exit.cause).pipe((defects) =>
            [...defects].reduce<Cause.Cause<never>>(
              (all, defect) => Cause.sequential(all, Cause.die(defect)),
              Cause.empty
            )
          )
        }
        return Effect.void
      })
      // lazy: evaluated once the interrupted work (and so its finalizers) has finished
      return Effect.timeoutFailCause(watched, {
        duration: limit,
        onTimeout: () => {
          counter.unsafeUpdate(1, [])
          return died === undefined ? timedOut : Cause.sequential(timedOut, died)
        }
      })
    })
  // a deadline closer than the limit shortens it; the error then names the time actually given
  const limitMillis = Duration.toMillis(limit)
  const shortened = (left: number) => {
    const duration = Duration.millis(left)
    return Cause.fail(
      new TimeoutError(options.name === undefined ? { duration } : { duration, operation: options.name })
    )
  }
  return (self) =>
    Deadline.shorten(limitMillis, (left) =>
      left === undefined
        ? run(self, limit, timedOut)
        : left > 0
        ? run(self, Duration.millis(left), shortened(left))
        : Effect.suspend(() => {
          counter.unsafeUpdate(1, [])
          return Effect.failCause(shortened(0))
        }))
}
