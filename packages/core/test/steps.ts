/**
 * Run-loop step counts, for the tests that check a policy's fused stages take fewer steps than
 * the same stages one after the other.
 */
import { Effect, RuntimeFlags, RuntimeFlagsPatch, Supervisor } from "effect"

/** Counts the steps of the fiber's run loop while it runs an effect. */
class StepCounter extends Supervisor.AbstractSupervisor<void> {
  count = 0
  get value() {
    return Effect.void
  }
  override onEffect(): void {
    this.count++
  }
}

/** The run-loop steps `effect` takes, beyond those of a bare `Effect.succeed`. */
export const stepsOf = (effect: Effect.Effect<unknown, unknown>): Effect.Effect<number> => {
  const count = (self: Effect.Effect<unknown, unknown>) =>
    Effect.suspend(() => {
      const counter = new StepCounter()
      return Effect.exit(self).pipe(
        Effect.withRuntimeFlagsPatch(RuntimeFlagsPatch.enable(RuntimeFlags.OpSupervision)),
        Effect.supervised(counter),
        Effect.zipRight(Effect.sync(() => counter.count))
      )
    })
  return Effect.zipWith(count(effect), count(Effect.succeed(1)), (steps, bare) => steps - bare)
}
