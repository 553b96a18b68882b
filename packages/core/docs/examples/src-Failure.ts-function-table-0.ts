import { Failure } from '../../src'
import { Data } from "effect"

class Refused extends Data.TaggedError("Refused")<{}> {}
class RateLimited extends Data.TaggedError("RateLimited")<{ readonly retryAfterMs: number }> {}
class BadInput extends Data.TaggedError("BadInput")<{}> {}

const table = Failure.table<Refused | RateLimited | BadInput>({
  Refused: "connection",
  RateLimited: (e) => ({ category: "resource", strategy: "backoff_retry", maxRetries: 3, retryAfter: e.retryAfterMs }),
  BadInput: { category: "validation", code: "BAD_INPUT" }
})
