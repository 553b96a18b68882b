import { FiberSupervisor } from '../../src'
import { Effect } from "effect"

declare const main: Effect.Effect<void, never, FiberSupervisor.FiberSupervisor>

const program = main.pipe(
  FiberSupervisor.supervised,
  Effect.provide(FiberSupervisor.layer({ name: "app" })),
  Effect.catchTag("SupervisorEscalation", (escalation) => Effect.logFatal(escalation.message))
)
