import { Hedge } from '../../src'
import { Effect } from "effect"

declare const lookup: Effect.Effect<string, Error>
const fast = lookup.pipe(Hedge.hedge({ delay: "50 millis", maxHedges: 2 }))
