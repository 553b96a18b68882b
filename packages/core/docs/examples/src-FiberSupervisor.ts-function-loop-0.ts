import { FiberSupervisor } from '../../src'
import { Effect } from "effect"

declare const pollOnce: Effect.Effect<void, Error>

const poller = FiberSupervisor.loop(pollOnce, { interval: "10 seconds" })
