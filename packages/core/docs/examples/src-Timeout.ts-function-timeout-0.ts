import { Timeout } from '../../src'
import { Effect } from "effect"

const slow = Effect.sleep("5 seconds").pipe(Effect.as("done"))
const bounded = slow.pipe(Timeout.timeout("1 second", { name: "fetchUser" }))
// Effect<string, TimeoutError>
