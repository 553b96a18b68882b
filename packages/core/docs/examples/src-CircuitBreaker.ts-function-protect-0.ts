import { CircuitBreaker } from '../../src'
import { Data, Effect } from "effect"

class HttpError extends Data.TaggedError("HttpError")<{ readonly status: number }> {}
declare const call: Effect.Effect<string, HttpError>

// only server errors count against the dependency
const guarded = CircuitBreaker.protect(call, { isFailure: (error) => error.status >= 500 })
