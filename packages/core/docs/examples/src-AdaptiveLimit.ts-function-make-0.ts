import { AdaptiveLimit } from '../../src'
import { Effect } from "effect"

declare const search: Effect.Effect<ReadonlyArray<string>>

const program = Effect.gen(function*() {
  const limiter = yield* AdaptiveLimit.make({
    name: "search",
    algorithm: AdaptiveLimit.gradient(),
    minLimit: 2,
    maxLimit: 200,
    maxQueued: 50,
    maxWait: "200 millis"
  })
  return yield* limiter.protect(search)
})
