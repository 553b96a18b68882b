/**
 * Retry driven by classification. Each failure is classified when it happens, by the
 * `Classifier` in the caller's context refined by the policy's own `classify` table (see the
 * `Failure` module for the rule); non-retryable failures stop at once, each category retries
 * within its own budget and backoff from the decision matrix, a retry-after hint carried by the
 * error is honoured (capped by the classifier), defects are not retried unless asked, and
 * interruption stops everything. A `while` predicate, when given, decides instead of the
 * classification whether to retry; a `maxRetries` written here is the count, in full.
 *
 * Every retry and every give-up is logged at the level of the failure's severity
 * (`Failure.logLevel`), a success after retries at info; retries and exhaustions are counted in
 * `Metric`s.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as LogLevel from "effect/LogLevel"
import * as Metric from "effect/Metric"
import * as MetricKey from "effect/MetricKey"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Interval from "effect/ScheduleInterval"
import * as Alerts from "./Alerts.js"
import * as Backoff from "./Backoff.js"
import * as Deadline from "./Deadline.js"
import * as Failure from "./Failure.js"
import { describe as describeValue, tagOf } from "./internal/describe.js"
import * as InternalDuration from "./internal/duration.js"
import * as Log from "./internal/log.js"
import { instance } from "./internal/metric.js"
import type * as RetryBudget from "./RetryBudget.js"
import { RetryBudgetExhaustedError } from "./RetryBudget.js"

/**
 * How a policy refines the `Classifier` in the caller's context: a table for the error union,
 * or a function returning a rule (or `undefined` to leave the failure to the context's
 * classifier). Tried first, before the context's tables and the built-in rules.
 *
 * @since 0.1.0
 * @category models
 */
export type Classify<E> = Failure.Classify<E>

/**
 * Options of a retry policy. Without any, a policy follows the decision matrix alone.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<E> {
  /** Names the operation in logs (`bulwark.retry.operation`) and metrics. Default: none. */
  readonly name?: string | undefined
  /**
   * A table (or rule function) tried before the `Classifier` in the caller's context, which
   * still classifies whatever it leaves out. Default: the context's classifier alone.
   */
  readonly classify?: Classify<E> | undefined
  /**
   * Decides whether to retry a failure, instead of its classification: `true` retries (even a
   * failure the classification calls not retryable, and whatever escalation says), `false`
   * stops. The classification still gives the delays, the retry-after hint, the count (a
   * category that allows no retries gets 3 unless `maxRetries` says otherwise), the log level
   * and the metric labels. Default: the classification's `retryable`.
   */
  readonly while?: ((error: E, classification: Failure.Classification) => boolean) | undefined
  /** One backoff for every category, instead of the matrix's. Default: the matrix's backoff. */
  readonly schedule?: Schedule.Schedule<unknown, unknown> | undefined
  /** A backoff per category, instead of the matrix's. Default: none. */
  readonly schedules?: Partial<Record<Failure.Category, Schedule.Schedule<unknown, unknown>>> | undefined
  /**
   * The number of retries in all, whatever the categories: it replaces each category's budget
   * and is honoured in full (escalation does not abandon before it; it still raises the severity
   * in logs). A whole number >= 0, or `Infinity` to retry for ever. Default: each category's
   * `maxRetries` from its classification.
   */
  readonly maxRetries?: number | undefined
  /** No single delay longer than this (a retry-after hint may still ask for more). Default: none. */
  readonly maxDelay?: Duration.DurationInput | undefined
  /** No retry starts later than this after the first failure. Default: no limit. */
  readonly maxElapsed?: Duration.DurationInput | undefined
  /**
   * Apply severity escalation: past attempt 3 the severity rises one step and a critical failure
   * past attempt 2 is abandoned — unless a number the user wrote (a rule's `maxRetries`, or this
   * policy's) says how many retries to make. So with the default matrix a `major` category
   * is retried at most 3 times. With `false` each category gets its matrix `maxRetries` in full.
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

const retriesKey = MetricKey.counter("bulwark_retry_retries_total", {
  description: "Retries scheduled, by category",
  incremental: true
})
const exhaustedKey = MetricKey.counter("bulwark_retry_exhausted_total", {
  description: "Operations that stopped retrying, by category and reason",
  incremental: true
})
const recoveredKey = MetricKey.counter("bulwark_retry_recovered_total", {
  description: "Operations that succeeded after at least one retry",
  incremental: true
})
const retriesCounter: Metric.Metric.Counter<number> = Metric.fromMetricKey(retriesKey)
const exhaustedCounter: Metric.Metric.Counter<number> = Metric.fromMetricKey(exhaustedKey)
const recoveredCounter: Metric.Metric.Counter<number> = Metric.fromMetricKey(recoveredKey)

/**
 * The recoveries counter of each operation, resolved once: `retry` is applied to every call.
 * Bounded: past the bound the cache starts over (the metric registry keeps every key anyway).
 */
const recoveredByOperation = new Map<string, Metric.Metric.Counter<number>>()

const recoveredOf = (operation: string): Metric.Metric.Counter<number> => {
  let counter = recoveredByOperation.get(operation)
  if (counter === undefined) {
    if (recoveredByOperation.size >= 1024) recoveredByOperation.clear()
    counter = instance(recoveredKey, { operation })
    recoveredByOperation.set(operation, counter)
  }
  return counter
}

/**
 * The tagged counters of one policy, each resolved once (on its first use) and reused: a tagged
 * metric made afresh per update would look its key up in the metric registry every time.
 */
const taggedCounters = (operation: string) => {
  const retries = new Map<string, Metric.Metric.Counter<number>>()
  const exhausted = new Map<string, Metric.Metric.Counter<number>>()
  return {
    retries: (category: Failure.Category): Metric.Metric.Counter<number> => {
      let counter = retries.get(category)
      if (counter === undefined) {
        counter = instance(retriesKey, { category, operation })
        retries.set(category, counter)
      }
      return counter
    },
    exhausted: (category: Failure.Category, reason: Verdict): Metric.Metric.Counter<number> => {
      const key = `${category}/${reason}`
      let counter = exhausted.get(key)
      if (counter === undefined) {
        counter = instance(exhaustedKey, { category, reason, operation })
        exhausted.set(key, counter)
      }
      return counter
    }
  }
}

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
 * The backoff the decision matrix gives a classification: the `immediate_retry` table
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

const DefectTag = "@bulwark/core/Retry/Defect"

const isDefect = (u: unknown): u is Defect => tagOf(u) === DefectTag

const millisOf = (where: string, d: Duration.DurationInput | undefined): number | undefined => {
  if (d === undefined) return undefined
  const millis = InternalDuration.toMillis(d)
  if (!(millis >= 0)) throw new RangeError(`Retry.policy: ${where} must be a duration >= 0, got ${describeValue(d)}`)
  return millis
}

const validate = <E>(options: Options<E>) => {
  const maxRetries = options.maxRetries
  if (
    maxRetries !== undefined &&
    !(maxRetries === Number.POSITIVE_INFINITY || (Number.isInteger(maxRetries) && maxRetries >= 0))
  ) {
    throw new RangeError(
      `Retry.policy: maxRetries must be a whole number >= 0 or Infinity, got ${describeValue(maxRetries)}`
    )
  }
  if (options.while !== undefined && typeof options.while !== "function") {
    throw new TypeError(`Retry.policy: while must be a function, got ${describeValue(options.while)}`)
  }
  return {
    maxDelay: millisOf("maxDelay", options.maxDelay),
    maxElapsed: millisOf("maxElapsed", options.maxElapsed)
  }
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

const describe = (error: unknown): string => describeValue(isDefect(error) ? error.defect : error)

const levelOf = (classification: Failure.Classification): LogLevel.LogLevel =>
  LogLevel.fromLiteral(Failure.logLevel(classification.severity))

/** Retries a category that allows none gets when a `while` predicate or `retryDefects` retries it anyway. */
const forcedRetries = 3

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
 * const call: Effect.Effect<string, Refused | BadRequest> = Effect.fail(new Refused())
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
  const userRetries = options.maxRetries
  const retryWhile = options.while
  const counters = taggedCounters(options.name ?? "")
  const schedule = Schedule.makeWithState<State, E, Step>(
    initialState,
    (now, error, state) =>
      Effect.gen(function*() {
        // the rule: the classifier in the caller's context, refined by this policy's table
        const classifier = Failure.refine(yield* Failure.currentClassifier, options.classify)
        const attempt = state.attempt + 1
        const context = escalate ? { attempt } : undefined
        const defect = isDefect(error)
        const classified = defect
          ? classifier.classifyDefect(error.defect, context)
          : classifier.classify(error, context)
        // the warnings speak of the classifier's answer, before a retried defect is made retryable
        yield* Failure.logWarnings(classifier, classified)
        let classification: Failure.Classification = defect
          ? { ...classified, retryable: true, strategy: "backoff_retry" as const }
          : classified
        const start = state.start ?? now
        const category = state.perCategory.get(classification.category)
        const stop = (verdict: Verdict) => {
          const step: Step = { attempt, verdict, delay: Duration.zero, classification }
          const next: State = { ...state, attempt, start }
          return Effect.as(
            Effect.zipRight(
              Metric.increment(counters.exhausted(classification.category, verdict)),
              // the message is built only when the entry is kept (a test run drops them all)
              Log.lazily(
                levelOf(classification),
                () =>
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
                    }`,
                () => annotations(options.name, step, error)
              )
            ),
            [next, step, ScheduleDecision.done] as const
          )
        }
        let forced = defect
        if (retryWhile !== undefined && !defect) {
          // the predicate is the decision; the classification still gives delays, count and level
          if (!retryWhile(error, classification)) return yield* stop("not_retryable")
          forced = !classification.retryable
        } else if (!classification.retryable) {
          // retryable on its own but escalated to critical past attempt 2: abandoned, not unretryable
          // (a defect's classification here is retryable; without escalation it is this one)
          const unescalated = context === undefined ? classification : classifier.classify(error)
          if (!unescalated.retryable) return yield* stop("not_retryable")
          // a number the user wrote here wins over escalation: keep the escalated severity, retry on
          if (userRetries === undefined) return yield* stop("abandoned")
          classification = { ...classification, strategy: unescalated.strategy, retryable: true }
        }
        const categoryRetries = category?.retries ?? 0
        if (userRetries !== undefined) {
          if (state.retries >= userRetries) return yield* stop("exhausted")
        } else {
          const budget = forced && classification.maxRetries === 0 ? forcedRetries : classification.maxRetries
          if (categoryRetries >= budget) return yield* stop("exhausted")
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
        yield* Metric.increment(counters.retries(classification.category))
        yield* Log.lazily(
          levelOf(classification),
          () =>
            `Attempt ${attempt} failed with ${classification.code} (${classification.category}); retrying in ${
              Duration.format(step.delay)
            }: ${describe(error)}`,
          () => annotations(options.name, step, error)
        )
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
 * const fetchQuote: Effect.Effect<number, Error> = Effect.succeed(42)
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
            Metric.increment(recoveredOf(name ?? "")),
            Log.lazily(
              LogLevel.Info,
              () => `Succeeded on attempt ${retries + 1} after ${retries} ${retries === 1 ? "retry" : "retries"}`,
              () => ({
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
            input = { _tag: DefectTag, defect: defect.value } satisfies Defect
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
    // the first attempt holds no state of its own (the schedule's initial state is a value), so
    // it is built once: a run costs one failure handler and nothing else until something fails
    const run = loop(p.initial, 0)
    if (budget === undefined) return run
    return Effect.zipRight(budget.deposit, run)
  }
)
