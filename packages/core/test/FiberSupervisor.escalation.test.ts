import { FiberSupervisor } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Either, Exit, Fiber, Logger, Option, Schedule, TestClock } from "effect"

const quiet = Logger.remove(Logger.defaultLogger)

const settle = Effect.gen(function*() {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow()
})

/** A main program whose background program dies with a defect, while main itself waits for ever. */
const main = Effect.gen(function*() {
  yield* FiberSupervisor.spawn("worker", Effect.zipRight(Effect.yieldNow(), Effect.die(new Error("bug"))))
  return yield* Effect.never
})

type Wrapper = (
  self: Effect.Effect<never, FiberSupervisor.SupervisorEscalation>
) => Effect.Effect<unknown, unknown>

const wrappers: ReadonlyArray<readonly [string, Wrapper, "caught" | "failed"]> = [
  ["nothing", (self) => self, "failed"],
  [
    "catchTag",
    (self) => Effect.catchTag(self, "SupervisorEscalation", (e) => Effect.succeed(`caught ${e.program}`)),
    "caught"
  ],
  ["catchAll", (self) => Effect.catchAll(self, (e) => Effect.succeed(`caught ${e.program}`)), "caught"],
  [
    "either",
    (self) => Effect.map(Effect.either(self), (e) => Either.isLeft(e) ? `caught ${e.left.program}` : "right"),
    "caught"
  ],
  [
    "exit",
    (self) =>
      Effect.map(
        Effect.exit(self),
        (exit) =>
          Exit.isFailure(exit) && Option.isSome(FiberSupervisor.findEscalation(exit.cause)) ? "caught worker" : "other"
      ),
    "caught"
  ],
  ["tapErrorCause", (self) => Effect.tapErrorCause(self, () => Effect.void), "failed"],
  ["orDie", (self) => Effect.orDie(self), "failed"]
]

const check = async (exit: Exit.Exit<unknown, unknown>, expected: "caught" | "failed") => {
  if (expected === "caught") {
    expect(exit).toEqual(Exit.succeed("caught worker"))
  } else {
    expect(Exit.isFailure(exit)).toBe(true)
    if (Exit.isFailure(exit)) {
      expect(Cause.isInterruptedOnly(exit.cause)).toBe(false)
      expect(FiberSupervisor.findEscalation(exit.cause)).toMatchObject(
        Option.some({ _tag: "SupervisorEscalation", program: "worker", reason: "defect" })
      )
    }
  }
}

describe("FiberSupervisor: an escalation is a failure the caller can handle", () => {
  for (const [name, wrap, expected] of wrappers) {
    it(`layer + supervised, wrapped in ${name}: ${expected}`, async () => {
      const program = main.pipe(FiberSupervisor.supervised, Effect.provide(FiberSupervisor.layer({ name: "app" })))
      const exit = await Effect.runPromiseExit(wrap(program).pipe(Effect.provide(quiet)))
      await check(exit, expected)
    })

    it(`run, wrapped in ${name}: ${expected}`, async () => {
      const exit = await Effect.runPromiseExit(wrap(FiberSupervisor.run(main)).pipe(Effect.provide(quiet)))
      await check(exit, expected)
    })
  }

  it("the escalation listener hears of an escalation even when the program catches it", async () => {
    const heard: Array<FiberSupervisor.SupervisorEscalation> = []
    const exit = await Effect.runPromiseExit(
      main.pipe(
        FiberSupervisor.supervised,
        Effect.provide(FiberSupervisor.layer({ name: "app" })),
        Effect.catchAll(() => Effect.succeed("handled")),
        Effect.provideService(FiberSupervisor.EscalationListener, {
          onEscalation: (escalation) => Effect.sync(() => heard.push(escalation))
        }),
        Effect.provide(quiet)
      )
    )
    expect(exit).toEqual(Exit.succeed("handled"))
    expect(heard.map((e) => [e.supervisor, e.program, e.reason])).toEqual([["app", "worker", "defect"]])
  })

  it("the main program's finalizers have run when the escalation reaches the caller", async () => {
    let released = false
    const exit = await Effect.runPromiseExit(
      Effect.scoped(Effect.zipRight(Effect.addFinalizer(() => Effect.sync(() => released = true)), main)).pipe(
        FiberSupervisor.supervised,
        Effect.provide(FiberSupervisor.layer()),
        Effect.either,
        Effect.map((e) => [Either.isLeft(e), released]),
        Effect.provide(quiet)
      )
    )
    expect(exit).toEqual(Exit.succeed([true, true]))
  })
})

describe("FiberSupervisor: restarts never starve the process", () => {
  it.live("zero-delay restarts of a program that fails at once leave room for timers elsewhere", () =>
    Effect.gen(function*() {
      const supervisor = yield* FiberSupervisor.make({
        intensity: { maxRestarts: 1e9, within: "1 minute" },
        restartSchedule: Schedule.spaced("0 millis")
      })
      yield* supervisor.spawn("crasher", Effect.fail("at once"))
      const restarts = supervisor.snapshot.pipe(Effect.map((s) => s.children[0]!.restarts))
      // a timer elsewhere: counts its ticks while the program keeps restarting
      let ticks = 0
      yield* Effect.fork(Effect.forever(Effect.zipRight(Effect.sleep("1 millis"), Effect.sync(() => ticks++))))
      // waits for the restarts without a timer of its own, however slow the machine
      while ((yield* restarts) < 20) yield* Effect.yieldNow()
      expect(ticks).toBeGreaterThan(0)
    }).pipe(Effect.scoped, Effect.provide(quiet), Effect.timeout("5 seconds")))

  it.scoped("an ended restart schedule escalates: Schedule.recurs(2) allows two restarts in a row", () =>
    Effect.gen(function*() {
      const supervisor = yield* FiberSupervisor.make({
        name: "jobs",
        intensity: { maxRestarts: 100, within: "1 minute" },
        restartSchedule: Schedule.recurs(2)
      })
      const escalation = yield* Effect.fork(Effect.flip(supervisor.awaitEscalation))
      yield* supervisor.spawn("crasher", Effect.fail("at once")).pipe(Effect.provide(quiet))
      yield* settle
      yield* TestClock.adjust("1 millis")
      yield* settle
      const error = yield* Fiber.join(escalation)
      expect(error).toMatchObject({ reason: "schedule", program: "crasher" })
      expect(error.message).toContain("the restart schedule of program \"crasher\" ended")
      expect((yield* supervisor.snapshot).children[0]).toMatchObject({ restarts: 2, errors: 3, status: "failed" })
    }))
})
