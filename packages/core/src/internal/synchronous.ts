/**
 * Effects that only read state, registered with the same read as a plain function: the testing
 * kit records a breaker's metrics and a bulkhead's state at every attempt, and reading them
 * where it already runs costs no step of the run loop. Keyed by the effect itself: an effect
 * that is not registered (a user's own breaker) is run as it is.
 *
 * @internal
 */
import type * as Effect from "effect/Effect"

const reads = new WeakMap<object, () => unknown>()

/** Registers `read` as what `effect` does: `effect` must be `Effect.sync(read)`. */
export const register = <A>(effect: Effect.Effect<A>, read: () => A): Effect.Effect<A> => {
  reads.set(effect, read)
  return effect
}

/** The plain read a registered effect does, if it is one. */
export const readOf = <A>(effect: Effect.Effect<A>): (() => A) | undefined => reads.get(effect) as (() => A) | undefined
