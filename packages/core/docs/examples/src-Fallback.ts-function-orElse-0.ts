import { Fallback } from '../../src'
import { Effect } from "effect"

declare const fromPrimary: Effect.Effect<string, Error>
declare const fromReplica: Effect.Effect<string, Error>

const price = fromPrimary.pipe(Fallback.orElse(fromReplica, { name: "price" }))
// Effect<string, Error | FallbackFailedError>
