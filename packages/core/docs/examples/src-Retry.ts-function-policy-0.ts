import { Backoff, Failure, Retry } from '../../src'
import { Data, Effect } from "effect"

class Refused extends Data.TaggedError("Refused")<{}> {}
class BadRequest extends Data.TaggedError("BadRequest")<{}> {}

declare const call: Effect.Effect<string, Refused | BadRequest>

const policy = Retry.policy<Refused | BadRequest>({
  name: "orders",
  classify: Failure.table<Refused | BadRequest>({ Refused: "connection", BadRequest: "validation" }),
  schedule: Backoff.exponential({ base: "100 millis", cap: "5 seconds" })
})

// Refused is retried with backoff; BadRequest fails at once
const program = call.pipe(Retry.retry(policy))
