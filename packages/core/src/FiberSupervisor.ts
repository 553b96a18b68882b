/**
 * Two-tier supervision of long-running programs.
 *
 * The inner tier, {@link loop}, runs a step forever and recovers typed, retryable failures inside
 * the loop (warning log, backoff from a `Schedule`, carry on) without restarting the program. The
 * outer tier, a supervisor, runs named programs as fibers: whatever escapes a program's inner loop
 * (a defect, or a failure the loop gave up on) ends that run with a fatal log naming the program
 * and showing its whole cause; the supervisor then restarts it according to its restart type, its
 * strategy, a restart backoff `Schedule` and a restart intensity limit. A defect (by default) or an
 * exceeded intensity escalates: every program is interrupted, its finalizers run, and the
 * supervisor fails with a typed {@link SupervisorEscalation} that reaches the main fiber.
 * Interruption is never a failure: it never counts, never restarts and never escalates.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleIntervals from "effect/ScheduleIntervals"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Alerts from "./Alerts.js"
import * as Failure from "./Failure.js"
import * as Health from "./Health.js"
import * as InternalConfig from "./internal/config.js"
import * as InternalDuration from "./internal/duration.js"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * When a program is restarted (OTP's restart types):
 * - `permanent`: always, whether it failed or completed;
 * - `transient`: only when it failed (a typed failure or a defect), not when it completed;
 * - `temporary`: never.
 *
 * @since 0.1.0
 * @category models
 */
export const RestartType = Schema.Literal("permanent", "transient", "temporary")

/**
 * @since 0.1.0
 * @category models
 */
export type RestartType = typeof RestartType.Type

/**
 * Which programs restart together (OTP's strategies):
 * - `one_for_one`: only the program that ended;
 * - `one_for_all`: every program (the others are interrupted first, in reverse start order);
 * - `rest_for_one`: the program that ended and every program started after it.
 *
 * @since 0.1.0
 * @category models
 */
export const RestartStrategy = Schema.Literal("one_for_one", "one_for_all", "rest_for_one")

/**
 * @since 0.1.0
 * @category models
 */
export type RestartStrategy = typeof RestartStrategy.Type

/**
 * The status of a supervised program: `starting` (spawned, not yet running), `running`,
 * `backing-off` (waiting before a retry of its inner loop or before a restart), `stopped`
 * (completed or interrupted, not to be restarted), `failed` (ended by a failure and not restarted).
 *
 * @since 0.1.0
 * @category models
 */
export const ChildStatus = Schema.Literal("starting", "running", "backing-off", "stopped", "failed")

/**
 * @since 0.1.0
 * @category models
 */
export type ChildStatus = typeof ChildStatus.Type

/**
 * The metrics of one supervised program (seed 002's `get_metrics`). `errors` counts every typed
 * failure and defect the program met, including those its inner loop recovered; `restarts`
 * counts outer restarts. `lastError` is the classified, serialisable last error.
 *
 * @since 0.1.0
 * @category models
 */
export const ChildMetrics = Schema.Struct({
  name: Schema.String,
  status: ChildStatus,
  restartType: RestartType,
  restarts: Schema.Number,
  errors: Schema.Number,
  lastError: Schema.optional(Failure.ExecutionError),
  lastErrorAt: Schema.optional(Schema.Date),
  startedAt: Schema.Date
}).annotations({ identifier: "ChildMetrics" })

/**
 * @since 0.1.0
 * @category models
 */
export type ChildMetrics = typeof ChildMetrics.Type

/**
 * A snapshot of a supervisor and its programs, in start order.
 *
 * @since 0.1.0
 * @category models
 */
export const Snapshot = Schema.Struct({
  supervisor: Schema.String,
  strategy: RestartStrategy,
  escalated: Schema.Boolean,
  children: Schema.Array(ChildMetrics)
}).annotations({ identifier: "SupervisorSnapshot" })

/**
 * @since 0.1.0
 * @category models
 */
export type Snapshot = typeof Snapshot.Type

/**
 * A change of a program's status, as published on {@link Service.changes}.
 *
 * @since 0.1.0
 * @category models
 */
export interface ChildChange {
  readonly supervisor: string
  readonly program: string
  readonly from: ChildStatus
  readonly to: ChildStatus
  readonly at: number
}

/**
 * What a graceful shutdown did: the programs it stopped (in the order it stopped them) and those
 * whose finalizers overran their shutdown timeout.
 *
 * @since 0.1.0
 * @category models
 */
export interface ShutdownReport {
  readonly stopped: ReadonlyArray<string>
  readonly overran: ReadonlyArray<string>
}

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * The supervisor gave up: a program died with a defect, or programs restarted more often than
 * the restart intensity allows. Every program has been interrupted (and its finalizers have run)
 * before this error is raised. It carries the cause of the last program's end.
 *
 * @since 0.1.0
 * @category errors
 */
export class SupervisorEscalation extends Schema.TaggedError<SupervisorEscalation>()("SupervisorEscalation", {
  supervisor: Schema.String,
  program: Schema.String,
  reason: Schema.Literal("defect", "intensity"),
  maxRestarts: Schema.Number,
  within: Schema.String,
  cause: Schema.Cause({ error: Schema.Unknown, defect: Schema.Defect })
}) {
  override get message(): string {
    return this.reason === "defect"
      ? `Supervisor "${this.supervisor}" escalated: program "${this.program}" died with a defect`
      : `Supervisor "${this.supervisor}" escalated: more than ${this.maxRestarts} restarts within ${this.within} (last: program "${this.program}")`
  }

  get [Failure.RuleKey](): Failure.RuleObject {
    return {
      category: "system",
      code: "SUPERVISOR_ESCALATION",
      severity: "critical",
      strategy: "abandon",
      retryable: false
    }
  }
}

// -----------------------------------------------------------------------------
// options
// -----------------------------------------------------------------------------

/**
 * Restart intensity: at most `maxRestarts` restarts within `within`, counted over all the
 * supervisor's programs together (a group restart counts once). The restart that would exceed
 * it escalates instead. Restarts exactly `within` ago still count (boundaries are inclusive).
 *
 * @since 0.1.0
 * @category models
 */
export interface Intensity {
  /** Default: 3. */
  readonly maxRestarts?: number | undefined
  /** Default: 5 seconds. */
  readonly within?: Duration.DurationInput | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The supervisor's name, in logs, metrics, alerts and health checks. Default: `"supervisor"`. */
  readonly name?: string | undefined
  /** Which programs restart together. Default: `"one_for_one"`. */
  readonly strategy?: RestartStrategy | undefined
  /** Restart intensity. Default: 3 restarts within 5 seconds. */
  readonly intensity?: Intensity | undefined
  /**
   * The delay before each restart of a program, as a `Schedule` stepped once per restart. The
   * schedule starts afresh when the program's last run lasted longer than the intensity window.
   * A schedule that ends means "restart immediately". Default: exponential from 100 ms, doubling,
   * capped at 10 seconds.
   */
  readonly restartSchedule?: Schedule.Schedule<unknown, unknown> | undefined
  /** Whether a defect in a program escalates (`true`) or is restarted like a failure. Default: `true`. */
  readonly escalateOnDefect?: boolean | undefined
  /** How long each program may take to finish its finalizers when interrupted. Default: 5 seconds. */
  readonly shutdownTimeout?: Duration.DurationInput | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface SpawnOptions {
  /** Default: `"permanent"`. */
  readonly restart?: RestartType | undefined
  /** Overrides the supervisor's shutdown timeout for this program. */
  readonly shutdownTimeout?: Duration.DurationInput | undefined
  /** Overrides the supervisor's restart schedule for this program. */
  readonly restartSchedule?: Schedule.Schedule<unknown, unknown> | undefined
}

// -----------------------------------------------------------------------------
// service
// -----------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category models
 */
export interface Service {
  readonly name: string
  /**
   * Starts a named program under supervision. The program runs with the context of the caller.
   * Spawning a name that is still active is a defect; spawning it again after it stopped or
   * failed replaces the old entry.
   */
  readonly spawn: <A, E, R>(name: string, program: Effect.Effect<A, E, R>, options?: SpawnOptions) => Effect.Effect<
    void,
    never,
    R
  >
  /** Interrupts a program (its finalizers run) and marks it stopped; `false` if no such program is active. */
  readonly stop: (name: string) => Effect.Effect<boolean>
  /** The metrics of every program, in start order. */
  readonly snapshot: Effect.Effect<Snapshot>
  /**
   * Every status change of every program, from the moment of subscription. A subscriber that
   * falls behind keeps the most recent 1,024 changes (older ones are dropped, never blocking the
   * supervisor). The stream ends once the supervisor has shut down.
   */
  readonly changes: Stream.Stream<ChildChange>
  /** Fails with the escalation once the supervisor escalates; never succeeds. */
  readonly awaitEscalation: Effect.Effect<never, SupervisorEscalation>
  /**
   * Interrupts every program in reverse start order, each within its shutdown timeout. Runs by
   * itself when the supervisor's scope closes.
   */
  readonly shutdown: Effect.Effect<ShutdownReport>
}

/**
 * The supervisor service.
 *
 * @since 0.1.0
 * @category tags
 */
export class FiberSupervisor extends Context.Tag("@bulwark/core/FiberSupervisor")<FiberSupervisor, Service>() {}

// -----------------------------------------------------------------------------
// metrics
// -----------------------------------------------------------------------------

const restartsTotal = Metric.counter("bulwark_supervisor_restarts_total", {
  description: "Outer restarts of supervised programs",
  incremental: true
})

const escalationsTotal = Metric.counter("bulwark_supervisor_escalations_total", {
  description: "Supervisor escalations",
  incremental: true
})

const failuresTotal = Metric.counter("bulwark_supervisor_failures_total", {
  description: "Failures that ended a supervised program's run",
  incremental: true
})

const recoveredTotal = Metric.counter("bulwark_supervisor_recovered_total", {
  description: "Typed failures recovered inside a program's inner loop",
  incremental: true
})

/** A subscriber to `changes` that falls behind keeps only the most recent changes. */
const changesCapacity = 1024

const tagged = (counter: Metric.Metric.Counter<number>, tags: Record<string, string>): Metric.Metric.Counter<number> =>
  Metric.taggedWithLabels(counter, Object.entries(tags).map(([key, value]) => MetricLabel.make(key, value)))

// -----------------------------------------------------------------------------
// internals
// -----------------------------------------------------------------------------

interface Child {
  readonly name: string
  readonly seq: number
  readonly restart: RestartType
  readonly run: Effect.Effect<unknown, unknown>
  readonly context: Context.Context<never>
  readonly shutdownTimeout: Duration.Duration
  readonly restartSchedule: Schedule.Schedule<unknown, unknown>
  readonly sup: Internal
  status: ChildStatus
  restarts: number
  errors: number
  lastError: Failure.ExecutionError | undefined
  lastErrorAt: number
  startedAt: number
  runStartedAt: number
  backoffState: unknown
  fiber: Fiber.RuntimeFiber<void> | undefined
}

interface Internal {
  readonly name: string
  setStatus(child: Child, to: ChildStatus, now: number): void
  recordError(child: Child, error: Failure.ExecutionError, now: number): void
}

/** The supervised program the current fiber belongs to, if any. */
const currentChild = FiberRef.unsafeMake<Child | undefined>(undefined)

const fatalBanner = (title: string, detail: string): string => {
  const bar = "═".repeat(64)
  return `\n╔${bar}\n║ FATAL: ${title}\n║ ${detail}\n╚${bar}`
}

const defaultRestartSchedule: Schedule.Schedule<unknown, unknown> = Schedule.exponential("100 millis", 2).pipe(
  Schedule.modifyDelay((d) => Duration.min(d, Duration.seconds(10)))
)

const nextDelay = (
  schedule: Schedule.Schedule<unknown, unknown>,
  state: unknown,
  input: unknown,
  now: number
): Effect.Effect<Option.Option<readonly [unknown, number]>> =>
  Effect.map(schedule.step(now, input, state), ([next, _, decision]) =>
    ScheduleDecision.isDone(decision)
      ? Option.none()
      : Option.some([next, Math.max(0, ScheduleIntervals.start(decision.intervals) - now)] as const))

const executionError = (
  classifier: Failure.Classifier,
  cause: Cause.Cause<unknown>,
  now: number,
  program: string
): Failure.ExecutionError => {
  const classification = Option.getOrElse(
    Failure.classifyCauseWith(classifier, cause),
    () => classifier.classifyDefect(undefined)
  )
  const failure = Cause.failureOption(cause)
  const value = Option.isSome(failure) ? failure.value : Option.getOrUndefined(Cause.dieOption(cause))
  return Failure.fromClassification(classification, describe(value), now, { taskId: program })
}

const describe = (u: unknown): string => {
  if (typeof u === "object" && u !== null) {
    const message = (u as { readonly message?: unknown }).message
    if (typeof message === "string" && message.length > 0) return message
    const tag = (u as { readonly _tag?: unknown })._tag
    if (typeof tag === "string") return tag
  }
  return String(u)
}

const positiveInt = (value: number, field: string): number => {
  if (!Number.isInteger(value) || value < 0) {
    throw new TypeError(`FiberSupervisor: ${field} must be a whole number >= 0, got ${value}`)
  }
  return value
}

const positiveDuration = (input: Duration.DurationInput, field: string): Duration.Duration => {
  // the input itself in the message: a negative number would otherwise show as the zero it decodes to
  const millis = InternalDuration.toMillis(input)
  if (!(millis > 0)) {
    throw new TypeError(`FiberSupervisor: ${field} must be a positive duration, got ${String(input)}`)
  }
  return Duration.millis(millis)
}

/**
 * Creates a supervisor whose lifetime is the current scope: when the scope closes, every program
 * is interrupted in reverse start order (see {@link Service.shutdown}). Escalation is observed
 * through {@link Service.awaitEscalation}; {@link layer} wires it to the main fiber.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Service, never, Scope.Scope> =>
  Effect.gen(function*() {
    const name = options.name ?? "supervisor"
    const strategy = options.strategy ?? "one_for_one"
    if (!RestartStrategy.literals.includes(strategy)) {
      return yield* Effect.dieMessage(
        `FiberSupervisor: strategy must be one of ${RestartStrategy.literals.join(", ")}, got "${strategy}"`
      )
    }
    const maxRestarts = positiveInt(options.intensity?.maxRestarts ?? 3, "intensity.maxRestarts")
    const within = positiveDuration(options.intensity?.within ?? "5 seconds", "intensity.within")
    const withinMillis = Duration.toMillis(within)
    const shutdownTimeout = positiveDuration(options.shutdownTimeout ?? "5 seconds", "shutdownTimeout")
    const restartSchedule = options.restartSchedule ?? defaultRestartSchedule
    const escalateOnDefect = options.escalateOnDefect ?? true

    const classifier = yield* Failure.currentClassifier
    const alerts = yield* Effect.serviceOption(Alerts.Alerts)
    const lock = yield* Effect.makeSemaphore(1)
    const escalation = yield* Deferred.make<never, SupervisorEscalation>()
    // `undefined` marks the end: published once the supervisor has shut down
    const hub = yield* PubSub.sliding<ChildChange | undefined>(changesCapacity)
    const children = new Map<string, Child>()
    const restartTimes: Array<number> = []
    let seq = 0
    let subscribers = 0
    let closing = false
    let ended = false
    let escalated = false
    let backingOff = 0

    const publish = (change: ChildChange) => {
      if (subscribers > 0) Queue.unsafeOffer(hub, change)
    }

    const internal: Internal = {
      name,
      setStatus(child, to, now) {
        const from = child.status
        if (from === to) return
        child.status = to
        if (from === "backing-off") backingOff--
        if (to === "backing-off") backingOff++
        publish({ supervisor: name, program: child.name, from, to, at: now })
      },
      recordError(child, error, now) {
        child.errors++
        child.lastError = error
        child.lastErrorAt = now
      }
    }

    const setStatus = (child: Child, to: ChildStatus) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => internal.setStatus(child, to, now)))

    const active = (c: Child) => c.fiber !== undefined && c.status !== "stopped" && c.status !== "failed"

    /** Interrupts a runner and waits for it within the timeout; `false` when it overran. */
    const interruptWithin = (child: Child): Effect.Effect<boolean> => {
      const fiber = child.fiber
      if (fiber === undefined) return Effect.succeed(true)
      // most programs finish at once: only start a timer for those that do not
      return Effect.zipRight(
        Effect.zipRight(Effect.flatMap(Effect.fiberId, (id) => fiber.interruptAsFork(id)), Effect.yieldNow()),
        Effect.flatMap(Fiber.poll(fiber), (done) =>
          Option.isSome(done) ? Effect.succeed(true) : Effect.map(
            Effect.timeoutOption(Effect.interruptible(Fiber.await(fiber)), child.shutdownTimeout),
            Option.isSome
          ))
      )
    }

    const interruptAll = (victims: ReadonlyArray<Child>): Effect.Effect<ShutdownReport> =>
      Effect.gen(function*() {
        const stopped: Array<string> = []
        const overran: Array<string> = []
        for (const c of victims) {
          const inTime = yield* interruptWithin(c)
          stopped.push(c.name)
          if (!inTime) {
            overran.push(c.name)
            yield* Effect.logWarning(
              `Program "${c.name}" did not finish within its shutdown timeout of ${Duration.format(c.shutdownTimeout)}`
            ).pipe(Effect.annotateLogs({ "bulwark.supervisor": name, "bulwark.program": c.name }))
          }
          yield* setStatus(c, c.status === "failed" ? "failed" : "stopped")
        }
        return { stopped, overran }
      })

    const byStartDesc = (a: Child, b: Child) => b.seq - a.seq

    const escalate = (child: Child, reason: "defect" | "intensity", cause: Cause.Cause<unknown>) =>
      Effect.gen(function*() {
        escalated = true
        const error = new SupervisorEscalation({
          supervisor: name,
          program: child.name,
          reason,
          maxRestarts,
          within: Duration.format(within),
          cause
        })
        yield* setStatus(child, "failed")
        const others = [...children.values()].filter((c) => c !== child && active(c)).sort(byStartDesc)
        yield* interruptAll(others)
        yield* Metric.increment(Metric.tagged(Metric.tagged(escalationsTotal, "supervisor", name), "reason", reason))
        yield* Effect.logFatal(
          fatalBanner(error.message, "Every program has been stopped; the process should exit to be restarted"),
          cause
        ).pipe(Effect.annotateLogs({ "bulwark.supervisor": name, "bulwark.program": child.name }))
        if (Option.isSome(alerts)) {
          yield* alerts.value.alert({
            key: `supervisor:${name}`,
            kind: "supervisor_escalation",
            severity: "critical",
            message: error.message,
            annotations: { supervisor: name, program: child.name, reason }
          })
        }
        yield* Deferred.fail(escalation, error)
      })

    /** Forks the runner of a program, after an optional delay. */
    const start = (child: Child, delayMillis: number, provideContext: boolean): Effect.Effect<void> =>
      Effect.flatMap(
        // a runner is interruptible even when forked from an uninterruptible region (a group
        // restart); forked from an interruptible caller it needs no wrapper
        Effect.checkInterruptible((interruptible) => {
          const effect = runner(child, delayMillis, provideContext)
          return Effect.forkDaemon(interruptible ? effect : Effect.interruptible(effect))
        }),
        (fiber) =>
          Effect.sync(() => {
            child.fiber = fiber
          })
      )

    /** Restarts the siblings that the strategy takes down with a program. */
    const restartGroup = (child: Child, delayMillis: number) =>
      Effect.gen(function*() {
        const group = [...children.values()].filter((c) =>
          c !== child && active(c) && (strategy === "one_for_all" || c.seq > child.seq)
        )
        yield* interruptAll([...group].sort(byStartDesc))
        for (
          const c of group.sort((a, b) => a.seq - b.seq)
        ) {
          if (c.restart === "temporary") continue
          c.restarts++
          yield* Metric.increment(Metric.tagged(Metric.tagged(restartsTotal, "supervisor", name), "program", c.name))
          yield* setStatus(c, "backing-off")
          yield* start(c, delayMillis, true)
        }
      })

    /**
     * Records how a run ended, before the supervisor's lock is taken, so that a failure is
     * counted and logged even when the program is interrupted while waiting for the decision.
     */
    const observe = (child: Child, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> => {
      if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)) return Effect.void
      const cause = exit.cause
      return Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const error = executionError(classifier, cause, now, child.name)
        internal.recordError(child, error, now)
        return Effect.zipRight(
          Metric.increment(
            tagged(failuresTotal, { supervisor: name, program: child.name, category: error.type, code: error.code })
          ),
          Effect.logFatal(
            fatalBanner(
              `Program "${child.name}" of supervisor "${name}" terminated by ${
                Cause.isDie(cause) ? "a defect" : "a failure"
              }`,
              `${error.code}: ${error.message}`
            ),
            cause
          ).pipe(Effect.annotateLogs({
            "bulwark.supervisor": name,
            "bulwark.program": child.name,
            "bulwark.category": error.type,
            "bulwark.code": error.code
          }))
        )
      })
    }

    /**
     * Decides what follows the end of a run: `undefined` to stop, or the delay before the next run.
     * Runs under the supervisor's lock, uninterruptibly.
     */
    const decide = (child: Child, exit: Exit.Exit<unknown, unknown>): Effect.Effect<number | undefined> =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        if (closing || escalated) {
          yield* setStatus(child, Exit.isSuccess(exit) ? "stopped" : child.status === "failed" ? "failed" : "stopped")
          return undefined
        }
        let restart: boolean
        if (Exit.isSuccess(exit)) {
          restart = child.restart === "permanent"
          if (!restart) {
            yield* setStatus(child, "stopped")
            return undefined
          }
          yield* Effect.logWarning(`Program "${child.name}" completed; restarting it (permanent)`).pipe(
            Effect.annotateLogs({ "bulwark.supervisor": name, "bulwark.program": child.name })
          )
        } else {
          const cause = exit.cause
          if (Cause.isInterruptedOnly(cause)) {
            yield* setStatus(child, "stopped")
            return undefined
          }
          const isDefect = Cause.isDie(cause)
          if (isDefect && escalateOnDefect) {
            yield* escalate(child, "defect", cause)
            return undefined
          }
          if (child.restart === "temporary") {
            yield* setStatus(child, "failed")
            return undefined
          }
        }
        // intensity: at most maxRestarts within the window, over all programs
        while (restartTimes.length > 0 && now - restartTimes[0]! > withinMillis) restartTimes.shift()
        if (restartTimes.length >= maxRestarts) {
          yield* escalate(child, "intensity", Exit.isFailure(exit) ? exit.cause : Cause.empty)
          return undefined
        }
        restartTimes.push(now)
        if (now - child.runStartedAt > withinMillis) child.backoffState = undefined
        const step = yield* nextDelay(
          child.restartSchedule,
          child.backoffState === undefined ? child.restartSchedule.initial : child.backoffState,
          Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined,
          now
        )
        let delay = 0
        if (Option.isSome(step)) {
          child.backoffState = step.value[0]
          delay = step.value[1]
        }
        child.restarts++
        yield* Metric.increment(Metric.tagged(Metric.tagged(restartsTotal, "supervisor", name), "program", child.name))
        yield* setStatus(child, "backing-off")
        if (strategy !== "one_for_one") yield* restartGroup(child, delay)
        return delay
      })

    // The runner is the program's fiber for its whole life, restarts included. A supervised program
    // should cost little more than its fiber, so the runner's effects are built once per supervisor
    // and shared by every program: each runner finds its program through a fiber ref, and while a
    // program runs its fiber holds no per-program frames. The context is set only when the runner
    // is forked by another program's runner (a group restart) rather than by the caller of spawn.
    const thisChild = FiberRef.get(currentChild) as Effect.Effect<Child>
    const markRunning = Effect.flatMap(thisChild, (child) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.sync(() => {
          child.runStartedAt = now
          internal.setStatus(child, "running", now)
        })))
    const runProgram = Effect.flatMap(thisChild, (child) =>
      child.run)
    // After a run: record how it ended (uninterruptibly, before waiting for the lock, so that a
    // failure is counted even if the program is interrupted while waiting), then take the lock and
    // decide. Every step is a shared effect or a tail call, so a program that restarts many times
    // does not grow its fiber's stack and an idle program holds no per-program frames.
    const afterRun = (exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> =>
      Effect.flatMap(thisChild, (child) =>
        Effect.zipRight(
          Effect.uninterruptible(observe(child, exit)),
          Effect.flatMap(lock.withPermits(1)(Effect.uninterruptible(decide(child, exit))), (next) =>
            next === undefined
              ? Effect.void
              : next > 0
              ? Effect.zipRight(Effect.sleep(Duration.millis(next)), runAgain)
              : runAgain)
        ))
    const runRounds: Effect.Effect<void> = Effect.zipRight(
      markRunning,
      Effect.flatMap(Effect.exit(runProgram), afterRun)
    )
    const runAgain: Effect.Effect<void> = Effect.suspend(() =>
      runRounds
    )

    // The runner is a daemon fiber that nobody joins: a defect outside the program itself (a
    // restart schedule or a classifier that throws) would end it silently and leave the program
    // shown as running. It is logged as fatal and escalates like a defect in the program.
    const runnerDied = (cause: Cause.Cause<unknown>): Effect.Effect<void> =>
      Cause.isInterruptedOnly(cause) ? Effect.void : Effect.flatMap(thisChild, (child) =>
        Effect.zipRight(
          Effect.logFatal(
            fatalBanner(
              `Supervision of program "${child.name}" of supervisor "${name}" died`,
              "A defect outside the program itself (its restart schedule or the classifier)"
            ),
            cause
          ).pipe(Effect.annotateLogs({ "bulwark.supervisor": name, "bulwark.program": child.name })),
          lock.withPermits(1)(
            Effect.uninterruptible(
              Effect.suspend(() => closing || escalated ? setStatus(child, "failed") : escalate(child, "defect", cause))
            )
          )
        ))

    const runner = (child: Child, initialDelay: number, provideContext: boolean): Effect.Effect<void> => {
      const body = Effect.zipRight(
        FiberRef.set(currentChild, child),
        initialDelay > 0 ? Effect.zipRight(Effect.sleep(Duration.millis(initialDelay)), runRounds) : runRounds
      )
      return Effect.catchAllCause(
        provideContext ? Effect.zipRight(FiberRef.set(FiberRef.currentContext, child.context), body) : body,
        runnerDied
      )
    }

    const spawn = <A, E, R>(
      childName: string,
      program: Effect.Effect<A, E, R>,
      spawnOptions: SpawnOptions = {}
    ): Effect.Effect<void, never, R> =>
      Effect.gen(function*() {
        const existing = children.get(childName)
        if (existing !== undefined && active(existing)) {
          return yield* Effect.dieMessage(
            `FiberSupervisor "${name}": a program named "${childName}" is already running`
          )
        }
        const context = yield* Effect.context<R>()
        const now = yield* Clock.currentTimeMillis
        const restart = spawnOptions.restart ?? "permanent"
        if (!RestartType.literals.includes(restart)) {
          return yield* Effect.dieMessage(
            `FiberSupervisor: restart must be one of ${RestartType.literals.join(", ")}, got "${restart}"`
          )
        }
        const child: Child = {
          name: childName,
          seq: seq++,
          restart,
          run: program as Effect.Effect<unknown, unknown>,
          context: context as Context.Context<never>,
          shutdownTimeout: spawnOptions.shutdownTimeout === undefined
            ? shutdownTimeout
            : positiveDuration(spawnOptions.shutdownTimeout, "shutdownTimeout"),
          restartSchedule: spawnOptions.restartSchedule ?? restartSchedule,
          sup: internal,
          status: "starting",
          restarts: 0,
          errors: 0,
          lastError: undefined,
          lastErrorAt: 0,
          startedAt: now,
          runStartedAt: now,
          backoffState: undefined,
          fiber: undefined
        }
        if (existing !== undefined) {
          children.delete(childName)
        }
        children.set(childName, child)
        if (closing || escalated) {
          child.status = "stopped"
          return
        }
        publish({ supervisor: name, program: childName, from: "stopped", to: "starting", at: now })
        yield* start(child, 0, false)
      })

    // under the lock, like every decision: a stop that overlapped a group restart would otherwise
    // interrupt the old runner while the restart forks a new one, and the new one would run on,
    // marked stopped, beyond the reach of shutdown
    const stop = (childName: string): Effect.Effect<boolean> =>
      lock.withPermits(1)(Effect.suspend(() => {
        const child = children.get(childName)
        if (child === undefined || !active(child)) {
          return Effect.succeed(false)
        }
        return Effect.as(interruptAll([child]), true)
      }))

    const toMetrics = (c: Child): ChildMetrics => ({
      name: c.name,
      status: c.status,
      restartType: c.restart,
      restarts: c.restarts,
      errors: c.errors,
      startedAt: new Date(c.startedAt),
      ...(c.lastError !== undefined ? { lastError: c.lastError, lastErrorAt: new Date(c.lastErrorAt) } : {})
    })

    const snapshot = Effect.sync((): Snapshot => ({
      supervisor: name,
      strategy,
      escalated,
      children: [...children.values()].sort((a, b) => a.seq - b.seq).map(toMetrics)
    }))

    // ends once the supervisor has shut down, after the changes published before the end
    const changes: Stream.Stream<ChildChange> = Stream.unwrapScoped(Effect.suspend(() =>
      ended ? Effect.succeed(Stream.empty) : Effect.map(
        Effect.acquireRelease(
          Effect.tap(PubSub.subscribe(hub), () => Effect.sync(() => subscribers++)),
          () => Effect.sync(() => subscribers--)
        ),
        (queue) => Stream.takeWhile(Stream.fromQueue(queue), (change): change is ChildChange => change !== undefined)
      )
    ))

    const end = Effect.sync(() => {
      if (ended) {
        return
      }
      ended = true
      if (subscribers > 0) {
        Queue.unsafeOffer(hub, undefined)
      }
    })

    const shutdown: Effect.Effect<ShutdownReport> = lock.withPermits(1)(
      Effect.suspend(() => {
        closing = true
        const victims = [...children.values()].filter(active).sort(byStartDesc)
        return Effect.zipLeft(interruptAll(victims), end)
      })
    ).pipe(
      Effect.tap((report) =>
        report.stopped.length === 0 ? Effect.void : Effect.logInfo(
          `Supervisor "${name}" stopped ${report.stopped.length} program(s)${
            report.overran.length > 0 ? `; overran their shutdown timeout: ${report.overran.join(", ")}` : ""
          }`
        ).pipe(Effect.annotateLogs("bulwark.supervisor", name))
      ),
      Effect.uninterruptible
    )

    yield* Effect.addFinalizer(() =>
      shutdown
    )

    yield* Health.registerIfPresent(
      `supervisor:${name}`,
      Effect.sync((): Health.ComponentHealth =>
        escalated
          ? { status: "down", details: { escalated: true } }
          : { status: "up", details: { programs: children.size } }
      ),
      { kind: "liveness" }
    )
    yield* Health.registerIfPresent(
      `supervisor:${name}:programs`,
      Effect.sync((): Health.ComponentHealth =>
        backingOff > 0
          ? { status: "degraded", details: { backingOff } }
          : { status: "up", details: { backingOff: 0 } }
      ),
      { kind: "readiness" }
    )

    return {
      name,
      spawn,
      stop,
      snapshot,
      changes,
      awaitEscalation: Deferred.await(escalation),
      shutdown
    }
  })

/**
 * Provides a supervisor for the lifetime of the Layer. When the supervisor escalates, the fiber
 * that built the Layer (the main fiber, with `Effect.provide`) is interrupted and the Layer's
 * scope fails with the {@link SupervisorEscalation}: the provided program ends in a failure that
 * carries it (alongside the interruption), so `runMain` exits with code 1.
 *
 * @example
 * ```ts
 * import { FiberSupervisor } from "@bulwark/core"
 * import { Effect } from "effect"
 *
 * const main = Effect.gen(function*() {
 *   yield* FiberSupervisor.spawn("ticker", FiberSupervisor.loop(Effect.log("tick"), { interval: "1 second" }))
 *   yield* Effect.never
 * })
 *
 * // fails with SupervisorEscalation if "ticker" ever dies with a defect
 * const program = main.pipe(Effect.provide(FiberSupervisor.layer({ name: "app" })))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<FiberSupervisor> =>
  Layer.scoped(
    FiberSupervisor,
    Effect.gen(function*() {
      const builder = yield* Effect.withFiberRuntime<Fiber.RuntimeFiber<unknown, unknown>>((fiber) =>
        Effect.succeed(fiber)
      )
      const service = yield* make(options)
      const failed = yield* Deferred.make<never, SupervisorEscalation>()
      // runs after the supervisor's own shutdown finalizer has been added, so it runs before it;
      // by then escalation has already stopped every program
      yield* Effect.addFinalizer(() =>
        Effect.flatMap(Deferred.poll(failed), (polled) =>
          Option.isSome(polled)
            // a failing finalizer makes the scope's close fail, and so the provided program
            ? (Effect.flatten(polled.value) as unknown as Effect.Effect<void>)
            : Effect.void)
      )
      yield* Effect.forkScoped(
        Effect.catchAll(service.awaitEscalation, (error) =>
          Effect.zipRight(Deferred.fail(failed, error), Fiber.interruptAsFork(builder, builder.id())))
      )
      return service
    })
  )

/**
 * The supervisor's options read from `Config`: `NAME`, `STRATEGY`, `MAX_RESTARTS`, `WITHIN`,
 * `SHUTDOWN_TIMEOUT` and `ESCALATE_ON_DEFECT` (UPPER_SNAKE, like every Bulwark module, so the
 * default provider reads them from the environment), each optional with the defaults of
 * {@link Options}. Nest it with `Config.nested("SUPERVISOR")` to read `SUPERVISOR_MAX_RESTARTS` …
 * A bad value fails with a `ConfigError` naming the key.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Options> = Config.all({
  name: Config.string("NAME").pipe(Config.withDefault("supervisor")),
  strategy: Config.literal("one_for_one", "one_for_all", "rest_for_one")("STRATEGY").pipe(
    Config.withDefault("one_for_one" as const)
  ),
  maxRestarts: InternalConfig.integer("MAX_RESTARTS").pipe(
    Config.validate({ message: "must be a whole number >= 0", validation: (n) => n >= 0 }),
    Config.withDefault(3)
  ),
  within: Config.duration("WITHIN").pipe(
    Config.validate({ message: "must be a positive duration", validation: (d) => Duration.toMillis(d) > 0 }),
    Config.withDefault(Duration.seconds(5))
  ),
  shutdownTimeout: Config.duration("SHUTDOWN_TIMEOUT").pipe(
    Config.validate({ message: "must be a positive duration", validation: (d) => Duration.toMillis(d) > 0 }),
    Config.withDefault(Duration.seconds(5))
  ),
  escalateOnDefect: Config.boolean("ESCALATE_ON_DEFECT").pipe(Config.withDefault(true))
}).pipe(Config.map(({ maxRestarts, within, ...rest }): Options => ({ ...rest, intensity: { maxRestarts, within } })))

/**
 * {@link layer} with its options read from `Config` (see {@link config}); `restartSchedule`
 * can only be given in code, through `options`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config<Options> = config,
  extra: Pick<Options, "restartSchedule"> = {}
): Layer.Layer<FiberSupervisor, ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(options, (read) => layer({ ...read, ...extra })))

/**
 * Spawns a program under the supervisor in the context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const spawn = <A, E, R>(
  name: string,
  program: Effect.Effect<A, E, R>,
  options?: SpawnOptions
): Effect.Effect<void, never, FiberSupervisor | R> =>
  Effect.flatMap(FiberSupervisor, (supervisor) => supervisor.spawn(name, program, options))

/**
 * The snapshot of the supervisor in the context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const snapshot: Effect.Effect<Snapshot, never, FiberSupervisor> = Effect.flatMap(
  FiberSupervisor,
  (supervisor) => supervisor.snapshot
)

/**
 * Runs `main` with a supervisor and fails with {@link SupervisorEscalation} as soon as the
 * supervisor escalates (main is interrupted first). When main ends, the supervisor shuts down.
 *
 * @since 0.1.0
 * @category combinators
 */
export const run = <A, E, R>(
  main: Effect.Effect<A, E, R>,
  options: Options = {}
): Effect.Effect<A, E | SupervisorEscalation, Exclude<R, FiberSupervisor>> =>
  Effect.scoped(
    Effect.flatMap(make(options), (service) =>
      Effect.raceFirst(
        Effect.provideService(main, FiberSupervisor, service),
        service.awaitEscalation
      ))
  )

// -----------------------------------------------------------------------------
// inner tier
// -----------------------------------------------------------------------------

/**
 * Options for {@link loop}.
 *
 * @since 0.1.0
 * @category models
 */
export interface LoopOptions<A, E> {
  /** The program name in logs. Default: the supervised program's name, or `"loop"`. */
  readonly name?: string | undefined
  /**
   * The delays between retries of a failing step, stepped once per consecutive failure and
   * started afresh after each successful step; a schedule that ends gives up. An error's own
   * `retryAfter` hint lengthens the delay. Default: seed 002's robust task, exponential from
   * 5 seconds, doubling, capped at 5 minutes (5 s, 10 s, 20 s … 5 min).
   */
  readonly schedule?: Schedule.Schedule<unknown, E> | undefined
  /** A table for the step's errors, consulted before the classifier in the context. Default: none. */
  readonly classify?: Failure.Table<E> | undefined
  /**
   * How many consecutive failures in a row are retried before giving up. Default: the
   * classification's `maxRetries` (seed 001's decision matrix: 5 for connection errors …).
   */
  readonly maxRetries?: number | undefined
  /** A pause after each successful step; a duration >= 0. Default: none. */
  readonly interval?: Duration.DurationInput | undefined
  /** Keeps looping while this holds for the step's result. Default: forever. */
  readonly while?: ((a: A) => boolean) | undefined
}

const defaultLoopSchedule: Schedule.Schedule<unknown, unknown> = Schedule.exponential("5 seconds", 2).pipe(
  Schedule.modifyDelay((d) => Duration.min(d, Duration.minutes(5)))
)

/**
 * The inner tier: runs `step` again and again. A typed failure the classification calls
 * retryable is recovered inside the loop (warning log with the attempt and the delay, then the
 * loop carries on) as long as the consecutive failures stay within the budget; the budget and the
 * schedule start afresh after each successful step. Whatever else happens — a failure that is not
 * retryable or exceeds the budget, a defect, an interruption — leaves the loop for the outer tier.
 *
 * Run under a supervisor, each recovered failure is counted in the program's `errors`, and the
 * program shows as `backing-off` while the loop waits.
 *
 * @example
 * ```ts
 * import { FiberSupervisor } from "@bulwark/core"
 * import { Effect } from "effect"
 *
 * declare const pollOnce: Effect.Effect<void, Error>
 *
 * const poller = FiberSupervisor.loop(pollOnce, { interval: "10 seconds" })
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const loop = <A, E, R>(step: Effect.Effect<A, E, R>, options: LoopOptions<A, E> = {}): Effect.Effect<
  void,
  E,
  R
> =>
  Effect.gen(function*() {
    const classifier = yield* Failure.currentClassifier
    const child = yield* FiberRef.get(currentChild)
    const name = options.name ?? child?.name ?? "loop"
    const schedule = (options.schedule ?? defaultLoopSchedule) as Schedule.Schedule<unknown, E>
    const table = options.classify
    const intervalMillis = options.interval === undefined ? undefined : InternalDuration.toMillis(options.interval)
    if (intervalMillis !== undefined && !(intervalMillis >= 0)) {
      return yield* Effect.dieMessage(
        `FiberSupervisor.loop: interval must be a duration >= 0, got ${String(options.interval)}`
      )
    }
    const interval = intervalMillis === undefined ? undefined : Duration.millis(intervalMillis)
    const keepGoing = options.while
    if (options.maxRetries !== undefined && (!Number.isInteger(options.maxRetries) || options.maxRetries < 0)) {
      return yield* Effect.dieMessage(
        `FiberSupervisor.loop: maxRetries must be a whole number >= 0, got ${options.maxRetries}`
      )
    }
    const classifyError = (error: E, attempt: number): Failure.Classification => {
      const rule = table?.rule(error)
      if (rule === undefined) return classifier.classify(error, { attempt })
      const tag = (error as { readonly _tag?: unknown })._tag
      return Failure.fromRule(rule, {
        matrix: classifier.matrix,
        tag: typeof tag === "string" ? tag : undefined,
        context: { attempt }
      })
    }
    let failures = 0
    let state: unknown = schedule.initial
    while (true) {
      const exit = yield* Effect.exit(step)
      if (Exit.isSuccess(exit)) {
        failures = 0
        state = schedule.initial
        if (keepGoing !== undefined && !keepGoing(exit.value)) return
        if (interval !== undefined) yield* Effect.sleep(interval)
        continue
      }
      const cause = exit.cause
      const failure = Cause.failureOption(cause)
      if (Option.isNone(failure) || Cause.isDie(cause)) return yield* Effect.failCause(cause)
      const error = failure.value
      failures++
      const classification = classifyError(error, failures)
      const budget = options.maxRetries ?? classification.maxRetries
      const now = yield* Clock.currentTimeMillis
      const next = classification.retryable && failures <= budget
        ? yield* nextDelay(schedule as Schedule.Schedule<unknown, unknown>, state, error, now)
        : Option.none()
      const annotations = {
        "bulwark.program": name,
        "bulwark.attempt": failures,
        "bulwark.category": classification.category,
        "bulwark.code": classification.code
      }
      if (Option.isNone(next)) {
        yield* Effect.logError(
          `Program "${name}" gave up after ${failures} consecutive failure(s): ${classification.code}${
            classification.retryable ? " (retry budget exhausted)" : " (not retryable)"
          }`,
          cause
        ).pipe(Effect.annotateLogs(annotations))
        return yield* Effect.failCause(cause)
      }
      state = next.value[0]
      const delay = Option.match(classification.retryAfter, {
        onNone: () => next.value[1],
        onSome: (hint) => Math.max(next.value[1], Duration.toMillis(hint))
      })
      if (child !== undefined) {
        child.sup.recordError(
          child,
          Failure.fromClassification(classification, describe(error), now, { taskId: name }),
          now
        )
        child.sup.setStatus(child, "backing-off", now)
      }
      yield* Metric.increment(
        tagged(recoveredTotal, {
          program: name,
          category: classification.category,
          code: classification.code
        })
      )
      yield* Effect.logWarning(
        `Program "${name}" failed (${classification.code}); retrying in ${
          Duration.format(Duration.millis(delay))
        } (attempt ${failures + 1})`,
        cause
      ).pipe(Effect.annotateLogs({ ...annotations, "bulwark.delay": Duration.format(Duration.millis(delay)) }))
      yield* Effect.sleep(Duration.millis(delay))
      if (child !== undefined) child.sup.setStatus(child, "running", yield* Clock.currentTimeMillis)
    }
  })
