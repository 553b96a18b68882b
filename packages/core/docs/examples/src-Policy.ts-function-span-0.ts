import { Policy, Timeout } from '../../src'
import { Effect } from "effect"

declare const charge: Effect.Effect<string, Error>

const traced = charge.pipe(Timeout.timeout("2 seconds"), Policy.span("timeout", { dependency: "payments" }))
