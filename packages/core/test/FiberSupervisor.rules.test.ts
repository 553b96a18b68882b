import { Alerts, Failure, FiberSupervisor, Health } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Data, Effect, Exit, Fiber, FiberId, HashMap, Logger, Option, Ref, Schedule, TestClock } from "effect"

class ConnectionLost extends Data.TaggedError("ConnectionLost")<{ readonly host: string }> {}
class BadRecord extends Data.TaggedError("BadRecord")<{}> {}
class NotFound extends Data.TaggedError("NotFound")<{ readonly path: string }> {}

const table = Failure.table<ConnectionLost | BadRecord>({
  ConnectionLost: "connection",
  BadRecord: "validation"
})

interface Line {
  readonly level: string
  readonly message: string
  readonly annotations: Record<string, unknown>
}

/** Collects log lines with their level and annotations. */
const captureLogs = Effect.gen(function*() {
  const lines: Array<Line> = []
  const logger = Logger.make(({ annotations, logLevel, message }) => {
    lines.push({
      level: logLevel.label,
      message: Array.isArray(message) ? message.map(String).join(" ") : String(message),
      annotations: Object.fromEntries(HashMap.toEntries(annotations))
    })
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

describe("FiberSupervisor: one classification, made by the loop", () => {
  it.scoped("a failure the loop classified as validation shows as validation in the banner, the snapshot and the alert", () =>
    Effect.gen(function*() {
      const { layer, lines } = yield* captureLogs
      const alerts: Array<Alerts.Alert> = []
      // no classifier anywhere: only the loop's own table knows BadRecord
      const supervisor = yield* FiberSupervisor.make({ name: "ingest", intensity: { maxRestarts: 0 } }).pipe(
        Effect.provide(Alerts.layer((alert) => Effect.sync(() => alerts.push(alert)))),
        Effect.provide(layer)
      )
      const escalation = yield* Effect.fork(Effect.flip(supervisor.awaitEscalation))
      yield* supervisor.spawn("reader", FiberSupervisor.loop(Effect.fail(new BadRecord()), { classify: table })).pipe(
        Effect.provide(layer)
      )
      yield* settle
      const error = yield* Fiber.join(escalation)
      const child = childOf(yield* supervisor.snapshot, "reader")
      expect(child.lastError).toMatchObject({ type: "validation", code: "BAD_RECORD", severity: "warning" })
      expect(child.errors).toBe(1)
      const banner = lines.find((l) => l.level === "FATAL" && l.message.includes("terminated by a failure"))
      expect(banner?.message).toContain("BAD_RECORD (validation, warning)")
      expect(banner?.annotations).toMatchObject({ "bulwark.category": "validation", "bulwark.code": "BAD_RECORD" })
      expect(error.lastError).toMatchObject({ type: "validation", code: "BAD_RECORD" })
      expect(alerts).toHaveLength(1)
      expect(alerts[0]!.annotations).toMatchObject({ category: "validation", code: "BAD_RECORD", reason: "intensity" })
    }))

  it.scoped("a failure that never went through a loop is classified with the classifier of the program's context", () =>
    Effect.gen(function*() {
      const supervisor = yield* FiberSupervisor.make()
      yield* supervisor.spawn("direct", Effect.fail(new BadRecord()), { restart: "temporary" }).pipe(
        Effect.provide(Failure.layerClassifier({ tables: [table] }))
      )
      yield* settle
      expect(childOf(yield* supervisor.snapshot, "direct").lastError).toMatchObject({ type: "validation" })
    }))
})

describe("FiberSupervisor.loop: predicates, budgets and log levels", () => {
  it.effect("retryWhile is the decision: it retries what the classification would not, and stops what it would", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const seen: Array<string> = []
      const fiber = yield* FiberSupervisor.loop(
        Effect.zipRight(Ref.update(attempts, (n) => n + 1), Effect.fail(new BadRecord())),
        {
          classify: table,
          maxRetries: 2,
          schedule: Schedule.spaced("1 second"),
          retryWhile: (error, classification) => {
            seen.push(`${error._tag}:${classification.category}`)
            return true
          }
        }
      ).pipe(Effect.flip, Effect.fork)
      yield* TestClock.adjust("10 seconds")
      expect((yield* Fiber.join(fiber))._tag).toBe("BadRecord")
      // a validation error, never retried by its classification: retried twice, then the budget ends it
      expect(yield* Ref.get(attempts)).toBe(3)
      expect(seen).toEqual(["BadRecord:validation", "BadRecord:validation", "BadRecord:validation"])

      // without maxRetries, a category that allows no retries gets 3 when the predicate retries it
      const forced = yield* Ref.make(0)
      const forcedFiber = yield* FiberSupervisor.loop(
        Effect.zipRight(Ref.update(forced, (n) => n + 1), Effect.fail(new BadRecord())),
        { classify: table, schedule: Schedule.spaced("1 second"), retryWhile: () => true }
      ).pipe(Effect.flip, Effect.fork)
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(forcedFiber)
      expect(yield* Ref.get(forced)).toBe(4)
      // a rule that is not retried but writes its own count keeps it when the predicate retries it
      const counted = yield* Ref.make(0)
      const countedFiber = yield* FiberSupervisor.loop(
        Effect.zipRight(Ref.update(counted, (n) => n + 1), Effect.fail(new BadRecord())),
        {
          classify: Failure.table<BadRecord>({ BadRecord: { category: "validation", maxRetries: 1 } }),
          schedule: Schedule.spaced("1 second"),
          retryWhile: () => true
        }
      ).pipe(Effect.flip, Effect.fork)
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(countedFiber)
      expect(yield* Ref.get(counted)).toBe(2)

      const connects = yield* Ref.make(0)
      const refused = yield* FiberSupervisor.loop(
        Effect.zipRight(Ref.update(connects, (n) => n + 1), Effect.fail(new ConnectionLost({ host: "db" }))),
        { classify: table, retryWhile: (error) => error.host !== "db" }
      ).pipe(Effect.flip)
      expect(refused.host).toBe("db")
      expect(yield* Ref.get(connects)).toBe(1)
    }))

  it.effect("retryWhile is typed against the step's error", () =>
    Effect.gen(function*() {
      const step: Effect.Effect<void, ConnectionLost> = Effect.fail(new ConnectionLost({ host: "a" }))
      const typed = FiberSupervisor.loop(step, { retryWhile: (error) => error.host === "a", maxRetries: 0 })
      // @ts-expect-error a predicate over another error type does not fit
      FiberSupervisor.loop(step, { retryWhile: (error: BadRecord) => error._tag === "BadRecord" })
      expect((yield* Effect.flip(typed)).host).toBe("a")
    }))

  it.effect("maxRetries: Infinity retries for ever", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const step = Effect.flatMap(
        Ref.updateAndGet(attempts, (n) => n + 1),
        (n) => n <= 50 ? Effect.fail(new ConnectionLost({ host: "db" })) : Effect.succeed("done")
      )
      const fiber = yield* FiberSupervisor.loop(step, {
        classify: table,
        maxRetries: Infinity,
        schedule: Schedule.spaced("1 second"),
        while: (r) => r !== "done"
      }).pipe(Effect.provide(Logger.remove(Logger.defaultLogger)), Effect.fork)
      yield* TestClock.adjust("51 seconds")
      expect(yield* Fiber.join(fiber)).toBeUndefined()
      expect(yield* Ref.get(attempts)).toBe(51)
    }))

  it.effect("a maxRetries given to the loop is honoured in full, even for a failure escalated to critical", () =>
    Effect.gen(function*() {
      // critical and retryable: severity escalation alone would abandon it after its second attempt
      const critical = Failure.table<ConnectionLost>({
        ConnectionLost: { category: "connection", severity: "critical" }
      })
      const run = (maxRetries: number | undefined) =>
        Effect.gen(function*() {
          const attempts = yield* Ref.make(0)
          const fiber = yield* FiberSupervisor.loop(
            Effect.zipRight(Ref.update(attempts, (n) => n + 1), Effect.fail(new ConnectionLost({ host: "db" }))),
            { classify: critical, maxRetries, schedule: Schedule.spaced("1 second") }
          ).pipe(Effect.flip, Effect.fork)
          yield* TestClock.adjust("1 minute")
          yield* Fiber.join(fiber)
          return yield* Ref.get(attempts)
        })
      expect(yield* run(4)).toBe(5)
      // without a number from the user, escalation behaves as the matrix says
      expect(yield* run(undefined)).toBe(3)
    }).pipe(Effect.provide(Logger.remove(Logger.defaultLogger))))

  it.scoped("the log level follows the severity, and the message and the attempt annotation agree", () =>
    Effect.gen(function*() {
      const { layer, lines } = yield* captureLogs
      const notFound = Failure.table<NotFound>({
        NotFound: { category: "external", severity: "warning", code: "NOT_FOUND", maxRetries: 1 }
      })
      const fiber = yield* FiberSupervisor.loop(Effect.fail(new NotFound({ path: "/a" })), {
        classify: notFound,
        schedule: Schedule.spaced("1 second")
      }).pipe(Effect.provide(layer), Effect.flip, Effect.fork)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      const expected = { Fatal: "FATAL", Error: "ERROR", Warning: "WARN", Info: "INFO" }[Failure.logLevel("warning")]
      expect(lines.map((l) => [l.level, l.message, l.annotations["bulwark.attempt"]])).toEqual([
        [expected, "Program \"loop\" failed on attempt 1 (NOT_FOUND); retrying in 1s", 1],
        [expected, "Program \"loop\" gave up on attempt 2: NOT_FOUND (retry budget exhausted)", 2]
      ])
      // never a fixed ERROR for a failure of severity warning
      expect(lines.every((l) => l.level !== "ERROR")).toBe(true)
    }))

  it.effect("a retry-after hint of Infinity does not hold the loop for ever", () =>
    Effect.gen(function*() {
      class Throttled extends Data.TaggedError("Throttled")<{}> {}
      const throttled = Failure.table<Throttled>({
        Throttled: {
          category: "resource",
          severity: "major",
          strategy: "backoff_retry",
          maxRetries: 2,
          retryAfter: Infinity
        }
      })
      const times: Array<number> = []
      const step = Effect.zipRight(
        Effect.flatMap(Effect.clockWith((c) => c.currentTimeMillis), (t) => Effect.sync(() => times.push(t))),
        Effect.fail(new Throttled())
      )
      const fiber = yield* FiberSupervisor.loop(step, {
        classify: throttled,
        schedule: Schedule.spaced("1 second")
      }).pipe(Effect.flip, Effect.fork)
      yield* TestClock.adjust("1 hour")
      yield* TestClock.adjust("1 hour")
      yield* Fiber.join(fiber)
      // the hint holds each retry for an hour at most
      expect(times).toEqual([0, 3_600_000, 7_200_000])
    }).pipe(Effect.provide(Logger.remove(Logger.defaultLogger))))

  it.effect("a negative interval written as a string is a defect naming the field", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(FiberSupervisor.loop(Effect.void, { interval: "-1 seconds" }))
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      if (Exit.isFailure(exit)) expect(Cause.pretty(exit.cause)).toContain("interval must be a duration >= 0")
      const infinite = yield* Effect.exit(FiberSupervisor.loop(Effect.void, { maxRetries: -1 }))
      if (Exit.isFailure(infinite)) expect(Cause.pretty(infinite.cause)).toContain("maxRetries")
      expect(Exit.isFailure(infinite)).toBe(true)
    }))
})

describe("FiberSupervisor: status and restart counts", () => {
  it.scoped("a restart is counted when it happens, not when it is scheduled", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make(0)
      const supervisor = yield* FiberSupervisor.make({ restartSchedule: Schedule.spaced("100 millis") })
      yield* supervisor.spawn(
        "worker",
        Effect.flatMap(Ref.updateAndGet(runs, (n) => n + 1), (n) => n === 1 ? Effect.fail("crash") : Effect.never)
      ).pipe(Effect.provide(Logger.remove(Logger.defaultLogger)))
      yield* settle
      yield* TestClock.adjust("50 millis")
      yield* settle
      expect(childOf(yield* supervisor.snapshot, "worker")).toMatchObject({ status: "backing-off", restarts: 0 })
      yield* TestClock.adjust("50 millis")
      yield* settle
      expect(childOf(yield* supervisor.snapshot, "worker")).toMatchObject({ status: "running", restarts: 1 })
      expect(yield* Ref.get(runs)).toBe(2)
    }))

  it.scoped("a program that stops itself, or ends, no longer shows as running", () =>
    Effect.gen(function*() {
      const supervisor = yield* FiberSupervisor.make()
      const released = yield* Ref.make(false)
      // stops itself through the service
      yield* supervisor.spawn(
        "self-stop",
        Effect.scoped(Effect.zipRight(
          Effect.acquireRelease(Effect.void, () => Ref.set(released, true)),
          Effect.zipRight(supervisor.stop("self-stop"), Effect.never)
        ))
      )
      // interrupts its own fiber
      yield* supervisor.spawn(
        "self-interrupt",
        Effect.zipRight(Effect.withFiberRuntime((fiber) => fiber.interruptAsFork(fiber.id())), Effect.never)
      )
      // completes
      yield* supervisor.spawn("done", Effect.void, { restart: "transient" })
      yield* settle
      const s = yield* supervisor.snapshot
      expect(s.children.map((c) => [c.name, c.status, c.errors, c.restarts])).toEqual([
        ["self-stop", "stopped", 0, 0],
        ["self-interrupt", "stopped", 0, 0],
        ["done", "stopped", 0, 0]
      ])
      expect(yield* Ref.get(released)).toBe(true)
      // the name can be used again
      yield* supervisor.spawn("self-stop", Effect.never)
      yield* settle
      expect(childOf(yield* supervisor.snapshot, "self-stop").status).toBe("running")
    }))

  it.scoped("two loops in one program: the program backs off while any of its loops does", () =>
    Effect.gen(function*() {
      const health = yield* Health.Health
      const supervisor = yield* FiberSupervisor.make({ name: "pair" })
      const failOnce = (delay: "10 seconds" | "20 seconds") =>
        Effect.gen(function*() {
          const runs = yield* Ref.make(0)
          return FiberSupervisor.loop(
            Effect.flatMap(
              Ref.updateAndGet(runs, (n) => n + 1),
              (n) => n === 1 ? Effect.fail(new ConnectionLost({ host: delay })) : Effect.never
            ),
            { classify: table, schedule: Schedule.spaced(delay) }
          )
        })
      const a = yield* failOnce("10 seconds")
      const b = yield* failOnce("20 seconds")
      yield* supervisor.spawn("both", Effect.all([a, b], { concurrency: 2, discard: true })).pipe(
        Effect.provide(Logger.remove(Logger.defaultLogger))
      )
      yield* settle
      const status = Effect.map(supervisor.snapshot, (s) => childOf(s, "both").status)
      const backingOff = Effect.map(
        health.report,
        (r) => r.components.find((c) => c.name === "supervisor:pair:programs")?.details
      )
      expect(yield* status).toBe("backing-off")
      expect(yield* backingOff).toEqual({ backingOff: 1 })
      yield* TestClock.adjust("10 seconds")
      yield* settle
      // the first loop is running again, the second still waits
      expect(yield* status).toBe("backing-off")
      yield* TestClock.adjust("10 seconds")
      yield* settle
      expect(yield* status).toBe("running")
      expect(yield* backingOff).toEqual({ backingOff: 0 })
      expect(childOf(yield* supervisor.snapshot, "both")).toMatchObject({ errors: 2, restarts: 0 })
    }).pipe(Effect.provide(Health.layer())))
})

describe("FiberSupervisor: finished programs are forgotten, within a bound", () => {
  it.scoped("thousands of short-lived programs with distinct names leave at most retainFinished entries", () =>
    Effect.gen(function*() {
      const supervisor = yield* FiberSupervisor.make({ retainFinished: 50 })
      yield* supervisor.spawn("resident", Effect.never)
      for (let i = 0; i < 5_000; i++) {
        yield* supervisor.spawn(`job-${i}`, i % 2 === 0 ? Effect.void : Effect.fail("x"), {
          restart: i % 2 === 0 ? "transient" : "temporary"
        })
        if (i % 500 === 0) yield* settle
      }
      yield* settle
      const s = yield* supervisor.snapshot
      // the resident program and the 50 most recently finished, in start order
      expect(s.children).toHaveLength(51)
      expect(s.children[0]!.name).toBe("resident")
      expect(s.children.slice(1).map((c) => c.name)).toEqual(
        Array.from({ length: 50 }, (_, k) => `job-${4_950 + k}`)
      )
      expect(childOf(s, "job-4999")).toMatchObject({ status: "failed", errors: 1 })
      expect(childOf(s, "job-4998")).toMatchObject({ status: "stopped", errors: 0 })
    }).pipe(Effect.provide(Logger.remove(Logger.defaultLogger))))

  it.scoped("retainFinished: 0 keeps no finished program; a bad value is a defect naming the field", () =>
    Effect.gen(function*() {
      const supervisor = yield* FiberSupervisor.make({ retainFinished: 0 })
      yield* supervisor.spawn("once", Effect.void, { restart: "transient" })
      yield* settle
      expect((yield* supervisor.snapshot).children).toEqual([])
      const exit = yield* Effect.exit(Effect.scoped(FiberSupervisor.make({ retainFinished: -1 })))
      expect(Exit.isFailure(exit) && Cause.pretty(exit.cause).includes("retainFinished")).toBe(true)
    }))
})

describe("FiberSupervisor: odd failure values", () => {
  const throwing = (key: string) =>
    Object.defineProperty({}, key, {
      enumerable: true,
      get() {
        throw new Error(`${key} getter`)
      }
    })
  const odd: ReadonlyArray<readonly [string, unknown]> = [
    ["null prototype", Object.create(null)],
    ["throwing message", Object.assign(throwing("message"), { _tag: "Odd" })],
    ["throwing _tag", throwing("_tag")],
    ["throwing toString", {
      toString: () => {
        throw new Error("no")
      }
    }],
    ["constructor tag", { _tag: "constructor" }],
    ["__proto__ code", { code: "__proto__" }]
  ]

  const rendered: Array<string> = []

  it.scoped("a typed failure stays a typed failure: restarted, counted and described, never escalated", () =>
    Effect.gen(function*() {
      const supervisor = yield* FiberSupervisor.make({ intensity: { maxRestarts: 100, within: "1 minute" } })
      for (const [name, value] of odd) {
        yield* supervisor.spawn(name, Effect.fail(value), { restart: "temporary" })
        yield* supervisor.spawn(`${name} in a loop`, FiberSupervisor.loop(Effect.fail(value), { maxRetries: 0 }), {
          restart: "temporary"
        })
      }
      yield* settle
      const s = yield* supervisor.snapshot
      expect(s.escalated).toBe(false)
      for (const child of s.children) {
        expect(child).toMatchObject({ status: "failed", errors: 1 })
        expect(child.lastError?.type).not.toBe(undefined)
        expect(child.lastError?.code).not.toBe("DEFECT")
        expect(typeof child.lastError?.message).toBe("string")
      }
      // every log line about them was written, its cause rendered
      expect(rendered.length).toBeGreaterThanOrEqual(odd.length * 2)
    }).pipe(Effect.provide(Logger.replace(
      Logger.defaultLogger,
      Logger.make(({ cause, message }) => {
        rendered.push(`${String(message)} ${Cause.pretty(cause)}`)
      })
    ))))
})

describe("FiberSupervisor: escalation details", () => {
  it.effect("findEscalation finds an escalation as a failure or, after orDie, as a defect", () =>
    Effect.gen(function*() {
      const error = yield* FiberSupervisor.run(
        Effect.zipRight(FiberSupervisor.spawn("bad", Effect.die("bug")), Effect.never)
      ).pipe(Effect.flip, Effect.provide(Logger.remove(Logger.defaultLogger)))
      expect(FiberSupervisor.findEscalation(Cause.fail(error))).toEqual(Option.some(error))
      expect(FiberSupervisor.findEscalation(Cause.die(error))).toEqual(Option.some(error))
      expect(FiberSupervisor.findEscalation(Cause.sequential(Cause.interrupt(FiberId.none), Cause.fail(error))))
        .toEqual(Option.some(error))
      expect(FiberSupervisor.findEscalation(Cause.fail("other"))).toEqual(Option.none())
    }))
})
