import { FiberSupervisor } from "@bulwark/core"
import { Effect, Exit, Fiber, Scope } from "effect"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import type { Suite } from "../harness.js"

const children = 100_000

/** Forks `n` bare fibers that wait for ever, then interrupts them all. */
const bareFibers = (n: number): Promise<void> =>
  Effect.runPromise(Effect.gen(function*() {
    const fibers: Array<Fiber.RuntimeFiber<never>> = []
    for (let i = 0; i < n; i++) fibers.push(yield* Effect.forkDaemon(Effect.never))
    yield* Fiber.interruptAll(fibers)
  }))

/** Spawns `n` supervised programs that wait for ever, then shuts the supervisor down. */
const supervised = (n: number): Promise<void> =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const supervisor = yield* FiberSupervisor.make({ name: "bench" })
    for (let i = 0; i < n; i++) yield* supervisor.spawn(`p${i}`, Effect.never)
  })))

const gc = (): () => void => {
  v8.setFlagsFromString("--expose-gc")
  return vm.runInNewContext("gc") as () => void
}

const heapPerChild = async (
  start: (n: number) => Effect.Effect<Effect.Effect<void>>,
  n: number
): Promise<number> => {
  const collect = gc()
  collect()
  collect()
  const before = process.memoryUsage().heapUsed
  const stop = await Effect.runPromise(start(n))
  collect()
  collect()
  const after = process.memoryUsage().heapUsed
  await Effect.runPromise(stop)
  return (after - before) / n
}

const startBare = (n: number) =>
  Effect.gen(function*() {
    const fibers: Array<Fiber.RuntimeFiber<never>> = []
    for (let i = 0; i < n; i++) fibers.push(yield* Effect.forkDaemon(Effect.never))
    yield* Effect.yieldNow()
    return Fiber.interruptAll(fibers)
  })

const startSupervised = (n: number) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const supervisor = yield* Scope.extend(FiberSupervisor.make({ name: "bench" }), scope)
    for (let i = 0; i < n; i++) yield* supervisor.spawn(`p${i}`, Effect.never)
    yield* Effect.yieldNow()
    return Scope.close(scope, Exit.void)
  })

export const suites: ReadonlyArray<Suite> = [
  {
    name: "supervision: spawn 100,000 programs and stop them",
    baseline: "Effect.forkDaemon + Fiber.interruptAll",
    iterations: children,
    cases: [
      { name: "Effect.forkDaemon + Fiber.interruptAll", run: bareFibers },
      { name: "FiberSupervisor.spawn + shutdown", run: supervised }
    ],
    extra: async () => {
      const bare = await heapPerChild(startBare, children)
      const sup = await heapPerChild(startSupervised, children)
      return [
        "",
        `Heap per idle program (${children.toLocaleString("en")} programs): bare fiber ${
          bare.toFixed(0)
        } B, supervised ${sup.toFixed(0)} B, extra per supervised program ${(sup - bare).toFixed(0)} B`
      ]
    }
  }
]
