import { CircuitBreaker } from '../../src'
import { Effect } from "effect"

const program = Effect.gen(function*() {
  const breaker = yield* CircuitBreaker.make({ name: "payments", openDuration: "30 seconds" })
  const charge = Effect.succeed("charged")
  return yield* breaker.protect(charge)
}).pipe(Effect.scoped)
