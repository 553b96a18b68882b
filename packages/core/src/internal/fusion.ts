/**
 * Stages that `Policy.make` can fuse with its own bookkeeping. A policy function registered
 * here has a variant that reports every typed failure it lets out (the call's, or its own
 * rejection) from the outcome handler it already runs, so the policy needs no frame of its own
 * around it for that. Keyed by the function itself: a function that is not registered (a
 * user's own, a Tag's `protect`) is composed as it is.
 *
 * @internal
 */
import type * as Cause from "effect/Cause"
import type * as Effect from "effect/Effect"

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
