/**
 * Stages that `Policy.make` can fuse with its own bookkeeping. A policy function registered
 * here has a variant that reports every typed failure it lets out (the call's, or its own
 * rejection) from the outcome handler it already runs, so the policy needs no frame of its own
 * around it for that. Keyed by the function itself: a function that is not registered (a
 * user's own, a Tag's `protect`) is composed as it is.
 *
 * A breaker and a bulkhead also register their admission: when `Policy.make` is given both, an
 * uncontended call through a closed breaker is admitted by both in one synchronous step, and
 * one outcome handler gives the slot back, counts the outcome for the breaker and, only when the
 * call failed, goes on with the retry loop and the fallback.
 *
 * @internal
 */
import type * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as RuntimeFlags from "effect/RuntimeFlags"

/** A policy function whose failures are reported to `report` as they leave it. */
export type Reporting = (
  report: (cause: Cause.Cause<unknown>) => void
) => <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, any, R>

const reporting = new WeakMap<object, Reporting>()

/** Registers the reporting variant of a policy function. */
export const register = <F extends object>(policy: F, variant: Reporting): F => {
  reporting.set(policy, variant)
  return policy
}

/** The reporting variant of a policy function, if it has one. */
export const reportingVariant = (policy: unknown): Reporting | undefined =>
  typeof policy === "function" ? reporting.get(policy) : undefined

/**
 * The outcome handlers of one admitted call (a breaker's): they count the outcome and return
 * what the call returned, or fail with its cause.
 */
export interface Outcome {
  readonly onSuccess: (value: unknown) => Effect.Effect<unknown>
  readonly onFailure: (cause: Cause.Cause<unknown>) => Effect.Effect<never, unknown>
}

/**
 * A breaker's admission, for a policy that decides the breaker and the bulkhead in one step.
 * `admitNow` admits a call that needs no step of its own (the breaker closed or disabled): it
 * counts the call and returns the handlers of its outcome; otherwise it changes nothing and
 * returns `undefined` (the call takes the breaker's ordinary path).
 */
export interface BreakerAdmission {
  readonly admitNow: () => Outcome | undefined
}

/**
 * A bulkhead's uncontended admission, for the same policy: `free` tells (changing nothing)
 * whether a call would get a slot at once; `acquire` takes it (only right after `free` said
 * yes, in the same synchronous step); `release` gives it back.
 */
export interface BulkheadAdmission {
  readonly free: () => boolean
  readonly acquire: () => void
  readonly release: () => void
}

const breakers = new WeakMap<object, BreakerAdmission>()
const bulkheads = new WeakMap<object, BulkheadAdmission>()

/** Registers the admission of the breaker whose policy function is `policy`. */
export const registerBreaker = <F extends object>(policy: F, admission: BreakerAdmission): F => {
  breakers.set(policy, admission)
  return policy
}

/** Registers the admission of the bulkhead whose policy function is `policy`. */
export const registerBulkhead = <F extends object>(policy: F, admission: BulkheadAdmission): F => {
  bulkheads.set(policy, admission)
  return policy
}

/** The admission of a breaker's policy function, if it has one. */
export const breakerAdmission = (policy: unknown): BreakerAdmission | undefined =>
  typeof policy === "function" ? breakers.get(policy) : undefined

/** The admission of a bulkhead's policy function, if it has one. */
export const bulkheadAdmission = (policy: unknown): BulkheadAdmission | undefined =>
  typeof policy === "function" ? bulkheads.get(policy) : undefined

type Restore = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

/** The fields of Effect 3's flag-changing primitive that {@link admissionMask} sets. */
interface FlagsPrimitive {
  readonly _op: unknown
  effect_instruction_i1: unknown
}

let oneStep: boolean | undefined = undefined

/**
 * Whether this runtime runs a flag change as {@link admissionMask} expects: `Effect.uninterruptible`
 * is one primitive whose continuation is called with the flags it replaced, and runs
 * uninterruptibly. Checked once, by running it.
 */
const oneStepMask = (): boolean => {
  if (oneStep !== undefined) return oneStep
  oneStep = false
  try {
    const op = Effect.uninterruptible(Effect.void) as unknown as FlagsPrimitive
    if (op._op !== "UpdateRuntimeFlags" || typeof op.effect_instruction_i1 !== "function") return false
    let before: unknown = undefined
    op.effect_instruction_i1 = (flags: unknown) => {
      before = flags
      return Effect.checkInterruptible((interruptible) => Effect.succeed(interruptible))
    }
    const insideInterruptible = Effect.runSync(op as unknown as Effect.Effect<boolean>)
    oneStep = insideInterruptible === false && typeof before === "number" &&
      RuntimeFlags.interruption(before as RuntimeFlags.RuntimeFlags)
  } catch {
    oneStep = false
  }
  return oneStep
}

/**
 * `Effect.uninterruptibleMask(f)` in one step of the fiber's run loop instead of two: the public
 * mask is a step that builds the flag change, then the flag change itself (which calls `f`). Built
 * once, this is the flag change alone, calling `f` with the `restore` the public mask would give
 * (the caller's interruptibility). It relies on how Effect 3's runtime runs that primitive, so
 * it is used only when {@link oneStepMask} has seen it run that way; otherwise it is the public
 * mask.
 */
export const admissionMask = <A, E, R>(f: (restore: Restore) => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => {
  if (!oneStepMask()) return Effect.uninterruptibleMask(f)
  const op = Effect.uninterruptible(Effect.void) as unknown as FlagsPrimitive
  op.effect_instruction_i1 = (flags: RuntimeFlags.RuntimeFlags) =>
    f(RuntimeFlags.interruption(flags) ? Effect.interruptible : Effect.uninterruptible)
  return op as unknown as Effect.Effect<A, E, R>
}
