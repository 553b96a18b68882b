import { Testing } from "@bulwark/core"
import { Cause, Clock, Context, Effect, FastCheck as fc, FiberId, FiberRef, Schedule } from "effect"
import * as os from "node:os"
import { quick, scale, type Suite } from "../harness.js"

/** The same 200 scripts for every case (up to 8 calls each, from one fixed seed). */
const scripts = fc.sample(Testing.Arbitrary.script({ maxCalls: 8 }), { numRuns: 200, seed: 42 })

/** The breaker's rejection in the floor case. */
class Open {
  readonly _tag = "Open"
}

/**
 * The floor: the full policy's work written with Effect alone, run through the same simulation
 * (virtual clock, a fiber per call, the same timeline bookkeeping). `Effect.timeout` per attempt,
 * an `Effect.makeSemaphore` bulkhead (4 at once; the queue unbounded), a counter breaker in a
 * closure (5 failures in a row open it for 60 s, then one probe at a time, 3 successes close it),
 * and `Effect.retry` with `Schedule.recurs(2)` and the same exponential delays as the matrix's
 * (from 100 ms), stopping on what the policy does not retry (validation, a rejection). What it
 * costs is what Effect 3's runtime costs for that work with no toolkit at all.
 */
const floorOf = (timeout: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, unknown, R>) =>
  Effect.gen(function*() {
    const semaphore = yield* Effect.makeSemaphore(4)
    let state: "Closed" | "Open" | "HalfOpen" = "Closed"
    let failures = 0
    let successes = 0
    let openedAt = 0
    let probes = 0
    const schedule = Schedule.intersect(Schedule.exponential("100 millis"), Schedule.recurs(2))
    const counts = (error: unknown) =>
      !(error instanceof Testing.ScriptedFailure && error.category === "validation") && !(error instanceof Open)
    const breaker = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | Open, R> =>
      Effect.flatMap(Clock.currentTimeMillis, (now): Effect.Effect<A, E | Open, R> => {
        if (state === "Open" && now - openedAt >= 60_000) {
          state = "HalfOpen"
          successes = 0
        }
        if (state === "Open" || (state === "HalfOpen" && probes >= 1)) return Effect.fail(new Open())
        const probe = state === "HalfOpen"
        if (probe) probes++
        return Effect.onExit(self, (exit) =>
          Effect.flatMap(Clock.currentTimeMillis, (end) =>
            Effect.sync(() => {
              if (probe) probes--
              const failed = exit._tag === "Failure" &&
                (exit.cause._tag === "Die" || (exit.cause._tag === "Fail" && counts(exit.cause.error)))
              if (exit._tag === "Success") {
                failures = 0
                if (probe && ++successes >= 3) state = "Closed"
              } else if (failed) {
                if (probe || ++failures >= 5) {
                  state = "Open"
                  openedAt = end
                  failures = 0
                }
              }
            })))
      })
    return {
      policy: <A, E, R>(self: Effect.Effect<A, E, R>) =>
        Effect.retry(breaker(semaphore.withPermits(1)(timeout(self))), {
          schedule,
          while: (error: unknown) => counts(error)
        }),
      limits: { maxRetries: 2, maxConcurrent: 4 }
    }
  })

/** The simulation's clock arms timers of its own under this key (what `Timeout` uses there). */
const timerKey = Symbol.for("@bulwark/core/internal/VirtualTimer")

class TimedOut {
  readonly _tag = "TimedOut"
}

/**
 * A timeout that runs the work in the caller's fiber: the clock's timer interrupts the fiber,
 * and that one interruption becomes a failure. No fiber is forked (`Effect.timeout` forks two:
 * the work and a sleeper, raced).
 */
const inPlace = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | TimedOut, R> =>
  Effect.withFiberRuntime((fiber) => {
    const clock = Context.get(fiber.currentDefaultServices, Clock.Clock) as unknown as Record<
      symbol,
      (millis: number, fire: () => void) => () => void
    >
    let by: FiberId.FiberId | undefined
    const cancel = clock[timerKey]!(1000, () => {
      by = FiberId.make(fiber.id().id, 0)
      fiber.unsafeInterruptAsFork(by)
    })
    return Effect.uninterruptible(Effect.matchCauseEffect(Effect.interruptible(self), {
      onSuccess: (a) => {
        cancel()
        return Effect.succeed(a)
      },
      onFailure: (cause): Effect.Effect<never, E | TimedOut> => {
        cancel()
        if (by === undefined) return Effect.failCause(cause)
        const own = by
        return Effect.zipRight(
          FiberRef.update(FiberRef.interruptedCause, (c) =>
            Cause.match(c, {
              onEmpty: Cause.empty,
              onFail: Cause.fail,
              onDie: Cause.die,
              onInterrupt: (id) => (id === own ? Cause.empty : Cause.interrupt(id)),
              onSequential: Cause.sequential,
              onParallel: Cause.parallel
            })),
          Effect.fail(new TimedOut())
        )
      }
    }))
  })

const subjects = {
  "no policy": Testing.policy({}),
  "timeout + retry": Testing.policy({ timeout: "1 second", retry: { maxRetries: 2 } }),
  "timeout + retry + breaker + bulkhead": Testing.policy({
    timeout: "1 second",
    retry: { maxRetries: 2 },
    breaker: { halfOpenProbes: 1 },
    bulkhead: { name: "bench", maxConcurrent: 4, maxQueued: 8 }
  }),
  "floor: the same in Effect alone": floorOf((self) => Effect.timeout(self, "1 second")),
  "floor, timeout in the caller's fiber": floorOf(inPlace)
}

/** Plays `n` scripts (cycling through the sample) through the subject, one run each. */
const play = (subject: (typeof subjects)[keyof typeof subjects]) => (n: number): Promise<void> =>
  Effect.runPromise(
    Effect.gen(function*() {
      for (let i = 0; i < n; i++) yield* Testing.runScript(subject, scripts[i % scripts.length]!)
    })
  )

export const suites: ReadonlyArray<Suite> = [
  {
    name: "testing: Testing.runScript, one script per op (up to 8 calls each)",
    baseline: "no policy",
    iterations: 200,
    cases: Object.entries(subjects).map(([name, subject]) => ({ name, run: play(subject) })),
    extra: async () => {
      // scripts per second over one pass through the 200 scripts, median of 7 passes: wall
      // clock, and CPU time (user + system), which a loaded machine inflates far less. The
      // subjects take turns pass by pass, so a change in the machine's load reaches them alike.
      const median = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
      const lines = [
        "",
        `load average before: ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}`,
        "",
        "| subject | scripts / s (wall) | scripts / s (CPU time) |",
        "|---|---:|---:|"
      ]
      const entries = Object.entries(subjects)
      const runs = scale(scripts.length)
      const wall = new Map(entries.map(([name]) => [name, [] as Array<number>]))
      const cpu = new Map(entries.map(([name]) => [name, [] as Array<number>]))
      for (let pass = 0; pass < (quick ? 1 : 7); pass++) {
        for (const [name, subject] of entries) {
          const started = process.hrtime.bigint()
          const usage = process.cpuUsage()
          await play(subject)(runs)
          const used = process.cpuUsage(usage)
          wall.get(name)!.push(runs / (Number(process.hrtime.bigint() - started) / 1e9))
          cpu.get(name)!.push(runs / ((used.user + used.system) / 1e6))
        }
      }
      for (const [name] of entries) {
        lines.push(`| ${name} | ${Math.round(median(wall.get(name)!))} | ${Math.round(median(cpu.get(name)!))} |`)
      }
      // the full policy against each floor, pass by pass (CPU time per script), then the median
      const against = (floor: string) =>
        median(cpu.get(floor)!.map((rate, i) => rate / cpu.get("timeout + retry + breaker + bulkhead")![i]!))
      lines.push(
        "",
        `full policy / floor, CPU time per script: ${against("floor: the same in Effect alone").toFixed(2)} ` +
          `(Effect.timeout), ${
            against("floor, timeout in the caller's fiber").toFixed(2)
          } (timeout in the caller's fiber)`,
        `load average after: ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}`
      )
      return lines
    }
  }
]
