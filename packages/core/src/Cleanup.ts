/**
 * Cleanup that always finishes: every step of a cleanup runs even when some fail, and all the
 * failures are reported together in one typed error. Counters for
 * attempts, successes and failures and a duration histogram come with it, and
 * {@link acquireRelease} adds a release timeout and release accounting to Effect's own.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Failure from "./Failure.js"
import { describe } from "./internal/describe.js"
import * as InternalDuration from "./internal/duration.js"

/**
 * One failed step of a cleanup.
 *
 * @since 0.1.0
 * @category models
 */
export const StepFailure = Schema.Struct({
  step: Schema.String,
  reason: Schema.Literal("failure", "defect", "timeout"),
  message: Schema.String
}).annotations({ identifier: "CleanupStepFailure" })

/**
 * @since 0.1.0
 * @category models
 */
export type StepFailure = typeof StepFailure.Type

/**
 * Some steps of a cleanup failed. Every step was attempted; `failures` lists each failed step
 * in order.
 *
 * @since 0.1.0
 * @category errors
 */
export class CleanupError extends Schema.TaggedError<CleanupError>()("CleanupError", {
  cleanup: Schema.String,
  attempted: Schema.Number,
  failures: Schema.Array(StepFailure)
}) {
  override get message(): string {
    return `Cleanup "${this.cleanup}": ${this.failures.length} of ${this.attempted} step(s) failed: ${
      this.failures.map((f) => `${f.step} (${f.reason}: ${f.message})`).join("; ")
    }`
  }

  get [Failure.RuleKey](): Failure.RuleObject {
    return { category: "resource", code: "CLEANUP_FAILED", severity: "major", strategy: "abandon", retryable: false }
  }
}

/**
 * One step of a cleanup. A step with a `timeout` is interrupted when it runs longer and counts
 * as failed with reason `timeout`; nothing else stops it, not even an interruption of the fiber
 * running the cleanup (a finalizer during shutdown, say) that arrives while the step runs.
 *
 * @since 0.1.0
 * @category models
 */
export interface Step<R = never> {
  readonly name: string
  readonly run: Effect.Effect<unknown, unknown, R>
  readonly timeout?: Duration.DurationInput | undefined
}

/** The time limit in milliseconds, or `NaN` when it is not a duration > 0. */
const limitMillis = (input: Duration.DurationInput): number => {
  const millis = InternalDuration.toMillis(input)
  return millis > 0 ? millis : Number.NaN
}

const checkLimit = (field: string, input: Duration.DurationInput | undefined): void => {
  if (input !== undefined && Number.isNaN(limitMillis(input))) {
    throw new RangeError(`Cleanup: ${field} must be a duration > 0, got ${describe(input)}`)
  }
}

/**
 * A step. A `timeout` that is not a duration > 0 is rejected with a `RangeError` naming it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const step = <R>(
  name: string,
  run: Effect.Effect<unknown, unknown, R>,
  options: { readonly timeout?: Duration.DurationInput | undefined } = {}
): Step<R> => {
  checkLimit("timeout", options.timeout)
  return { name, run, ...(options.timeout !== undefined ? { timeout: options.timeout } : {}) }
}

/**
 * The cleanup metrics, tagged with `cleanup` (the cleanup's name): cleanups attempted, those whose
 * every step succeeded, those with a failed step, and their durations in seconds.
 *
 * @since 0.1.0
 * @category metrics
 */
export const metrics = {
  get attempts() {
    return attemptsTotal
  },
  get successes() {
    return successesTotal
  },
  get failures() {
    return failuresTotal
  },
  get duration() {
    return durationSeconds
  }
}

const attemptsTotal = Metric.counter("bulwark_cleanup_attempts_total", {
  description: "Cleanups attempted",
  incremental: true
})
const successesTotal = Metric.counter("bulwark_cleanup_successes_total", {
  description: "Cleanups whose every step succeeded",
  incremental: true
})
const failuresTotal = Metric.counter("bulwark_cleanup_failures_total", {
  description: "Cleanups with at least one failed step",
  incremental: true
})
const durationSeconds = Metric.histogram(
  "bulwark_cleanup_duration_seconds",
  MetricBoundaries.exponential({ start: 0.001, factor: 4, count: 10 }),
  "How long cleanups take"
)

const runStep = <R>(s: Step<R>): Effect.Effect<Option.Option<StepFailure>, never, R> => {
  // a step built by hand may carry any name: the report needs a string
  const stepName = typeof s.name === "string" ? s.name : describe(s.name)
  // the step runs interruptibly so that its own timeout can stop it, but the cleanup around it
  // stays uninterruptible: interrupting the caller never skips a step
  const limit = s.timeout === undefined ? undefined : limitMillis(s.timeout)
  if (limit !== undefined && Number.isNaN(limit)) {
    // a step built by hand with a bad timeout still runs (a cleanup never skips a step), without
    // a limit, and is reported
    return Effect.map(Effect.exit(s.run), () =>
      Option.some({
        step: stepName,
        reason: "defect",
        message: `timeout must be a duration > 0, got ${describe(s.timeout)}`
      }))
  }
  // The timeout races the step in a fiber of its own, the only one made interruptible. That race
  // runs in a daemon fiber the caller joins: an interruption reaching the caller, even in an
  // uninterruptible region (a finalizer of a fiber being interrupted), is passed on at once to
  // every child fiber of the caller, and would cut the step short as if it had been interrupted.
  // Only the step's timeout may stop it.
  const timed: Effect.Effect<unknown, unknown, R> = limit === undefined ? s.run : Effect.flatMap(
    Effect.flatMap(
      Effect.forkDaemon(Effect.timeoutOption(Effect.interruptible(s.run), Duration.millis(limit))),
      Fiber.join
    ),
    Option.match({
      onNone: () => Effect.fail(new TimedOut(Duration.format(Duration.millis(limit)))),
      onSome: Effect.succeed
    })
  )
  return Effect.map(Effect.exit(timed), (exit): Option.Option<StepFailure> => {
    if (Exit.isSuccess(exit)) return Option.none()
    const failure = Cause.failureOption(exit.cause)
    if (Option.isSome(failure)) {
      return Option.some(
        failure.value instanceof TimedOut
          ? { step: stepName, reason: "timeout", message: `did not finish within ${failure.value.after}` }
          : { step: stepName, reason: "failure", message: describe(failure.value) }
      )
    }
    const defect = Cause.dieOption(exit.cause)
    return Option.some({
      step: stepName,
      reason: "defect",
      message: Option.isSome(defect) ? describe(defect.value) : "interrupted"
    })
  })
}

class TimedOut {
  constructor(readonly after: string) {}
}

/**
 * Runs every step in order, uninterruptibly, whatever happens to the others, and fails with one
 * {@link CleanupError} listing every failed step. Records the attempt, its outcome and its
 * duration in the `bulwark_cleanup_*` metrics, tagged with the cleanup's name.
 *
 * @example
 * ```ts
 * import { Cleanup } from "@bulwark/core"
 * import { Effect } from "effect"
 *
 * const stopContainer: Effect.Effect<void, Error> = Effect.log("container stopped")
 * const removeContainer: Effect.Effect<void, Error> = Effect.fail(new Error("no such container"))
 * const removeTempFiles: Effect.Effect<void, Error> = Effect.log("temp files removed")
 *
 * const cleanup = Cleanup.run("execution-42", [
 *   Cleanup.step("stop container", stopContainer, { timeout: "10 seconds" }),
 *   Cleanup.step("remove container", removeContainer),
 *   Cleanup.step("remove temp files", removeTempFiles)
 * ])
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const run = <R>(name: string, steps: Iterable<Step<R>>): Effect.Effect<void, CleanupError, R> =>
  Effect.uninterruptible(Effect.gen(function*() {
    const all = [...steps]
    const start = yield* Clock.currentTimeNanos
    const failures: Array<StepFailure> = []
    for (const s of all) {
      const failed = yield* runStep(s)
      if (Option.isSome(failed)) failures.push(failed.value)
    }
    const end = yield* Clock.currentTimeNanos
    const tag = <T extends Metric.Metric<any, any, any>>(metric: T): T => Metric.tagged(metric, "cleanup", name) as T
    yield* Metric.increment(tag(attemptsTotal))
    yield* Metric.update(tag(durationSeconds), Number(end - start) / 1e9)
    if (failures.length === 0) {
      yield* Metric.increment(tag(successesTotal))
      return
    }
    yield* Metric.increment(tag(failuresTotal))
    const error = new CleanupError({ cleanup: name, attempted: all.length, failures })
    yield* Effect.logError(error.message).pipe(Effect.annotateLogs("bulwark.cleanup", name))
    return yield* Effect.fail(error)
  }))

/**
 * Options for {@link acquireRelease}.
 *
 * @since 0.1.0
 * @category models
 */
export interface AcquireReleaseOptions {
  /** The name in logs and metrics. Default: `"resource"`. */
  readonly name?: string | undefined
  /** How long the release may take before it is interrupted; a duration > 0. Default: no limit. */
  readonly releaseTimeout?: Duration.DurationInput | undefined
}

/**
 * Like `Effect.acquireRelease`, for releases that can fail or hang: the release runs on
 * success, failure, defect and interruption, may be bounded by a timeout, and its failures are
 * logged and counted (as a cleanup of one step) instead of being lost, since a finalizer cannot
 * fail.
 *
 * @example
 * ```ts
 * import { Cleanup } from "@bulwark/core"
 * import { Effect } from "effect"
 *
 * const connect = Effect.try(() => new WebSocket("wss://feed.example.com/market"))
 *
 * const socket = Cleanup.acquireRelease(connect, (ws) => Effect.sync(() => ws.close()), {
 *   name: "market feed",
 *   releaseTimeout: "5 seconds"
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const acquireRelease = <A, E, R, R2>(
  acquire: Effect.Effect<A, E, R>,
  release: (a: A, exit: Exit.Exit<unknown, unknown>) => Effect.Effect<unknown, unknown, R2>,
  options: AcquireReleaseOptions = {}
): Effect.Effect<A, E, R | R2 | Scope.Scope> => {
  const name = options.name ?? "resource"
  checkLimit("releaseTimeout", options.releaseTimeout)
  return Effect.acquireRelease(
    acquire,
    (a, exit) => Effect.ignore(run(name, [step("release", release(a, exit), { timeout: options.releaseTimeout })]))
  )
}

/**
 * Acquires, uses and releases a resource with {@link acquireRelease}'s guarantees, in its own
 * scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const acquireUseRelease = <A, E, R, B, E2, R2, R3>(
  acquire: Effect.Effect<A, E, R>,
  use: (a: A) => Effect.Effect<B, E2, R2>,
  release: (a: A, exit: Exit.Exit<unknown, unknown>) => Effect.Effect<unknown, unknown, R3>,
  options: AcquireReleaseOptions = {}
): Effect.Effect<B, E | E2, R | R2 | R3> =>
  Effect.scoped(Effect.flatMap(acquireRelease(acquire, release, options), use))
