import { CircuitBreaker } from '../../src'
import { Effect } from "effect"

class PaymentsBreaker extends CircuitBreaker.Tag("payments")<PaymentsBreaker>() {}

const charge = Effect.gen(function*() {
  const breaker = yield* PaymentsBreaker
  return yield* breaker.protect(Effect.succeed("charged"))
}).pipe(Effect.provide(PaymentsBreaker.layer({ openDuration: "30 seconds" })))

// or, without naming the service
const refund = Effect.succeed("refunded").pipe(PaymentsBreaker.protect)
