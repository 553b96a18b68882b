import { Bulkhead } from '../../src'
import { Effect } from "effect"

const program = Effect.gen(function*() {
  const bulkhead = yield* Bulkhead.make({ name: "payments", maxConcurrent: 4, maxQueued: 16, maxWait: "2 seconds" })
  return yield* bulkhead.protect(Effect.succeed("charged"))
})
