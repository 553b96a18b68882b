/**
 * Retry driven by classification. Each failure is classified (by the `Classifier` in the
 * context, or a table given here); non-retryable failures stop at once, each category retries
 * within its own budget and backoff from the decision matrix, a retry-after hint carried by the
 * error is honoured, defects are not retried unless asked, and interruption stops everything.
 *
 * Every retry is logged at warning level with the attempt and the delay, a success after
 * retries at info, and giving up at error; retries and exhaustions are counted in `Metric`s.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Interval from "effect/ScheduleInterval"
import * as Alerts from "./Alerts.js"
import * as Backoff from "./Backoff.js"
import * as Deadline from "./Deadline.js"
import * as Failure from "./Failure.js"
import * as InternalDuration from "./internal/duration.js"
import type * as RetryBudget from "./RetryBudget.js"
import { RetryBudgetExhaustedError } from "./RetryBudget.js"

/**
 * How a policy classifies failures when the `Classifier` in the context should not be used: a
 * table for the error union, or a function.
 *
 * @since 0.1.0
 * @category models
 */
export type Classify<E> =
  | Failure.Table<E>
  | ((error: E) => Failure.Category | Failure.RuleObject)

/**
 * Options of a retry policy. Without any, a policy follows the decision matrix alone.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<E> {
  /** Names the operation in logs (`bulwark.retry.operation`) and metrics. Default: none. */
  readonly name?: string | undefined
  /** Classifies failures instead of the `Classifier` in the context. Default: the context's. */
  readonly classify?: Classify<E> | undefined
  /** One backoff for every category, instead of the matrix's. Default: the matrix's backoff. */
  readonly schedule?: Schedule.Schedule<unknown, unknown> | undefined
  /** A backoff per category, instead of the matrix's. Default: none. */
  readonly schedules?: Partial<Record<Failure.Category, Schedule.Schedule<unknown, unknown>>> | undefined
  /** At most this many retries in all (on top of each category's budget). Default: no cap. */
  readonly maxRetries?: number | undefined
  /** No single delay longer than this (a retry-after hint may still ask for more). Default: none. */
  readonly maxDelay?: Duration.DurationInput | undefined
  /** No retry starts later than this after the first failure. Default: no limit. */
  readonly maxElapsed?: Duration.DurationInput | undefined
  /**
   * Apply severity escalation (SPEC R1): past attempt 3 the severity rises one step and a critical
   * failure past attempt 2 is abandoned, so with the default matrix a `major` category is retried
   * at most 3 times. With `false` each category gets its matrix `maxRetries` in full.
   * Default: `true`.
   */
  readonly escalate?: boolean | undefined
  /** Retry defects too, as `system` failures with their own budget. Default: `false`. */
  readonly retryDefects?: boolean | undefined
  /** A retry budget shared by every caller of the dependency. Default: none. */
  readonly budget?: RetryBudget.RetryBudget | undefined
}

/**
 * Why a policy stopped or went on.
 *
 * @since 0.1.0
 * @category models
 */
export type Verdict = "retry" | "not_retryable" | "abandoned" | "exhausted" | "budget_exhausted"

/**
 * What a policy decided for one failure.
 *
 * @since 0.1.0
 * @category models
 */
export interface Step {
  /** The attempt that failed (1 for the first call). */
  readonly attempt: number
  readonly verdict: Verdict
  /** The delay before the next attempt (zero when stopping). */
  readonly delay: Duration.Duration
  readonly classification: Failure.Classification
}

/**
 * A classification-driven retry policy. It is a `Schedule` over the failures, so it also works
 * with `Effect.retry`; {@link retry} adds what a schedule cannot see (success after retries,
 * defects, the budget's typed error).
 *
 * @since 0.1.0
 * @category models
 */
export interface RetryPolicy<in E, out X = never> extends Schedule.Schedule<Step, E> {
  readonly options: Options<E>
  /** Phantom: the error this policy adds (`RetryBudgetExhaustedError` when it has a budget). */
  readonly _X?: (_: never) => X
}

interface State {
  readonly attempt: number
  readonly retries: number
  readonly start: number | undefined
  readonly perCategory: ReadonlyMap<Failure.Category, { readonly retries: number; readonly schedule: unknown }>
}

const initialState: State = { attempt: 0, retries: 0, start: undefined, perCategory: new Map() }

const retriesCounter = Metric.counter("bulwark_retry_retries_total", {
  description: "Retries scheduled, by category",
  incremental: true
})
const exhaustedCounter = Metric.counter("bulwark_retry_exhausted_total", {
  description: "Operations that stopped retrying, by category and reason",
  incremental: true
})
const recoveredCounter = Metric.counter("bulwark_retry_recovered_total", {
  description: "Operations that succeeded after at least one retry",
  incremental: true
})

/**
 * The retry metrics: `retries` (tagged `category`, `operation`), `exhausted` (tagged `category`,
 * `reason`, `operation`) and `recovered` (tagged `operation`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const metrics = {
  retries: retriesCounter,
  exhausted: exhaustedCounter,
  recovered: recoveredCounter
} as const

const immediate = Backoff.fromDelays(Backoff.immediateRetryDelays)
const backoffRetry = Backoff.fromDelays(Backoff.backoffRetryDelays)
const linearSecond = Backoff.linear({ base: Duration.seconds(1) })
const noDelay = Backoff.fromDelays([0])

/**
 * The backoff the decision matrix gives a classification: seed 001's `immediate_retry` table
 * (0, 100 ms, 200 ms) for immediate retries, its `backoff_retry` table (1 s … 16 s) for
 * exponential rows, 1 s × n for linear rows, and no delay otherwise.
 *
 * @since 0.1.0
 * @category constructors
 */
export const matrixBackoff = (classification: Failure.Classification): Backoff.Backoff =>
  classification.strategy === "immediate_retry"
    ? immediate
    : classification.backoff === "exponential"
    ? backoffRetry
    : classification.backoff === "linear"
    ? linearSecond
    : noDelay

/**
 * Wraps a defect so that a policy can see it as a failure (with `retryDefects`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Defect {
  readonly _tag: "@bulwark/core/Retry/Defect"
  readonly defect: unknown
}

const isDefect = (u: unknown): u is Defect =>
  typeof u === "object" && u !== null && (u as Defect)._tag === "@bulwark/core/Retry/Defect"

const millisOf = (where: string, d: Duration.DurationInput | undefined): number | undefined => {
  if (d === undefined) return undefined
  const millis = InternalDuration.toMillis(d)
  if (!(millis >= 0)) throw new RangeError(`Retry.policy: ${where} must be a duration >= 0, got ${String(d)}`)
  return millis
}

const validate = <E>(options: Options<E>) => {
  if (
    options.maxRetries !== undefined &&
    (!Number.isInteger(options.maxRetries) || options.maxRetries < 0)
  ) {
    throw new RangeError(`Retry.policy: maxRetries must be a whole number >= 0, got ${options.maxRetries}`)
  }
  return {
    maxDelay: millisOf("maxDelay", options.maxDelay),
    maxElapsed: millisOf("maxElapsed", options.maxElapsed)
  }
}

const classifierFor = <E>(options: Options<E>): Effect.Effect<Failure.Classifier> => {
  const classify = options.classify
  if (classify === undefined) return Failure.currentClassifier
  const table = typeof classify === "function"
    ? undefined
    : classify
  return Effect.map(Failure.currentClassifier, (base) => {
    const classifier = Failure.makeClassifier({ matrix: base.matrix, ...(table ? { tables: [table] } : {}) })
    if (table !== undefined) return classifier
    const fn = classify as (error: E) => Failure.Category | Failure.RuleObject
    return {
      ...classifier,
      classify: (error, context) => {
        const rule = fn(error as E)
        return Failure.fromRule(typeof rule === "string" ? { category: rule } : rule, {
          matrix: base.matrix,
          tag: typeof (error as { _tag?: unknown })?._tag === "string" ? (error as { _tag: string })._tag : undefined,
          ...(context !== undefined ? { context } : {})
        })
      }
    }
  })
}

const annotations = (name: string | undefined, step: Step, error: unknown) => ({
  "bulwark.retry.attempt": step.attempt,
  "bulwark.retry.delay_ms": Duration.toMillis(step.delay),
  "bulwark.retry.verdict": step.verdict,
  "bulwark.failure.category": step.classification.category,
  "bulwark.failure.code": step.classification.code,
  "bulwark.failure.severity": step.classification.severity,
  ...(name !== undefined ? { "bulwark.retry.operation": name } : {}),
  ...(isDefect(error) ? { "bulwark.failure.defect": true } : {})
})

const describe = (error: unknown): string => {
  const e = isDefect(error) ? error.defect : error
  if (typeof e === "object" && e !== null) {
    const message = (e as { message?: unknown }).message
    if (typeof message === "string" && message.length > 0) return message
    const tag = (e as { _tag?: unknown })._tag
    if (typeof tag === "string") return tag
  }
  return String(e)
}

/**
 * Builds a classification-driven retry policy.
 *
 * @example
 * ```ts
 * import { Backoff, Failure, Retry } from "@bulwark/core"
 * import { Data, Effect } from "effect"
 *
 * class Refused extends Data.TaggedError("Refused")<{}> {}
 * class BadRequest extends Data.TaggedError("BadRequest")<{}> {}
 *
 * declare const call: Effect.Effect<string, Refused | BadRequest>
 *
 * const policy = Retry.policy<Refused | BadRequest>({
 *   name: "orders",
 *   classify: Failure.table<Refused | BadRequest>({ Refused: "connection", BadRequest: "validation" }),
 *   schedule: Backoff.exponential({ base: "100 millis", cap: "5 seconds" })
 * })
 *
 * // Refused is retried with backoff; BadRequest fails at once
 * const program = call.pipe(Retry.retry(policy))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const policy: {
  <E = unknown>(options: Options<E> & { readonly budget: RetryBudget.RetryBudget }): RetryPolicy<
    E,
    RetryBudgetExhaustedError | Deadline.DeadlineExceededError
  >
  <E = unknown>(options?: Options<E>): RetryPolicy<E, Deadline.DeadlineExceededError>
} = <E>(options: Options<E> = {}): RetryPolicy<E, Deadline.DeadlineExceededError> => {
  const { maxDelay, maxElapsed } = validate(options)
  const escalate = options.escalate ?? true
  const classifierEffect = classifierFor(options)
  const schedule = Schedule.makeWithState<State, E, Step>(
    initialState,
    (now, error, state) =>
      Effect.gen(function*() {
        const classifier = yield* classifierEffect
        const attempt = state.attempt + 1
        const context = escalate ? { attempt } : undefined
        const classification = isDefect(error)
          ? { ...classifier.classifyDefect(error.defect, context), retryable: true, strategy: "backoff_retry" as const }
          : classifier.classify(error, context)
        const start = state.start ?? now
        const category = state.perCategory.get(classification.category)
        const stop = (verdict: Verdict) => {
          const step: Step = { attempt, verdict, delay: Duration.zero, classification }
          const next: State = { ...state, attempt, start }
          return Effect.as(
            Effect.zipRight(
              Metric.increment(
                Metric.taggedWithLabels(exhaustedCounter, [
                  MetricLabel.make("category", classification.category),
                  MetricLabel.make("reason", verdict),
                  MetricLabel.make("operation", options.name ?? "")
                ])
              ),
              Effect.logError(
                verdict === "not_retryable"
                  ? `Not retrying: ${classification.code} (${classification.category}) is not retryable: ${
                    describe(error)
                  }`
                  : verdict === "abandoned"
                  ? `Abandoning after attempt ${attempt}: ${classification.code} (${classification.category}) escalated to ${classification.severity}: ${
                    describe(error)
                  }`
                  : verdict === "budget_exhausted"
                  ? `Retry budget "${options.budget?.name}" is spent; giving up after attempt ${attempt}: ${
                    describe(error)
                  }`
                  : `All retries exhausted after attempt ${attempt}: ${classification.code} (${classification.category}): ${
                    describe(error)
                  }`
              ).pipe(Effect.annotateLogs(annotations(options.name, step, error)))
            ),
            [next, step, ScheduleDecision.done] as const
          )
        }
        if (!classification.retryable) {
          // retryable on its own but escalated to critical past attempt 2: abandoned, not unretryable
          const escalated = context !== undefined && !isDefect(error) && classifier.classify(error).retryable
          return yield* stop(escalated ? "abandoned" : "not_retryable")
        }
        const categoryRetries = category?.retries ?? 0
        const budget = isDefect(error) ?
          (classification.maxRetries > 0 ? classification.maxRetries : 3) :
          classification
            .maxRetries
        if (categoryRetries >= budget || state.retries >= (options.maxRetries ?? Number.POSITIVE_INFINITY)) {
          return yield* stop("exhausted")
        }
        const backoff = options.schedules?.[classification.category] ?? options.schedule ??
          matrixBackoff(classification)
        const [scheduleState, , decision] = yield* backoff.step(now, error, category?.schedule ?? backoff.initial)
        if (ScheduleDecision.isDone(decision)) return yield* stop("exhausted")
        let delay = Backoff.decisionDelayMillis(now, decision)
        if (maxDelay !== undefined) delay = Math.min(delay, maxDelay)
        if (Option.isSome(classification.retryAfter)) {
          delay = Math.max(delay, Duration.toMillis(classification.retryAfter.value))
        }
        if (maxElapsed !== undefined && now + delay - start > maxElapsed) return yield* stop("exhausted")
        if (options.budget !== undefined && !(yield* options.budget.tryWithdraw)) {
          const budget = options.budget
          yield* Effect.flatMap(budget.snapshot, (snapshot) =>
            Alerts.announce({
              key: `retry_budget:${budget.name}`,
              kind: "retry_budget_exhausted",
              severity: "major",
              message:
                `Retry budget "${budget.name}" is spent: ${snapshot.retries} retries for ${snapshot.calls} calls in the window; retries are refused`,
              annotations: {
                budget: budget.name,
                calls: snapshot.calls,
                retries: snapshot.retries,
                ratio: budget.ratio
              }
            }))
          return yield* stop("budget_exhausted")
        }
        const step: Step = { attempt, verdict: "retry", delay: Duration.millis(delay), classification }
        const perCategory = new Map(state.perCategory)
        perCategory.set(classification.category, { retries: categoryRetries + 1, schedule: scheduleState })
        yield* Metric.increment(
          Metric.taggedWithLabels(retriesCounter, [
            MetricLabel.make("category", classification.category),
            MetricLabel.make("operation", options.name ?? "")
          ])
        )
        yield* Effect.logWarning(
          `Attempt ${attempt} failed with ${classification.code} (${classification.category}); retrying in ${
            Duration.format(step.delay)
          }: ${describe(error)}`
        ).pipe(Effect.annotateLogs(annotations(options.name, step, error)))
        const next: State = { attempt, retries: state.retries + 1, start, perCategory }
        return [next, step, ScheduleDecision.continueWith(Interval.after(now + delay))] as const
      })
  )
  return Object.assign(schedule, { options }) as RetryPolicy<E, Deadline.DeadlineExceededError>
}

/**
 * Runs an effect under a retry policy (or the options of one). The success path pays one
 * failure handler and nothing else; a budget, when given, also records the call.
 *
 * - a failure the policy gives up on fails with the last failure, or with
 *   `RetryBudgetExhaustedError` when the budget refused the retry;
 * - a backoff that would not end before the `Deadline` is not started: the call fails at once
 *   with `DeadlineExceededError`, which carries the last failure;
 * - defects are not retried unless `retryDefects` is set, and then die again when retries end;
 * - interruption is never retried; interrupting the retrying fiber stops it at once, even mid-backoff;
 * - a success after retries is logged at info.
 *
 * @example
 * ```ts
 * import { Retry } from "@bulwark/core"
 * import { Effect } from "effect"
 *
 * declare const fetchQuote: Effect.Effect<number, Error>
 *
 * const quote = fetchQuote.pipe(Retry.retry({ name: "quotes", maxRetries: 3 }))
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const retry: {
  <E, X>(policy: RetryPolicy<E, X>): <A, E2 extends E, R>(self: Effect.Effect<A, E2, R>) => Effect.Effect<A, E2 | X, R>
  <E>(
    options: Options<E> & { readonly budget: RetryBudget.RetryBudget }
  ): <A, E2 extends E, R>(
    self: Effect.Effect<A, E2, R>
  ) => Effect.Effect<A, E2 | RetryBudgetExhaustedError | Deadline.DeadlineExceededError, R>
  <E>(
    options: Options<E>
  ): <A, E2 extends E, R>(self: Effect.Effect<A, E2, R>) => Effect.Effect<A, E2 | Deadline.DeadlineExceededError, R>
  <A, E, R, X>(self: Effect.Effect<A, E, R>, policy: RetryPolicy<E, X>): Effect.Effect<A, E | X, R>
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    options: Options<E> & { readonly budget: RetryBudget.RetryBudget }
  ): Effect.Effect<A, E | RetryBudgetExhaustedError | Deadline.DeadlineExceededError, R>
  <A, E, R>(self: Effect.Effect<A, E, R>, options: Options<E>): Effect.Effect<A, E | Deadline.DeadlineExceededError, R>
} = dual(
  2,
  <A, E, R>(self: Effect.Effect<A, E, R>, policyOrOptions: RetryPolicy<E, any> | Options<E>) => {
    const p: RetryPolicy<E, any> = Schedule.isSchedule(policyOrOptions)
      ? policyOrOptions as RetryPolicy<E, any>
      : policy(policyOrOptions as Options<E>)
    const retryDefects = p.options.retryDefects ?? false
    const budget = p.options.budget
    const name = p.options.name
    const loop = (state: unknown, retries: number): Effect.Effect<A, unknown, R> =>
      Effect.catchAllCause(
        retries === 0 ? self : Effect.tap(self, () =>
          Effect.zipRight(
            Metric.increment(Metric.tagged(recoveredCounter, "operation", name ?? "")),
            Effect.logInfo(
              `Succeeded on attempt ${retries + 1} after ${retries} ${retries === 1 ? "retry" : "retries"}`
            )
              .pipe(
                Effect.annotateLogs({
                  "bulwark.retry.attempt": retries + 1,
                  ...(name !== undefined ? { "bulwark.retry.operation": name } : {})
                })
              )
          )),
        (cause) => {
          if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause)
          // a defect is a bug: it is not retried, even beside a typed failure, unless asked
          if (!retryDefects && Cause.isDie(cause)) return Effect.failCause(cause)
          let input: unknown
          const failure = Cause.failureOption(cause)
          if (Option.isSome(failure)) {
            input = failure.value
          } else {
            const defect = Cause.dieOption(cause)
            if (Option.isNone(defect) || !retryDefects) return Effect.failCause(cause)
            input = { _tag: "@bulwark/core/Retry/Defect", defect: defect.value } satisfies Defect
          }
          return Effect.flatMap(Clock.currentTimeMillis, (now) =>
            Effect.flatMap(p.step(now, input as E, state), ([next, step, decision]) => {
              if (ScheduleDecision.isDone(decision)) {
                return step.verdict === "budget_exhausted" && budget !== undefined
                  ? Effect.flatMap(budget.snapshot, (snapshot) =>
                    Effect.fail(
                      new RetryBudgetExhaustedError({
                        budget: budget.name,
                        calls: snapshot.calls,
                        retries: snapshot.retries,
                        ratio: budget.ratio,
                        cause: isDefect(input) ? input.defect : input
                      })
                    ))
                  : Effect.failCause(cause)
              }
              // no backoff that would end past the deadline: fail now, with the last failure
              return Effect.flatMap(
                Deadline.checkBackoff(Duration.toMillis(step.delay), isDefect(input) ? input.defect : input),
                (exceeded) =>
                  exceeded === undefined
                    ? Effect.zipRight(Effect.sleep(step.delay), loop(next, retries + 1))
                    : Effect.fail(exceeded)
              )
            }))
        }
      )
    const run = Effect.suspend(() => loop(p.initial, 0))
    if (budget === undefined) return run
    return Effect.zipRight(budget.deposit, run)
  }
)
