import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import * as S from "../src/internal/supervisorState.js"

// The supervisor's rules driven directly, without fibers or clocks: random sequences of spawns,
// run ends, restarts, stops, loop backoffs and shutdowns, checked step by step against a
// reference model written independently of the rules.

const program = (name: string, seq: number, restart: S.RestartType, now: number): S.Program => ({
  name,
  seq,
  restart,
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
  startedAt: now,
  runStartedAt: now,
  position: undefined,
  fiber: undefined
})

const config = (overrides: Partial<S.Config> = {}): S.Config => ({
  strategy: "one_for_one",
  maxRestarts: 3,
  withinMillis: 5_000,
  escalateOnDefect: true,
  retainFinished: 100,
  ...overrides
})

/** Spawns and starts a program as the shell does: admitted, forked, then its first run begins. */
const started = (state: S.State<S.Program>, name: string, restart: S.RestartType, now: number): S.Program => {
  const p = program(name, S.nextSeq(state), restart, now)
  S.admit(state, p)
  p.fiber = {}
  S.markRunning(state, p, now)
  return p
}

/** A restart schedule as data: `Schedule.recurs(limit)` spaced by 100 ms; the position counts steps. */
const stepRecurs = (limit: number) => (position: unknown): readonly [number, number] | undefined => {
  const steps = position === undefined ? 0 : position as number
  return steps < limit ? [steps + 1, 100] : undefined
}

/** Ends the current run of `p` and carries the decision through, as the shell does. */
const endRun = (
  state: S.State<S.Program>,
  p: S.Program,
  end: S.End,
  now: number,
  step: (position: unknown) => readonly [number, number] | undefined = stepRecurs(Infinity)
): string => {
  const decision = S.decide(state, p, end, now)
  if (decision._tag === "stop") return "stop"
  if (decision._tag === "escalate") return `escalate:${decision.reason}`
  const restart = S.restart(state, p, step(decision.position), now)
  return restart._tag === "escalate" ? `escalate:${restart.reason}` : "restart"
}

describe("supervisor rules", () => {
  it("intensity: maxRestarts within the window are allowed, the next escalates; the boundary is inclusive", () => {
    const state = S.make<S.Program>(config({ maxRestarts: 2, withinMillis: 1_000 }))
    const p = started(state, "a", "permanent", 0)
    expect(endRun(state, p, "failure", 0)).toBe("restart")
    S.markRunning(state, p, 0)
    expect(endRun(state, p, "failure", 500)).toBe("restart")
    S.markRunning(state, p, 500)
    // the first restart was exactly 1,000 ms ago: it still counts
    expect(endRun(state, p, "failure", 1_000)).toBe("escalate:intensity")
  })

  it("intensity: a restart older than the window no longer counts", () => {
    const state = S.make<S.Program>(config({ maxRestarts: 1, withinMillis: 1_000 }))
    const p = started(state, "a", "permanent", 0)
    expect(endRun(state, p, "failure", 0)).toBe("restart")
    S.markRunning(state, p, 0)
    expect(endRun(state, p, "failure", 1_001)).toBe("restart")
    expect(p.restarts).toBe(1)
  })

  it("the restart schedule's position is kept between restarts and starts afresh after a run longer than the window", () => {
    const state = S.make<S.Program>(config({ maxRestarts: 100, withinMillis: 1_000 }))
    const p = started(state, "a", "permanent", 0)
    const positions: Array<unknown> = []
    const step = (position: unknown) => {
      positions.push(position)
      return stepRecurs(Infinity)(position)
    }
    endRun(state, p, "failure", 10, step)
    S.markRunning(state, p, 10)
    endRun(state, p, "failure", 20, step)
    S.markRunning(state, p, 20)
    // this run lasted 2 s, longer than the window
    endRun(state, p, "failure", 2_020, step)
    expect(positions).toEqual([undefined, 1, undefined])
  })

  it("an ended restart schedule escalates with the reason schedule", () => {
    const state = S.make<S.Program>(config({ maxRestarts: 100 }))
    const p = started(state, "a", "transient", 0)
    expect(endRun(state, p, "failure", 0, stepRecurs(1))).toBe("restart")
    S.markRunning(state, p, 0)
    expect(endRun(state, p, "failure", 0, stepRecurs(1))).toBe("escalate:schedule")
  })

  it("restart types and defects: what stops, what restarts, what escalates", () => {
    const state = S.make<S.Program>(config({ maxRestarts: 100 }))
    expect(endRun(state, started(state, "t1", "transient", 0), "success", 0)).toBe("stop")
    expect(endRun(state, started(state, "t2", "transient", 0), "failure", 0)).toBe("restart")
    expect(endRun(state, started(state, "x1", "temporary", 0), "failure", 0)).toBe("stop")
    expect(endRun(state, started(state, "p1", "permanent", 0), "success", 0)).toBe("restart")
    expect(endRun(state, started(state, "p2", "permanent", 0), "interrupted", 0)).toBe("stop")
    expect(endRun(state, started(state, "p3", "temporary", 0), "defect", 0)).toBe("escalate:defect")
    const lenient = S.make<S.Program>(config({ escalateOnDefect: false }))
    expect(endRun(lenient, started(lenient, "p", "permanent", 0), "defect", 0)).toBe("restart")
    const x = started(lenient, "x", "temporary", 0)
    expect(endRun(lenient, x, "defect", 0)).toBe("stop")
    expect(x.status).toBe("failed")
  })

  it("a group restart names its siblings in start order; escalation and shutdown stop in reverse start order", () => {
    const all = S.make<S.Program>(config({ strategy: "one_for_all" }))
    const [a, b, c] = ["a", "b", "c"].map((n) => started(all, n, "permanent", 0))
    const restart = S.restart(all, b!, [1, 0], 0)
    expect(restart._tag === "restart" && restart.group.map((p) => p.name)).toEqual(["a", "c"])
    const rest = S.make<S.Program>(config({ strategy: "rest_for_one" }))
    const [, y] = ["x", "y", "z", "w"].map((n) => started(rest, n, "permanent", 0))
    const tail = S.restart(rest, y!, [1, 0], 0)
    expect(tail._tag === "restart" && tail.group.map((p) => p.name)).toEqual(["z", "w"])
    expect(S.escalate(rest, y!).victims.map((p) => p.name)).toEqual(["w", "z", "x"])
    expect(S.shutdown(all).map((p) => p.name)).toEqual(["c", "b", "a"])
    expect([a, b, c].map((p) => p!.status)).toEqual(["running", "backing-off", "running"])
  })

  it("retainFinished keeps the most recently finished programs, the oldest forgotten first", () => {
    const state = S.make<S.Program>(config({ retainFinished: 2 }))
    for (const name of ["a", "b", "c"]) {
      const p = started(state, name, "temporary", 0)
      endRun(state, p, "success", 0)
      S.runnerEnded(state, p)
    }
    expect([...state.finished.keys()]).toEqual(["b", "c"])
    expect(S.rows(state).map((m) => [m.name, m.status])).toEqual([["b", "stopped"], ["c", "stopped"]])
  })
})

// -----------------------------------------------------------------------------
// model
// -----------------------------------------------------------------------------

type Command =
  | { readonly _tag: "spawn"; readonly k: number; readonly restart: S.RestartType }
  | { readonly _tag: "resume"; readonly k: number }
  | { readonly _tag: "end"; readonly k: number; readonly end: S.End }
  | { readonly _tag: "loop"; readonly k: number; readonly delta: 1 | -1 | "stale" }
  | { readonly _tag: "stop"; readonly k: number }
  /** Time moves by a part of the intensity window, plus a millisecond or not. */
  | { readonly _tag: "advance"; readonly window: number; readonly plus: number }
  | { readonly _tag: "shutdown" }

const k = fc.nat({ max: 2 })
// time moves in parts of the window, so that restarts and runs often sit exactly on its edge
const command: fc.Arbitrary<Command> = fc.oneof(
  {
    arbitrary: fc.record({
      _tag: fc.constant("spawn" as const),
      k,
      restart: fc.constantFrom<S.RestartType>(
        "permanent",
        "permanent",
        "permanent",
        "transient",
        "transient",
        "temporary"
      )
    }),
    weight: 12
  },
  { arbitrary: fc.record({ _tag: fc.constant("resume" as const), k }), weight: 30 },
  {
    arbitrary: fc.record({
      _tag: fc.constant("end" as const),
      k,
      end: fc.constantFrom<S.End>(
        "failure",
        "failure",
        "failure",
        "failure",
        "success",
        "success",
        "defect",
        "interrupted"
      )
    }),
    weight: 36
  },
  {
    arbitrary: fc.record({
      _tag: fc.constant("loop" as const),
      k,
      delta: fc.constantFrom<1 | -1 | "stale">(1, -1, "stale")
    }),
    weight: 6
  },
  { arbitrary: fc.record({ _tag: fc.constant("stop" as const), k }), weight: 3 },
  // a shutdown is rare: it ends the story (every run ends with one, see simulate)
  {
    arbitrary: fc.record({
      _tag: fc.constant("advance" as const),
      window: fc.constantFrom(0, 0.25, 0.5, 1),
      plus: fc.constantFrom(0, 0, 1)
    }),
    weight: 24
  },
  { arbitrary: fc.constant({ _tag: "shutdown" as const }), weight: 1 }
)

const settings = fc.record({
  strategy: fc.constantFrom<S.Strategy>("one_for_one", "one_for_all", "rest_for_one"),
  maxRestarts: fc.nat({ max: 4 }),
  withinMillis: fc.constantFrom(100, 1_000, 2_000),
  escalateOnDefect: fc.boolean(),
  retainFinished: fc.nat({ max: 3 })
})

/** What the reference model knows of a live program. */
interface Live {
  readonly seq: number
  readonly restart: S.RestartType
  phase: "starting" | "running" | "waiting"
  loops: number
  steps: number
  runStartedAt: number
  restarts: number
}

const simulate = (cfg: S.Config, scheduleLimit: number, commands: ReadonlyArray<Command>) => {
  const state = S.make<S.Program>(cfg)
  const step = stepRecurs(scheduleLimit)
  let now = 0
  const live = new Map<string, Live>()
  /** Finished programs, oldest first, with the status each finished in. */
  const finished: Array<readonly [string, S.Status]> = []
  const granted: Array<number> = []
  let escalated = false
  let closing = false
  let seq = 0

  const finish = (name: string, status: S.Status) => {
    live.delete(name)
    const i = finished.findIndex(([n]) => n === name)
    if (i >= 0) finished.splice(i, 1)
    finished.push([name, status])
    if (finished.length > cfg.retainFinished) finished.shift()
  }
  const record = (name: string) => state.programs.get(name)!
  const bySeq = (a: string, b: string) => live.get(a)!.seq - live.get(b)!.seq

  /** The reference rule for the end of a run: stop, restart or escalate. */
  const expected = (name: string, end: S.End): string => {
    const p = live.get(name)!
    if (escalated || closing || end === "interrupted") return "stop"
    if (end === "success" && p.restart !== "permanent") return "stop"
    if (end === "defect" && cfg.escalateOnDefect) return "escalate:defect"
    if (end !== "success" && p.restart === "temporary") return "stop"
    const recent = granted.filter((t) => t >= now - cfg.withinMillis).length
    if (recent >= cfg.maxRestarts) return "escalate:intensity"
    const steps = now - p.runStartedAt > cfg.withinMillis ? 0 : p.steps
    return steps >= scheduleLimit ? "escalate:schedule" : "restart"
  }

  const check = () => {
    expect(state.finished.size).toBeLessThanOrEqual(cfg.retainFinished)
    expect([...state.finished].map(([name, row]) => [name, row.metrics.status])).toEqual(finished)
    // every live program shows the status and restart count the model expects
    const actual: Array<readonly [string, S.Status, number]> = []
    const wanted: Array<readonly [string, S.Status, number]> = []
    let backingOff = 0
    for (const [name, m] of live) {
      const p = state.programs.get(name)
      const shown = m.phase === "starting"
        ? "starting"
        : m.phase === "waiting" || m.loops > 0
        ? "backing-off"
        : "running"
      wanted.push([name, shown, m.restarts])
      if (p !== undefined) actual.push([name, S.statusOf(p), p.restarts])
      if (shown === "backing-off") backingOff++
    }
    expect(actual).toEqual(wanted)
    expect(state.programs.size).toBe(live.size)
    expect(state.backingOff).toBe(backingOff)
    expect(state.escalated).toBe(escalated)
    expect(S.rows(state).map((r) => r.name).sort()).toEqual([...live.keys(), ...finished.map(([n]) => n)].sort())
  }

  for (const c of commands) {
    const name = "k" in c ? `p${c.k}` : ""
    const m = live.get(name)
    switch (c._tag) {
      case "advance": {
        now += c.window * cfg.withinMillis + c.plus
        break
      }
      case "spawn": {
        expect(S.canSpawn(state, name)).toBe(m === undefined)
        if (m !== undefined) break
        const p = program(name, S.nextSeq(state), c.restart, now)
        const change = S.admit(state, p)
        if (escalated || closing) {
          expect(change).toBeUndefined()
          seq++
          finish(name, "stopped")
          break
        }
        expect(change).toEqual({ program: name, from: "stopped", to: "starting" })
        // the new program replaces the finished one of its name
        const old = finished.findIndex(([n]) => n === name)
        if (old >= 0) finished.splice(old, 1)
        p.fiber = {}
        live.set(name, {
          seq: seq++,
          restart: c.restart,
          phase: "starting",
          loops: 0,
          steps: 0,
          runStartedAt: now,
          restarts: 0
        })
        break
      }
      case "resume": {
        if (m === undefined || m.phase === "running") break
        const { restarted } = S.markRunning(state, record(name), now)
        expect(restarted).toBe(m.phase === "waiting")
        if (restarted) m.restarts++
        m.phase = "running"
        m.loops = 0
        m.runStartedAt = now
        break
      }
      case "loop": {
        if (m === undefined || m.phase !== "running") break
        const p = record(name)
        if (c.delta === "stale") {
          // a loop of an earlier run changes nothing
          expect(S.loopBackoff(state, p, p.generation - 1, 1)).toBeUndefined()
          break
        }
        if (c.delta === -1 && m.loops === 0) break
        const change = S.loopBackoff(state, p, p.generation, c.delta)
        const before = m.loops
        m.loops += c.delta
        expect(change !== undefined).toBe((before === 0) !== (m.loops === 0))
        break
      }
      case "stop": {
        if (m === undefined) break
        S.stopForGood(state, record(name))
        finish(name, "stopped")
        break
      }
      case "shutdown": {
        const victims = S.shutdown(state).map((p) => p.name)
        expect(victims).toEqual([...live.keys()].sort(bySeq).reverse())
        closing = true
        for (const v of victims) {
          S.stopForGood(state, record(v))
          finish(v, "stopped")
        }
        break
      }
      case "end": {
        if (m === undefined || m.phase !== "running") break
        const p = record(name)
        const want = expected(name, c.end)
        const decision = S.decide(state, p, c.end, now)
        if (decision._tag === "stop") {
          expect("stop").toBe(want)
          S.runnerEnded(state, p)
          const failed = !escalated && !closing && c.end !== "success" && c.end !== "interrupted"
          finish(name, failed ? "failed" : "stopped")
          break
        }
        const restart = decision._tag === "step" ? S.restart(state, p, step(decision.position), now) : decision
        if (restart._tag === "escalate") {
          expect(`escalate:${restart.reason}`).toBe(want)
          const { victims } = S.escalate(state, p)
          const others = [...live.keys()].filter((n) => n !== name).sort(bySeq).reverse()
          expect(victims.map((v) => v.name)).toEqual(others)
          escalated = true
          for (const v of victims) {
            S.stopForGood(state, v)
            finish(v.name, "stopped")
          }
          S.runnerEnded(state, p)
          finish(name, "failed")
          break
        }
        expect("restart").toBe(want)
        granted.push(now)
        // at most maxRestarts restarts within any window ending at a restart
        expect(granted.filter((t) => now - t <= cfg.withinMillis).length).toBeLessThanOrEqual(cfg.maxRestarts)
        if (now - m.runStartedAt > cfg.withinMillis) m.steps = 0
        m.steps++
        m.phase = "waiting"
        m.loops = 0
        const group = [...live.keys()].filter((n) =>
          n !== name &&
          (cfg.strategy === "one_for_all" || (cfg.strategy === "rest_for_one" && live.get(n)!.seq > m.seq))
        ).sort(bySeq)
        expect(restart.group.map((g) => g.name)).toEqual(group)
        // the shell interrupts the group in reverse start order, then restarts it in start order
        for (const g of [...restart.group].reverse()) S.markStopped(state, g)
        for (const g of restart.group) {
          const requeued = S.requeue(state, g)
          const gm = live.get(g.name)!
          expect(requeued === undefined).toBe(gm.restart === "temporary")
          if (requeued === undefined) {
            finish(g.name, "stopped")
          } else {
            gm.phase = "waiting"
            gm.loops = 0
          }
        }
        break
      }
    }
    check()
  }
  // whatever happened, a shutdown stops what is left in reverse start order
  const rest = [...live.keys()].sort(bySeq).reverse()
  expect(S.shutdown(state).map((p) => p.name)).toEqual(rest)
  return { granted, escalated }
}

describe("supervisor rules against a reference model", () => {
  it.prop(
    "random spawns, run ends, restarts, stops and shutdowns: decisions, intensity, order and retained programs agree",
    [
      settings,
      fc.oneof(fc.constant(Infinity), fc.nat({ max: 6 })),
      fc.array(command, { minLength: 20, maxLength: 60, size: "max" })
    ],
    ([cfg, scheduleLimit, commands]) => {
      simulate(cfg, scheduleLimit, commands)
    },
    { fastCheck: { numRuns: 200 } }
  )

  it("the model sees escalations and restarts (the generator reaches both)", () => {
    const runs = fc.sample(
      fc.tuple(
        settings,
        fc.oneof(fc.constant(Infinity), fc.nat({ max: 6 })),
        fc.array(command, { minLength: 20, maxLength: 60, size: "max" })
      ),
      { numRuns: 100, seed: 42 }
    ).map(([cfg, limit, commands]) => simulate(cfg, limit, commands))
    expect(runs.some((r) => r.escalated)).toBe(true)
    expect(runs.some((r) => r.granted.length >= 2)).toBe(true)
  })
})
