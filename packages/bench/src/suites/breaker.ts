import { BreakerRegistry, CircuitBreaker } from "@bulwark/core"
import { circuitBreaker as cockatielBreaker, ConsecutiveBreaker, handleAll } from "cockatiel"
import { Effect, Logger, LogLevel, Scope } from "effect"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import Opossum from "opossum"
import { scale, type Suite } from "../harness.js"
import { loop, loopTryPromise } from "./retry.js"

const quiet = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>, scope: Scope.Scope) =>
  Effect.runSync(Scope.extend(effect, scope).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

const scope = Effect.runSync(Scope.make())

const ok = Effect.succeed(1)
const fn = () => Promise.resolve(1)
class Down extends Error {}
const down = new Down("down")
const failing = () => Promise.reject(down)

// ----- closed breakers
const consecutive = quiet(CircuitBreaker.make({ name: "bench-consecutive" }), scope)
const countWindow = quiet(
  CircuitBreaker.make({
    name: "bench-count",
    policy: CircuitBreaker.countWindow({ size: 100, rateThreshold: 0.5 })
  }),
  scope
)
const timeWindow = quiet(
  CircuitBreaker.make({
    name: "bench-time",
    policy: CircuitBreaker.timeWindow({ window: "10 seconds", rateThreshold: 0.5 })
  }),
  scope
)
const timeWindowSlow = quiet(
  CircuitBreaker.make({
    name: "bench-time-slow",
    policy: CircuitBreaker.timeWindow({ window: "10 seconds", rateThreshold: 0.5 }),
    slowCall: { duration: "1 second", rateThreshold: 0.8 }
  }),
  scope
)
const cockatielClosed = cockatielBreaker(handleAll, { halfOpenAfter: 60_000, breaker: new ConsecutiveBreaker(5) })
const opossumClosed = new Opossum(fn, { timeout: false, resetTimeout: 60_000 })
const opossumClosedTimeout = new Opossum(fn, { resetTimeout: 60_000 })

// ----- open breakers
const open = quiet(CircuitBreaker.make({ name: "bench-open", policy: CircuitBreaker.consecutive(1) }), scope)
Effect.runSync(Effect.exit(open.protect(Effect.fail(down))).pipe(Logger.withMinimumLogLevel(LogLevel.None)))
const cockatielOpen = cockatielBreaker(handleAll, { halfOpenAfter: 3_600_000, breaker: new ConsecutiveBreaker(1) })
await cockatielOpen.execute(failing).catch(() => undefined)
const opossumOpen = new Opossum(fn, { timeout: false, resetTimeout: 3_600_000 })
opossumOpen.open()

const preallocated = Effect.fail(down)
const exitOk = Effect.exit(ok)
const suspendedExit = Effect.suspend(() => exitOk)

const promiseLoop = (call: () => Promise<unknown>) => async (n: number): Promise<void> => {
  for (let i = 0; i < n; i++) await call()
}
const rejectLoop = (call: () => Promise<unknown>) => async (n: number): Promise<void> => {
  for (let i = 0; i < n; i++) {
    try {
      await call()
    } catch {
      // rejected, as expected
    }
  }
}

v8.setFlagsFromString("--expose-gc")
const gc = vm.runInNewContext("gc") as () => void
const heap = () => {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

/** Heap figures: bytes per breaker held by a registry, and growth of a time window under load. */
const memory = async (): Promise<ReadonlyArray<string>> => {
  const lines: Array<string> = []
  await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const keys = scale(10_000)
    const registry = yield* BreakerRegistry.make({ name: "bench-memory", capacity: keys })
    const before = heap()
    for (let i = 0; i < keys; i++) yield* registry.protect(`key-${i}`)(ok)
    const after = heap()
    lines.push(`- a registry holding ${keys} breakers: ${Math.round((after - before) / keys)} bytes per breaker`)
  })))
  await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const breaker = yield* CircuitBreaker.make({
      name: "bench-window",
      policy: CircuitBreaker.timeWindow({ window: "1 second", rateThreshold: 0.5 })
    })
    const calls = scale(1_000_000)
    const call = breaker.protect(ok)
    for (let i = 0; i < 10_000; i++) yield* call
    const before = heap()
    for (let i = 0; i < calls; i++) yield* call
    const after = heap()
    lines.push(
      `- a time-window breaker after ${calls.toLocaleString("en")} more calls: heap ${after - before >= 0 ? "+" : ""}${
        Math.round((after - before) / 1024)
      } KiB`
    )
  })))
  return lines
}

export const suites: ReadonlyArray<Suite> = [
  {
    name: "breaker: closed, success path",
    baseline: "bare yield*",
    iterations: 20_000,
    cases: [
      { name: "bare yield*", run: loop(ok) },
      { name: "Effect.exit (any wrapper that sees the outcome)", run: loop(Effect.exit(ok)) },
      { name: "Effect.suspend + Effect.exit (a decision before the call, then the outcome)", run: loop(suspendedExit) },
      { name: "bulwark protect (consecutive)", run: loop(consecutive.protect(ok)) },
      { name: "bulwark protect (count window)", run: loop(countWindow.protect(ok)) },
      { name: "bulwark protect (time window)", run: loop(timeWindow.protect(ok)) },
      { name: "bulwark protect (time window + slow calls)", run: loop(timeWindowSlow.protect(ok)) },
      { name: "bare await fn()", run: promiseLoop(fn) },
      { name: "cockatiel execute", run: promiseLoop(() => cockatielClosed.execute(fn)) },
      { name: "opossum fire (timeout: false)", run: promiseLoop(() => opossumClosed.fire()) },
      { name: "opossum fire (default 10 s timeout)", run: promiseLoop(() => opossumClosedTimeout.fire()) },
      {
        name: "Effect.tryPromise(() => cockatiel execute(fn))",
        run: loopTryPromise(() => cockatielClosed.execute(fn))
      },
      {
        name: "Effect.tryPromise(() => opossum fire()) (timeout: false)",
        run: loopTryPromise(() => opossumClosed.fire())
      },
      {
        name: "Effect.tryPromise(() => opossum fire()) (default 10 s timeout)",
        run: loopTryPromise(() => opossumClosedTimeout.fire())
      }
    ]
  },
  {
    name: "breaker: open, rejection",
    baseline: "bare yield* of a preallocated failure",
    iterations: 20_000,
    cases: [
      { name: "bare yield* of a preallocated failure", run: loop(Effect.exit(preallocated)) },
      { name: "bulwark protect (open)", run: loop(Effect.exit(open.protect(ok))) },
      { name: "cockatiel execute (open)", run: rejectLoop(() => cockatielOpen.execute(fn)) },
      { name: "opossum fire (open)", run: rejectLoop(() => opossumOpen.fire()) },
      {
        name: "Effect.tryPromise(() => cockatiel execute(fn)) (open)",
        run: loop(Effect.exit(Effect.tryPromise(() => cockatielOpen.execute(fn))))
      },
      {
        name: "Effect.tryPromise(() => opossum fire()) (open)",
        run: loop(Effect.exit(Effect.tryPromise(() => opossumOpen.fire())))
      }
    ],
    extra: memory
  }
]
