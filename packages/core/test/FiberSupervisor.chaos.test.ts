import { FiberSupervisor } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Clock, Data, Effect, Fiber, Logger, LogLevel, Random, Schedule, Supervisor, TestClock } from "effect"

class Glitch extends Data.TaggedError("Glitch")<{ readonly program: number }> {}

interface World {
  /** release count per acquired resource */
  readonly releases: Array<number>
  /** failures (typed or defect) each program produced */
  readonly failures: Array<number>
  /** the times at which a failed run reached its supervisor, in order */
  readonly failureTimes: Array<number>
  chaos: boolean
}

/**
 * One run of program `i`: acquires a resource whose release is slow, works for a few minutes,
 * then fails with a typed failure, dies, or hangs until interrupted. Once `chaos` is off, every
 * run hangs.
 */
const program = (world: World, i: number) =>
  Effect.scoped(Effect.gen(function*() {
    const id = world.releases.length
    world.releases.push(0)
    // one release in ten is slow
    const releaseTime = (yield* Random.nextIntBetween(0, 10)) === 0 ? yield* Random.nextIntBetween(1, 20) : 0
    const release = Effect.sync(() => {
      world.releases[id]!++
    })
    yield* Effect.addFinalizer(() =>
      releaseTime === 0 ? release : Effect.zipRight(Effect.sleep(`${releaseTime} seconds`), release)
    )
    const work = yield* Random.nextIntBetween(10, 40)
    const outcome = yield* Random.nextIntBetween(0, 10)
    yield* Effect.sleep(`${work} minutes`)
    if (!world.chaos || outcome >= 7) return yield* Effect.never
    world.failures[i]!++
    return yield* outcome < 4 ? Effect.fail(new Glitch({ program: i })) : Effect.die(new Error(`bug in ${i}`))
  })).pipe(
    Effect.tapErrorCause((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.void
        : Effect.flatMap(Clock.currentTimeMillis, (t) => Effect.sync(() => world.failureTimes.push(t)))
    )
  )

const simulate = (options: {
  readonly seed: number
  readonly programs: number
  readonly minutes: number
  readonly intensity: FiberSupervisor.Intensity
  readonly restartSchedule: Schedule.Schedule<unknown, unknown>
}) =>
  Effect.gen(function*() {
    const world: World = {
      releases: [],
      failures: Array.from({ length: options.programs }, () => 0),
      failureTimes: [],
      chaos: true
    }
    const tracker = yield* Supervisor.track
    const result = yield* Effect.scoped(Effect.gen(function*() {
      const supervisor = yield* FiberSupervisor.make({
        name: "chaos",
        escalateOnDefect: false,
        intensity: options.intensity,
        restartSchedule: options.restartSchedule,
        shutdownTimeout: "1 minute",
        // every program stays readable once the escalation has stopped them all
        retainFinished: options.programs
      })
      const escalation = yield* Effect.fork(Effect.flip(supervisor.awaitEscalation))
      for (let i = 0; i < options.programs; i++) yield* supervisor.spawn(`p${i}`, program(world, i))
      for (let minute = 0; minute < options.minutes; minute++) {
        yield* TestClock.adjust("1 minute")
      }
      // stop the chaos and let every pending failure reach the supervisor
      world.chaos = false
      for (let minute = 0; minute < 15; minute++) yield* TestClock.adjust("1 minute")
      const snapshot = yield* supervisor.snapshot
      const escalated = yield* Fiber.poll(escalation)
      yield* Fiber.interrupt(escalation)
      // graceful shutdown: programs stop one after the other, each with its slow release
      const shutdown = yield* Effect.fork(supervisor.shutdown)
      while ((yield* Fiber.poll(shutdown))._tag === "None") yield* TestClock.adjust("1 minute")
      const report = yield* Fiber.join(shutdown)
      return { snapshot, escalated, report }
    })).pipe(Effect.supervised(tracker))
    const alive = yield* tracker.value
    return { world, alive, ...result }
  }).pipe(
    Effect.withRandom(Random.make(options.seed)),
    Effect.provide(Logger.minimumLogLevel(LogLevel.None))
  )

/** Replays the failure times through the intensity rule: the number of restarts granted. */
const expectedRestarts = (times: ReadonlyArray<number>, maxRestarts: number, withinMillis: number) => {
  const window: Array<number> = []
  const granted: Array<number> = []
  for (const t of [...times].sort((a, b) => a - b)) {
    while (window.length > 0 && t - window[0]! > withinMillis) window.shift()
    if (window.length >= maxRestarts) return { granted, escalatesAt: t }
    window.push(t)
    granted.push(t)
  }
  return { granted, escalatesAt: undefined }
}

describe("FiberSupervisor chaos", () => {
  // 250 programs under `pnpm test`, 1,000 under `pnpm test:deep`
  const programs = process.env.BULWARK_DEEP === "1" ? 1_000 : 250
  it.effect(
    `${programs.toLocaleString("en")} programs over a simulated hour: releases, fibers and restart counts all add up`,
    () =>
      Effect.gen(function*() {
        const { alive, escalated, snapshot, world } = yield* simulate({
          seed: 20_240_110,
          programs,
          minutes: 60,
          intensity: { maxRestarts: 1_000_000, within: "1 minute" },
          restartSchedule: Schedule.spaced("0 millis")
        })
        const totalFailures = world.failures.reduce((a, b) => a + b, 0)
        expect(totalFailures).toBeGreaterThan(programs)
        expect(escalated._tag).toBe("None")
        // each program's restart count equals the failures it produced
        expect(snapshot.children.map((c) => c.restarts)).toEqual(world.failures)
        expect(snapshot.children.map((c) => c.errors)).toEqual(world.failures)
        // every acquired resource was released exactly once
        expect(world.releases.length).toBeGreaterThan(programs)
        expect(world.releases.filter((n) => n !== 1)).toEqual([])
        // no fiber outlives the supervisor
        expect(alive.length).toBe(0)
      }),
    60_000
  )

  it.effect("intensity escalates exactly when its limit is crossed, never before", () =>
    Effect.gen(function*() {
      const maxRestarts = 15
      const { alive, escalated, snapshot, world } = yield* simulate({
        seed: 7,
        programs: 300,
        minutes: 60,
        intensity: { maxRestarts, within: "2 minutes" },
        restartSchedule: Schedule.spaced("30 seconds")
      })
      const expected = expectedRestarts(world.failureTimes, maxRestarts, 120_000)
      expect(expected.escalatesAt).toBeDefined()
      expect(escalated._tag).toBe("Some")
      // a restart is counted when it happens, 30 s after it was granted: those still waiting when
      // the supervisor escalated never happened
      const happened = expected.granted.filter((t) => t + 30_000 < expected.escalatesAt!).length
      const restarts = snapshot.children.reduce((n, c) => n + c.restarts, 0)
      expect(restarts).toBe(happened)
      expect(snapshot.escalated).toBe(true)
      expect(world.releases.filter((n) => n !== 1)).toEqual([])
      expect(alive.length).toBe(0)
    }), 60_000)
})
