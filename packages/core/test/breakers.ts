/**
 * Calls through a breaker, shared by the breaker tests: a failing call, runs of it, and the
 * breaker's rejection of a call.
 */
import { CircuitBreaker } from "@bulwark/core"
import { Data, Effect } from "effect"

/** The failure the breaker tests count. */
export class Refused extends Data.TaggedError("Refused")<{}> {}

/** A call that fails with {@link Refused}. */
export const refused = Effect.fail(new Refused())

/** A call that succeeds. */
export const ok = Effect.succeed("ok")

/** Runs `n` failing calls (by default {@link refused}) through the breaker. */
export const failTimes = (
  breaker: CircuitBreaker.CircuitBreaker,
  n: number,
  failing: Effect.Effect<unknown, unknown> = refused
): Effect.Effect<void> =>
  Effect.forEach(Array.from({ length: n }), () => Effect.exit(breaker.protect(failing)), { discard: true })

/** The breaker's rejection that `effect` fails with; a defect if it fails otherwise or succeeds. */
export const rejection = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.flatMap(
    Effect.flip(effect),
    (e) => e instanceof CircuitBreaker.CircuitOpenError ? Effect.succeed(e) : Effect.dieMessage(`not a rejection: ${e}`)
  )
