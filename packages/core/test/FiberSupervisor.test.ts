import { Alerts, Failure, FiberSupervisor, Health } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  Chunk,
  Config,
  ConfigProvider,
  Data,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Logger,
  LogLevel,
  Option,
  Ref,
  Schedule,
  Schema,
  Scope,
  Stream,
  TestClock
} from "effect"

class ConnectionLost extends Data.TaggedError("ConnectionLost")<{ readonly host: string }> {}
class BadRecord extends Data.TaggedError("BadRecord")<{}> {}

const table = Failure.table<ConnectionLost | BadRecord>({
  ConnectionLost: "connection",
  BadRecord: "validation"
})

/** Collects log lines (level and message) for assertions. */
const captureLogs = Effect.gen(function*() {
  const lines = yield* Ref.make<Array<{ level: string; message: string; cause: string }>>([])
  const logger = Logger.make(({ cause, logLevel, message }) => {
    const text = Array.isArray(message) ? message.map(String).join(" ") : String(message)
    Effect.runSync(
      Ref.update(lines, (xs) => [...xs, { level: logLevel.label, message: text, cause: Cause.pretty(cause) }])
    )
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
})

const settle = Effect.gen(function*() {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow()
})

const childOf = (snapshot: FiberSupervisor.Snapshot, name: string) => {
  const child = snapshot.children.find((c) => c.name === name)
  if (child === undefined) throw new Error(`no child ${name}`)
  return child
}

describe("FiberSupervisor.loop (inner tier)", () => {
  it.scoped("a connection error twice then success: 3 attempts, 0 restarts, 2 errors, warnings with attempt and delay", () =>
    Effect.gen(function*() {
      const { layer, lines } = yield* captureLogs
      const attempts = yield* Ref.make(0)
      const step = Effect.flatMap(
        Ref.updateAndGet(attempts, (n) => n + 1),
        (n) => n <= 2 ? Effect.fail(new ConnectionLost({ host: "feed" })) : Effect.succeed("done")
      )
      const supervisor = yield* FiberSupervisor.make({ name: "agents" })
      yield* supervisor.spawn(
        "market_monitor",
        FiberSupervisor.loop(step, { while: (r) => r !== "done" }),
        { restart: "transient" }
      ).pipe(Effect.provide(Layer.merge(Failure.layerClassifier({ tables: [table] }), layer)))
      yield* settle
      expect(childOf(yield* supervisor.snapshot, "market_monitor").status).toBe("backing-off")
      yield* TestClock.adjust("5 seconds")
      yield* settle
      yield* TestClock.adjust("10 seconds")
      yield* settle
      expect(yield* Ref.get(attempts)).toBe(3)
      const child = childOf(yield* supervisor.snapshot, "market_monitor")
      expect(child).toMatchObject({ restarts: 0, errors: 2, status: "stopped" })
      expect(child.lastError).toMatchObject({ type: "connection", code: "CONNECTION_LOST", retryable: true })
      // a connection error is of severity major: logged at ERROR (the level follows the severity)
      const retries = (yield* Ref.get(lines)).filter((l) => l.message.includes("retrying"))
      expect(retries.map((w) => [w.level, w.message])).toEqual([
        ["ERROR", "Program \"market_monitor\" failed on attempt 1 (CONNECTION_LOST); retrying in 5s"],
        ["ERROR", "Program \"market_monitor\" failed on attempt 2 (CONNECTION_LOST); retrying in 10s"]
      ])
    }))

  it.effect("gives up at once on a failure that is not retryable", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const error = yield* FiberSupervisor.loop(
        Effect.zipRight(Ref.update(attempts, (n) => n + 1), Effect.fail(new BadRecord())),
        { classify: table }
      ).pipe(Effect.flip)
      expect(error._tag).toBe("BadRecord")
      expect(yield* Ref.get(attempts)).toBe(1)
    }))

  it.effect("gives up when consecutive failures exceed the budget, and the budget resets after a success", () =>
    Effect.gen(function*() {
      // fails twice, succeeds once, then fails for ever: with maxRetries 2 the first run of
      // failures is recovered and the second one gives up after 3 failures
      const attempts = yield* Ref.make(0)
      const step = Effect.flatMap(
        Ref.updateAndGet(attempts, (n) => n + 1),
        (n) => n === 3 ? Effect.void : Effect.fail(new ConnectionLost({ host: "db" }))
      )
      const fiber = yield* FiberSupervisor.loop(step, {
        classify: table,
        maxRetries: 2,
        schedule: Schedule.spaced("1 second")
      }).pipe(Effect.flip, Effect.fork)
      yield* TestClock.adjust("10 seconds")
      const error = yield* Fiber.join(fiber)
      expect(error._tag).toBe("ConnectionLost")
      expect(yield* Ref.get(attempts)).toBe(6)
    }))

  it.effect("defects and interruption leave the loop untouched", () =>
    Effect.gen(function*() {
      const exit = yield* FiberSupervisor.loop(Effect.die("boom")).pipe(Effect.exit)
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      const fiber = yield* Effect.fork(FiberSupervisor.loop(Effect.never))
      yield* Effect.yieldNow()
      const interrupted = yield* Fiber.interrupt(fiber)
      expect(Exit.isInterrupted(interrupted)).toBe(true)
    }))

  it.effect("a schedule that ends gives up; an error's retry-after hint lengthens the delay", () =>
    Effect.gen(function*() {
      class Throttled extends Data.TaggedError("Throttled")<{}> {}
      const throttled = Failure.table<Throttled>({
        Throttled: { category: "resource", strategy: "backoff_retry", maxRetries: 10, retryAfter: "30 seconds" }
      })
      const times = yield* Ref.make<Array<number>>([])
      const step = Effect.zipRight(
        Effect.flatMap(Effect.clockWith((c) => c.currentTimeMillis), (t) => Ref.update(times, (xs) => [...xs, t])),
        Effect.fail(new Throttled())
      )
      const fiber = yield* FiberSupervisor.loop(step, {
        classify: throttled,
        schedule: Schedule.intersect(Schedule.spaced("1 second"), Schedule.recurs(2))
      }).pipe(Effect.flip, Effect.fork)
      yield* TestClock.adjust("2 minutes")
      yield* Fiber.join(fiber)
      expect(yield* Ref.get(times)).toEqual([0, 30_000, 60_000])
    }))
})

describe("FiberSupervisor (outer tier)", () => {
  it.scoped("a quick success and a quick failure without restart count 0 and 1 errors", () =>
    Effect.gen(function*() {
      const supervisor = yield* FiberSupervisor.make({ name: "tasks" })
      yield* supervisor.spawn("success", Effect.sleep("10 millis"), { restart: "transient" })
      yield* supervisor.spawn(
        "failure",
        Effect.zipRight(Effect.sleep("10 millis"), Effect.fail(new BadRecord())),
        { restart: "temporary" }
      ).pipe(Effect.provide(Failure.layerClassifier({ tables: [table] })))
      yield* TestClock.adjust("100 millis")
      yield* settle
      const snapshot = yield* supervisor.snapshot
      expect(childOf(snapshot, "success")).toMatchObject({ errors: 0, restarts: 0, status: "stopped" })
      expect(childOf(snapshot, "failure")).toMatchObject({ errors: 1, restarts: 0, status: "failed" })
      expect(childOf(snapshot, "failure").lastError).toMatchObject({ code: "BAD_RECORD" })
      // the snapshot is serialisable
      const json = Schema.encodeSync(FiberSupervisor.Snapshot)(snapshot)
      const parsed = JSON.parse(JSON.stringify(json))
      expect(parsed.children[1].lastError.code).toBe("BAD_RECORD")
      // its dates are encoded as strings, and decoding the JSON gives the snapshot back
      expect(json.children.map((child) => typeof child.startedAt)).toEqual(["string", "string"])
      expect(Schema.decodeUnknownSync(FiberSupervisor.Snapshot)(parsed)).toEqual(snapshot)
    }))

  it.scoped("a cancelled task still runs its cleanup and is not an error", () =>
    Effect.gen(function*() {
      const released = yield* Ref.make(false)
      const supervisor = yield* FiberSupervisor.make()
      yield* supervisor.spawn(
        "websocket",
        Effect.scoped(Effect.zipRight(
          Effect.acquireRelease(Effect.void, () => Ref.set(released, true)),
          Effect.never
        ))
      )
      yield* settle
      expect(yield* supervisor.stop("websocket")).toBe(true)
      expect(yield* Ref.get(released)).toBe(true)
      expect(childOf(yield* supervisor.snapshot, "websocket")).toMatchObject({
        status: "stopped",
        errors: 0,
        restarts: 0
      })
      expect(yield* supervisor.stop("websocket")).toBe(false)
    }))

  it.scoped("a failure that escapes the loop ends the run with a fatal log naming the program and the cause", () =>
    Effect.gen(function*() {
      const { layer, lines } = yield* captureLogs
      const supervisor = yield* FiberSupervisor.make({ name: "agents" }).pipe(Effect.provide(layer))
      yield* supervisor.spawn("ingest", Effect.fail(new BadRecord()), { restart: "temporary" }).pipe(
        Effect.provide(layer)
      )
      yield* settle
      const fatal = (yield* Ref.get(lines)).filter((l) => l.level === "FATAL")
      expect(fatal).toHaveLength(1)
      expect(fatal[0]!.message).toContain("Program \"ingest\" of supervisor \"agents\" terminated by a failure")
      expect(fatal[0]!.cause).toContain("BadRecord")
    }))

  it.scoped("restart types: permanent restarts after success and failure, transient after failure only, temporary never", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make<Record<string, number>>({})
      const count = (name: string) => Ref.update(runs, (r) => ({ ...r, [name]: (r[name] ?? 0) + 1 }))
      const supervisor = yield* FiberSupervisor.make({
        intensity: { maxRestarts: 100, within: "1 minute" },
        restartSchedule: Schedule.spaced("1 second")
      })
      yield* supervisor.spawn("permanent-ok", Effect.zipRight(count("permanent-ok"), Effect.sleep("10 seconds")))
      yield* supervisor.spawn("transient-ok", count("transient-ok"), { restart: "transient" })
      yield* supervisor.spawn(
        "transient-fail",
        Effect.zipRight(count("transient-fail"), Effect.zipRight(Effect.sleep("10 seconds"), Effect.fail("x"))),
        { restart: "transient" }
      )
      yield* supervisor.spawn("temporary-fail", Effect.zipRight(count("temporary-fail"), Effect.fail("x")), {
        restart: "temporary"
      })
      yield* settle
      for (let i = 0; i < 3; i++) {
        yield* TestClock.adjust("11 seconds")
        yield* settle
      }
      expect(yield* Ref.get(runs)).toEqual({
        "permanent-ok": 4,
        "transient-ok": 1,
        "transient-fail": 4,
        "temporary-fail": 1
      })
      const snapshot = yield* supervisor.snapshot
      expect(childOf(snapshot, "permanent-ok").restarts).toBe(3)
      expect(childOf(snapshot, "permanent-ok").errors).toBe(0)
      expect(childOf(snapshot, "transient-fail")).toMatchObject({ restarts: 3, errors: 3 })
      expect(childOf(snapshot, "transient-ok")).toMatchObject({ restarts: 0, status: "stopped" })
      expect(childOf(snapshot, "temporary-fail")).toMatchObject({ restarts: 0, status: "failed" })
    }))

  it.scoped("restart backoff follows the schedule and starts afresh after a run longer than the window", () =>
    Effect.gen(function*() {
      const starts = yield* Ref.make<Array<number>>([])
      const failAfter = yield* Ref.make(0)
      const program = Effect.gen(function*() {
        yield* Ref.update(starts, (xs) => [...xs, 0])
        const t = yield* Effect.clockWith((c) => c.currentTimeMillis)
        yield* Ref.update(starts, (xs) => [...xs.slice(0, -1), t])
        yield* Effect.sleep(yield* Ref.get(failAfter))
        return yield* Effect.fail("crash")
      })
      const supervisor = yield* FiberSupervisor.make({
        intensity: { maxRestarts: 10, within: "1 minute" },
        restartSchedule: Schedule.exponential("1 second", 2)
      })
      yield* supervisor.spawn("worker", program)
      yield* settle
      for (let i = 0; i < 8; i++) {
        yield* TestClock.adjust("1 second")
        yield* settle
      }
      // crashes at 0, restarts after 1 s, 2 s, 4 s
      expect(yield* Ref.get(starts)).toEqual([0, 1000, 3000, 7000])
      // a run that lasts longer than the window resets the backoff
      yield* Ref.set(failAfter, 61_000)
      yield* TestClock.adjust("8 seconds")
      yield* settle
      yield* TestClock.adjust("61 seconds")
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* settle
      const all = yield* Ref.get(starts)
      expect(all.length).toBe(6)
      expect(all[5]! - all[4]!).toBe(61_000 + 1000)
    }))

  it.scoped("a loop that gives up is restarted by the outer tier; errors count every failure once", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const supervisor = yield* FiberSupervisor.make({
        intensity: { maxRestarts: 10, within: "1 minute" },
        restartSchedule: Schedule.spaced("1 minute")
      })
      yield* supervisor.spawn(
        "poller",
        FiberSupervisor.loop(
          Effect.zipRight(Ref.update(attempts, (n) => n + 1), Effect.fail(new ConnectionLost({ host: "api" }))),
          { classify: table, maxRetries: 2, schedule: Schedule.spaced("1 second") }
        )
      )
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* settle
      // 3 failures: 2 recovered inside the loop, the 3rd escapes and restarts the program (in a minute)
      expect(yield* Ref.get(attempts)).toBe(3)
      expect(childOf(yield* supervisor.snapshot, "poller")).toMatchObject({
        restarts: 0,
        errors: 3,
        status: "backing-off"
      })
      yield* TestClock.adjust("1 minute")
      yield* settle
      expect(yield* Ref.get(attempts)).toBe(4)
      expect(childOf(yield* supervisor.snapshot, "poller")).toMatchObject({ restarts: 1, errors: 4 })
    }))

  it.scoped("one_for_one restarts only the program that ended", () =>
    Effect.gen(function*() {
      const supervisor = yield* FiberSupervisor.make({ restartSchedule: Schedule.spaced("0 millis") })
      yield* supervisor.spawn("a", Effect.never)
      yield* supervisor.spawn("b", Effect.zipRight(Effect.sleep("1 second"), Effect.fail("x")), {
        restart: "transient"
      })
      yield* supervisor.spawn("c", Effect.never)
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* settle
      const s = yield* supervisor.snapshot
      expect(s.children.map((c) => [c.name, c.restarts])).toEqual([["a", 0], ["b", 1], ["c", 0]])
    }))

  it.scoped("one_for_all interrupts the others in reverse start order, runs their finalizers and restarts them all", () =>
    Effect.gen(function*() {
      const events = yield* Ref.make<Array<string>>([])
      const log = (e: string) => Ref.update(events, (xs) => [...xs, e])
      const member = (name: string) =>
        Effect.scoped(Effect.zipRight(
          Effect.acquireRelease(log(`start ${name}`), () => log(`stop ${name}`)),
          Effect.never
        ))
      const supervisor = yield* FiberSupervisor.make({
        strategy: "one_for_all",
        restartSchedule: Schedule.spaced("0 millis")
      })
      yield* supervisor.spawn("a", member("a"))
      yield* supervisor.spawn(
        "b",
        Effect.zipRight(log("start b"), Effect.zipRight(Effect.sleep("1 second"), Effect.fail("x"))),
        {
          restart: "transient"
        }
      )
      yield* supervisor.spawn("c", member("c"))
      yield* supervisor.spawn("d", member("d"), { restart: "temporary" })
      yield* settle
      yield* Ref.set(events, [])
      yield* TestClock.adjust("1 second")
      yield* settle
      const seen = yield* Ref.get(events)
      expect(seen.slice(0, 3)).toEqual(["stop d", "stop c", "stop a"])
      expect([...seen.slice(3)].sort()).toEqual(["start a", "start b", "start c"])
      const s = yield* supervisor.snapshot
      expect(s.children.map((c) => [c.name, c.restarts, c.status])).toEqual([
        ["a", 1, "running"],
        ["b", 1, "running"],
        ["c", 1, "running"],
        ["d", 0, "stopped"]
      ])
    }))

  it.scoped("one_for_all: a failure that happens while another program's restart is in progress is still counted", () =>
    Effect.gen(function*() {
      const supervisor = yield* FiberSupervisor.make({
        strategy: "one_for_all",
        restartSchedule: Schedule.spaced("1 minute"),
        intensity: { maxRestarts: 10, within: "1 minute" }
      })
      const failFirstRunAfter = (delay: Duration.DurationInput) =>
        Effect.gen(function*() {
          const runs = yield* Ref.make(0)
          return Effect.flatMap(Ref.updateAndGet(runs, (n) => n + 1), (n) =>
            n === 1 ? Effect.zipRight(Effect.sleep(delay), Effect.fail("crash")) : Effect.never)
        })
      // "c" fails at 1 s; stopping "d" (the last started, so the first stopped) takes 2 s, and
      // "e" fails at 1.5 s, while that group restart is still in progress
      yield* supervisor.spawn("c", yield* failFirstRunAfter("1 second"))
      yield* supervisor.spawn("e", yield* failFirstRunAfter("1500 millis"))
      yield* supervisor.spawn(
        "d",
        Effect.scoped(Effect.zipRight(Effect.addFinalizer(() => Effect.sleep("2 seconds")), Effect.never))
      )
      yield* settle
      for (let i = 0; i < 8; i++) {
        yield* TestClock.adjust("500 millis")
        yield* settle
      }
      // every program waits for its restart (counted when it happens, a minute after the decision)
      const s = yield* supervisor.snapshot
      expect(s.children.map((c) => [c.name, c.errors, c.restarts, c.status])).toEqual([
        ["c", 1, 0, "backing-off"],
        ["e", 1, 0, "backing-off"],
        ["d", 0, 0, "backing-off"]
      ])
    }))

  it.scoped("rest_for_one restarts the program that ended and those started after it", () =>
    Effect.gen(function*() {
      const supervisor = yield* FiberSupervisor.make({
        strategy: "rest_for_one",
        restartSchedule: Schedule.spaced("0 millis")
      })
      yield* supervisor.spawn("a", Effect.never)
      yield* supervisor.spawn("b", Effect.zipRight(Effect.sleep("1 second"), Effect.fail("x")), {
        restart: "transient"
      })
      yield* supervisor.spawn("c", Effect.never)
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* settle
      const s = yield* supervisor.snapshot
      expect(s.children.map((c) => [c.name, c.restarts])).toEqual([["a", 0], ["b", 1], ["c", 1]])
    }))

  it.scoped("intensity: N restarts within T are allowed, the next one escalates", () =>
    Effect.gen(function*() {
      const supervisor = yield* FiberSupervisor.make({
        name: "workers",
        intensity: { maxRestarts: 3, within: "1 minute" },
        restartSchedule: Schedule.spaced("10 seconds")
      })
      const escalation = yield* Effect.fork(Effect.flip(supervisor.awaitEscalation))
      yield* supervisor.spawn("flaky", Effect.fail(new ConnectionLost({ host: "x" }))).pipe(
        Effect.provide(Failure.layerClassifier({ tables: [table] }))
      )
      yield* settle
      // failures at 0, 10, 20 restart; the one at 30 s is the 4th restart within a minute
      for (let i = 0; i < 2; i++) {
        yield* TestClock.adjust("10 seconds")
        yield* settle
      }
      // restarts happened at 10 s and 20 s; the third, decided at 20 s, happens at 30 s
      expect(Option.isNone(yield* Fiber.poll(escalation))).toBe(true)
      expect(childOf(yield* supervisor.snapshot, "flaky").restarts).toBe(2)
      yield* TestClock.adjust("10 seconds")
      yield* settle
      const error = yield* Fiber.join(escalation)
      expect(error).toMatchObject({ _tag: "SupervisorEscalation", reason: "intensity", program: "flaky" })
      expect(error.message).toBe(
        "Supervisor \"workers\" escalated: more than 3 restarts within 1m (last: program \"flaky\") (last error: connection CONNECTION_LOST)"
      )
      expect(Cause.failureOption(error.cause)).toEqual(Option.some(new ConnectionLost({ host: "x" })))
      const s = yield* supervisor.snapshot
      expect(s.escalated).toBe(true)
      expect(childOf(s, "flaky")).toMatchObject({ status: "failed", restarts: 3, errors: 4 })
    }))

  it.scoped("intensity: restarts spread wider than the window never escalate", () =>
    Effect.gen(function*() {
      const supervisor = yield* FiberSupervisor.make({
        intensity: { maxRestarts: 2, within: "1 minute" },
        restartSchedule: Schedule.spaced("31 seconds")
      })
      yield* supervisor.spawn("slow-flaky", Effect.fail("x"))
      yield* settle
      for (let i = 0; i < 20; i++) {
        yield* TestClock.adjust("31 seconds")
        yield* settle
      }
      const s = yield* supervisor.snapshot
      expect(s.escalated).toBe(false)
      // the first failure at 0 s and one every 31 s after it: 20 restarts so far, the 21st waiting
      expect(childOf(s, "slow-flaky")).toMatchObject({ restarts: 20, status: "backing-off" })
    }))

  it.scoped("a defect escalates: the others are interrupted and their finalizers have run first", () =>
    Effect.gen(function*() {
      const released = yield* Ref.make<Array<string>>([])
      const supervisor = yield* FiberSupervisor.make({ name: "app" })
      for (const name of ["a", "b"]) {
        yield* supervisor.spawn(
          name,
          Effect.scoped(Effect.zipRight(
            Effect.acquireRelease(
              Effect.void,
              () => Effect.zipRight(Effect.sleep("1 second"), Ref.update(released, (xs) => [...xs, name]))
            ),
            Effect.never
          ))
        )
      }
      yield* supervisor.spawn("buggy", Effect.zipRight(Effect.sleep("1 second"), Effect.die(new Error("bug"))))
      const escalation = yield* Effect.fork(Effect.flip(supervisor.awaitEscalation))
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* settle
      yield* TestClock.adjust("1 second")
      const error = yield* Fiber.join(escalation)
      expect(error.reason).toBe("defect")
      expect(yield* Ref.get(released)).toEqual(["b", "a"])
      const s = yield* supervisor.snapshot
      expect(s.children.map((c) => [c.name, c.status])).toEqual([["a", "stopped"], ["b", "stopped"], [
        "buggy",
        "failed"
      ]])
    }))

  it.scoped("a restart schedule that dies does not end the program's supervision silently: it escalates", () =>
    Effect.gen(function*() {
      const { layer, lines } = yield* captureLogs
      const supervisor = yield* FiberSupervisor.make({
        restartSchedule: Schedule.spaced("1 second").pipe(Schedule.mapEffect(() => Effect.dieMessage("schedule bug")))
      })
      const escalation = yield* Effect.fork(Effect.flip(supervisor.awaitEscalation))
      yield* supervisor.spawn("job", Effect.fail("x")).pipe(Effect.provide(layer))
      yield* settle
      const done = yield* Fiber.poll(escalation)
      expect(Option.isSome(done)).toBe(true)
      expect(yield* Fiber.join(escalation)).toMatchObject({ program: "job", reason: "defect" })
      expect(childOf(yield* supervisor.snapshot, "job").status).toBe("failed")
      const fatal = (yield* Ref.get(lines)).filter((l) => l.level === "FATAL")
      expect(fatal.some((l) => l.cause.includes("schedule bug"))).toBe(true)
    }))

  it.scoped("with escalateOnDefect false a defect is restarted like a failure", () =>
    Effect.gen(function*() {
      const supervisor = yield* FiberSupervisor.make({
        escalateOnDefect: false,
        restartSchedule: Schedule.spaced("0 millis")
      })
      const runs = yield* Ref.make(0)
      yield* supervisor.spawn(
        "buggy",
        Effect.flatMap(Ref.updateAndGet(runs, (n) => n + 1), (n) => n === 1 ? Effect.die("bug") : Effect.never)
      )
      yield* settle
      const s = yield* supervisor.snapshot
      expect(childOf(s, "buggy")).toMatchObject({ restarts: 1, errors: 1, status: "running" })
      expect(childOf(s, "buggy").lastError).toMatchObject({ type: "system", code: "DEFECT", severity: "critical" })
    }))

  it.scoped("interruption is never a failure: a program interrupting itself stops without error or restart", () =>
    Effect.gen(function*() {
      const supervisor = yield* FiberSupervisor.make()
      yield* supervisor.spawn("quits", Effect.interrupt)
      yield* settle
      expect(childOf(yield* supervisor.snapshot, "quits")).toMatchObject({ status: "stopped", errors: 0, restarts: 0 })
    }))

  it.scoped("stop during a group restart stops the restarted program: no run escapes the supervisor", () =>
    Effect.gen(function*() {
      const starts = yield* Ref.make(0)
      const supervisor = yield* FiberSupervisor.make({
        strategy: "one_for_all",
        restartSchedule: Schedule.spaced("1 second")
      })
      yield* supervisor.spawn("a", Effect.zipRight(Effect.sleep("1 second"), Effect.fail("x")))
      yield* supervisor.spawn(
        "b",
        Effect.scoped(Effect.zipRight(
          Effect.acquireRelease(Ref.update(starts, (n) => n + 1), () => Effect.sleep("100 millis")),
          Effect.never
        ))
      )
      yield* settle
      // "a" fails: the group restart is interrupting "b", whose finalizer takes 100 ms
      yield* TestClock.adjust("1 second")
      yield* settle
      const stopping = yield* Effect.fork(supervisor.stop("b"))
      yield* settle
      yield* TestClock.adjust("100 millis")
      yield* settle
      expect(yield* Fiber.join(stopping)).toBe(true)
      expect(childOf(yield* supervisor.snapshot, "b").status).toBe("stopped")
      yield* TestClock.adjust("10 seconds")
      yield* settle
      expect(yield* Ref.get(starts)).toBe(1)
      expect(childOf(yield* supervisor.snapshot, "b").status).toBe("stopped")
    }))

  it.effect("graceful shutdown stops programs in reverse start order and reports those that overran", () =>
    Effect.gen(function*() {
      const order = yield* Ref.make<Array<string>>([])
      const program = (name: string, finalizerTime: Duration.DurationInput) =>
        Effect.scoped(Effect.zipRight(
          Effect.acquireRelease(Effect.void, () =>
            Effect.zipRight(Effect.sleep(finalizerTime), Ref.update(order, (xs) => [...xs, name]))),
          Effect.never
        ))
      const report = yield* Effect.scoped(Effect.gen(function*() {
        const supervisor = yield* FiberSupervisor.make({ shutdownTimeout: "2 seconds" })
        yield* supervisor.spawn("first", program("first", "1 second"))
        yield* supervisor.spawn("second", program("second", "5 seconds"))
        yield* supervisor.spawn("third", program("third", "1 second"))
        yield* settle
        const fiber = yield* Effect.fork(supervisor.shutdown)
        for (let i = 0; i < 10; i++) {
          yield* TestClock.adjust("1 second")
          yield* settle
        }
        const report = yield* Fiber.join(fiber)
        const s = yield* supervisor.snapshot
        expect(s.children.every((c) => c.status === "stopped" && c.errors === 0 && c.restarts === 0)).toBe(true)
        return report
      }))
      expect(report).toEqual({ stopped: ["third", "second", "first"], overran: ["second"] })
      expect(yield* Ref.get(order)).toEqual(["third", "first", "second"])
    }))

  it.scoped("changes publish every status transition", () =>
    Effect.gen(function*() {
      const supervisor = yield* FiberSupervisor.make({ restartSchedule: Schedule.spaced("1 second") })
      const collected = yield* supervisor.changes.pipe(Stream.take(4), Stream.runCollect, Effect.fork)
      yield* settle
      const runs = yield* Ref.make(0)
      yield* supervisor.spawn(
        "job",
        Effect.flatMap(Ref.updateAndGet(runs, (n) => n + 1), (n) => n === 1 ? Effect.fail("x") : Effect.never)
      )
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* settle
      const changes = Chunk.toReadonlyArray(yield* Fiber.join(collected))
      expect(changes.map((c) => `${c.from}->${c.to}`)).toEqual([
        "stopped->starting",
        "starting->running",
        "running->backing-off",
        "backing-off->running"
      ])
      expect(changes.map((c) => c.at)).toEqual([0, 0, 0, 1000])
      expect(changes.every((c) => c.program === "job")).toBe(true)
    }))

  it.scoped("changes ends once the supervisor has shut down, after the last transitions", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const supervisor = yield* FiberSupervisor.make().pipe(Scope.extend(scope))
      const collected = yield* supervisor.changes.pipe(Stream.runCollect, Effect.fork)
      yield* settle
      yield* supervisor.spawn("job", Effect.never)
      yield* settle
      yield* Scope.close(scope, Exit.void)
      yield* settle
      const done = yield* Fiber.poll(collected)
      expect(Option.isSome(done)).toBe(true)
      const changes = Chunk.toReadonlyArray(yield* Fiber.join(collected))
      expect(changes.map((c) => `${c.from}->${c.to}`)).toEqual([
        "stopped->starting",
        "starting->running",
        "running->stopped"
      ])
      // a subscriber that comes after the end gets an empty stream
      expect(Chunk.size(yield* Stream.runCollect(supervisor.changes))).toBe(0)
    }))

  it.scoped("spawning a name that is still running is a defect naming it", () =>
    Effect.gen(function*() {
      const supervisor = yield* FiberSupervisor.make({ name: "s" })
      yield* supervisor.spawn("dup", Effect.never)
      const exit = yield* Effect.exit(supervisor.spawn("dup", Effect.never))
      expect(Exit.isFailure(exit) && Cause.pretty(exit.cause)).toContain("a program named \"dup\" is already running")
    }))

  it.effect("literal options that break a rule are a defect naming the field", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Effect.scoped(FiberSupervisor.make({ intensity: { maxRestarts: -1 } })))
      expect(Exit.isFailure(exit) && Cause.pretty(exit.cause)).toContain("intensity.maxRestarts")
    }))

  it.effect("a duration option that is not a duration is a defect naming the field and the value given", () =>
    Effect.gen(function*() {
      const within = yield* Effect.exit(Effect.scoped(FiberSupervisor.make({ intensity: { within: -5 } })))
      expect(Exit.isFailure(within) && Cause.pretty(within.cause)).toContain(
        "intensity.within must be a positive duration, got -5"
      )
      const garbled = yield* Effect.exit(
        Effect.scoped(FiberSupervisor.make({ shutdownTimeout: "soon" as Duration.DurationInput }))
      )
      expect(Exit.isFailure(garbled) && Cause.pretty(garbled.cause)).toContain(
        "shutdownTimeout must be a positive duration, got soon"
      )
      // a negative pause between steps was clamped to none
      const interval = yield* Effect.exit(FiberSupervisor.loop(Effect.void, { interval: -1 }))
      expect(Exit.isFailure(interval) && Cause.isDie(interval.cause) && Cause.pretty(interval.cause)).toContain(
        "interval must be a duration >= 0, got -1"
      )
    }))
})

describe("FiberSupervisor: escalation reaches the main fiber", () => {
  it("a defect in a background program fails the main effect with SupervisorEscalation after a fatal log", async () => {
    const logged: Array<{ level: LogLevel.LogLevel; message: string }> = []
    const logger = Logger.make(({ logLevel, message }) => {
      logged.push({ level: logLevel, message: Array.isArray(message) ? message.join(" ") : String(message) })
    })
    let released = false
    const main = Effect.gen(function*() {
      yield* FiberSupervisor.spawn(
        "cache",
        Effect.scoped(Effect.zipRight(
          Effect.acquireRelease(Effect.void, () => Effect.sync(() => released = true)),
          Effect.never
        ))
      )
      yield* FiberSupervisor.spawn(
        "worker_loop",
        Effect.zipRight(Effect.yieldNow(), Effect.die(new Error("Invalid data format")))
      )
      return yield* Effect.never
    })
    const exit = await Effect.runPromiseExit(
      main.pipe(
        Effect.provide(FiberSupervisor.layer({ name: "service" })),
        Effect.provide(Logger.replace(Logger.defaultLogger, logger))
      )
    )
    expect(Exit.isFailure(exit)).toBe(true)
    if (Exit.isFailure(exit)) {
      const failure = Cause.failureOption(exit.cause)
      expect(Option.isSome(failure) && failure.value).toMatchObject({
        _tag: "SupervisorEscalation",
        supervisor: "service",
        program: "worker_loop",
        reason: "defect"
      })
      expect(Cause.isInterruptedOnly(exit.cause)).toBe(false)
    }
    expect(released).toBe(true)
    const fatal = logged.filter((l) => l.level._tag === "Fatal").map((l) => l.message)
    expect(fatal.some((m) => m.includes("Program \"worker_loop\" of supervisor \"service\" terminated by a defect")))
      .toBe(
        true
      )
    expect(fatal.some((m) => m.includes("FATAL: Supervisor \"service\" escalated"))).toBe(true)
  })

  it("cancelling a task does not escalate: main finishes normally", async () => {
    const exit = await Effect.runPromiseExit(
      Effect.gen(function*() {
        const supervisor = yield* FiberSupervisor.FiberSupervisor
        yield* supervisor.spawn("cancellable", Effect.never)
        yield* Effect.yieldNow()
        yield* supervisor.stop("cancellable")
        const snapshot = yield* supervisor.snapshot
        return snapshot.children[0]!.status
      }).pipe(Effect.provide(FiberSupervisor.layer()))
    )
    expect(exit).toEqual(Exit.succeed("stopped"))
  })

  it.effect("run fails with the escalation as soon as it happens", () =>
    Effect.gen(function*() {
      const error = yield* FiberSupervisor.run(
        Effect.zipRight(FiberSupervisor.spawn("bad", Effect.die("bug")), Effect.never)
      ).pipe(Effect.flip)
      expect(error).toMatchObject({ _tag: "SupervisorEscalation", program: "bad" })
    }))
})

describe("FiberSupervisor: health and alerts", () => {
  it.scoped("a program backing off makes readiness degraded; an escalation makes liveness down and alerts once", () =>
    Effect.gen(function*() {
      const alerts = yield* Ref.make<Array<Alerts.Alert>>([])
      const health = yield* Health.Health
      const supervisor = yield* FiberSupervisor.make({
        name: "jobs",
        intensity: { maxRestarts: 1, within: "1 minute" },
        restartSchedule: Schedule.spaced("10 seconds")
      }).pipe(Effect.provide(Alerts.layer((a) => Ref.update(alerts, (xs) => [...xs, a]))))
      expect((yield* health.report).status).toBe("up")
      yield* supervisor.spawn("flaky", Effect.fail("x"))
      yield* settle
      const degraded = yield* health.report
      expect(degraded).toMatchObject({ status: "degraded", live: true, ready: false })
      expect(degraded.components.find((c) => c.name === "supervisor:jobs:programs")?.details).toEqual({
        backingOff: 1
      })
      yield* TestClock.adjust("10 seconds")
      yield* settle
      const down = yield* health.report
      expect(down).toMatchObject({ status: "down", live: false, ready: false })
      const sent = yield* Ref.get(alerts)
      expect(sent).toHaveLength(1)
      expect(sent[0]).toMatchObject({ key: "supervisor:jobs", kind: "supervisor_escalation", severity: "critical" })
    }).pipe(Effect.provide(Health.layer())))
})

describe("FiberSupervisor.layerConfig", () => {
  it.effect("reads its options from Config and fails with a ConfigError naming a bad key", () =>
    Effect.gen(function*() {
      const provider = (map: Record<string, string>) =>
        Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(map))))
      const name = yield* Effect.map(FiberSupervisor.FiberSupervisor, (s) => s.name).pipe(
        Effect.provide(FiberSupervisor.layerConfig(Config.nested(FiberSupervisor.config, "SUPERVISOR"))),
        Effect.provide(provider({ "SUPERVISOR.NAME": "jobs", "SUPERVISOR.MAX_RESTARTS": "10" }))
      )
      expect(name).toBe("jobs")
      const error = yield* Effect.flip(
        Effect.provide(
          FiberSupervisor.FiberSupervisor,
          FiberSupervisor.layerConfig().pipe(Layer.provide(provider({ MAX_RESTARTS: "-2" })))
        )
      )
      expect(String(error)).toContain("MAX_RESTARTS")
      const retain = yield* Effect.flip(
        Effect.provide(
          FiberSupervisor.FiberSupervisor,
          FiberSupervisor.layerConfig().pipe(Layer.provide(provider({ RETAIN_FINISHED: "-1" })))
        )
      )
      expect(String(retain)).toContain("RETAIN_FINISHED")
    }))
})
