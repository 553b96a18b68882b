import { CircuitBreaker } from '../../src'
import { Effect } from "effect"

const program = Effect.gen(function*() {
  const breaker = yield* CircuitBreaker.CircuitBreaker
  return yield* breaker.protect(Effect.succeed(1))
}).pipe(Effect.provide(CircuitBreaker.layer({ name: "payments" })))
