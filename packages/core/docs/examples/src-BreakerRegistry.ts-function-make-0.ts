import { BreakerRegistry, CircuitBreaker } from '../../src'
import { Effect } from "effect"

const program = Effect.gen(function*() {
  const perHost = yield* BreakerRegistry.make({
    name: "upstream",
    breaker: { policy: CircuitBreaker.consecutive(3) },
    capacity: 500
  })
  const fetchFrom = (host: string) => Effect.succeed(`response from ${host}`)
  return yield* perHost.protect("api.example.com")(fetchFrom("api.example.com"))
}).pipe(Effect.scoped)
