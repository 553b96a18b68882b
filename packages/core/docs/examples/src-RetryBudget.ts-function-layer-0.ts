import { Retry, RetryBudget } from '../../src'
import { Effect } from "effect"

declare const callService: Effect.Effect<string, Error>

const program = Effect.gen(function*() {
  const budget = yield* RetryBudget.RetryBudget
  return yield* callService.pipe(Retry.retry(Retry.policy({ budget })))
}).pipe(Effect.provide(RetryBudget.layer({ ratio: 0.1 })))
