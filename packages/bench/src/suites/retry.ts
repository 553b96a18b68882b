import { Retry } from "@bulwark/core"
import { handleAll, retry as cockatielRetry } from "cockatiel"
import { Effect, Schedule } from "effect"
import type { Suite } from "../harness.js"

/** Runs `effect` n times inside one fiber: the per-call cost inside a running program. */
export const loop = <A, E>(effect: Effect.Effect<A, E>) => (n: number): Promise<void> =>
  Effect.runPromise(
    Effect.gen(function*() {
      for (let i = 0; i < n; i++) yield* effect
    }) as Effect.Effect<void>
  )

/**
 * A promise library called from an Effect program: `Effect.tryPromise(() => policy.execute(fn))`,
 * run n times inside one fiber, as `loop` runs Bulwark's policies. This, not the promise loop, is
 * the alternative a user of Effect weighs.
 */
export const loopTryPromise = (call: () => Promise<unknown>) => loop(Effect.tryPromise(call))

/** Runs an async function n times in sequence. */
export const loopAsync = (fn: () => Promise<unknown>) => async (n: number): Promise<void> => {
  for (let i = 0; i < n; i++) await fn()
}

const ok = Effect.succeed(1)
const policy = Retry.policy({ name: "bench" })
const cockatiel = cockatielRetry(handleAll, { maxAttempts: 3 })
const okAsync = () => Promise.resolve(1)
const caught = Effect.catchAllCause(ok, Effect.failCause)

export const suites: ReadonlyArray<Suite> = [
  {
    name: "retry: success path (nothing fails)",
    baseline: "bare yield*",
    iterations: 20_000,
    cases: [
      { name: "bare yield*", run: loop(ok) },
      { name: "Effect.catchAllCause (one failure handler: the floor of any retry)", run: loop(caught) },
      { name: "Bulwark Retry.retry(policy)", run: loop(Retry.retry(ok, policy)) },
      { name: "Effect.retry(Schedule.recurs(3))", run: loop(Effect.retry(ok, Schedule.recurs(3))) },
      { name: "bare await", run: loopAsync(okAsync) },
      { name: "cockatiel retry.execute", run: loopAsync(() => cockatiel.execute(okAsync)) },
      {
        name: "Effect.tryPromise(() => cockatiel retry.execute(fn))",
        run: loopTryPromise(() => cockatiel.execute(okAsync))
      }
    ]
  }
]
