import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Runtime } from "effect"
import * as Simulation from "../src/internal/simulation.js"

const runtime = Runtime.defaultRuntime

const run = <A, E>(effect: Effect.Effect<A, E>, horizon = 100, tasks = 100_000) => {
  const stops: Array<readonly [number, Simulation.Ending]> = []
  const result = Simulation.run(runtime, () => effect, {
    horizon,
    tasks,
    onStop: (now, ending) => stops.push([now, ending])
  })
  return { ...result, stops }
}

describe("the simulation's scheduler", () => {
  it("drain runs every task, those queued while it runs included, within its budget", () => {
    const scheduler = new Simulation.SimScheduler()
    const ran: Array<number> = []
    scheduler.scheduleTask(() => ran.push(1))
    scheduler.scheduleTask(() => {
      ran.push(2)
      scheduler.scheduleTask(() => ran.push(3))
    })
    // exactly the budget: settled
    expect(scheduler.drain(3)).toBe(true)
    expect(ran).toEqual([1, 2, 3])
  })

  it("drain gives up once a task that queues itself again has run past the budget", () => {
    const scheduler = new Simulation.SimScheduler()
    let runs = 0
    const loop = () => {
      runs++
      scheduler.scheduleTask(loop)
    }
    scheduler.scheduleTask(loop)
    expect(scheduler.drain(5)).toBe(false)
    expect(runs).toBe(6)
  })
})

describe("a simulated run", () => {
  it("a fiber that loops without yielding to the clock: the run throws, and the stack limit is restored", () => {
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 7
    try {
      expect(() => run(Effect.forever(Effect.yieldNow()), 100, 1_000)).toThrow(
        new Error("Testing: a run did not settle (a fiber loops without yielding)")
      )
      expect(Error.stackTraceLimit).toBe(7)
      // and after a run that completes
      expect(run(Effect.succeed(1)).now).toBe(0)
      expect(Error.stackTraceLimit).toBe(7)
    } finally {
      Error.stackTraceLimit = limit
    }
  })

  it("a run that completes does not call onStop", () => {
    const result = run(Effect.as(Effect.sleep(30), "done"))
    expect(result.exit).toEqual(Exit.succeed("done"))
    expect(result.ending).toBe("done")
    expect(result.now).toBe(30)
    expect(result.stops).toEqual([])
  })

  it("sleepers due at the same time wake in the order they went to sleep", () => {
    const order: Array<string> = []
    const sleeper = (name: string) => Effect.andThen(Effect.sleep(10), Effect.sync(() => order.push(name)))
    const result = run(Effect.gen(function*() {
      const fibers = [
        yield* Effect.fork(sleeper("a")),
        yield* Effect.fork(sleeper("b")),
        yield* Effect.fork(sleeper("c"))
      ]
      yield* Fiber.joinAll(fibers)
    }))
    expect(result.ending).toBe("done")
    expect(order).toEqual(["a", "b", "c"])
  })

  it("finalizers that sleep for ever get 10,000 steps of the clock, then the run returns", () => {
    const result = run(Effect.never.pipe(Effect.ensuring(Effect.forever(Effect.sleep(1)))))
    expect(result.exit).toBeUndefined()
    expect(result.ending).toBe("stuck")
    expect(result.stops).toEqual([[0, "stuck"]])
    expect(result.now).toBe(10_000)
  })

  it("once the interrupted effect has exited, time stops: a daemon's later sleeper is not waited for", () => {
    const result = run(
      Effect.gen(function*() {
        yield* Effect.forkDaemon(Effect.sleep(1000))
        return yield* Effect.never.pipe(Effect.ensuring(Effect.sleep(5)))
      }),
      10
    )
    expect(result.stops).toEqual([[0, "horizon"]])
    expect(result.ending).toBe("horizon")
    expect(result.exit !== undefined && Exit.isInterrupted(result.exit)).toBe(true)
    expect(result.now).toBe(5)
  })
})
