import { Deadline, Timeout } from '../../src'
import { Effect } from "effect"

declare const fetchUser: Effect.Effect<string>

// the per-call timeout of 5 seconds becomes 2 seconds: that is all the time left
const user = fetchUser.pipe(Timeout.timeout("5 seconds"), Deadline.within("2 seconds"))
