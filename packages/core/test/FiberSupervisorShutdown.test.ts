import { FiberSupervisor } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Ref, TestClock } from "effect"

const settle = Effect.gen(function*() {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow()
})

describe("FiberSupervisor shutdown while the fiber shutting it down is interrupted", () => {
  it.effect("waits for every program within its shutdown timeout and reports them all", () =>
    Effect.gen(function*() {
      const order = yield* Ref.make<Array<string>>([])
      const program = (name: string) =>
        Effect.scoped(Effect.zipRight(
          Effect.acquireRelease(
            Effect.void,
            () => Effect.zipRight(Effect.sleep("1 second"), Ref.update(order, (xs) => [...xs, name]))
          ),
          Effect.never
        ))
      const report = yield* Ref.make<FiberSupervisor.ShutdownReport | undefined>(undefined)
      yield* Effect.scoped(Effect.gen(function*() {
        const supervisor = yield* FiberSupervisor.make({ shutdownTimeout: "5 seconds" })
        yield* supervisor.spawn("first", program("first"))
        yield* supervisor.spawn("second", program("second"))
        yield* settle
        // the shutdown runs uninterruptibly; an interruption reaching its fiber meanwhile (as a
        // finalizer of a fiber interrupted twice) must not cut its waits short
        const fiber = yield* Effect.fork(
          Effect.uninterruptible(Effect.flatMap(supervisor.shutdown, (r) => Ref.set(report, r)))
        )
        yield* settle
        yield* Fiber.interruptFork(fiber)
        yield* settle
        for (let i = 0; i < 4; i++) {
          yield* TestClock.adjust("1 second")
          yield* settle
        }
        yield* Fiber.await(fiber)
        const s = yield* supervisor.snapshot
        expect(s.children.map((c) => c.status)).toEqual(["stopped", "stopped"])
      }))
      expect(yield* Ref.get(order)).toEqual(["second", "first"])
      expect(yield* Ref.get(report)).toEqual({ stopped: ["second", "first"], overran: [] })
    }))

  it.effect("a program that overruns its shutdown timeout is still reported as overran", () =>
    Effect.gen(function*() {
      const report = yield* Ref.make<FiberSupervisor.ShutdownReport | undefined>(undefined)
      yield* Effect.scoped(Effect.gen(function*() {
        const supervisor = yield* FiberSupervisor.make({ shutdownTimeout: "2 seconds" })
        yield* supervisor.spawn(
          "stuck",
          Effect.scoped(Effect.zipRight(Effect.addFinalizer(() => Effect.never), Effect.never))
        )
        yield* settle
        const fiber = yield* Effect.fork(
          Effect.uninterruptible(Effect.flatMap(supervisor.shutdown, (r) => Ref.set(report, r)))
        )
        yield* settle
        yield* Fiber.interruptFork(fiber)
        yield* settle
        yield* TestClock.adjust("1 second")
        yield* settle
        expect(yield* Ref.get(report)).toBeUndefined()
        yield* TestClock.adjust("1 second")
        yield* settle
        yield* Fiber.await(fiber)
      }))
      expect(yield* Ref.get(report)).toEqual({ stopped: ["stuck"], overran: ["stuck"] })
    }))
})
