/**
 * Fallback and failover: when a call fails in a way the classification (or a `when`
 * predicate) says an alternative can help with, run the alternative instead: another effect,
 * or the same effect with another Layer. When the alternative fails too, both causes are
 * reported together in a typed {@link FallbackFailedError}.
 *
 * A failure is classified when it happens, by the `Classifier` in the caller's context refined
 * by the `classify` table given here (see the `Failure` module for the rule).
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as ExecutionPlan from "effect/ExecutionPlan"
import type * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Failure from "./Failure.js"
import { describe as describeValue } from "./internal/describe.js"

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

const AnyCause = Schema.CauseFromSelf({ error: Schema.Unknown, defect: Schema.Unknown })

const describe = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.failureOption(cause)
  return Option.isSome(failure) ? describeValue(failure.value) : "a defect"
}

/**
 * The call failed and so did its fallback. Both causes are kept: `primary` (what made the
 * call fall back) and `fallback` (how the alternative failed).
 *
 * Classification: the fallback failure's own category when it has a built-in rule (otherwise
 * `system`), code `FALLBACK_FAILED`, strategy `abandon`, not retryable: the primary and its
 * alternative have both been tried.
 *
 * @since 0.1.0
 * @category errors
 */
export class FallbackFailedError extends Schema.TaggedError<FallbackFailedError>()("FallbackFailedError", {
  operation: Schema.optional(Schema.String),
  primary: AnyCause,
  fallback: AnyCause
}) {
  /** The primary call's error (its first typed failure), if it failed with one. */
  get primaryError(): Option.Option<unknown> {
    return Cause.failureOption(this.primary)
  }
  /** The fallback's error (its first typed failure), if it failed with one. */
  get fallbackError(): Option.Option<unknown> {
    return Cause.failureOption(this.fallback)
  }
  override get message(): string {
    const what = this.operation === undefined ? "The call" : `"${this.operation}"`
    return `${what} failed (${describe(this.primary)}) and so did its fallback (${describe(this.fallback)})`
  }
  get [Failure.RuleKey](): Failure.RuleObject {
    const fallbackRule = Option.match(this.fallbackError, {
      onNone: () => undefined,
      onSome: (error) => Failure.builtinRule(error)
    })
    return {
      category: fallbackRule?.category ?? "system",
      code: "FALLBACK_FAILED",
      strategy: "abandon",
      retryable: false
    }
  }
}

// -----------------------------------------------------------------------------
// when to fall back
// -----------------------------------------------------------------------------

const callersFault: ReadonlySet<Failure.Category> = new Set(["validation", "security", "user_code"])

/**
 * The default rule for falling back: every typed failure except those of the caller's own
 * making (`validation`, `security`, `user_code`: another backend would refuse them too).
 * Defects are never a reason to fall back (a bug stays visible) and interruption is not a
 * failure.
 *
 * @since 0.1.0
 * @category predicates
 */
export const defaultWhen = (_error: unknown, classification: Failure.Classification): boolean =>
  !classification.defect && !callersFault.has(classification.category)

/**
 * What the alternative is told about the failure it replaces.
 *
 * @since 0.1.0
 * @category models
 */
export interface Failed {
  readonly error: unknown
  readonly classification: Failure.Classification
  readonly cause: Cause.Cause<unknown>
}

/**
 * Options for {@link orElse}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<E = unknown> {
  /** A name for the operation, used in errors, logs (`bulwark.fallback`) and metrics. Default: none. */
  readonly name?: string | undefined
  /**
   * Decides which failures fall back, from the error (typed against the effect's `E`) and its
   * classification. Defects and interruptions never reach it. Default: {@link defaultWhen}.
   */
  readonly when?: ((error: E, classification: Failure.Classification) => boolean) | undefined
  /**
   * A table (or rule function) tried before the `Classifier` in the caller's context. Default:
   * the context's classifier alone.
   */
  readonly classify?: Failure.Classify<E> | undefined
}

/**
 * Fallbacks taken (tagged `outcome`: `succeeded` | `failed`, and `operation` when named).
 *
 * @since 0.1.0
 * @category metrics
 */
export const fallbacksCounter = Metric.counter("bulwark_fallback_total", {
  description: "Calls that ran their fallback, by outcome",
  incremental: true
})

/**
 * The error type of a call with a fallback: the primary's errors (those that do not fall back
 * pass through) and, when the alternative can fail, {@link FallbackFailedError}.
 *
 * @since 0.1.0
 * @category models
 */
export type Errors<E, E2> = E | ([E2] extends [never] ? never : FallbackFailedError)

/**
 * A policy function that runs `alternative` when its effect fails with a classified failure
 * that `when` accepts (see {@link defaultWhen}). The alternative is an effect, or a function of
 * the failure. When the alternative fails too, the call fails with {@link FallbackFailedError}
 * holding both causes; a defect in the alternative stays a defect, with both causes in order.
 *
 * @example
 * ```ts
 * import { Fallback } from "@bulwark/core"
 * import { Effect } from "effect"
 *
 * const fromPrimary: Effect.Effect<string, Error> = Effect.fail(new Error("primary down"))
 * const fromReplica: Effect.Effect<string, Error> = Effect.succeed("42.00")
 *
 * const price = fromPrimary.pipe(Fallback.orElse(fromReplica, { name: "price" }))
 * // Effect<string, Error | FallbackFailedError>
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const orElse = <A2, E2, R2, E = unknown>(
  alternative: Effect.Effect<A2, E2, R2> | ((failed: Failed) => Effect.Effect<A2, E2, R2>),
  options: Options<E> = {}
) => {
  const when: (error: E, classification: Failure.Classification) => boolean = options.when ?? defaultWhen
  const classify = options.classify
  const base = options.name === undefined
    ? fallbacksCounter
    : Metric.tagged(fallbacksCounter, "operation", options.name)
  const succeeded = Metric.tagged(base, "outcome", "succeeded")
  const failed = Metric.tagged(base, "outcome", "failed")
  const annotate = options.name === undefined
    ? <A, E, R>(effect: Effect.Effect<A, E, R>) => effect
    : Effect.annotateLogs("bulwark.fallback", options.name)
  return <A, E1 extends E, R>(self: Effect.Effect<A, E1, R>): Effect.Effect<A | A2, Errors<E1, E2>, R | R2> =>
    Effect.catchAllCause(self, (primary) => {
      // a cause that holds a defect beside a typed failure (a finalizer that died, a failure and
      // a defect in parallel work) is classified by its failure, but its defect is a bug:
      // falling back would hide it, so it never falls back
      if (Cause.isDie(primary)) return Effect.failCause(primary)
      const failure = Cause.failureOption(primary)
      if (Option.isNone(failure)) return Effect.failCause(primary)
      const error = failure.value
      // the rule: the caller's classifier, refined by this stage's table, when the failure happens
      return Effect.flatMap(
        Failure.currentClassifier,
        (classifier) =>
          Effect.flatMap(Failure.classifyWith(classifier, error, { classify }), (c) => {
            if (!when(error, c)) return Effect.failCause(primary)
            const run = Effect.isEffect(alternative)
              ? alternative
              : Effect.suspend(() => alternative({ error, classification: c, cause: primary }))
            return Effect.logInfo(`Falling back after ${c.category} failure ${c.code}`).pipe(
              annotate,
              Effect.zipRight(run),
              Effect.tap(() => Metric.increment(succeeded)),
              Effect.catchAllCause((secondary): Effect.Effect<never, unknown> => {
                if (Cause.isInterruptedOnly(secondary)) return Effect.failCause(secondary)
                const increment = Metric.increment(failed)
                // a defect in the alternative stays a defect, even beside a typed failure
                if (Cause.isDie(secondary) || Option.isNone(Cause.failureOption(secondary))) {
                  return Effect.zipRight(increment, Effect.failCause(Cause.sequential(primary, secondary)))
                }
                const failure = new FallbackFailedError({
                  ...(options.name === undefined ? {} : { operation: options.name }),
                  primary,
                  fallback: secondary
                })
                return increment.pipe(
                  Effect.zipRight(Effect.logError(failure.message).pipe(annotate)),
                  Effect.zipRight(Effect.fail(failure))
                )
              })
            )
          })
      )
    }) as Effect.Effect<A | A2, Errors<E1, E2>, R | R2>
}

/**
 * An `ExecutionPlan` that provides `primary` and, when a failure that `when` accepts escapes
 * it, retries the effect once with `fallback` provided instead (failover to another adapter,
 * region or replica). Use it with `Effect.withExecutionPlan`. With a plan, the last step's
 * failure is the one reported (Effect's semantics); use {@link orElse} to keep both causes.
 *
 * @example
 * ```ts
 * import { Fallback } from "@bulwark/core"
 * import { Context, Data, Effect, Layer } from "effect"
 *
 * class ModelError extends Data.TaggedError("ModelError")<{ readonly status: number }> {}
 * class LanguageModel extends Context.Tag("LanguageModel")<LanguageModel, {
 *   readonly complete: (prompt: string) => Effect.Effect<string, ModelError>
 * }>() {}
 * const OpenAiLayer = Layer.succeed(LanguageModel, { complete: () => Effect.fail(new ModelError({ status: 503 })) })
 * const LocalModelLayer = Layer.succeed(LanguageModel, { complete: (prompt) => Effect.succeed(`local: ${prompt}`) })
 * const program = Effect.flatMap(LanguageModel, (model) => model.complete("hello"))
 *
 * const resilient = program.pipe(Effect.withExecutionPlan(Fallback.plan(OpenAiLayer, LocalModelLayer)))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const plan = <P, EP, RP, EF, RF>(
  primary: Layer.Layer<P, EP, RP>,
  fallback: Layer.Layer<P, EF, RF>,
  options: Pick<Options, "when" | "classify"> = {}
) => {
  const when = options.when ?? defaultWhen
  return ExecutionPlan.make({ provide: primary }, {
    provide: fallback,
    while: (error: unknown) =>
      Effect.flatMap(
        Failure.currentClassifier,
        (classifier) =>
          Effect.map(Failure.classifyWith(classifier, error, { classify: options.classify }), (c) => when(error, c))
      )
  })
}
