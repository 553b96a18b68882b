import { FiberSupervisor } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Clock, type Duration, Effect, Fiber, Logger, LogLevel, Ref, TestClock } from "effect"

const settle = Effect.gen(function*() {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow()
})

describe("FiberSupervisor escalation order", () => {
  it.scoped("an escalation becomes visible only after the other programs' finalizers have run", () =>
    Effect.gen(function*() {
      const released = yield* Ref.make<Array<[string, number]>>([])
      const supervisor = yield* FiberSupervisor.make({ name: "app" })
      const programs: ReadonlyArray<readonly [string, string]> = [["a", "1 second"], ["b", "2 seconds"]]
      for (const [name, release] of programs) {
        yield* supervisor.spawn(
          name,
          Effect.scoped(Effect.zipRight(
            Effect.acquireRelease(Effect.void, () =>
              Effect.sleep(release as Duration.DurationInput).pipe(
                Effect.zipRight(Clock.currentTimeMillis),
                Effect.flatMap((now) => Ref.update(released, (xs): Array<[string, number]> => [...xs, [name, now]]))
              )),
            Effect.never
          ))
        )
      }
      yield* supervisor.spawn("buggy", Effect.zipRight(Effect.sleep("1 second"), Effect.die("bug")))
      // what the waiter sees at the moment the escalation reaches it
      const seen = yield* Effect.fork(
        Effect.flip(supervisor.awaitEscalation).pipe(
          Effect.zipRight(Effect.all([Clock.currentTimeMillis, Ref.get(released)]))
        )
      )
      yield* settle
      for (let i = 0; i < 4; i++) {
        yield* TestClock.adjust("1 second")
        yield* settle
      }
      const [escalatedAt, releasedThen] = yield* Fiber.join(seen)
      // the defect at 1 s; "b" (started last) releases first, taking 2 s, then "a" takes 1 s
      expect(releasedThen).toEqual([["b", 3000], ["a", 4000]])
      expect(escalatedAt).toBe(4000)
      expect(escalatedAt).toBeGreaterThanOrEqual(Math.max(...releasedThen.map(([, at]) => at)))
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))
})
