import { CircuitBreaker, Policy, Retry } from '../../src'
import { Effect } from "effect"

declare const call: Effect.Effect<string, Error>
declare const breaker: CircuitBreaker.CircuitBreaker

const guarded = call.pipe(
  Policy.retry(Retry.policy({ maxRetries: 3 }), { breaker: breaker.protect })
)
