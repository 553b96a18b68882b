import { Chaos } from '../../src'
import { Data, Effect } from "effect"

class Unavailable extends Data.TaggedError("Unavailable")<{}> {}

const flaky = Chaos.inject({ seed: 42, failureRate: 0.2, failure: () => new Unavailable(), latency: { min: "5 millis", max: "50 millis" } })
const call = Effect.succeed("ok").pipe(flaky) // Effect<string, Unavailable>
