/**
 * Deadlines that travel with the call. `Deadline.within("2 seconds")` gives everything inside a
 * point in time by which it must be done, carried by a `FiberRef` (so forked fibers inherit
 * it); a nested `within` can only bring it closer. Bulwark's stages honour it:
 *
 * - `Timeout.timeout` waits for the smaller of its own duration and the time left;
 * - `Retry` does not start a backoff that would end past the deadline: it fails at once with
 *   {@link DeadlineExceededError}, which carries the last failure;
 * - a bulkhead (and an adaptive limit) waits in its queue no longer than the time left, and
 *   does not queue a caller whose deadline has already passed;
 * - `Policy.make`'s `totalTimeout` sets a deadline for everything inside it.
 *
 * `within` only carries the budget: the stages above decide what to do with it. Time is read
 * from `Clock`, so tests drive deadlines with `TestClock`.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import { dual } from "effect/Function"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Failure from "./Failure.js"
import * as InternalDuration from "./internal/duration.js"

/**
 * The deadline a stage gave up against: the time left was not enough for what it was about to
 * do (`stage` says what: a retry's backoff, a wait in a queue …). It carries the last failure of
 * the work, when there was one.
 *
 * Classification: category `timeout`, code `DEADLINE_EXCEEDED`, **not retryable** (the time is
 * spent; a retry cannot finish in time) and it **does not trip a circuit breaker** (the
 * dependency did not fail; the caller's budget ran out).
 *
 * @since 0.1.0
 * @category errors
 */
export class DeadlineExceededError extends Schema.TaggedError<DeadlineExceededError>()("DeadlineExceededError", {
  /** What was about to happen: `"retry"`, `"queue"` … */
  stage: Schema.String,
  /** The time left when the stage gave up, in milliseconds (0 once the deadline has passed). */
  remainingMillis: Schema.Number,
  /** How long the stage would have needed (the backoff, the wait), in milliseconds. */
  neededMillis: Schema.optional(Schema.Number),
  /** The last failure of the work, when there was one. */
  cause: Schema.optional(Schema.Unknown)
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    const needed = this.neededMillis === undefined ? "" : ` (${this.stage} needed ${this.neededMillis}ms)`
    return `Deadline exceeded before the ${this.stage}: ${this.remainingMillis}ms left${needed}`
  }
  /**
   * @since 0.1.0
   */
  get [Failure.RuleKey](): Failure.RuleObject {
    return {
      category: "timeout",
      code: "DEADLINE_EXCEEDED",
      severity: "minor",
      strategy: "abandon",
      retryable: false,
      maxRetries: 0,
      tripsBreaker: false
    }
  }
}

/**
 * The current deadline, as `Clock` milliseconds; `Infinity` when there is none. A `FiberRef`,
 * so a forked fiber inherits its parent's deadline.
 *
 * @since 0.1.0
 * @category fiber refs
 */
export const currentDeadline: FiberRef.FiberRef<number> = FiberRef.unsafeMake(Number.POSITIVE_INFINITY)

const decode = (where: string, duration: Duration.DurationInput): number => {
  const millis = InternalDuration.toMillis(duration)
  if (!(millis >= 0)) throw new RangeError(`${where}: duration must be a duration >= 0, got ${String(duration)}`)
  return millis
}

/**
 * Runs `self` with a deadline `duration` from now; an earlier deadline already set stays (a
 * nested `within` can shorten the budget, never lengthen it). A duration that is not a duration
 * >= 0 is a defect.
 *
 * @example
 * ```ts
 * import { Deadline, Timeout } from "@bulwark/core"
 * import { Effect } from "effect"
 *
 * const fetchUser = Effect.succeed("ada").pipe(Effect.delay("1 second"))
 *
 * // the per-call timeout of 5 seconds becomes 2 seconds: that is all the time left
 * const user = fetchUser.pipe(Timeout.timeout("5 seconds"), Deadline.within("2 seconds"))
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const within: {
  (duration: Duration.DurationInput): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  <A, E, R>(self: Effect.Effect<A, E, R>, duration: Duration.DurationInput): Effect.Effect<A, E, R>
} = function() {
  // the duration is checked when `within` is called, not when its effect runs
  if (arguments.length === 1) {
    const millis = decode("Deadline.within", arguments[0])
    return (self: Effect.Effect<unknown, unknown, unknown>) => withinMillis(self, millis)
  }
  return withinMillis(arguments[0], decode("Deadline.within", arguments[1]))
} as any

const withinMillis = <A, E, R>(self: Effect.Effect<A, E, R>, millis: number): Effect.Effect<A, E, R> =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => at(self, now + millis))

/**
 * Runs `self` with the deadline at `millis` (`Clock` milliseconds), or the current one when it
 * is earlier. The server side of a propagated deadline uses this.
 *
 * @since 0.1.0
 * @category combinators
 */
export const at: {
  (millis: number): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  <A, E, R>(self: Effect.Effect<A, E, R>, millis: number): Effect.Effect<A, E, R>
} = dual(
  2,
  <A, E, R>(self: Effect.Effect<A, E, R>, millis: number): Effect.Effect<A, E, R> =>
    Effect.flatMap(
      FiberRef.get(currentDeadline),
      (current) => millis < current ? Effect.locally(self, currentDeadline, millis) : self
    )
)

/**
 * The time left before the deadline, in milliseconds: 0 once it has passed, `Infinity` when
 * there is no deadline. Reads `Clock` only when a deadline is set.
 *
 * @since 0.1.0
 * @category getters
 */
export const remainingMillis: Effect.Effect<number> = Effect.flatMap(
  FiberRef.get(currentDeadline),
  (deadline) =>
    deadline === Number.POSITIVE_INFINITY
      ? Effect.succeed(deadline)
      : Effect.map(Clock.currentTimeMillis, (now) => Math.max(0, deadline - now))
)

/**
 * The time left before the deadline (zero once it has passed); `None` when there is none.
 *
 * @since 0.1.0
 * @category getters
 */
export const remaining: Effect.Effect<Option.Option<Duration.Duration>> = Effect.map(
  remainingMillis,
  (millis) => millis === Number.POSITIVE_INFINITY ? Option.none() : Option.some(Duration.millis(millis))
)

/**
 * Runs `self` without any deadline (for work that must outlive its caller's budget, such as a
 * background refresh it started).
 *
 * @since 0.1.0
 * @category combinators
 */
export const clear = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.locally(self, currentDeadline, Number.POSITIVE_INFINITY)

/**
 * The check a retry loop makes before it sleeps: `undefined` when a backoff of `delayMillis`
 * ends by the deadline (or there is none), else the {@link DeadlineExceededError} to fail with,
 * carrying `lastFailure`. A backoff that ends exactly at the deadline is not past it: it is
 * started (the deadline's own timeout, if any, decides the tie).
 *
 * @since 0.1.0
 * @category combinators
 */
export const checkBackoff = (
  delayMillis: number,
  lastFailure: unknown
): Effect.Effect<DeadlineExceededError | undefined> =>
  Effect.map(remainingMillis, (left) =>
    delayMillis <= left
      ? undefined
      : new DeadlineExceededError({
        stage: "retry",
        remainingMillis: left,
        neededMillis: delayMillis,
        cause: lastFailure
      }))

/**
 * Runs `f` with the time limit a stage should use: `f(undefined)` when its own `limitMillis`
 * ends by the deadline (or there is none), `f(left)` with the time left otherwise. Reads
 * `Clock` only when a deadline is set. `Timeout.timeout` uses this.
 *
 * @since 0.1.0
 * @category combinators
 */
export const shorten = <A, E, R>(
  limitMillis: number,
  f: (leftMillis: number | undefined) => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.flatMap(FiberRef.get(currentDeadline), (deadline) =>
    deadline === Number.POSITIVE_INFINITY
      ? f(undefined)
      : Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const left = Math.max(0, deadline - now)
        return f(left < limitMillis ? left : undefined)
      }))

/**
 * Bounds a wait for a slot by the queue's own `maxWaitMillis` (`Infinity` for none) and by the
 * deadline. A caller whose deadline passes before the queue's maximum wait is not queued: it
 * fails at once with `onDeadline(left)` (waiting would spend its last moments, and a place in
 * the queue, on a slot that may come too late for it to use). Without a maximum wait, the wait
 * ends at the deadline. Bulkheads and adaptive limits use this.
 *
 * @since 0.1.0
 * @category combinators
 */
export const boundWait = <X>(
  wait: Effect.Effect<void>,
  maxWaitMillis: number,
  onMaxWait: () => X,
  onDeadline: (leftMillis: number) => X
): Effect.Effect<void, X> =>
  shorten(maxWaitMillis, (left) =>
    left === undefined
      ? maxWaitMillis === Number.POSITIVE_INFINITY
        ? wait
        : Effect.timeoutFail(wait, { duration: Duration.millis(maxWaitMillis), onTimeout: onMaxWait })
      : left <= 0 || maxWaitMillis !== Number.POSITIVE_INFINITY
      ? Effect.failSync(() => onDeadline(left))
      : Effect.timeoutFail(wait, { duration: Duration.millis(left), onTimeout: () => onDeadline(left) }))
