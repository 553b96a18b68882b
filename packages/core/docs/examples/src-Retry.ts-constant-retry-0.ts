import { Retry } from '../../src'
import { Effect } from "effect"

declare const fetchQuote: Effect.Effect<number, Error>

const quote = fetchQuote.pipe(Retry.retry({ name: "quotes", maxRetries: 3 }))
