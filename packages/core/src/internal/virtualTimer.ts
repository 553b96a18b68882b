/**
 * A `Clock` that can call back at a time of its own without a fiber waiting on it: the testing
 * kit's virtual clock. `Timeout` arms its timer on it as it arms a Node timer on the live clock,
 * so the work runs in the caller's fiber instead of a fiber raced against a sleeping one.
 *
 * @internal
 */
import type * as Clock from "effect/Clock"

/** The key of the method a virtual clock offers. */
export const TypeId: unique symbol = Symbol.for("@bulwark/core/internal/VirtualTimer")

/** A clock with a timer of its own. */
export interface VirtualTimer {
  /** Calls `fire` once `millis` have passed on this clock; the function returned cancels it. */
  readonly [TypeId]: (millis: number, fire: () => void) => () => void
}

/** The clock's own timer, if it has one. */
export const of = (clock: Clock.Clock): VirtualTimer | undefined =>
  typeof (clock as Partial<VirtualTimer>)[TypeId] === "function" ? clock as Clock.Clock & VirtualTimer : undefined
