import { FiberSupervisor } from "@bulwark/core"
import { Effect, Exit, Fiber, Logger, LogLevel, Scope } from "effect"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import { scale, type Suite } from "../harness.js"

const children = scale(100_000)

const quiet = Logger.minimumLogLevel(LogLevel.None)

/** Forks `n` bare fibers that wait for ever, then interrupts them all. */
const bareFibers = (n: number): Promise<void> =>
  Effect.runPromise(Effect.gen(function*() {
    const fibers: Array<Fiber.RuntimeFiber<never>> = []
    for (let i = 0; i < n; i++) fibers.push(yield* Effect.forkDaemon(Effect.never))
    yield* Fiber.interruptAll(fibers)
  }))

/** Spawns `n` supervised programs that wait for ever, then shuts the supervisor down. */
const supervised = (n: number): Promise<void> =>
  Effect.runPromise(
    Effect.scoped(Effect.gen(function*() {
      const supervisor = yield* FiberSupervisor.make({ name: "bench" })
      for (let i = 0; i < n; i++) yield* supervisor.spawn(`p${i}`, Effect.never)
    })).pipe(Effect.provide(quiet))
  )

const gc = (): () => void => {
  v8.setFlagsFromString("--expose-gc")
  return vm.runInNewContext("gc") as () => void
}

const heapPerChild = async (
  start: (n: number) => Effect.Effect<Effect.Effect<void>>,
  n: number
): Promise<{ readonly bytes: number; readonly spawnMillis: number; readonly stopMillis: number }> => {
  const collect = gc()
  collect()
  collect()
  const before = process.memoryUsage().heapUsed
  const t0 = performance.now()
  const stop = await Effect.runPromise(start(n))
  const spawnMillis = performance.now() - t0
  collect()
  collect()
  const after = process.memoryUsage().heapUsed
  const t1 = performance.now()
  await Effect.runPromise(stop)
  return { bytes: (after - before) / n, spawnMillis, stopMillis: performance.now() - t1 }
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
    return Effect.provide(Scope.close(scope, Exit.void), quiet)
  })

export const suites: ReadonlyArray<Suite> = [
  {
    name: `supervision: spawn ${children.toLocaleString("en")} programs and stop them`,
    baseline: "Effect.forkDaemon + Fiber.interruptAll",
    iterations: children,
    cases: [
      { name: "Effect.forkDaemon + Fiber.interruptAll", run: bareFibers },
      { name: "FiberSupervisor.spawn + shutdown", run: supervised }
    ],
    extra: async () => {
      const bare = await heapPerChild(startBare, children)
      const sup = await heapPerChild(startSupervised, children)
      const count = children.toLocaleString("en")
      return [
        "",
        `Heap per idle program (${count} programs): bare fiber ${bare.bytes.toFixed(0)} B, supervised ${
          sup.bytes.toFixed(0)
        } B, extra per supervised program ${(sup.bytes - bare.bytes).toFixed(0)} B`,
        `Start ${count} programs (one run, until all are running): bare ${bare.spawnMillis.toFixed(0)} ms, supervised ${
          sup.spawnMillis.toFixed(0)
        } ms (× ${(sup.spawnMillis / bare.spawnMillis).toFixed(2)})`,
        `Stop them (bare: Fiber.interruptAll; supervised: ordered shutdown): bare ${
          bare.stopMillis.toFixed(0)
        } ms, supervised ${sup.stopMillis.toFixed(0)} ms (× ${(sup.stopMillis / bare.stopMillis).toFixed(2)})`
      ]
    }
  }
]
