/**
 * One composition of the resilience policies in a documented order, outermost first:
 *
 * ```
 * fallback( totalTimeout( retry( breaker( bulkhead( timeout( call ))))))
 * ```
 *
 * - **timeout** (per attempt) is innermost, so it bounds the call itself, not its time in the
 *   bulkhead's queue (the queue has its own `maxWait`), and a timeout counts as a failure for
 *   the breaker around it.
 * - **bulkhead** sits inside the breaker, so an open breaker rejects before a slot or a place
 *   in the queue is taken; its own rejections do not trip the breaker (`tripsBreaker: false`).
 * - **breaker** sits inside retry, so every retry goes through it, and a rejection by the
 *   breaker stops the retry loop at once rather than burning the retry budget on it.
 * - **retry** waits between attempts outside the bulkhead, so backoff never holds a slot.
 * - **totalTimeout** bounds the whole retry loop, and sets the `Deadline` for everything inside
 *   it: per-attempt timeouts shrink to the time left, and no backoff starts that would end
 *   past it.
 * - **fallback** is outermost: it answers when everything inside has given up.
 *
 * With `spans: true`, {@link make} runs each stage in a span named `bulwark.<stage>`; a stage
 * that fails records the failure's classification on its span as attributes.
 *
 * Each stage is a plain policy function, so the same order can be written with `pipe`
 * ({@link retry} couples retry and breaker); {@link make} builds it from options.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Deadline from "./Deadline.js"
import * as Failure from "./Failure.js"
import * as Fallback from "./Fallback.js"
import { describe } from "./internal/describe.js"
import * as Fusion from "./internal/fusion.js"
import * as Retry from "./Retry.js"
import * as Timeout from "./Timeout.js"

// -----------------------------------------------------------------------------
// slots
// -----------------------------------------------------------------------------

declare const probeA: unique symbol
declare const probeE: unique symbol
declare const probeR: unique symbol

/**
 * Placeholder types through which a policy function shows what it adds: a slot is applied to
 * an effect of these types, and whatever else appears in its result is the policy's own.
 *
 * @since 0.1.0
 * @category models
 */
export declare namespace Probe {
  /**
   * @since 0.1.0
   */
  export interface A {
    readonly [probeA]: true
  }
  /**
   * @since 0.1.0
   */
  export interface E {
    readonly [probeE]: true
  }
  /**
   * @since 0.1.0
   */
  export interface R {
    readonly [probeR]: true
  }
}

/**
 * A slot for a policy function `<A, E, R>(self: Effect<A, E, R>) => Effect<A, E | X, R | RX>`
 * (such as `breaker.protect` or `bulkhead.protect`): the compiler reads `X` and `RX` off it.
 *
 * @since 0.1.0
 * @category models
 */
export type Slot<X, RX> = (
  self: Effect.Effect<Probe.A, Probe.E, Probe.R>
) => Effect.Effect<Probe.A, Probe.E | X, Probe.R | RX>

/**
 * The error a slot adds.
 *
 * @since 0.1.0
 * @category models
 */
export type SlotError<X> = Exclude<X, Probe.E>

/**
 * The requirements a slot adds.
 *
 * @since 0.1.0
 * @category models
 */
export type SlotContext<RX> = Exclude<RX, Probe.R>

type AnyPolicy = <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, any, any>

const asPolicy = (slot: Slot<any, any>): AnyPolicy => slot as unknown as AnyPolicy

const identity: AnyPolicy = (self) => self

// -----------------------------------------------------------------------------
// retry through the breaker
// -----------------------------------------------------------------------------

const RejectedTag = "@bulwark/core/Policy/BreakerRejected"

/**
 * A breaker's rejection on its way through the retry loop: marked not retryable, unwrapped
 * again once the loop has stopped.
 */
class BreakerRejected implements Failure.SelfClassifying {
  readonly _tag = RejectedTag
  constructor(readonly error: unknown) {}
  get message(): string {
    return `rejected by the circuit breaker: ${describe(this.error)}`
  }
  get [Failure.RuleKey](): Failure.RuleObject {
    const own = Failure.builtinRule(this.error)
    return {
      category: own?.category ?? "resource",
      code: own?.code ?? "CIRCUIT_OPEN",
      strategy: "abandon",
      tripsBreaker: false
    }
  }
}

const isRejected = (u: unknown): u is BreakerRejected => u instanceof BreakerRejected

/** `Cause.electFailures`: every typed failure of the cause becomes a defect. */
const electFailures = (cause: Cause.Cause<unknown>): Cause.Cause<never> =>
  Cause.match(cause, {
    onEmpty: Cause.empty,
    onFail: Cause.die,
    onDie: Cause.die,
    onInterrupt: Cause.interrupt,
    onSequential: Cause.sequential,
    onParallel: Cause.parallel
  })

/**
 * `Effect.catchAll` in one failure frame: `catchAll` is a match whose success branch runs one
 * more step on every success, a failure frame costs nothing once the effect has succeeded. The
 * rule is `catchAll`'s: a cause holding a defect turns its failures into defects and is not
 * handled, `f` gets the first typed failure, a cause without one passes.
 */
const catchFailure = <A, E, R, A2, E2, R2>(
  self: Effect.Effect<A, E, R>,
  f: (error: E) => Effect.Effect<A2, E2, R2>
): Effect.Effect<A | A2, E2, R | R2> => Effect.catchAllCause(self, (cause) => handleFailure(cause, f))

/** {@link catchFailure}'s handler of a cause. */
const handleFailure = <E, A2, E2, R2>(
  cause: Cause.Cause<E>,
  f: (error: E) => Effect.Effect<A2, E2, R2>
): Effect.Effect<A2, E2, R2> => {
  if (Cause.isDie(cause)) return Effect.failCause(electFailures(cause))
  const failures = Cause.failures(cause)
  return Chunk.isNonEmpty(failures) ? f(Chunk.headNonEmpty(failures)) : Effect.failCause(cause as Cause.Cause<never>)
}

/** The typed failure of a cause when it is an object (the only failures a record can key). */
const failureObject = (cause: Cause.Cause<unknown>): object | undefined => {
  const failure = Cause.failureOption(cause)
  return Option.isSome(failure) && typeof failure.value === "object" && failure.value !== null
    ? failure.value
    : undefined
}

const unwrap = (error: unknown) => Effect.fail(isRejected(error) ? error.error : error)

/**
 * The failures that the attempts of one policy raised, as they leave the attempt (inside the
 * breaker) and are marked as they leave the breaker: a failure that its attempt did not raise
 * is the breaker's own (a rejection).
 */
interface CallFailures {
  /** Records the typed failure of a cause as one the attempt raised. */
  readonly record: (cause: Cause.Cause<unknown>) => void
  /** `Effect.tapError(self, record)` in one failure frame (see {@link catchFailure}). */
  readonly recording: AnyPolicy
  /**
   * {@link catchFailure} with the mark: a failure without a record is marked as the breaker's
   * rejection, one with a record goes on as it is and its record is taken back.
   */
  readonly marking: AnyPolicy
}

/**
 * One record store per policy built, keyed by error object, each record counted and taken back
 * by the mark of its own attempt. A breaker fails every rejection of one millisecond with one
 * error object, and a policy nested in another sees its inner policy's rejections come out of
 * its call: a record that outlived its attempt (or that another policy made) would have the
 * inner loop take its breaker's next rejection for its call's failure and retry it. Counted,
 * one constant error object that concurrent attempts raise at once is the call's for each of
 * them, and a policy nested in itself pairs each record with its own mark.
 */
const callFailures = (): CallFailures => {
  const records = new WeakMap<object, number>()
  const record = (cause: Cause.Cause<unknown>): void => {
    const failure = failureObject(cause)
    if (failure !== undefined) {
      const key = Cause.originalError(failure)
      records.set(key, (records.get(key) ?? 0) + 1)
    }
  }
  /**
   * Takes back one record of `error`: whether it had one. Both sides are keyed by the original
   * object: `Effect.fail` inside a span raises a span-annotated proxy of its error, so a slot
   * that re-raises its call's failure in a span passes on a different object than it got.
   */
  const takeBack = (error: object): boolean => {
    const key = Cause.originalError(error)
    const count = records.get(key)
    if (count === undefined) return false
    if (count === 1) records.delete(key)
    else records.set(key, count - 1)
    return true
  }
  const mark = (error: unknown) =>
    Effect.fail(typeof error === "object" && error !== null && !takeBack(error) ? new BreakerRejected(error) : error)
  const onFailure = (cause: Cause.Cause<unknown>): Effect.Effect<never, unknown> => {
    if (Cause.isDie(cause)) {
      // not handled (catchAll's rule), but the attempt's record is taken back all the same
      const failure = failureObject(cause)
      if (failure !== undefined) takeBack(failure)
    }
    return handleFailure(cause, mark)
  }
  const onRecord = (cause: Cause.Cause<unknown>) => {
    record(cause)
    return Effect.failCause(cause)
  }
  return {
    record,
    recording: (self) => Effect.catchAllCause(self, onRecord),
    marking: (self) => Effect.catchAllCause(self, onFailure)
  }
}

/**
 * Runs the breaker around one attempt. A failure that the attempt itself did not raise is the
 * breaker's own (a rejection): it is marked so that the retry loop stops on it. The success
 * path pays two failure frames, no handler and no allocation.
 */
const throughBreaker = (breaker: AnyPolicy, calls: CallFailures, recorded: boolean): AnyPolicy =>
  recorded
    ? (self) => calls.marking(breaker(self))
    : (self) => calls.marking(breaker(calls.recording(self)))

const withRejectionRule = (policy: Retry.RetryPolicy<any, any>): Retry.RetryPolicy<any, any> => {
  const { classify, while: retryWhile } = policy.options
  // tables and the context's classifier see the mark's own rule; a function or a predicate
  // could say "retry" to anything, so a rejection is kept from them
  return Retry.policy({
    ...policy.options,
    ...(typeof classify === "function"
      ? { classify: (error: unknown) => isRejected(error) ? error[Failure.RuleKey] : classify(error) }
      : {}),
    ...(retryWhile !== undefined
      ? {
        while: (error: unknown, classification: Failure.Classification) =>
          !isRejected(error) && retryWhile(error, classification)
      }
      : {})
  })
}

/**
 * Retries its effect under `policy`, with every attempt going through `breaker` when one is
 * given. A rejection by the breaker (the attempt did not run) stops the loop at once and is
 * the error the caller sees; the retry budget is not spent on it.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, Policy, Retry } from "@bulwark/core"
 * import { Effect } from "effect"
 *
 * const call: Effect.Effect<string, Error> = Effect.fail(new Error("connection refused"))
 *
 * const guarded = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make({ name: "orders" })
 *   return yield* call.pipe(Policy.retry(Retry.policy({ maxRetries: 3 }), { breaker: breaker.protect }))
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const retry = <XR = never, XB = never, RB = never>(
  policy: Retry.RetryPolicy<any, XR>,
  options: { readonly breaker?: Slot<XB, RB> | undefined } = {}
) => {
  const breaker = options.breaker
  if (breaker === undefined) {
    const plain = Retry.retry(policy) as unknown as AnyPolicy
    return plain as <A, E, R>(
      self: Effect.Effect<A, E, R>
    ) => Effect.Effect<A, E | XR | SlotError<XB>, R | SlotContext<RB>>
  }
  return retryThrough(policy, asPolicy(breaker), callFailures(), false) as <A, E, R>(
    self: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | XR | SlotError<XB>, R | SlotContext<RB>>
}

/**
 * {@link retry} with a breaker; `recorded`: the effect it is given already records the failures
 * it raises (a fused bulkhead does it from its own outcome handler), so no frame is added for it.
 */
const retryThrough = (
  policy: Retry.RetryPolicy<any, any>,
  breaker: AnyPolicy,
  calls: CallFailures,
  recorded: boolean
): AnyPolicy => {
  const guarded = throughBreaker(breaker, calls, recorded)
  const retrying = Retry.retry(withRejectionRule(policy)) as unknown as AnyPolicy
  return (self) => catchFailure(retrying(guarded(self)), unwrap)
}

// -----------------------------------------------------------------------------
// breaker and bulkhead admitted in one step
// -----------------------------------------------------------------------------

type Restore = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

/**
 * A breaker and a bulkhead built together (see `internal/fusion.ts`): a call through a closed
 * breaker that finds a free slot is admitted by both in the one step that starts the call,
 * already uninterruptible (so the slot's release is in place before any interruption can land),
 * and runs with the caller's interruptibility under one outcome handler. That handler gives the
 * slot back and counts the outcome for the breaker (the handlers `protect` would use); a success
 * goes on with nothing else to run, a failure goes on with `afterFailure` (the retry loop, the
 * fallback), exactly as it would have left the breaker; `record` records the failure as the
 * attempt's first (for the mark of the retry loop's first attempt). Any other call takes `slow`:
 * the same stages composed one by one.
 */
const fused = (
  breaker: Fusion.BreakerAdmission,
  bulkhead: Fusion.BulkheadAdmission,
  record: (cause: Cause.Cause<unknown>) => void,
  slow: AnyPolicy,
  afterFailure: (self: Effect.Effect<any, any, any>, settled: Cause.Cause<unknown>) => Effect.Effect<any, any, any>,
  deposit: Effect.Effect<void> | undefined
): AnyPolicy =>
(self) => {
  // an effect made once and run many times reuses its handlers while the breaker hands out the
  // same ones (same period) to callers of the same interruptibility
  let matched: Effect.Effect<any, any, any> | undefined = undefined
  let matchedOutcome: Fusion.Outcome | undefined = undefined
  let matchedRestore: Restore | undefined = undefined
  const run = Fusion.admissionMask((restore) => {
    if (!bulkhead.free()) return restore(slow(self))
    const outcome = breaker.admitNow()
    if (outcome === undefined) return restore(slow(self))
    bulkhead.acquire()
    if (outcome !== matchedOutcome || restore !== matchedRestore) {
      matched = Effect.matchCauseEffect(restore(self), {
        onSuccess: (value) => {
          bulkhead.release()
          return outcome.onSuccess(value)
        },
        onFailure: (cause) => {
          bulkhead.release()
          record(cause)
          // counted before anything interruptible runs; what follows runs as the caller does
          return Effect.catchAllCause(outcome.onFailure(cause), (settled) => restore(afterFailure(self, settled)))
        }
      })
      matchedOutcome = outcome
      matchedRestore = restore
    }
    return matched!
  })
  return deposit === undefined ? run : Effect.zipRight(deposit, run)
}

/** For a fused policy with no retry loop: no failure needs a record. */
const recordNothing = (_cause: Cause.Cause<unknown>): void => {}

/** The retry loop after a first attempt that failed with `settled` (already counted by the breaker). */
const retryAfterFirst =
  (retrying: AnyPolicy, later: AnyPolicy, calls: CallFailures) =>
  (self: Effect.Effect<any, any, any>, settled: Cause.Cause<unknown>) => {
    let first = true
    const attempt = Effect.suspend(() => {
      if (!first) return later(self)
      first = false
      return calls.marking(Effect.failCause(settled))
    })
    return catchFailure(retrying(attempt), unwrap)
  }

// -----------------------------------------------------------------------------
// make
// -----------------------------------------------------------------------------

/**
 * The attributes a span of a stage gets when the stage fails: the failure's classification.
 *
 * @since 0.1.0
 * @category tracing
 */
export const spanAttributes = (classification: Failure.Classification): Record<string, string | boolean> => ({
  "bulwark.category": classification.category,
  "bulwark.code": classification.code,
  "bulwark.severity": classification.severity,
  "bulwark.strategy": classification.strategy,
  "bulwark.retryable": classification.retryable,
  "bulwark.defect": classification.defect
})

/**
 * Runs one stage of a policy (or any effect) in a span `bulwark.<stage>` with the attribute
 * `bulwark.stage` and the given ones. A failure or a defect is classified (with the classifier
 * of the failing fiber, as everywhere) and recorded on the span ({@link spanAttributes}); an
 * interruption is marked `bulwark.interrupted` and is not an error of the stage. {@link make}
 * does this for each of its stages with `spans: true`.
 *
 * @example
 * ```ts
 * import { Policy, Timeout } from "@bulwark/core"
 * import { Effect } from "effect"
 *
 * const charge: Effect.Effect<string, Error> = Effect.succeed("charged")
 *
 * const traced = charge.pipe(Timeout.timeout("2 seconds"), Policy.span("timeout", { dependency: "payments" }))
 * ```
 *
 * @since 0.1.0
 * @category tracing
 */
export const span =
  (stage: string, attributes: Record<string, unknown> = {}) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    self.pipe(
      // onExit, not tapErrorCause: it also runs when the stage is interrupted
      Effect.onExit((exit) =>
        Exit.isSuccess(exit)
          ? Effect.void
          : Cause.isInterruptedOnly(exit.cause)
          ? Effect.annotateCurrentSpan("bulwark.interrupted", true)
          : Effect.flatMap(Failure.classifyCause(exit.cause), (classification) =>
            Option.isSome(classification)
              ? Effect.annotateCurrentSpan(spanAttributes(classification.value))
              : Effect.void)
      ),
      Effect.withSpan(`bulwark.${stage}`, { attributes: { "bulwark.stage": stage, ...attributes } })
    )

const traced = (stage: string, policyName: string | undefined) => (policy: AnyPolicy): AnyPolicy => (self) =>
  span(stage, policyName !== undefined ? { "bulwark.policy": policyName } : {})(policy(self))

/** The total timeout also sets the deadline, so every stage inside sees the time left. */
const withDeadline = (duration: Duration.DurationInput, timeout: AnyPolicy): AnyPolicy => (self) =>
  Deadline.within(timeout(self), duration)

/**
 * The stages of a policy, outermost first.
 *
 * @since 0.1.0
 * @category constants
 */
export const order = ["fallback", "totalTimeout", "retry", "breaker", "bulkhead", "timeout"] as const

/**
 * Options for {@link make}. Every stage is optional; a missing stage is not applied.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<
  TO extends Duration.DurationInput | undefined,
  TT extends Duration.DurationInput | undefined,
  XR,
  XB,
  RB,
  XH,
  RH,
  A2,
  E2,
  R2
> {
  /** Names the operation in timeouts, fallbacks and their logs and metrics. Default: none. */
  readonly name?: string | undefined
  /**
   * Runs each stage in a span `bulwark.<stage>` (attributes `bulwark.stage`, `bulwark.policy`,
   * and the classification of a failure, see {@link spanAttributes}), for tracing backends such
   * as OpenTelemetry. Default: `false` (a span per stage costs time on every call).
   */
  readonly spans?: boolean | undefined
  /** The time limit of one attempt (innermost). Default: none. */
  readonly timeout?: TO
  /** A bulkhead's policy function, e.g. `bulkhead.protect` or `PaymentsBulkhead.protect`. Default: none. */
  readonly bulkhead?: Slot<XH, RH> | undefined
  /** A circuit breaker's policy function, e.g. `breaker.protect`. Default: none. */
  readonly breaker?: Slot<XB, RB> | undefined
  /**
   * A retry policy (`Retry.policy(...)`, with a budget if you like). Default: no retries. The
   * policy runs it from its options: named after the policy when it has no name of its own, and
   * with the breaker's rejections kept from its `classify` or `while` function.
   */
  readonly retry?: Retry.RetryPolicy<any, XR> | undefined
  /** The time limit of the whole call, retries included. Default: none. */
  readonly totalTimeout?: TT
  /** The alternative when everything inside has failed (see `Fallback.orElse`). Default: none. */
  readonly fallback?: Effect.Effect<A2, E2, R2> | ((failed: Fallback.Failed) => Effect.Effect<A2, E2, R2>) | undefined
  /** Which failures fall back, from the error and its classification. Default: `Fallback.defaultWhen`. */
  readonly fallbackWhen?: ((error: unknown, classification: Failure.Classification) => boolean) | undefined
}

/**
 * What a policy built by {@link make} does to an effect's types: the success type gains the
 * fallback's, the error type is exactly the union of what the stages can raise, the
 * requirements gain the slots' and the fallback's.
 *
 * @since 0.1.0
 * @category models
 */
export type Policy<
  TO extends Duration.DurationInput | undefined,
  TT extends Duration.DurationInput | undefined,
  XR,
  XB,
  RB,
  XH,
  RH,
  A2,
  E2,
  R2
> = <A, E, R>(
  self: Effect.Effect<A, E, R>
) => Effect.Effect<
  A | A2,
  Fallback.Errors<
    | E
    | ([TO] extends [undefined] ? never : Timeout.TimeoutError)
    | ([TT] extends [undefined] ? never : Timeout.TimeoutError)
    | SlotError<XH>
    | SlotError<XB>
    | XR,
    E2
  >,
  R | SlotContext<RH> | SlotContext<RB> | R2
>

/**
 * Builds one policy from its stages, composed in the documented {@link order}.
 *
 * @example
 * ```ts
 * import { Bulkhead, CircuitBreaker, Policy, Retry, RetryBudget } from "@bulwark/core"
 * import { Effect } from "effect"
 *
 * declare const charge: Effect.Effect<string, Error>
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make({ name: "payments" })
 *   const bulkhead = yield* Bulkhead.make({ name: "payments", maxConcurrent: 8, maxQueued: 32 })
 *   const budget = yield* RetryBudget.make({ name: "payments" })
 *   const payments = Policy.make({
 *     name: "payments",
 *     timeout: "2 seconds",
 *     bulkhead: bulkhead.protect,
 *     breaker: breaker.protect,
 *     retry: Retry.policy({ maxRetries: 3, budget }),
 *     totalTimeout: "10 seconds",
 *     fallback: Effect.succeed("queued for later")
 *   })
 *   return yield* charge.pipe(payments)
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <
  TO extends Duration.DurationInput | undefined = undefined,
  TT extends Duration.DurationInput | undefined = undefined,
  XR = never,
  XB = never,
  RB = never,
  XH = never,
  RH = never,
  A2 = never,
  E2 = never,
  R2 = never
>(
  options: Options<TO, TT, XR, XB, RB, XH, RH, A2, E2, R2>
): Policy<TO, TT, XR, XB, RB, XH, RH, A2, E2, R2> => {
  const named = { name: options.name }
  // the policy's name names its retries too, unless the retry policy has its own
  const namedRetry = options.retry !== undefined && options.retry.options.name === undefined
    ? Retry.policy({ ...options.retry.options, name: options.name }) as Retry.RetryPolicy<any, XR>
    : options.retry
  // breaker and bulkhead admitted in one step when both are Bulwark's and no stage has a span
  const breakerAdmission = options.spans === true ? undefined : Fusion.breakerAdmission(options.breaker)
  const bulkheadAdmission = breakerAdmission === undefined ? undefined : Fusion.bulkheadAdmission(options.bulkhead)
  const fusing = bulkheadAdmission !== undefined
  // fused, the call is recorded in a retry budget once, before the admission, and the retry
  // loop (which would record it again) is given the budget without that step
  const budget = fusing ? namedRetry?.options.budget : undefined
  const retryPolicy = budget !== undefined
    ? Retry.policy({ ...namedRetry!.options, budget: { ...budget, deposit: Effect.void } }) as Retry.RetryPolicy<
      any,
      XR
    >
    : namedRetry
  const stage = (name: typeof order[number]) => (policy: AnyPolicy): AnyPolicy =>
    options.spans === true ? traced(name, options.name)(policy) : policy
  const timeout: AnyPolicy = options.timeout === undefined
    ? identity
    : stage("timeout")(Timeout.timeout(options.timeout, named))
  const breaker = options.breaker === undefined ? undefined : stage("breaker")(asPolicy(options.breaker))
  // the failures this policy's attempts raised, when a retry loop marks what leaves its breaker;
  // with no retry loop nothing is recorded (nothing would take a record back)
  const calls = retryPolicy !== undefined && breaker !== undefined ? callFailures() : undefined
  // fused: a bulkhead inside retry and breaker records the failures the attempt raised from its
  // own outcome handler, instead of one more frame around it (not with spans: each stage then
  // runs in its own span)
  const reporting = options.spans !== true && calls !== undefined
    ? Fusion.reportingVariant(options.bulkhead)
    : undefined
  const bulkhead: AnyPolicy = reporting !== undefined
    ? reporting(calls!.record)
    : options.bulkhead === undefined
    ? identity
    : stage("bulkhead")(asPolicy(options.bulkhead))
  const retrying: AnyPolicy = retryPolicy !== undefined
    ? stage("retry")(
      calls !== undefined
        ? retryThrough(retryPolicy, breaker!, calls, reporting !== undefined)
        : Retry.retry(retryPolicy) as unknown as AnyPolicy
    )
    : breaker !== undefined
    ? breaker
    : identity
  const totalTimeout: AnyPolicy = options.totalTimeout === undefined
    ? identity
    : stage("totalTimeout")(withDeadline(options.totalTimeout, Timeout.timeout(options.totalTimeout, named)))
  const fallbackStage: AnyPolicy = options.fallback === undefined
    ? identity
    : stage("fallback")(Fallback.orElse(options.fallback, { ...named, when: options.fallbackWhen }) as AnyPolicy)
  if (fusing) {
    // with no total timeout between them, the fallback joins the fused failure path: a success
    // passes no frame of it
    const inner = options.totalTimeout === undefined ? fallbackStage : identity
    const outer = options.totalTimeout === undefined ? identity : fallbackStage
    // fused, the bulkhead is Bulwark's: with a retry loop it records from its reporting variant
    const guarded = calls !== undefined ? throughBreaker(breaker!, calls, true) : identity
    const later: AnyPolicy = (self) => guarded(bulkhead(self))
    const afterFirst = calls !== undefined
      ? retryAfterFirst(Retry.retry(withRejectionRule(retryPolicy!)) as unknown as AnyPolicy, later, calls)
      : (_self: Effect.Effect<any, any, any>, settled: Cause.Cause<unknown>) => Effect.failCause(settled)
    const admitted = fused(
      breakerAdmission!,
      bulkheadAdmission,
      calls !== undefined ? calls.record : recordNothing,
      (self) => inner(retrying(bulkhead(self))),
      (self, settled) => inner(afterFirst(self, settled)),
      budget?.deposit
    )
    return ((self: Effect.Effect<any, any, any>) => outer(totalTimeout(admitted(timeout(self))))) as Policy<
      TO,
      TT,
      XR,
      XB,
      RB,
      XH,
      RH,
      A2,
      E2,
      R2
    >
  }
  return ((self: Effect.Effect<any, any, any>) =>
    fallbackStage(totalTimeout(retrying(bulkhead(timeout(self)))))) as Policy<
      TO,
      TT,
      XR,
      XB,
      RB,
      XH,
      RH,
      A2,
      E2,
      R2
    >
}
