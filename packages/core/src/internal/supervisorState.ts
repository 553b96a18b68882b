/**
 * The rules of `FiberSupervisor` as plain functions over a mutable record: no `Effect`, no clock,
 * no fibers, so a model test can drive them directly and a reader finds every decision here.
 *
 * - **Status**: a program is `starting`, `running`, `backing-off`, `stopped` or `failed`; it shows
 *   `backing-off` on top of `running` while any of its inner loops waits before a retry.
 * - **What follows a run**: {@link decide} reads how the run ended (success, interruption, a
 *   failure, a defect), the restart type, whether a defect escalates and the restart intensity
 *   (at most `maxRestarts` restarts within `withinMillis`, over all programs, boundaries
 *   inclusive). A restart needs the next step of the program's restart schedule: the position is
 *   data held here, stepped by the shell, and handed back to {@link restart}; a schedule that
 *   ended escalates.
 * - **Strategy**: {@link restart} names the siblings that go down with the program
 *   (`one_for_all`: every other active program; `rest_for_one`: those started after it).
 * - **Order**: programs are interrupted in reverse start order (escalation, group restart,
 *   shutdown) and restarted in start order.
 * - **Finished programs**: a program that will not run again leaves the map; its last metrics
 *   stay among the `retainFinished` most recently finished ones.
 *
 * Every function that changes the status a program shows returns that {@link Change}, for the
 * shell to publish; `undefined` when the shown status did not change.
 *
 * @internal
 */
import type * as Failure from "../Failure.js"

/** The status of a program. */
export type Status = "starting" | "running" | "backing-off" | "stopped" | "failed"

/** When a program is restarted (OTP's restart types). */
export type RestartType = "permanent" | "transient" | "temporary"

/** Which programs restart together (OTP's strategies). */
export type Strategy = "one_for_one" | "one_for_all" | "rest_for_one"

/** Why a supervisor escalates. */
export type EscalationReason = "defect" | "intensity" | "schedule"

/** How a run ended. */
export type End = "success" | "interrupted" | "failure" | "defect"

/** The supervisor's settings, checked by the shell. */
export interface Config {
  readonly strategy: Strategy
  /** Restarts allowed within the window, over all programs. */
  readonly maxRestarts: number
  /** The intensity window, in milliseconds (> 0). */
  readonly withinMillis: number
  readonly escalateOnDefect: boolean
  /** How many finished programs stay readable. */
  readonly retainFinished: number
}

/** A failure a program's inner loop gave up on, with the classification the loop made. */
export interface GaveUp {
  readonly error: unknown
  readonly classification: Failure.Classification
}

/** How many give-ups of loops a run remembers (a program running several loops at once). */
export const gaveUpCapacity = 8

/**
 * A program's record. The shell extends it with what only it touches (the program's effect, its
 * context, its fiber), so that one object per program holds everything.
 */
export interface Program {
  readonly name: string
  /** Start order: programs spawned later have a greater `seq`. */
  readonly seq: number
  readonly restart: RestartType
  /** The program's own status; its loops backing off show on top of `running` (see {@link statusOf}). */
  status: Status
  /** How many inner loops of the current run are waiting before a retry. */
  loopBackoffs: number
  /** Counts runs, so that a loop outliving its run cannot touch the next run's state. */
  generation: number
  /** A restart has been decided and is counted once the new run starts. */
  pendingRestart: boolean
  /** The supervisor is interrupting the runner: it decides what follows, not the runner. */
  interrupting: boolean
  /** Failures the loops of the current run gave up on (most recent last, a few at most). */
  readonly gaveUp: Array<GaveUp>
  restarts: number
  errors: number
  lastError: Failure.ExecutionError | undefined
  lastErrorAt: number
  startedAt: number
  runStartedAt: number
  /** The restart schedule's position; `undefined` to start it afresh. */
  position: unknown
  /** The runner, once forked (the shell's fiber; only its presence matters here). */
  fiber: object | undefined
}

/** The last state of a finished program, as the snapshot shows it. */
export interface Metrics {
  readonly name: string
  readonly status: Status
  readonly restartType: RestartType
  readonly restarts: number
  readonly errors: number
  readonly lastError?: Failure.ExecutionError
  readonly lastErrorAt?: Date
  readonly startedAt: Date
}

/** A change of the status a program shows. */
export interface Change {
  readonly program: string
  readonly from: Status
  readonly to: Status
}

/** The supervisor's state. */
export interface State<P extends Program> {
  readonly config: Config
  /** Programs running, waiting to restart, or ended but whose runner has not finished yet. */
  readonly programs: Map<string, P>
  /** The last state of programs that finished, oldest first, at most `retainFinished`. */
  readonly finished: Map<string, { readonly seq: number; readonly metrics: Metrics }>
  /** When the restarts within the intensity window were decided, oldest first. */
  readonly restartTimes: Array<number>
  seq: number
  /** Shutting down: nothing restarts, nothing new starts. */
  closing: boolean
  escalated: boolean
  /** How many programs show `backing-off` (readiness). */
  backingOff: number
}

/** A supervisor with no programs. */
export const make = <P extends Program>(config: Config): State<P> => ({
  config,
  programs: new Map(),
  finished: new Map(),
  restartTimes: [],
  seq: 0,
  closing: false,
  escalated: false,
  backingOff: 0
})

/** The status a program shows: `backing-off` while it runs and any of its loops waits. */
export const statusOf = (program: Program): Status =>
  program.status === "running" && program.loopBackoffs > 0 ? "backing-off" : program.status

/** Forked, and neither stopped nor failed. */
export const isActive = (program: Program): boolean =>
  program.fiber !== undefined && program.status !== "stopped" && program.status !== "failed"

/** Reverse start order. */
const byStartDesc = (a: Program, b: Program) => b.seq - a.seq

const shown = <P extends Program>(state: State<P>, program: P, from: Status): Change | undefined => {
  const to = statusOf(program)
  if (from === to) return undefined
  if (from === "backing-off") state.backingOff--
  if (to === "backing-off") state.backingOff++
  return { program: program.name, from, to }
}

/** Sets a program's own status. */
export const setStatus = <P extends Program>(state: State<P>, program: P, to: Status): Change | undefined => {
  const from = statusOf(program)
  program.status = to
  return shown(state, program, from)
}

/** The status a program takes when it stops: a failed program stays failed. */
const stoppedOrFailed = (program: Program): Status => program.status === "failed" ? "failed" : "stopped"

/** Marks a program stopped (or keeps it failed). */
export const markStopped = <P extends Program>(state: State<P>, program: P): Change | undefined =>
  setStatus(state, program, stoppedOrFailed(program))

/** A loop of the run `generation` starts (`+1`) or ends (`-1`) waiting before a retry. */
export const loopBackoff = <P extends Program>(
  state: State<P>,
  program: P,
  generation: number,
  delta: 1 | -1
): Change | undefined => {
  if (program.generation !== generation) return undefined
  const from = statusOf(program)
  program.loopBackoffs = Math.max(0, program.loopBackoffs + delta)
  return shown(state, program, from)
}

/** A loop of the run `generation` gave up on a failure. */
export const loopGaveUp = (program: Program, generation: number, gaveUp: GaveUp): void => {
  if (program.generation !== generation) return
  if (program.gaveUp.length >= gaveUpCapacity) program.gaveUp.shift()
  program.gaveUp.push(gaveUp)
}

/** Counts an error (recovered by a loop or ending a run). */
export const recordError = (program: Program, error: Failure.ExecutionError, now: number): void => {
  program.errors++
  program.lastError = error
  program.lastErrorAt = now
}

/** What starting a run did: whether it counts as a restart, and the status change. */
export interface RunStart {
  readonly restarted: boolean
  readonly change: Change | undefined
}

/** A run starts: a decided restart is counted now (a restart stopped while it waits never happened). */
export const markRunning = <P extends Program>(state: State<P>, program: P, now: number): RunStart => {
  const restarted = program.pendingRestart
  program.pendingRestart = false
  program.runStartedAt = now
  program.generation++
  program.gaveUp.length = 0
  const from = statusOf(program)
  program.loopBackoffs = 0
  program.status = "running"
  if (restarted) program.restarts++
  return { restarted, change: shown(state, program, from) }
}

/** The metrics of a program, as the snapshot shows it. */
export const metricsOf = (program: Program): Metrics => ({
  name: program.name,
  status: statusOf(program),
  restartType: program.restart,
  restarts: program.restarts,
  errors: program.errors,
  startedAt: new Date(program.startedAt),
  ...(program.lastError !== undefined
    ? { lastError: program.lastError, lastErrorAt: new Date(program.lastErrorAt) }
    : {})
})

/**
 * A program that will not run again leaves the map of programs; its last state is kept among the
 * `retainFinished` most recently finished ones (the oldest is forgotten first).
 */
export const retire = <P extends Program>(state: State<P>, program: P): void => {
  if (state.programs.get(program.name) !== program) return
  state.programs.delete(program.name)
  program.gaveUp.length = 0
  state.finished.delete(program.name)
  if (state.config.retainFinished === 0) return
  state.finished.set(program.name, { seq: program.seq, metrics: metricsOf(program) })
  if (state.finished.size > state.config.retainFinished) state.finished.delete(state.finished.keys().next().value!)
}

/** The snapshot's rows: finished and current programs, in start order. */
export const rows = <P extends Program>(state: State<P>): Array<Metrics> => {
  const all: Array<{ readonly seq: number; readonly metrics: Metrics }> = [...state.finished.values()]
  for (const p of state.programs.values()) all.push({ seq: p.seq, metrics: metricsOf(p) })
  return all.sort((a, b) => a.seq - b.seq).map((row) => row.metrics)
}

/** A name may be spawned unless a program of that name is active. */
export const canSpawn = <P extends Program>(state: State<P>, name: string): boolean => {
  const existing = state.programs.get(name)
  return existing === undefined || !isActive(existing)
}

/**
 * Takes a new program in (status `starting`), replacing any old entry of its name, and returns
 * its change from `stopped` to `starting`. `undefined` when the supervisor is shutting down or
 * has escalated: the program is recorded as stopped and must not start.
 */
export const admit = <P extends Program>(state: State<P>, program: P): Change | undefined => {
  state.programs.delete(program.name)
  state.finished.delete(program.name)
  state.programs.set(program.name, program)
  if (state.closing || state.escalated) {
    program.status = "stopped"
    retire(state, program)
    return undefined
  }
  return { program: program.name, from: "stopped", to: statusOf(program) }
}

/** A program stopped for good: marked stopped (a failed one stays failed) and retired. */
export const stopForGood = <P extends Program>(state: State<P>, program: P): Change | undefined => {
  const change = markStopped(state, program)
  retire(state, program)
  return change
}

/** The next start order number. */
export const nextSeq = <P extends Program>(state: State<P>): number => state.seq++

/**
 * Escalates on behalf of `program`: it fails, and every other active program is to be stopped
 * for good, in the order returned (reverse start order).
 */
export const escalate = <P extends Program>(
  state: State<P>,
  program: P
): { readonly change: Change | undefined; readonly victims: Array<P> } => {
  state.escalated = true
  const change = setStatus(state, program, "failed")
  const victims = [...state.programs.values()].filter((p) => p !== program && isActive(p)).sort(byStartDesc)
  return { change, victims }
}

/** Shutdown begins: the active programs to stop, in reverse start order. */
export const shutdown = <P extends Program>(state: State<P>): Array<P> => {
  state.closing = true
  return [...state.programs.values()].filter(isActive).sort(byStartDesc)
}

/** What follows the end of a run, as {@link decide} sees it before the restart schedule is stepped. */
export type Decision =
  /** The program does not run again; its status has been set. */
  | { readonly _tag: "stop"; readonly change: Change | undefined }
  /** The supervisor escalates (the shell calls {@link escalate}). */
  | { readonly _tag: "escalate"; readonly reason: EscalationReason }
  /** A restart within the intensity: the shell steps the restart schedule from `position` (`undefined`: afresh). */
  | { readonly _tag: "step"; readonly position: unknown }

const stop = <P extends Program>(state: State<P>, program: P, to: Status): Decision => ({
  _tag: "stop",
  change: setStatus(state, program, to)
})

/**
 * Decides what follows the end of a run. Interruption never counts; a defect escalates unless
 * `escalateOnDefect` is off; a `transient` program stops after a success and a `temporary` one
 * after anything. Any other end is a restart, allowed while fewer than `maxRestarts` restarts
 * were decided within the window; the schedule starts afresh when the run lasted longer than the
 * window.
 */
export const decide = <P extends Program>(state: State<P>, program: P, end: End, now: number): Decision => {
  const config = state.config
  if (state.closing || state.escalated) {
    return stop(state, program, end === "success" ? "stopped" : stoppedOrFailed(program))
  }
  switch (end) {
    case "interrupted":
      return stop(state, program, "stopped")
    case "success":
      if (program.restart !== "permanent") return stop(state, program, "stopped")
      break
    case "defect":
      if (config.escalateOnDefect) return { _tag: "escalate", reason: "defect" }
      if (program.restart === "temporary") return stop(state, program, "failed")
      break
    case "failure":
      if (program.restart === "temporary") return stop(state, program, "failed")
      break
  }
  const times = state.restartTimes
  while (times.length > 0 && now - times[0]! > config.withinMillis) times.shift()
  if (times.length >= config.maxRestarts) return { _tag: "escalate", reason: "intensity" }
  if (now - program.runStartedAt > config.withinMillis) program.position = undefined
  return { _tag: "step", position: program.position }
}

/** A decided restart: the delay before the next run, and the siblings that go down with it. */
export interface Restart<P extends Program> {
  readonly _tag: "restart"
  readonly delay: number
  readonly change: Change | undefined
  /**
   * The active siblings the strategy restarts with the program, in start order: the shell
   * interrupts them in reverse order, marks each stopped, then hands each to {@link requeue}.
   */
  readonly group: Array<P>
}

/**
 * Completes a restart {@link decide} allowed, with the step of the restart schedule: `next` is
 * the new position and the delay, or `undefined` when the schedule ended (which escalates).
 */
export const restart = <P extends Program>(
  state: State<P>,
  program: P,
  next: readonly [position: unknown, delay: number] | undefined,
  now: number
): Restart<P> | { readonly _tag: "escalate"; readonly reason: "schedule" } => {
  if (next === undefined) return { _tag: "escalate", reason: "schedule" }
  state.restartTimes.push(now)
  program.position = next[0]
  program.pendingRestart = true
  const change = setStatus(state, program, "backing-off")
  const strategy = state.config.strategy
  const group = strategy === "one_for_one" ?
    [] :
    [...state.programs.values()].filter((p) =>
      p !== program && isActive(p) && (strategy === "one_for_all" || p.seq > program.seq)
    ).sort((a, b) => a.seq - b.seq)
  return { _tag: "restart", delay: next[1], change, group }
}

/**
 * A sibling of a group restart, now interrupted: `undefined` when it is `temporary` (it leaves
 * for good), otherwise the change to `backing-off` before it restarts with the group.
 */
export const requeue = <P extends Program>(
  state: State<P>,
  program: P
): { readonly change: Change | undefined } | undefined => {
  if (program.restart === "temporary") {
    retire(state, program)
    return undefined
  }
  program.pendingRestart = true
  return { change: setStatus(state, program, "backing-off") }
}

/**
 * A program's runner ended on its own (its program not to be restarted, or its fiber interrupted
 * by the program itself): the program no longer shows as running and leaves the map.
 */
export const runnerEnded = <P extends Program>(state: State<P>, program: P): Change | undefined => {
  const change = program.status === "failed" ? undefined : setStatus(state, program, "stopped")
  retire(state, program)
  return change
}
