import { FiberSupervisor } from '../../src'
import { Effect } from "effect"

const main = Effect.gen(function*() {
  yield* FiberSupervisor.spawn("ticker", FiberSupervisor.loop(Effect.log("tick"), { interval: "1 second" }))
  yield* Effect.never
})

// fails with SupervisorEscalation if "ticker" ever dies with a defect
const program = main.pipe(FiberSupervisor.supervised, Effect.provide(FiberSupervisor.layer({ name: "app" })))
