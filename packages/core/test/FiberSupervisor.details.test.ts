import { Alerts, Failure, FiberSupervisor, Health } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  Chunk,
  ConfigProvider,
  Context,
  Data,
  Duration,
  Effect,
  Exit,
  Fiber,
  HashMap,
  Layer,
  Logger,
  Metric,
  Option,
  Schedule,
  SchemaAST,
  Scope,
  Stream,
  TestClock
} from "effect"
import * as S from "../src/internal/supervisorState.js"

class BadRecord extends Data.TaggedError("BadRecord")<{}> {}
class Busy extends Data.TaggedError("Busy")<{}> {}

const table = Failure.table<BadRecord | Busy>({ BadRecord: "validation", Busy: "connection" })

interface Line {
  readonly level: string
  readonly message: string
  readonly annotations: Record<string, unknown>
  readonly cause: string
}

/** Collects log lines with their level, annotations and rendered cause. */
const captureLogs = Effect.sync(() => {
  const lines: Array<Line> = []
  const logger = Logger.make(({ annotations, cause, logLevel, message }) => {
    lines.push({
      level: logLevel.label,
      message: Array.isArray(message) ? message.map(String).join(" ") : String(message),
      annotations: Object.fromEntries(HashMap.toEntries(annotations)),
      cause: Cause.pretty(cause)
    })
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
})

const settle = Effect.gen(function*() {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow()
})

const bar = "═".repeat(64)
const banner = (title: string, detail: string) => `\n╔${bar}\n║ FATAL: ${title}\n║ ${detail}\n╚${bar}`

const counter = (name: string, tags: Record<string, string>) =>
  Metric.unsafeSnapshot().filter((pair) =>
    pair.metricKey.name === name &&
    Object.entries(tags).every(([key, value]) => pair.metricKey.tags.some((t) => t.key === key && t.value === value))
  ).map((pair) => ({
    count: (pair.metricState as unknown as { readonly count: number }).count,
    description: Option.getOrUndefined(pair.metricKey.description),
    incremental: (pair.metricKey.keyType as unknown as { readonly incremental: boolean }).incremental
  }))

describe("FiberSupervisor.config", () => {
  const read = (map: Record<string, string>) =>
    Effect.withConfigProvider(FiberSupervisor.config, ConfigProvider.fromMap(new Map(Object.entries(map))))

  it.effect("reads every key, and gives the documented defaults for those not set", () =>
    Effect.gen(function*() {
      expect(
        yield* read({
          NAME: "jobs",
          STRATEGY: "rest_for_one",
          MAX_RESTARTS: "0",
          WITHIN: "2 seconds",
          SHUTDOWN_TIMEOUT: "3 seconds",
          ESCALATE_ON_DEFECT: "false",
          RETAIN_FINISHED: "0"
        })
      ).toEqual({
        name: "jobs",
        strategy: "rest_for_one",
        intensity: { maxRestarts: 0, within: Duration.seconds(2) },
        shutdownTimeout: Duration.seconds(3),
        escalateOnDefect: false,
        retainFinished: 0
      })
      expect(yield* read({})).toEqual({
        name: "supervisor",
        strategy: "one_for_one",
        intensity: { maxRestarts: 3, within: Duration.seconds(5) },
        shutdownTimeout: Duration.seconds(5),
        escalateOnDefect: true,
        retainFinished: 100
      })
      for (const strategy of ["one_for_one", "one_for_all", "rest_for_one"] as const) {
        expect((yield* read({ STRATEGY: strategy })).strategy).toBe(strategy)
      }
    }))

  it.effect("a bad value fails naming the key and the rule it breaks", () =>
    Effect.gen(function*() {
      const message = (map: Record<string, string>) => Effect.map(Effect.flip(read(map)), String)
      expect(yield* message({ MAX_RESTARTS: "-1" })).toContain("MAX_RESTARTS")
      expect(yield* message({ MAX_RESTARTS: "-1" })).toContain("must be a whole number >= 0")
      expect(yield* message({ RETAIN_FINISHED: "-1" })).toContain("must be a whole number >= 0")
      expect(yield* message({ WITHIN: "0 millis" })).toContain("WITHIN")
      expect(yield* message({ WITHIN: "0 millis" })).toContain("must be a positive duration")
      expect(yield* message({ SHUTDOWN_TIMEOUT: "0 millis" })).toContain("SHUTDOWN_TIMEOUT")
      expect(yield* message({ SHUTDOWN_TIMEOUT: "0 millis" })).toContain("must be a positive duration")
      expect(yield* message({ STRATEGY: "one_for_some" })).toContain("STRATEGY")
      expect(yield* message({ ESCALATE_ON_DEFECT: "maybe" })).toContain("ESCALATE_ON_DEFECT")
    }))
})

describe("FiberSupervisor: what an escalation reports", () => {
  it.scoped("an intensity escalation: the error's fields, the fatal banner, its annotations, the alert, health and the metrics", () =>
    Effect.gen(function*() {
      const { layer, lines } = yield* captureLogs
      const alerts: Array<Alerts.Alert> = []
      const health = yield* Health.Health
      const supervisor = yield* FiberSupervisor.make({
        name: "details-esc",
        intensity: { maxRestarts: 0, within: "2 seconds" }
      }).pipe(
        Effect.provide(Alerts.layer((alert) => Effect.sync(() => alerts.push(alert)))),
        Effect.provide(layer)
      )
      const up = yield* health.report
      expect(up.components.map((c) => [c.name, c.kind, c.status, c.details])).toEqual([
        ["supervisor:details-esc", "liveness", "up", { programs: 0 }],
        ["supervisor:details-esc:programs", "readiness", "up", { backingOff: 0 }]
      ])
      const escalation = yield* Effect.fork(Effect.flip(supervisor.awaitEscalation))
      yield* supervisor.spawn("details-esc-reader", Effect.fail(new BadRecord())).pipe(
        Effect.provide(Layer.merge(Failure.layerClassifier({ tables: [table] }), layer))
      )
      yield* settle
      const error = yield* Fiber.join(escalation)
      expect(error.supervisor).toBe("details-esc")
      expect(error.program).toBe("details-esc-reader")
      expect(error.reason).toBe("intensity")
      expect(error.maxRestarts).toBe(0)
      expect(error.within).toBe("2s")
      expect(error.lastError).toMatchObject({
        type: "validation",
        code: "BAD_RECORD",
        severity: "warning",
        taskId: "details-esc-reader"
      })
      const message =
        "Supervisor \"details-esc\" escalated: more than 0 restarts within 2s (last: program \"details-esc-reader\") (last error: validation BAD_RECORD)"
      expect(error.message).toBe(message)
      // a failure is never reported as a completion
      expect(lines.filter((l) => l.level === "WARN")).toEqual([])
      const fatal = lines.filter((l) => l.level === "FATAL")
      expect(fatal.map((l) => l.message)).toEqual([
        banner(
          "Program \"details-esc-reader\" of supervisor \"details-esc\" terminated by a failure",
          `BAD_RECORD (validation, warning): ${error.lastError!.message}`
        ),
        banner(
          message,
          `Last error: BAD_RECORD (validation, warning): ${
            error.lastError!.message
          }. Every program has been stopped; the process should exit to be restarted`
        )
      ])
      expect(fatal[0]!.annotations).toEqual({
        "bulwark.supervisor": "details-esc",
        "bulwark.program": "details-esc-reader",
        "bulwark.category": "validation",
        "bulwark.code": "BAD_RECORD",
        "bulwark.severity": "warning"
      })
      expect(fatal[1]!.annotations).toEqual({
        "bulwark.supervisor": "details-esc",
        "bulwark.program": "details-esc-reader",
        "bulwark.category": "validation",
        "bulwark.code": "BAD_RECORD"
      })
      expect(fatal[1]!.cause).toContain("BadRecord")
      expect(alerts).toEqual([{
        key: "supervisor:details-esc",
        kind: "supervisor_escalation",
        severity: "critical",
        message,
        annotations: {
          supervisor: "details-esc",
          program: "details-esc-reader",
          reason: "intensity",
          category: "validation",
          code: "BAD_RECORD",
          severity: "warning"
        }
      }])
      const down = yield* health.report
      expect(down.components.map((c) => [c.name, c.kind, c.status, c.details])).toEqual([
        ["supervisor:details-esc", "liveness", "down", { escalated: true }],
        ["supervisor:details-esc:programs", "readiness", "up", { backingOff: 0 }]
      ])
      expect(counter("bulwark_supervisor_escalations_total", { supervisor: "details-esc" })).toEqual([
        { count: 1, description: "Supervisor escalations", incremental: true }
      ])
      expect(
        Metric.unsafeSnapshot().filter((p) =>
          p.metricKey.name === "bulwark_supervisor_escalations_total" &&
          p.metricKey.tags.some((t) => t.value === "details-esc")
        ).map((p) => p.metricKey.tags.map((t) => [t.key, t.value]))
      ).toEqual([[["supervisor", "details-esc"], ["reason", "intensity"]]])
      expect(counter("bulwark_supervisor_failures_total", { program: "details-esc-reader" })).toEqual([
        { count: 1, description: "Failures that ended a supervised program's run", incremental: true }
      ])
      expect(
        Metric.unsafeSnapshot().filter((p) =>
          p.metricKey.name === "bulwark_supervisor_failures_total" &&
          p.metricKey.tags.some((t) => t.value === "details-esc-reader")
        ).map((p) => Object.fromEntries(p.metricKey.tags.map((t) => [t.key, t.value])))
      ).toEqual([{
        supervisor: "details-esc",
        program: "details-esc-reader",
        category: "validation",
        code: "BAD_RECORD"
      }])
    }).pipe(Effect.provide(Health.layer())))

  it.scoped("a permanent program that completes: a warning, restarts counted by the restarts metric, then an escalation with no last error", () =>
    Effect.gen(function*() {
      const { layer, lines } = yield* captureLogs
      const alerts: Array<Alerts.Alert> = []
      const supervisor = yield* FiberSupervisor.make({
        name: "details-done",
        intensity: { maxRestarts: 1, within: "1 minute" },
        restartSchedule: Schedule.spaced("1 second")
      }).pipe(Effect.provide(Alerts.layer((alert) => Effect.sync(() => alerts.push(alert)))), Effect.provide(layer))
      const escalation = yield* Effect.fork(Effect.flip(supervisor.awaitEscalation))
      yield* supervisor.spawn("details-done-job", Effect.void).pipe(Effect.provide(layer))
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* settle
      const error = yield* Fiber.join(escalation)
      expect(error.lastError).toBeUndefined()
      expect("lastError" in error).toBe(false)
      const message =
        "Supervisor \"details-done\" escalated: more than 1 restarts within 1m (last: program \"details-done-job\")"
      expect(error.message).toBe(message)
      expect(lines.filter((l) => l.level === "WARN").map((l) => [l.message, l.annotations])).toEqual([
        ["Program \"details-done-job\" completed; restarting it (permanent)", {
          "bulwark.supervisor": "details-done",
          "bulwark.program": "details-done-job"
        }],
        ["Program \"details-done-job\" completed; restarting it (permanent)", {
          "bulwark.supervisor": "details-done",
          "bulwark.program": "details-done-job"
        }]
      ])
      const fatal = lines.filter((l) => l.level === "FATAL")
      expect(fatal.map((l) => [l.message, l.annotations])).toEqual([[
        banner(message, "Every program has been stopped; the process should exit to be restarted"),
        { "bulwark.supervisor": "details-done", "bulwark.program": "details-done-job" }
      ]])
      expect(alerts.map((a) => a.annotations)).toEqual([{
        supervisor: "details-done",
        program: "details-done-job",
        reason: "intensity"
      }])
      expect(counter("bulwark_supervisor_restarts_total", { program: "details-done-job" })).toEqual([
        { count: 1, description: "Outer restarts of supervised programs", incremental: true }
      ])
      expect(
        Metric.unsafeSnapshot().filter((p) =>
          p.metricKey.name === "bulwark_supervisor_restarts_total" &&
          p.metricKey.tags.some((t) => t.value === "details-done-job")
        ).map((p) => p.metricKey.tags.map((t) => [t.key, t.value]))
      ).toEqual([[["supervisor", "details-done"], ["program", "details-done-job"]]])
    }))

  it.effect("an escalation is classified as a critical system error that is never retried", () =>
    Effect.sync(() => {
      const error = new FiberSupervisor.SupervisorEscalation({
        supervisor: "s",
        program: "p",
        reason: "schedule",
        maxRestarts: 3,
        within: "5s",
        cause: Cause.empty
      })
      expect(error.message).toBe("Supervisor \"s\" escalated: the restart schedule of program \"p\" ended")
      expect(Failure.defaultClassifier.classify(error)).toMatchObject({
        category: "system",
        code: "SUPERVISOR_ESCALATION",
        severity: "critical",
        strategy: "abandon",
        retryable: false
      })
      expect(FiberSupervisor.FiberSupervisor.key).toBe("@bulwark/core/FiberSupervisor")
      expect(FiberSupervisor.EscalationListener.key).toBe("@bulwark/core/FiberSupervisor/EscalationListener")
      expect(SchemaAST.getIdentifierAnnotation(FiberSupervisor.Snapshot.ast)).toEqual(Option.some("SupervisorSnapshot"))
      expect(SchemaAST.getIdentifierAnnotation(FiberSupervisor.ChildMetrics.ast)).toEqual(Option.some("ChildMetrics"))
    }))
})

describe("FiberSupervisor: default schedules", () => {
  it.scoped("the default restart schedule: from 100 ms, doubling, capped at 10 seconds", () =>
    Effect.gen(function*() {
      const starts: Array<number> = []
      const supervisor = yield* FiberSupervisor.make({ intensity: { maxRestarts: 100, within: "1 minute" } })
      yield* supervisor.spawn(
        "details-default-restarts",
        Effect.zipRight(
          Effect.flatMap(Effect.clockWith((c) => c.currentTimeMillis), (t) => Effect.sync(() => starts.push(t))),
          Effect.fail("crash")
        )
      ).pipe(Effect.provide(Logger.remove(Logger.defaultLogger)))
      yield* settle
      for (let i = 0; i < 24; i++) {
        yield* TestClock.adjust("1 second")
        yield* settle
      }
      expect(starts).toEqual([0, 100, 300, 700, 1_500, 3_100, 6_300, 12_700, 22_700])
    }))

  it.effect("the default loop schedule: from 5 seconds, doubling, capped at 5 minutes", () =>
    Effect.gen(function*() {
      const times: Array<number> = []
      const fiber = yield* FiberSupervisor.loop(
        Effect.zipRight(
          Effect.flatMap(Effect.clockWith((c) => c.currentTimeMillis), (t) => Effect.sync(() => times.push(t))),
          Effect.fail(new Busy())
        ),
        { classify: table, maxRetries: 7 }
      ).pipe(Effect.flip, Effect.fork)
      yield* TestClock.adjust("20 minutes")
      yield* Fiber.join(fiber)
      expect(times).toEqual([0, 5_000, 15_000, 35_000, 75_000, 155_000, 315_000, 615_000])
    }).pipe(Effect.provide(Logger.remove(Logger.defaultLogger))))
})

describe("FiberSupervisor.loop: logs, metrics and options", () => {
  it.scoped("a recovered failure: its log annotations, the recovered metric, and the program's last error", () =>
    Effect.gen(function*() {
      const { layer, lines } = yield* captureLogs
      const supervisor = yield* FiberSupervisor.make({ name: "details-loop" })
      yield* supervisor.spawn(
        "details-loop-program",
        FiberSupervisor.loop(Effect.fail(new Busy()), {
          classify: table,
          schedule: Schedule.spaced("1 second"),
          maxRetries: 1
        }),
        { restart: "temporary" }
      ).pipe(Effect.provide(layer))
      yield* settle
      const child = (yield* supervisor.snapshot).children[0]!
      expect(child.lastError).toMatchObject({ type: "connection", code: "BUSY", taskId: "details-loop-program" })
      expect(lines.filter((l) => l.message.includes("failed on")).map((l) => [l.message, l.annotations])).toEqual([[
        "Program \"details-loop-program\" failed on attempt 1 (BUSY); retrying in 1s",
        {
          "bulwark.program": "details-loop-program",
          "bulwark.attempt": 1,
          "bulwark.category": "connection",
          "bulwark.code": "BUSY",
          "bulwark.severity": child.lastError!.severity,
          "bulwark.delay": "1s"
        }
      ]])
      expect(counter("bulwark_supervisor_recovered_total", { program: "details-loop-program" })).toEqual([
        { count: 1, description: "Typed failures recovered inside a program's inner loop", incremental: true }
      ])
      expect(
        Metric.unsafeSnapshot().filter((p) =>
          p.metricKey.name === "bulwark_supervisor_recovered_total" &&
          p.metricKey.tags.some((t) => t.value === "details-loop-program")
        ).map((p) => Object.fromEntries(p.metricKey.tags.map((t) => [t.key, t.value])))
      ).toEqual([{ program: "details-loop-program", category: "connection", code: "BUSY" }])
    }))

  it.scoped("why a loop gave up: not retried, or its schedule ended (even on the last attempt of its budget)", () =>
    Effect.gen(function*() {
      const { layer, lines } = yield* captureLogs
      yield* FiberSupervisor.loop(Effect.fail(new BadRecord()), { classify: table, name: "details-reader" }).pipe(
        Effect.flip,
        Effect.provide(layer)
      )
      const fiber = yield* FiberSupervisor.loop(Effect.fail(new Busy()), {
        classify: table,
        name: "details-poller",
        maxRetries: 2,
        schedule: Schedule.intersect(Schedule.spaced("1 second"), Schedule.recurs(1))
      }).pipe(Effect.flip, Effect.provide(layer), Effect.fork)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      const gaveUp = lines.filter((l) => l.message.includes("gave up"))
      expect(gaveUp.map((l) => l.message)).toEqual([
        "Program \"details-reader\" gave up on attempt 1: BAD_RECORD (not retried)",
        "Program \"details-poller\" gave up on attempt 2: BUSY (schedule ended)"
      ])
      expect(gaveUp[0]!.annotations).toEqual({
        "bulwark.program": "details-reader",
        "bulwark.attempt": 1,
        "bulwark.category": "validation",
        "bulwark.code": "BAD_RECORD",
        "bulwark.severity": "warning"
      })
      expect(gaveUp[0]!.cause).toContain("BadRecord")
    }))

  it.effect("an interval pauses after each successful step; an interval of zero is allowed", () =>
    Effect.gen(function*() {
      const times: Array<number> = []
      const step = Effect.flatMap(
        Effect.clockWith((c) => c.currentTimeMillis),
        (t) => Effect.sync(() => times.push(t))
      )
      const fiber = yield* FiberSupervisor.loop(step, { interval: "1 second", while: () => times.length < 3 }).pipe(
        Effect.fork
      )
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(fiber)
      expect(times).toEqual([0, 1_000, 2_000])
      let steps = 0
      yield* FiberSupervisor.loop(Effect.sync(() => ++steps), { interval: 0, while: (n) => n < 3 })
      expect(steps).toBe(3)
    }))

  it.effect("a step that fails and dies at once, or interrupts itself, leaves the loop at once", () =>
    Effect.gen(function*() {
      let attempts = 0
      const both = yield* FiberSupervisor.loop(
        Effect.suspend(() => {
          attempts++
          return Effect.failCause(Cause.parallel(Cause.fail(new Busy()), Cause.die("bug")))
        }),
        { classify: table, schedule: Schedule.spaced("1 second") }
      ).pipe(Effect.exit)
      expect(attempts).toBe(1)
      expect(Exit.isFailure(both) && Cause.isDie(both.cause)).toBe(true)
      const interrupted = yield* Effect.exit(FiberSupervisor.loop(Effect.interrupt))
      expect(Exit.isFailure(interrupted) && Cause.isInterruptedOnly(interrupted.cause)).toBe(true)
    }).pipe(Effect.provide(Logger.remove(Logger.defaultLogger))))
})

describe("supervisor rules: details", () => {
  const config: S.Config = {
    strategy: "one_for_one",
    maxRestarts: 3,
    withinMillis: 5_000,
    escalateOnDefect: true,
    retainFinished: 10
  }
  const program = (state: S.State<S.Program>, name: string): S.Program => {
    const p: S.Program = {
      name,
      seq: S.nextSeq(state),
      restart: "permanent",
      status: "starting",
      loopBackoffs: 0,
      generation: 0,
      pendingRestart: false,
      interrupting: false,
      gaveUp: [],
      restarts: 0,
      errors: 0,
      lastError: undefined,
      lastErrorAt: 0,
      startedAt: 1_000,
      runStartedAt: 1_000,
      position: undefined,
      fiber: {}
    }
    S.admit(state, p)
    S.markRunning(state, p, 1_000)
    return p
  }

  it("a run remembers the last 8 failures its loops gave up on, oldest forgotten first", () => {
    const state = S.make<S.Program>(config)
    const p = program(state, "a")
    const classification = Failure.defaultClassifier.classify("x")
    for (let i = 0; i < 9; i++) S.loopGaveUp(p, p.generation, { error: i, classification })
    expect(p.gaveUp.map((g) => g.error)).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
    // a loop of an earlier run is not heard
    S.loopGaveUp(p, p.generation - 1, { error: 9, classification })
    expect(p.gaveUp.map((g) => g.error)).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
  })

  it("an escalation's victims are the other active programs, latest started first", () => {
    const state = S.make<S.Program>(config)
    const first = program(state, "first")
    const stopped = program(state, "stopped")
    const last = program(state, "last")
    const failing = program(state, "failing")
    S.decide(state, stopped, "interrupted", 2_000)
    expect(stopped.status).toBe("stopped")
    const { victims } = S.escalate(state, failing)
    expect(victims).toEqual([last, first])
  })

  it("shutdown stops the active programs only: one stopped or failed whose runner has not ended yet is left out", () => {
    const state = S.make<S.Program>(config)
    const running = program(state, "running")
    const stopped = program(state, "stopped")
    const failed = program(state, "failed")
    S.decide(state, stopped, "interrupted", 2_000)
    S.setStatus(state, failed, "failed")
    expect(S.shutdown(state)).toEqual([running])
  })

  it("the restart schedule starts afresh only after a run longer than the window", () => {
    const state = S.make<S.Program>(config)
    const p = program(state, "a")
    p.position = "third step"
    // the run lasted exactly the window (5 s from 1 s): the schedule goes on
    expect(S.decide(state, p, "failure", 6_000)).toEqual({ _tag: "step", position: "third step" })
    expect(S.decide(state, p, "failure", 6_001)).toEqual({ _tag: "step", position: undefined })
  })

  it("a finished program whose name was taken again leaves the new program in place", () => {
    const state = S.make<S.Program>(config)
    const old = program(state, "a")
    S.decide(state, old, "interrupted", 2_000)
    const fresh = program(state, "a")
    expect(S.runnerEnded(state, old)).toBeUndefined()
    expect(state.programs.get("a")).toBe(fresh)
    expect(S.rows(state).map((r) => [r.name, r.status])).toEqual([["a", "running"]])
  })

  it("once shutting down or escalated, a run's end stops the program: a failed program stays failed", () => {
    for (const end of ["success", "failure", "defect", "interrupted"] as const) {
      const closing = S.make<S.Program>(config)
      const p = program(closing, "a")
      S.shutdown(closing)
      expect(S.decide(closing, p, end, 2_000)).toEqual({
        _tag: "stop",
        change: { program: "a", from: "running", to: "stopped" }
      })
      const escalated = S.make<S.Program>(config)
      const q = program(escalated, "b")
      const r = program(escalated, "c")
      S.escalate(escalated, r)
      expect(S.decide(escalated, q, end, 2_000)).toMatchObject({ _tag: "stop" })
      expect(q.status).toBe("stopped")
      // the program that escalated is failed already: it stays failed, unless its run succeeded
      S.decide(escalated, r, end, 2_000)
      expect(r.status).toBe(end === "success" ? "stopped" : "failed")
    }
  })

  it("a row shows the last error and its time only once there is one", () => {
    const state = S.make<S.Program>(config)
    const p = program(state, "a")
    expect(S.metricsOf(p)).toEqual({
      name: "a",
      status: "running",
      restartType: "permanent",
      restarts: 0,
      errors: 0,
      startedAt: new Date(1_000)
    })
    const error = Failure.fromClassification(Failure.defaultClassifier.classify("x"), "x", 1_500)
    S.recordError(p, error, 1_500)
    expect(S.metricsOf(p)).toEqual({
      name: "a",
      status: "running",
      restartType: "permanent",
      restarts: 0,
      errors: 1,
      lastError: error,
      lastErrorAt: new Date(1_500),
      startedAt: new Date(1_000)
    })
  })
})

describe("FiberSupervisor: how a run's end is classified", () => {
  it.scoped("the classification of the most recent give-up of the same failure wins; another failure is classified by the context", () =>
    Effect.gen(function*() {
      const supervisor = yield* FiberSupervisor.make({ intensity: { maxRestarts: 100 } })
      const same = new Busy()
      const asValidation = Failure.table<Busy>({ Busy: "validation" })
      const asAuth = Failure.table<Busy>({ Busy: "security" })
      // the same failure given up on twice, then ending the run
      yield* supervisor.spawn(
        "details-twice",
        Effect.gen(function*() {
          yield* Effect.either(FiberSupervisor.loop(Effect.fail(same), { classify: asValidation }))
          yield* Effect.either(FiberSupervisor.loop(Effect.fail(same), { classify: asAuth }))
          return yield* Effect.fail(same)
        }),
        { restart: "temporary" }
      )
      // two failures given up on, then a third one, never seen by a loop, ends the run
      yield* supervisor.spawn(
        "details-other",
        Effect.gen(function*() {
          yield* Effect.either(FiberSupervisor.loop(Effect.fail(new Busy()), { classify: asValidation }))
          yield* Effect.either(FiberSupervisor.loop(Effect.fail(new Busy()), { classify: asAuth }))
          return yield* Effect.fail(new BadRecord())
        }),
        { restart: "temporary" }
      ).pipe(Effect.provide(Failure.layerClassifier({ tables: [table] })))
      // the first of two failures given up on ends the run
      const first = new Busy()
      yield* supervisor.spawn(
        "details-first",
        Effect.gen(function*() {
          yield* Effect.either(FiberSupervisor.loop(Effect.fail(first), { classify: asValidation }))
          yield* Effect.either(FiberSupervisor.loop(Effect.fail(new Busy()), { classify: asAuth }))
          return yield* Effect.fail(first)
        }),
        { restart: "temporary" }
      )
      yield* settle
      const s = yield* supervisor.snapshot
      expect(s.escalated).toBe(false)
      expect(s.children.map((c) => [c.name, c.status, c.lastError?.type, c.lastError?.taskId])).toEqual([
        ["details-twice", "failed", "security", "details-twice"],
        ["details-other", "failed", "validation", "details-other"],
        ["details-first", "failed", "validation", "details-first"]
      ])
    }).pipe(Effect.provide(Logger.remove(Logger.defaultLogger))))

  it.scoped("a classifier that throws gives way to its rule for unclassified failures, attempt by attempt", () =>
    Effect.gen(function*() {
      const { layer, lines } = yield* captureLogs
      const throwing: Failure.Classifier = {
        ...Failure.defaultClassifier,
        classify: () => {
          throw new Error("classifier bug")
        }
      }
      const fiber = yield* FiberSupervisor.loop(Effect.fail(new Busy()), {
        schedule: Schedule.spaced("1 second")
      }).pipe(Effect.provideService(Failure.Classifier, throwing), Effect.provide(layer), Effect.flip, Effect.fork)
      yield* TestClock.adjust("10 seconds")
      expect((yield* Fiber.join(fiber))._tag).toBe("Busy")
      expect(lines.map((l) => [l.level, l.annotations["bulwark.attempt"], l.annotations["bulwark.severity"]]))
        .toEqual([
          ["ERROR", 1, "major"],
          ["ERROR", 2, "major"],
          ["ERROR", 3, "major"],
          ["FATAL", 4, "critical"]
        ])
    }))

  it.scoped("a failure is logged at the level of its severity: minor at WARN, warning at INFO", () =>
    Effect.gen(function*() {
      const { layer, lines } = yield* captureLogs
      for (const severity of ["minor", "warning"] as const) {
        const fiber = yield* FiberSupervisor.loop(Effect.fail(new Busy()), {
          classify: Failure.table<Busy>({ Busy: { category: "connection", severity } }),
          schedule: Schedule.recurs(1)
        }).pipe(Effect.provide(layer), Effect.flip, Effect.fork)
        yield* TestClock.adjust("10 seconds")
        expect((yield* Fiber.join(fiber))._tag).toBe("Busy")
      }
      expect(lines.map((l) => [l.level, l.annotations["bulwark.attempt"], l.annotations["bulwark.severity"]]))
        .toEqual([
          ["WARN", 1, "minor"],
          ["WARN", 2, "minor"],
          ["INFO", 1, "warning"],
          ["INFO", 2, "warning"]
        ])
    }))

  it.scoped("a failure value that cannot be rendered is logged as an error named by its tag, or Error", () =>
    Effect.gen(function*() {
      const { layer, lines } = yield* captureLogs
      const names: Array<string> = []
      const named = Logger.make(({ cause, logLevel }) => {
        if (logLevel.label === "FATAL") { for (const e of Cause.failures(cause)) names.push((e as Error).name) }
      })
      const both = Layer.merge(layer, Logger.add(named))
      const supervisor = yield* FiberSupervisor.make({ intensity: { maxRestarts: 100 } })
      const tagged = Object.defineProperty({ _tag: "Odd" }, "message", {
        enumerable: true,
        get() {
          throw new Error("message getter")
        }
      })
      const bare = Object.defineProperty({}, "message", {
        enumerable: true,
        get() {
          throw new Error("message getter")
        }
      })
      yield* supervisor.spawn("details-odd-tagged", Effect.fail(tagged), { restart: "temporary" }).pipe(
        Effect.provide(both)
      )
      yield* supervisor.spawn("details-odd-bare", Effect.fail(bare), { restart: "temporary" }).pipe(
        Effect.provide(both)
      )
      yield* settle
      const causes = lines.filter((l) => l.level === "FATAL").map((l) => l.cause.split("\n")[0])
      expect(causes[0]).toBe("Odd: Odd")
      expect(names).toEqual(["Odd", "Error"])
    }))
})

class Region extends Context.Tag("details/Region")<Region, string>() {}

describe("FiberSupervisor: spawning, stopping and shutting down", () => {
  it.effect("options that break a rule are a defect with the exact message", () =>
    Effect.gen(function*() {
      const defect = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) =>
        Effect.map(Effect.exit(Effect.scoped(effect)), (exit) =>
          Exit.isFailure(exit) && Cause.isDie(exit.cause)
            ? Option.getOrUndefined(Cause.dieOption(exit.cause)) as { readonly message: string } | undefined
            : undefined)
      expect((yield* defect(FiberSupervisor.make({ intensity: { within: 0 } })))?.message).toBe(
        "FiberSupervisor: intensity.within must be a positive duration, got 0"
      )
      expect((yield* defect(FiberSupervisor.make({ intensity: { maxRestarts: 1.5 } })))?.message).toBe(
        "FiberSupervisor: intensity.maxRestarts must be a whole number >= 0, got 1.5"
      )
      expect(
        (yield* defect(FiberSupervisor.make({ strategy: "one_for_some" as FiberSupervisor.RestartStrategy })))?.message
      ).toBe("FiberSupervisor: strategy must be one of one_for_one, one_for_all, rest_for_one, got \"one_for_some\"")
      const supervisor = yield* FiberSupervisor.make().pipe(Scope.extend(yield* Scope.make()))
      expect(yield* supervisor.snapshot).toEqual({
        supervisor: "supervisor",
        strategy: "one_for_one",
        escalated: false,
        children: []
      })
      expect(
        (yield* defect(supervisor.spawn("x", Effect.never, { restart: "sometimes" as FiberSupervisor.RestartType })))
          ?.message
      ).toBe("FiberSupervisor: restart must be one of permanent, transient, temporary, got \"sometimes\"")
      expect((yield* defect(supervisor.spawn("y", Effect.never, { shutdownTimeout: 0 })))?.message).toBe(
        "FiberSupervisor: shutdownTimeout must be a positive duration, got 0"
      )
      yield* supervisor.shutdown
    }))

  it.scoped("a program can be stopped as soon as it is spawned; a stopped program is not retained with retainFinished 0", () =>
    Effect.gen(function*() {
      const supervisor = yield* FiberSupervisor.make({ retainFinished: 0 })
      yield* supervisor.spawn("details-at-once", Effect.never)
      expect(yield* supervisor.stop("details-at-once")).toBe(true)
      yield* settle
      expect((yield* supervisor.snapshot).children).toEqual([])
    }))

  it.scoped("a program's own restart schedule and shutdown timeout override the supervisor's", () =>
    Effect.gen(function*() {
      const { layer, lines } = yield* captureLogs
      const starts: Array<number> = []
      const supervisor = yield* FiberSupervisor.make({
        name: "details-own",
        restartSchedule: Schedule.spaced("10 seconds"),
        shutdownTimeout: "5 seconds"
      }).pipe(Effect.provide(layer))
      yield* supervisor.spawn(
        "details-own-schedule",
        Effect.gen(function*() {
          starts.push(yield* Effect.clockWith((c) => c.currentTimeMillis))
          return yield* starts.length === 1 ? Effect.fail("x") : Effect.never
        }),
        { restartSchedule: Schedule.spaced("1 second") }
      ).pipe(Effect.provide(Logger.remove(Logger.defaultLogger)))
      const slow = Effect.scoped(Effect.zipRight(Effect.addFinalizer(() => Effect.sleep("3 seconds")), Effect.never))
      yield* supervisor.spawn("details-own-a", slow, { shutdownTimeout: "1 second" })
      yield* supervisor.spawn("details-own-b", slow, { shutdownTimeout: "2 seconds" })
      yield* supervisor.spawn("details-own-c", slow)
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* settle
      expect(starts).toEqual([0, 1_000])
      const shutdown = yield* Effect.fork(supervisor.shutdown.pipe(Effect.provide(layer)))
      for (let i = 0; i < 10; i++) {
        yield* TestClock.adjust("1 second")
        yield* settle
      }
      expect(yield* Fiber.join(shutdown)).toEqual({
        stopped: ["details-own-c", "details-own-b", "details-own-a", "details-own-schedule"],
        overran: ["details-own-b", "details-own-a"]
      })
      expect(
        lines.filter((l) => l.level === "WARN" || l.level === "INFO").map((l) => [l.level, l.message, l.annotations])
      )
        .toEqual([
          ["WARN", "Program \"details-own-b\" did not finish within its shutdown timeout of 2s", {
            "bulwark.supervisor": "details-own",
            "bulwark.program": "details-own-b"
          }],
          ["WARN", "Program \"details-own-a\" did not finish within its shutdown timeout of 1s", {
            "bulwark.supervisor": "details-own",
            "bulwark.program": "details-own-a"
          }],
          [
            "INFO",
            "Supervisor \"details-own\" stopped 4 program(s); overran their shutdown timeout: details-own-b, details-own-a",
            { "bulwark.supervisor": "details-own" }
          ]
        ])
    }))

  it.scoped("a shutdown logs how many programs it stopped, and nothing when there were none", () =>
    Effect.gen(function*() {
      const { layer, lines } = yield* captureLogs
      const empty = yield* FiberSupervisor.make({ name: "details-empty" }).pipe(Effect.provide(layer))
      expect(yield* empty.shutdown.pipe(Effect.provide(layer))).toEqual({ stopped: [], overran: [] })
      const one = yield* FiberSupervisor.make({ name: "details-one" }).pipe(Effect.provide(layer))
      yield* one.spawn("details-one-job", Effect.never)
      yield* settle
      yield* one.shutdown.pipe(Effect.provide(layer))
      expect(lines.map((l) => [l.level, l.message])).toEqual([[
        "INFO",
        "Supervisor \"details-one\" stopped 1 program(s)"
      ]])
    }))

  it.scoped("a program restarted with its group keeps the context it was spawned with, and publishes each step", () =>
    Effect.gen(function*() {
      const supervisor = yield* FiberSupervisor.make({
        strategy: "one_for_all",
        restartSchedule: Schedule.spaced("1 second")
      })
      const collected = yield* supervisor.changes.pipe(
        Stream.filter((c) => c.program === "details-member"),
        Stream.take(5),
        Stream.runCollect,
        Effect.fork
      )
      yield* settle
      const regions: Array<string> = []
      yield* supervisor.spawn(
        "details-member",
        Effect.zipRight(Effect.flatMap(Region, (r) => Effect.sync(() => regions.push(r))), Effect.never)
      ).pipe(Effect.provideService(Region, "eu"))
      let runs = 0
      yield* supervisor.spawn(
        "details-crasher",
        Effect.suspend(() => ++runs === 1 ? Effect.fail("x") : Effect.never)
      ).pipe(Effect.provide(Logger.remove(Logger.defaultLogger)))
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* settle
      expect(regions).toEqual(["eu", "eu"])
      const changes = Chunk.toReadonlyArray(yield* Fiber.join(collected))
      expect(changes.map((c) => `${c.from}->${c.to}@${c.at}`)).toEqual([
        "stopped->starting@0",
        "starting->running@0",
        "running->stopped@0",
        "stopped->backing-off@0",
        "backing-off->running@1000"
      ])
    }))

  it.scoped("a restart schedule that dies: a fatal banner naming the program and where the defect came from", () =>
    Effect.gen(function*() {
      const { layer, lines } = yield* captureLogs
      const supervisor = yield* FiberSupervisor.make({
        name: "details-died",
        restartSchedule: Schedule.spaced("1 second").pipe(Schedule.mapEffect(() => Effect.dieMessage("schedule bug")))
      })
      const escalation = yield* Effect.fork(Effect.flip(supervisor.awaitEscalation))
      yield* supervisor.spawn("details-died-job", Effect.fail("x")).pipe(Effect.provide(layer))
      yield* settle
      expect(yield* Fiber.join(escalation)).toMatchObject({ reason: "defect", program: "details-died-job" })
      const died = lines.filter((l) => l.message.includes("Supervision of program"))
      expect(died.map((l) => [l.level, l.message, l.annotations])).toEqual([[
        "FATAL",
        banner(
          "Supervision of program \"details-died-job\" of supervisor \"details-died\" died",
          "A defect outside the program itself (its restart schedule or the classifier)"
        ),
        { "bulwark.supervisor": "details-died", "bulwark.program": "details-died-job" }
      ]])
      expect(died[0]!.cause).toContain("schedule bug")
    }))
})

describe("FiberSupervisor: what is left after the end", () => {
  it.scoped("with retainFinished 0, nothing is left after an escalation or a shutdown, and nothing spawned later runs", () =>
    Effect.gen(function*() {
      const escalating = yield* FiberSupervisor.make({ retainFinished: 0, intensity: { maxRestarts: 0 } })
      const escalation = yield* Effect.fork(Effect.flip(escalating.awaitEscalation))
      yield* escalating.spawn("details-bystander", Effect.never)
      yield* escalating.spawn("details-failing", Effect.fail("x"))
      yield* settle
      yield* Fiber.join(escalation)
      expect((yield* escalating.snapshot).children).toEqual([])
      const closing = yield* FiberSupervisor.make({ retainFinished: 0 })
      yield* closing.spawn("details-resident", Effect.never)
      yield* settle
      expect(yield* closing.shutdown).toEqual({ stopped: ["details-resident"], overran: [] })
      expect((yield* closing.snapshot).children).toEqual([])
      let ran = false
      yield* closing.spawn("details-late", Effect.sync(() => ran = true))
      yield* settle
      expect(ran).toBe(false)
      expect((yield* closing.snapshot).children).toEqual([])
    }).pipe(Effect.provide(Logger.remove(Logger.defaultLogger))))

  it.scoped("a program that stops itself is not reported as overrunning its shutdown timeout", () =>
    Effect.gen(function*() {
      const { layer, lines } = yield* captureLogs
      const supervisor = yield* FiberSupervisor.make()
      yield* supervisor.spawn("details-self", Effect.zipRight(supervisor.stop("details-self"), Effect.never)).pipe(
        Effect.provide(layer)
      )
      // stopping itself from an uninterruptible region: the stop completes before the interruption lands
      let stopped: boolean | undefined
      yield* supervisor.spawn(
        "details-self-masked",
        Effect.zipRight(
          Effect.uninterruptible(Effect.map(supervisor.stop("details-self-masked"), (b) => stopped = b)),
          Effect.never
        )
      ).pipe(Effect.provide(layer))
      yield* settle
      expect(stopped).toBe(true)
      expect((yield* supervisor.snapshot).children.map((c) => [c.name, c.status])).toEqual([
        ["details-self", "stopped"],
        ["details-self-masked", "stopped"]
      ])
      expect(lines).toEqual([])
    }))
})

describe("FiberSupervisor.loop: a maxRetries of its own", () => {
  // retryable on the first attempt only; afterwards not retried, with the given strategy
  const byAttempt = (later: Failure.Strategy): Failure.Classifier => ({
    ...Failure.defaultClassifier,
    classify: (_error, context) =>
      Failure.fromRule(
        context?.attempt === 1 ? { category: "connection" } : { category: "connection", strategy: later }
      )
  })
  const attempts = (classifier: Failure.Classifier) =>
    Effect.gen(function*() {
      let n = 0
      const fiber = yield* FiberSupervisor.loop(Effect.suspend(() => (n++, Effect.fail("x"))), {
        maxRetries: 3,
        schedule: Schedule.spaced("1 second")
      }).pipe(Effect.provideService(Failure.Classifier, classifier), Effect.flip, Effect.fork)
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(fiber)
      return n
    })

  it.effect("overrides an abandon that escalation chose: decided as on the first attempt", () =>
    Effect.gen(function*() {
      expect(yield* attempts(byAttempt("abandon"))).toBe(4)
    }).pipe(Effect.provide(Logger.remove(Logger.defaultLogger))))

  it.effect("does not override a classification that is not retried for another reason", () =>
    Effect.gen(function*() {
      expect(yield* attempts(byAttempt("circuit_break"))).toBe(2)
    }).pipe(Effect.provide(Logger.remove(Logger.defaultLogger))))
})

describe("FiberSupervisor: group restarts and defects", () => {
  it.scoped("a sibling that overran its shutdown timeout in a group restart: the end of its old run leaves the new one be", () =>
    Effect.gen(function*() {
      const supervisor = yield* FiberSupervisor.make({
        strategy: "one_for_all",
        shutdownTimeout: "1 second",
        restartSchedule: Schedule.spaced("10 seconds")
      })
      yield* supervisor.spawn(
        "details-slow",
        Effect.scoped(Effect.zipRight(Effect.addFinalizer(() => Effect.sleep("3 seconds")), Effect.never))
      )
      let runs = 0
      yield* supervisor.spawn(
        "details-crash-once",
        Effect.suspend(() => ++runs === 1 ? Effect.zipRight(Effect.sleep("1 second"), Effect.fail("x")) : Effect.never)
      )
      yield* settle
      for (let i = 0; i < 5; i++) {
        yield* TestClock.adjust("1 second")
        yield* settle
      }
      const status = Effect.map(supervisor.snapshot, (s) => s.children.map((c) => [c.name, c.status, c.restarts]))
      expect(yield* status).toEqual([["details-slow", "backing-off", 0], ["details-crash-once", "backing-off", 0]])
      yield* TestClock.adjust("10 seconds")
      yield* settle
      expect(yield* status).toEqual([["details-slow", "running", 1], ["details-crash-once", "running", 1]])
      const shutdown = yield* Effect.fork(supervisor.shutdown)
      yield* TestClock.adjust("1 second")
      expect((yield* Fiber.join(shutdown)).overran).toEqual(["details-slow"])
    }).pipe(Effect.provide(Logger.remove(Logger.defaultLogger))))

  it.scoped("a defect escalates with a message naming the program, and the banner shows the defect as the last error", () =>
    Effect.gen(function*() {
      const { layer, lines } = yield* captureLogs
      const supervisor = yield* FiberSupervisor.make({ name: "details-defect" }).pipe(Effect.provide(layer))
      const escalation = yield* Effect.fork(Effect.flip(supervisor.awaitEscalation))
      yield* supervisor.spawn("details-buggy", Effect.die("bug")).pipe(Effect.provide(layer))
      yield* settle
      const error = yield* Fiber.join(escalation)
      expect(error.message).toBe(
        "Supervisor \"details-defect\" escalated: program \"details-buggy\" died with a defect"
      )
      expect(error.lastError).toMatchObject({ type: "system", code: "DEFECT", severity: "critical" })
      expect(lines.filter((l) => l.level === "FATAL").map((l) => l.message)).toEqual([
        banner(
          "Program \"details-buggy\" of supervisor \"details-defect\" terminated by a defect",
          `DEFECT (system, critical): ${error.lastError!.message}`
        ),
        banner(
          error.message,
          `Last error: DEFECT (system, critical): ${
            error.lastError!.message
          }. Every program has been stopped; the process should exit to be restarted`
        )
      ])
      const snapshot = yield* FiberSupervisor.snapshot.pipe(
        Effect.provideService(FiberSupervisor.FiberSupervisor, supervisor)
      )
      expect(snapshot.children.map((c) => [c.name, c.status])).toEqual([["details-buggy", "failed"]])
    }))
})

describe("FiberSupervisor.supervised", () => {
  it.effect("works with a supervisor service made by hand", () =>
    Effect.gen(function*() {
      const escalation = new FiberSupervisor.SupervisorEscalation({
        supervisor: "by-hand",
        program: "p",
        reason: "defect",
        maxRestarts: 3,
        within: "5s",
        cause: Cause.die("bug")
      })
      const service: FiberSupervisor.Service = {
        name: "by-hand",
        spawn: () => Effect.void,
        stop: () => Effect.succeed(false),
        snapshot: Effect.succeed({ supervisor: "by-hand", strategy: "one_for_one", escalated: true, children: [] }),
        changes: Stream.empty,
        awaitEscalation: Effect.zipRight(Effect.sleep("1 second"), Effect.fail(escalation)),
        shutdown: Effect.succeed({ stopped: [], overran: [] })
      }
      const fiber = yield* FiberSupervisor.supervised(Effect.never).pipe(
        Effect.provideService(FiberSupervisor.FiberSupervisor, service),
        Effect.flip,
        Effect.fork
      )
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBe(escalation)
      const done = yield* FiberSupervisor.supervised(Effect.succeed("done")).pipe(
        Effect.provideService(FiberSupervisor.FiberSupervisor, service)
      )
      expect(done).toBe("done")
    }))
})

describe("FiberSupervisor: spawning from a program", () => {
  it.scoped("a program spawned by a program restarted with its group starts at once, without the group's delay", () =>
    Effect.gen(function*() {
      const supervisor = yield* FiberSupervisor.make({
        strategy: "one_for_all",
        restartSchedule: Schedule.spaced("5 seconds")
      })
      let spawns = 0
      yield* supervisor.spawn(
        "details-spawner",
        Effect.zipRight(
          Effect.suspend(() => supervisor.spawn(`details-spawned-${++spawns}`, Effect.never)),
          Effect.never
        )
      )
      let runs = 0
      yield* supervisor.spawn(
        "details-fails-once",
        Effect.suspend(() => ++runs === 1 ? Effect.zipRight(Effect.sleep("1 second"), Effect.fail("x")) : Effect.never)
      )
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* settle
      yield* TestClock.adjust("5 seconds")
      yield* settle
      const s = yield* supervisor.snapshot
      expect(s.children.map((c) => [c.name, c.status])).toEqual([
        ["details-spawner", "running"],
        ["details-fails-once", "running"],
        ["details-spawned-1", "running"],
        ["details-spawned-2", "running"]
      ])
    }).pipe(Effect.provide(Logger.remove(Logger.defaultLogger))))
})
