import { Effect, Schedule } from "effect"
import type { Suite } from "../harness.js"

/** Runs `effect` n times inside one fiber: the per-call cost inside a running program. */
export const loop = <A, E>(effect: Effect.Effect<A, E>) => (n: number): Promise<void> =>
  Effect.runPromise(
    Effect.gen(function*() {
      for (let i = 0; i < n; i++) yield* effect
    }) as Effect.Effect<void>
  )

const ok = Effect.succeed(1)

export const suites: ReadonlyArray<Suite> = [
  {
    name: "retry: success path",
    baseline: "bare yield*",
    iterations: 20_000,
    cases: [
      { name: "bare yield*", run: loop(ok) },
      { name: "Effect.retry(schedule)", run: loop(Effect.retry(ok, Schedule.recurs(3))) }
    ]
  }
]
