import { Alerts, FiberSupervisor } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  Effect,
  Exit,
  Fiber,
  FiberId,
  FiberRef,
  HashMap,
  Layer,
  Logger,
  Option,
  Scheduler,
  Supervisor
} from "effect"

const settle = Effect.gen(function*() {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow()
})

/** Collects log lines with their level and message. */
const captureLogs = Effect.sync(() => {
  const lines: Array<
    { readonly level: string; readonly message: string; readonly program: unknown; readonly supervisor: unknown }
  > = []
  const logger = Logger.make(({ annotations, logLevel, message }) => {
    lines.push({
      level: logLevel.label,
      message: Array.isArray(message) ? message.map(String).join(" ") : String(message),
      program: Option.getOrUndefined(HashMap.get(annotations, "bulwark.program")),
      supervisor: Option.getOrUndefined(HashMap.get(annotations, "bulwark.supervisor"))
    })
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
})

/**
 * A scheduler that holds every task of the fibers running on it until `open` is called: a fiber
 * forked on it neither starts nor wakes up before then.
 */
const heldScheduler = () => {
  const held: Array<Scheduler.Task> = []
  let opened = false
  const scheduler: Scheduler.Scheduler = {
    shouldYield: () => false,
    scheduleTask: (task, priority) => {
      if (opened) Scheduler.defaultScheduler.scheduleTask(task, priority)
      else held.push(task)
    }
  }
  const open = Effect.sync(() => {
    opened = true
    for (const task of held.splice(0)) Scheduler.defaultScheduler.scheduleTask(task, 0)
  })
  return { scheduler, open }
}

/** An Effect supervisor that interrupts the fiber that makes the first fork it sees, during that fork. */
class InterruptFirstForker extends Supervisor.AbstractSupervisor<void> {
  private done = false
  get value() {
    return Effect.void
  }
  override onStart<A, E, R>(
    _context: unknown,
    _effect: Effect.Effect<A, E, R>,
    parent: Option.Option<Fiber.RuntimeFiber<any, any>>
  ): void {
    if (this.done || Option.isNone(parent)) return
    this.done = true
    parent.value.unsafeInterruptAsFork(FiberId.none)
  }
}

describe("FiberSupervisor: interleavings", () => {
  it.effect("the Layer's last resort stands down when it wakes only after supervised has delivered the escalation", () =>
    Effect.gen(function*() {
      // the Layer's watcher runs on a held scheduler: it first runs once `supervised` has ended
      const { open, scheduler } = heldScheduler()
      const main = Effect.gen(function*() {
        yield* FiberSupervisor.spawn("late-watcher-job", Effect.die("bug"))
        return yield* Effect.never
      })
      const exit = yield* main.pipe(
        FiberSupervisor.supervised,
        Effect.catchTag("SupervisorEscalation", (e) => Effect.succeed(`caught ${e.program}`)),
        Effect.tap(() => Effect.zipRight(open, settle)),
        Effect.provide(
          FiberSupervisor.layer({ name: "late-watcher" }).pipe(Layer.locally(FiberRef.currentScheduler, scheduler))
        ),
        Effect.provide(Logger.remove(Logger.defaultLogger)),
        Effect.exit
      )
      expect(exit).toEqual(Exit.succeed("caught late-watcher-job"))
    }))

  it.effect("once supervised has ended, the Layer's last resort takes an escalation again", () =>
    Effect.gen(function*() {
      const main = Effect.gen(function*() {
        expect(yield* FiberSupervisor.supervised(Effect.succeed("first"))).toBe("first")
        // not wrapped: only the Layer's last resort can end it
        yield* FiberSupervisor.spawn("after-supervised-job", Effect.die("bug"))
        return yield* Effect.never
      })
      const fiber = yield* main.pipe(
        Effect.provide(FiberSupervisor.layer({ name: "after-supervised" })),
        Effect.provide(Logger.remove(Logger.defaultLogger)),
        Effect.fork
      )
      for (let i = 0; i < 3; i++) yield* settle
      const exit = yield* Fiber.poll(fiber)
      expect(
        Option.isSome(exit) && Exit.isFailure(exit.value) &&
          Option.isSome(FiberSupervisor.findEscalation(exit.value.cause))
      )
        .toBe(true)
    }))

  it.scoped("a program whose spawner is interrupted while its runner is forked is still active: it can be stopped", () =>
    Effect.gen(function*() {
      const supervisor = yield* FiberSupervisor.make({ name: "claim" })
      const spawner = yield* Effect.fork(
        supervisor.spawn("claim-job", Effect.never).pipe(Effect.supervised(new InterruptFirstForker()))
      )
      const spawned = yield* Fiber.await(spawner)
      expect(Exit.isFailure(spawned) && Cause.isInterruptedOnly(spawned.cause)).toBe(true)
      yield* settle
      expect((yield* supervisor.snapshot).children.map((c) => [c.name, c.status])).toEqual([["claim-job", "running"]])
      expect(yield* supervisor.stop("claim-job")).toBe(true)
      expect((yield* supervisor.snapshot).children.map((c) => [c.name, c.status])).toEqual([["claim-job", "stopped"]])
    }))

  it.scoped("a runner that dies once its supervisor has escalated escalates no second time", () =>
    Effect.gen(function*() {
      // a logger that throws on the escalation's banner, once it has kept the line: the
      // escalation's own effect dies after the supervisor has escalated (and the escalation is
      // delivered all the same)
      const lines: Array<{ readonly level: string; readonly message: string }> = []
      const throwing = Logger.make(({ logLevel, message }) => {
        const text = Array.isArray(message) ? message.map(String).join(" ") : String(message)
        lines.push({ level: logLevel.label, message: text })
        if (text.includes("escalated: program")) throw new Error("logger bug")
      })
      const supervisor = yield* FiberSupervisor.make({ name: "died-escalated" })
      yield* supervisor.spawn("died-escalated-job", Effect.dieMessage("bug")).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, throwing))
      )
      yield* settle
      expect(lines.filter((l) => l.level === "FATAL").map((l) => l.message.split("\n")[2])).toEqual([
        "║ FATAL: Program \"died-escalated-job\" of supervisor \"died-escalated\" terminated by a defect",
        "║ FATAL: Supervisor \"died-escalated\" escalated: program \"died-escalated-job\" died with a defect",
        "║ FATAL: Supervision of program \"died-escalated-job\" of supervisor \"died-escalated\" died"
      ])
      const escalation = yield* Effect.flip(supervisor.awaitEscalation)
      expect(escalation.program).toBe("died-escalated-job")
      const snapshot = yield* supervisor.snapshot
      expect([snapshot.escalated, snapshot.children.map((c) => [c.name, c.status])]).toEqual([
        true,
        [["died-escalated-job", "failed"]]
      ])
    }))

  it.scoped("an escalation listener that dies: the escalation is delivered all the same, and the death logged", () =>
    Effect.gen(function*() {
      const { layer, lines } = yield* captureLogs
      const supervisor = yield* FiberSupervisor.make({ name: "listener-dies" }).pipe(
        Effect.provideService(FiberSupervisor.EscalationListener, {
          onEscalation: () => Effect.dieMessage("listener bug")
        })
      )
      yield* supervisor.spawn("listener-dies-job", Effect.dieMessage("bug")).pipe(Effect.provide(layer))
      yield* settle
      const escalation = yield* Effect.flip(supervisor.awaitEscalation)
      expect(escalation.program).toBe("listener-dies-job")
      expect(lines.filter((l) => l.level === "ERROR").map((l) => [l.message, l.supervisor])).toEqual([
        ["the escalation listener of supervisor \"listener-dies\" died; the escalation goes on", "listener-dies"]
      ])
    }))

  it.scoped("an Alerts service that dies: the escalation is delivered, the listener still told, and the death logged", () =>
    Effect.gen(function*() {
      const { layer, lines } = yield* captureLogs
      const told: Array<string> = []
      const supervisor = yield* FiberSupervisor.make({ name: "alerts-die" }).pipe(
        Effect.provideService(Alerts.Alerts, { alert: () => Effect.dieMessage("alerts bug") }),
        Effect.provideService(FiberSupervisor.EscalationListener, {
          onEscalation: (escalation) => Effect.sync(() => told.push(escalation.program))
        })
      )
      yield* supervisor.spawn("alerts-die-job", Effect.dieMessage("bug")).pipe(Effect.provide(layer))
      yield* settle
      const escalation = yield* Effect.flip(supervisor.awaitEscalation)
      expect(escalation.program).toBe("alerts-die-job")
      expect(told).toEqual(["alerts-die-job"])
      expect(lines.filter((l) => l.level === "ERROR").map((l) => [l.message, l.supervisor])).toEqual([
        ["the alert of an escalation of supervisor \"alerts-die\" died; the escalation goes on", "alerts-die"]
      ])
    }))
})
