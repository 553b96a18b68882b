import { Bulkhead, CircuitBreaker, Policy, Retry, RetryBudget } from '../../src'
import { Effect } from "effect"

declare const charge: Effect.Effect<string, Error>

const program = Effect.gen(function*() {
  const breaker = yield* CircuitBreaker.make({ name: "payments" })
  const bulkhead = yield* Bulkhead.make({ name: "payments", maxConcurrent: 8, maxQueued: 32 })
  const budget = yield* RetryBudget.make({ name: "payments" })
  const payments = Policy.make({
    name: "payments",
    timeout: "2 seconds",
    bulkhead: bulkhead.protect,
    breaker: breaker.protect,
    retry: Retry.policy({ maxRetries: 3, budget }),
    totalTimeout: "10 seconds",
    fallback: Effect.succeed("queued for later")
  })
  return yield* charge.pipe(payments)
}).pipe(Effect.scoped)
