/**
 * Two-tier supervision of long-running programs.
 *
 * The inner tier, {@link loop}, runs a step forever and recovers typed, retryable failures inside
 * the loop (a log at the failure's level, backoff from a `Schedule`, carry on) without restarting
 * the program; it classifies each failure when it happens, in its own fiber. The outer tier, a
 * supervisor, runs named programs as fibers: whatever escapes a program's inner loop (a defect, or
 * a failure the loop gave up on, reported with the loop's classification) ends that run with a
 * fatal log naming the program and showing its whole cause; the supervisor then restarts it
 * according to its restart type, its strategy, a restart backoff `Schedule` and a restart
 * intensity limit. A defect (by default), an exceeded intensity or an ended restart schedule
 * escalates: every program is interrupted, its finalizers run, and the supervisor fails with a
 * typed {@link SupervisorEscalation}, which {@link supervised} (or {@link run}) turns into a
 * failure of the main program. Interruption is never a failure: it never counts, never restarts
 * and never escalates.
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
import * as Equal from "effect/Equal"
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
import { describe, tagOf } from "./internal/describe.js"
import * as InternalDuration from "./internal/duration.js"
import * as SupervisorState from "./internal/supervisorState.js"

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
 * The metrics of one supervised program. `errors` counts every typed
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
 * Why a supervisor escalated:
 * - `defect`: a program died with a defect (with `escalateOnDefect`, the default);
 * - `intensity`: programs restarted more often than the restart intensity allows;
 * - `schedule`: a program's restart schedule ended, so it may not be restarted again.
 *
 * @since 0.1.0
 * @category models
 */
export const EscalationReason = Schema.Literal("defect", "intensity", "schedule")

/**
 * @since 0.1.0
 * @category models
 */
export type EscalationReason = typeof EscalationReason.Type

/**
 * The supervisor gave up: a program died with a defect, programs restarted more often than the
 * restart intensity allows, or a program's restart schedule ended. Every program has been
 * interrupted (and its finalizers have run) before this error is raised. It carries the cause of
 * the last program's end and, when that end was a failure, its classification (`lastError`).
 *
 * @since 0.1.0
 * @category errors
 */
export class SupervisorEscalation extends Schema.TaggedError<SupervisorEscalation>()("SupervisorEscalation", {
  supervisor: Schema.String,
  program: Schema.String,
  reason: EscalationReason,
  maxRestarts: Schema.Number,
  within: Schema.String,
  cause: Schema.Cause({ error: Schema.Unknown, defect: Schema.Defect }),
  lastError: Schema.optional(Failure.ExecutionError)
}) {
  override get message(): string {
    const last = this.lastError === undefined ? "" : ` (last error: ${this.lastError.type} ${this.lastError.code})`
    switch (this.reason) {
      case "defect":
        return `Supervisor "${this.supervisor}" escalated: program "${this.program}" died with a defect`
      case "schedule":
        return `Supervisor "${this.supervisor}" escalated: the restart schedule of program "${this.program}" ended${last}`
      default:
        return `Supervisor "${this.supervisor}" escalated: more than ${this.maxRestarts} restarts within ${this.within} (last: program "${this.program}")${last}`
    }
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
   * A schedule that ends means the program may not be restarted again: the supervisor escalates
   * (reason `"schedule"`), as it does when the restart intensity is exceeded, so
   * `Schedule.recurs(5)` allows at most 5 restarts in a row. Every restart waits for a timer,
   * even after a zero delay, so a program that fails at once never starves the event loop.
   * Default: exponential from 100 ms, doubling, capped at 10 seconds.
   */
  readonly restartSchedule?: Schedule.Schedule<unknown, unknown> | undefined
  /** Whether a defect in a program escalates (`true`) or is restarted like a failure. Default: `true`. */
  readonly escalateOnDefect?: boolean | undefined
  /** How long each program may take to finish its finalizers when interrupted. Default: 5 seconds. */
  readonly shutdownTimeout?: Duration.DurationInput | undefined
  /**
   * How many finished programs (stopped or failed, not to be restarted) stay readable in
   * {@link Service.snapshot} once they have ended; the oldest is forgotten first. Programs that
   * are running or waiting to restart always show. A whole number >= 0. Default: 100.
   */
  readonly retainFinished?: number | undefined
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
  /**
   * The metrics of every active program and of the most recently finished ones (see
   * {@link Options.retainFinished}), in start order.
   */
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

/**
 * A program's record: the state the rules read and write (see `internal/supervisorState.ts`)
 * plus what only the shell touches. One object per program holds both.
 */
interface Child extends SupervisorState.Program {
  readonly run: Effect.Effect<unknown, unknown>
  readonly context: Context.Context<never>
  readonly shutdownTimeout: Duration.Duration
  readonly restartSchedule: Schedule.Schedule<unknown, unknown>
  readonly sup: Internal
  fiber: Fiber.RuntimeFiber<void> | undefined
}

/** What a program's inner loops report to their supervisor. */
interface Internal {
  readonly name: string
  recordError(child: Child, error: Failure.ExecutionError, now: number): void
  /** A loop of the run `generation` starts (`+1`) or ends (`-1`) waiting before a retry. */
  loopBackoff(child: Child, generation: number, delta: 1 | -1, now: number): void
  loopGaveUp(child: Child, generation: number, gaveUp: SupervisorState.GaveUp): void
}

/** The supervised program the current fiber belongs to, if any. */
const currentChild = FiberRef.unsafeMake<Child | undefined>(undefined)

/** The delay a restarted runner waits before its first run (read only by restarted runners). */
const currentRestartDelay = FiberRef.unsafeMake<number>(0)

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

/**
 * Classifies a typed failure without ever throwing (a classifier built by `Failure` never throws;
 * a hand-written one might): a typed failure must never become a defect, so a classifier that
 * throws gives way to the classifier's rule for unclassified failures.
 */
const classifySafely = (
  classifier: Failure.Classifier,
  error: unknown,
  context: Failure.ClassifyContext | undefined
): Failure.Classification => {
  try {
    return classifier.classify(error, context)
  } catch {
    return Failure.fromRule(classifier.unclassified, {
      matrix: classifier.matrix,
      maxRetryAfter: classifier.maxRetryAfter,
      ...(context ? { context } : {})
    })
  }
}

const classifyDefectSafely = (classifier: Failure.Classifier, defect: unknown): Failure.Classification => {
  try {
    return classifier.classifyDefect(defect)
  } catch {
    return Failure.defaultClassifier.classifyDefect(undefined)
  }
}

/**
 * How a run's end is described: a failure one of the program's loops gave up on keeps the
 * classification the loop made; any other failure is classified here, in the program's fiber,
 * with the classifier in its context.
 */
const executionError = (
  classifier: Failure.Classifier,
  child: Child,
  cause: Cause.Cause<unknown>,
  now: number
): readonly [Failure.ExecutionError, Failure.Classification] => {
  const failure = Cause.failureOption(cause)
  let classification: Failure.Classification
  let value: unknown
  if (Option.isSome(failure)) {
    value = failure.value
    let known: SupervisorState.GaveUp | undefined
    for (let i = child.gaveUp.length - 1; i >= 0 && known === undefined; i--) {
      if (Object.is(child.gaveUp[i]!.error, value)) known = child.gaveUp[i]
    }
    classification = known !== undefined ? known.classification : classifySafely(classifier, value, undefined)
  } else {
    value = Option.getOrUndefined(Cause.dieOption(cause))
    classification = classifyDefectSafely(classifier, value)
  }
  return [Failure.fromClassification(classification, describe(value), now, { taskId: child.name }), classification]
}

/**
 * The cause to hand to a logger. Loggers render a cause as text, and a failure value that
 * cannot be turned into text (`Object.create(null)`, a throwing `toString` or `message` getter)
 * would make the log call throw, and so kill the fiber that logs it. Such values are replaced,
 * for the log only, by errors carrying their safe description.
 */
const loggableCause = (cause: Cause.Cause<unknown>): Cause.Cause<unknown> => {
  try {
    Cause.pretty(cause)
    return cause
  } catch {
    const described = (u: unknown) => {
      const error = new Error(describe(u))
      error.name = tagOf(u) ?? "Error"
      return error
    }
    const failures = Cause.failures(cause)
    const defects = Cause.defects(cause)
    let safe: Cause.Cause<unknown> = Cause.empty
    for (const failure of failures) safe = Cause.parallel(safe, Cause.fail(described(failure)))
    for (const defect of defects) safe = Cause.parallel(safe, Cause.die(described(defect)))
    return safe
  }
}

const describeError = (error: Failure.ExecutionError): string =>
  `${error.code} (${error.type}, ${error.severity}): ${error.message}`

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
 * Told of every escalation of every supervisor built with it in the context, before the
 * escalation fails anything. A runtime provides it around the whole application (Layers
 * included) to know that a supervisor escalated even when the application caught the
 * {@link SupervisorEscalation} and ended normally, so that the process still exits with a
 * failure code. A listener that dies is logged at error level and the escalation goes on (as
 * does one whose `Alerts` service dies): nothing it does can keep the escalation from failing.
 *
 * @example
 * ```ts
 * import { FiberSupervisor } from "@bulwark/core"
 * import { Effect } from "effect"
 *
 * declare const app: Effect.Effect<void>
 *
 * let escalated: FiberSupervisor.SupervisorEscalation | undefined
 * const watched = app.pipe(
 *   Effect.provideService(FiberSupervisor.EscalationListener, {
 *     onEscalation: (escalation) => Effect.sync(() => escalated = escalation)
 *   })
 * )
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class EscalationListener extends Context.Tag("@bulwark/core/FiberSupervisor/EscalationListener")<
  EscalationListener,
  { readonly onEscalation: (escalation: SupervisorEscalation) => Effect.Effect<void> }
>() {}

/**
 * Finds a {@link SupervisorEscalation} in a `Cause`, whether it is a failure or a defect (after
 * `Effect.orDie`); `None` when the cause holds none.
 *
 * @since 0.1.0
 * @category errors
 */
export const findEscalation = (cause: Cause.Cause<unknown>): Option.Option<SupervisorEscalation> =>
  Cause.find(cause, (reason) => {
    const value = reason._tag === "Fail" ? reason.error : reason._tag === "Die" ? reason.defect : undefined
    return value instanceof SupervisorEscalation ? Option.some(value) : Option.none()
  })

/**
 * Creates a supervisor whose lifetime is the current scope: when the scope closes, every program
 * is interrupted in reverse start order (see {@link Service.shutdown}). Escalation is observed
 * through {@link Service.awaitEscalation}; {@link run} and {@link supervised} turn it into a
 * failure of the main program.
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
    const shutdownTimeout = positiveDuration(options.shutdownTimeout ?? "5 seconds", "shutdownTimeout")
    const restartSchedule = options.restartSchedule ?? defaultRestartSchedule
    /** Every rule and every piece of state besides fibers and streams. */
    const state = SupervisorState.make<Child>({
      strategy,
      maxRestarts,
      withinMillis: Duration.toMillis(within),
      escalateOnDefect: options.escalateOnDefect ?? true,
      retainFinished: positiveInt(options.retainFinished ?? 100, "retainFinished")
    })

    const alerts = yield* Effect.serviceOption(Alerts.Alerts)
    const listener = yield* Effect.serviceOption(EscalationListener)
    const lock = yield* Effect.makeSemaphore(1)
    const escalation = yield* Deferred.make<never, SupervisorEscalation>()
    // `undefined` marks the end: published once the supervisor has shut down
    const hub = yield* PubSub.sliding<ChildChange | undefined>(changesCapacity)
    let subscribers = 0
    let ended = false

    /** Publishes a change of the status a program shows, when anyone listens. */
    const publish = (change: SupervisorState.Change | undefined, at: number) => {
      if (change !== undefined && subscribers > 0) {
        Queue.unsafeOffer(hub, { supervisor: name, program: change.program, from: change.from, to: change.to, at })
      }
    }

    /** Applies a transition of the rules now and publishes its change. */
    const transition = (apply: () => SupervisorState.Change | undefined): Effect.Effect<void> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => publish(apply(), now)))

    const internal: Internal = {
      name,
      recordError: SupervisorState.recordError,
      loopBackoff(child, generation, delta, now) {
        publish(SupervisorState.loopBackoff(state, child, generation, delta), now)
      },
      loopGaveUp: SupervisorState.loopGaveUp
    }

    /** Interrupts a runner and waits for it within the timeout; `false` when it overran. */
    const interruptWithin = (child: Child): Effect.Effect<boolean> => {
      const fiber = child.fiber
      if (fiber === undefined) return Effect.succeed(true)
      child.interrupting = true
      return Effect.flatMap(Effect.fiberId, (id) => {
        // a program stopping itself: nothing will be left to wait for once the interruption lands
        if (Equal.equals(id, fiber.id())) return Effect.as(fiber.interruptAsFork(id), true)
        // most programs finish at once: only start a timer for those that do not
        return Effect.zipRight(
          Effect.zipRight(fiber.interruptAsFork(id), Effect.yieldNow()),
          Effect.flatMap(Fiber.poll(fiber), (done) =>
            Option.isSome(done) ? Effect.succeed(true) : Effect.map(
              // the wait races its timer in a daemon fiber: an interruption reaching this fiber
              // (a shutdown run from a finalizer of a fiber interrupted again) is passed on to its
              // child fibers even while it is uninterruptible, and would cut the wait short
              Effect.flatMap(
                Effect.forkDaemon(
                  Effect.timeoutOption(Effect.interruptible(Fiber.await(fiber)), child.shutdownTimeout)
                ),
                Fiber.join
              ),
              Option.isSome
            ))
        )
      })
    }

    /**
     * Interrupts programs one at a time, in the order given. With `final`, they are not to run
     * again: each is stopped for good before it is interrupted; otherwise each is marked stopped
     * once it has ended (a group restart starts it again).
     */
    const interruptAll = (victims: ReadonlyArray<Child>, final: boolean): Effect.Effect<ShutdownReport> =>
      Effect.gen(function*() {
        const stopped: Array<string> = []
        const overran: Array<string> = []
        for (const c of victims) {
          // before the interruption: a program stopping itself never comes back to this point
          if (final) yield* transition(() => SupervisorState.stopForGood(state, c))
          const inTime = yield* interruptWithin(c)
          stopped.push(c.name)
          if (!inTime) {
            overran.push(c.name)
            yield* Effect.logWarning(
              `Program "${c.name}" did not finish within its shutdown timeout of ${Duration.format(c.shutdownTimeout)}`
            ).pipe(Effect.annotateLogs({ "bulwark.supervisor": name, "bulwark.program": c.name }))
          }
          if (!final) yield* transition(() => SupervisorState.markStopped(state, c))
        }
        return { stopped, overran }
      })

    const escalate = (
      child: Child,
      reason: EscalationReason,
      cause: Cause.Cause<unknown>,
      lastError: Failure.ExecutionError | undefined
    ) =>
      Effect.gen(function*() {
        const { change, victims } = SupervisorState.escalate(state, child)
        publish(change, yield* Clock.currentTimeMillis)
        const error = new SupervisorEscalation({
          supervisor: name,
          program: child.name,
          reason,
          maxRestarts,
          within: Duration.format(within),
          cause,
          ...(lastError !== undefined ? { lastError } : {})
        })
        // delivered whatever happens below: a listener, an alert sink or a logger that dies must not
        // keep the escalation from `supervised` (the process would never exit)
        yield* Effect.ensuring(
          report(child, reason, error, cause, lastError, victims),
          Deferred.fail(escalation, error)
        )
      })

    /** The escalation's side effects, before it is delivered: the victims stopped, then told. */
    const report = (
      child: Child,
      reason: EscalationReason,
      error: SupervisorEscalation,
      cause: Cause.Cause<unknown>,
      lastError: Failure.ExecutionError | undefined,
      victims: ReadonlyArray<Child>
    ) =>
      Effect.gen(function*() {
        yield* interruptAll(victims, true)
        yield* Metric.increment(Metric.tagged(Metric.tagged(escalationsTotal, "supervisor", name), "reason", reason))
        yield* Effect.logFatal(
          fatalBanner(
            error.message,
            `${
              lastError !== undefined ? `Last error: ${describeError(lastError)}. ` : ""
            }Every program has been stopped; the process should exit to be restarted`
          ),
          loggableCause(cause)
        ).pipe(Effect.annotateLogs({
          "bulwark.supervisor": name,
          "bulwark.program": child.name,
          ...(lastError !== undefined ? { "bulwark.category": lastError.type, "bulwark.code": lastError.code } : {})
        }))
        if (Option.isSome(alerts)) {
          yield* contained(
            "the alert of an escalation",
            alerts.value.alert({
              key: `supervisor:${name}`,
              kind: "supervisor_escalation",
              severity: "critical",
              message: error.message,
              annotations: {
                supervisor: name,
                program: child.name,
                reason,
                ...(lastError !== undefined
                  ? { category: lastError.type, code: lastError.code, severity: lastError.severity }
                  : {})
              }
            })
          )
        }
        if (Option.isSome(listener)) yield* contained("the escalation listener", listener.value.onEscalation(error))
      })

    const contained = (what: string, effect: Effect.Effect<void>) =>
      Effect.catchAllCause(effect, (cause) =>
        Effect.logError(`${what} of supervisor "${name}" died; the escalation goes on`, cause).pipe(
          Effect.annotateLogs({ "bulwark.supervisor": name })
        ))

    /**
     * Forks the runner of a program; a restart first waits for its delay. The runner is one of
     * the shared runner effects: what it needs of its program (the program itself, the delay, the
     * context of a group restart) is handed over as fiber refs the forked fiber inherits, set
     * around the fork in the forking fiber, so that the runner's fiber holds nothing of its own.
     */
    const start = (child: Child, restartDelay: number | undefined, provideContext: boolean): Effect.Effect<void> => {
      // forked uninterruptible, so that the runner's shell needs no region of its own to run
      // `runnerEnded` (see `runnerShell`)
      let fork: Effect.Effect<Fiber.RuntimeFiber<void>> = Effect.uninterruptible(Effect.forkDaemon(
        restartDelay === undefined ? runner : restartedRunner
      ))
      if (restartDelay !== undefined) {
        fork = Effect.locally(fork, currentRestartDelay, restartDelay)
      }
      if (provideContext) {
        fork = Effect.locally(fork, FiberRef.currentContext, child.context)
      }
      return Effect.flatMap(
        Effect.locally(
          Effect.suspend(() => {
            child.interrupting = false
            return fork
          }),
          currentChild,
          child
        ),
        (fiber) =>
          Effect.sync(() => {
            // the runner sets it too, first thing, in case it ran to its end before this point
            if (!child.interrupting && child.fiber !== fiber && child.status !== "stopped") {
              child.fiber = fiber
            }
          })
      )
    }

    /** Restarts the siblings that the strategy takes down with a program (given in start order). */
    const restartGroup = (group: ReadonlyArray<Child>, delayMillis: number) =>
      Effect.gen(function*() {
        yield* interruptAll([...group].reverse(), false)
        for (const c of group) {
          const requeued = SupervisorState.requeue(state, c)
          if (requeued === undefined) {
            continue
          }
          publish(requeued.change, yield* Clock.currentTimeMillis)
          yield* start(c, delayMillis, true)
        }
      })

    /**
     * Records how a run ended, before the supervisor's lock is taken, so that a failure is
     * counted and logged even when the program is interrupted while waiting for the decision.
     * Runs in the program's fiber: a failure no loop classified is classified with its context.
     */
    const observe = (child: Child, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> => {
      if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)) {
        return Effect.void
      }
      const cause = exit.cause
      return Effect.flatMap(
        Effect.zip(Failure.currentClassifier, Clock.currentTimeMillis),
        ([classifier, now]) => {
          const [error, classification] = executionError(classifier, child, cause, now)
          SupervisorState.recordError(child, error, now)
          return Effect.zipRight(
            Failure.logWarnings(classifier, classification),
            Effect.zipRight(
              Metric.increment(
                tagged(failuresTotal, { supervisor: name, program: child.name, category: error.type, code: error.code })
              ),
              Effect.logFatal(
                fatalBanner(
                  `Program "${child.name}" of supervisor "${name}" terminated by ${
                    Cause.isDie(cause) ? "a defect" : "a failure"
                  }`,
                  describeError(error)
                ),
                loggableCause(cause)
              ).pipe(Effect.annotateLogs({
                "bulwark.supervisor": name,
                "bulwark.program": child.name,
                "bulwark.category": error.type,
                "bulwark.code": error.code,
                "bulwark.severity": error.severity
              }))
            )
          )
        }
      )
    }

    /**
     * Carries out what the rules decide after a run: `undefined` to stop, or the delay before the
     * next run. Steps the restart schedule when the rules allow a restart. Runs under the
     * supervisor's lock, uninterruptibly.
     */
    const decide = (child: Child, exit: Exit.Exit<unknown, unknown>): Effect.Effect<number | undefined> =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const end: SupervisorState.End = Exit.isSuccess(exit)
          ? "success"
          : Cause.isInterruptedOnly(exit.cause)
          ? "interrupted"
          : Cause.isDie(exit.cause)
          ? "defect"
          : "failure"
        const decision = SupervisorState.decide(state, child, end, now)
        if (decision._tag === "stop") {
          publish(decision.change, now)
          return undefined
        }
        const cause = Exit.isFailure(exit) ? exit.cause : Cause.empty
        const lastError = Exit.isFailure(exit) ? child.lastError : undefined
        if (end === "success") {
          yield* Effect.logWarning(`Program "${child.name}" completed; restarting it (permanent)`).pipe(
            Effect.annotateLogs({ "bulwark.supervisor": name, "bulwark.program": child.name })
          )
        }
        if (decision._tag === "escalate") {
          yield* escalate(child, decision.reason, cause, lastError)
          return undefined
        }
        const schedule = child.restartSchedule
        const step = yield* nextDelay(
          schedule,
          decision.position === undefined ? schedule.initial : decision.position,
          Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined,
          now
        )
        const restart = SupervisorState.restart(state, child, Option.getOrUndefined(step), now)
        if (restart._tag === "escalate") {
          yield* escalate(child, restart.reason, cause, lastError)
          return undefined
        }
        publish(restart.change, now)
        if (restart.group.length > 0) {
          yield* restartGroup(restart.group, restart.delay)
        }
        return restart.delay
      })

    // The runner is the program's fiber for its whole life, restarts included. A supervised program
    // should cost little more than its fiber, so the runner's effects are built once per supervisor
    // and shared by every program: each runner finds its program through a fiber ref, and while a
    // program runs its fiber holds no per-program frames. The context is set only when the runner
    // is forked by another program's runner (a group restart) rather than by the caller of spawn.
    const thisChild = FiberRef.get(currentChild) as Effect.Effect<Child>
    const markRunning = Effect.flatMap(thisChild, (child) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const { change, restarted } = SupervisorState.markRunning(state, child, now)
        publish(change, now)
        return restarted
          ? Metric.increment(Metric.tagged(Metric.tagged(restartsTotal, "supervisor", name), "program", child.name))
          : Effect.void
      }))
    const runProgram = Effect.flatMap(thisChild, (child) =>
      child.run)
    // After a run: record how it ended (uninterruptibly, before waiting for the lock, so that a
    // failure is counted even if the program is interrupted while waiting), then take the lock and
    // decide. Every restart waits for a timer, a zero delay included: a program that fails at once
    // must leave room for the rest of the process (other fibers, I/O, timers). Every step is a
    // shared effect or a tail call, so a program that restarts many times does not grow its
    // fiber's stack and an idle program holds no per-program frames.
    const afterRun = (exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> =>
      Effect.flatMap(thisChild, (child) =>
        Effect.zipRight(
          Effect.uninterruptible(observe(child, exit)),
          Effect.flatMap(lock.withPermits(1)(Effect.uninterruptible(decide(child, exit))), (next) =>
            next === undefined
              ? Effect.void
              : Effect.zipRight(Effect.sleep(Duration.millis(next)), runAgain))
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
            loggableCause(cause)
          ).pipe(Effect.annotateLogs({ "bulwark.supervisor": name, "bulwark.program": child.name })),
          lock.withPermits(1)(
            Effect.uninterruptible(
              Effect.suspend(() =>
                state.closing || state.escalated
                  ? transition(() => SupervisorState.setStatus(state, child, "failed"))
                  : escalate(child, "defect", cause, undefined)
              )
            )
          )
        ))

    // However the runner ends — its program not to be restarted, or its fiber interrupted by the
    // program itself rather than by the supervisor — the program no longer shows as running and
    // leaves the map. When the supervisor interrupted it, the supervisor decides instead.
    const runnerEnded: Effect.Effect<void> = Effect.withFiberRuntime((fiber) =>
      Effect.suspend(() => {
        const child = fiber.getFiberRef(currentChild)
        if (child === undefined || child.fiber !== fiber || child.interrupting) return Effect.void
        return Effect.map(Clock.currentTimeMillis, (now) => publish(SupervisorState.runnerEnded(state, child), now))
      })
    )

    // The runner's shell, shared by every program: it claims its fiber for its program, runs the
    // rounds (after the delay, for a restart), logs a runner that died, and runs `runnerEnded`
    // however it ends. Built from shared effects only (not `Effect.ensuring`, which allocates its
    // mask, its handlers and their effects in every fiber it runs in): an idle runner's stack holds
    // nothing built for its program. The runner is forked uninterruptible and makes its rounds
    // interruptible (even when forked from an uninterruptible region, a group restart): one region,
    // and the handlers after it run uninterruptibly, as a finalizer does.
    const claim: Effect.Effect<void> = Effect.withFiberRuntime((fiber) => {
      const child = fiber.getFiberRef(currentChild)
      if (child !== undefined) child.fiber = fiber as Fiber.RuntimeFiber<void>
      return Effect.void
    })
    const afterRunnerFailed = (cause: Cause.Cause<never>): Effect.Effect<void> =>
      Effect.zipRight(runnerEnded, Effect.failCause(cause))
    const afterRunnerSucceeded = (): Effect.Effect<void> => runnerEnded
    const runnerShell = (rounds: Effect.Effect<void>): Effect.Effect<void> =>
      Effect.matchCauseEffect(
        Effect.interruptible(Effect.catchAllCause(Effect.zipRight(claim, rounds), runnerDied)),
        { onFailure: afterRunnerFailed, onSuccess: afterRunnerSucceeded }
      )
    const runner: Effect.Effect<void> = runnerShell(runRounds)
    const restartedRunner: Effect.Effect<void> = runnerShell(
      Effect.flatMap(FiberRef.get(currentRestartDelay), (delay) =>
        Effect.zipRight(Effect.sleep(Duration.millis(delay)), runRounds))
    )

    const spawn = <A, E, R>(
      childName: string,
      program: Effect.Effect<A, E, R>,
      spawnOptions: SpawnOptions = {}
    ): Effect.Effect<void, never, R> =>
      Effect.gen(function*() {
        if (!SupervisorState.canSpawn(state, childName)) {
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
        // one literal: the record of the rules and the shell's fields in one object per program
        const child: Child = {
          name: childName,
          seq: SupervisorState.nextSeq(state),
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
          fiber: undefined,
          run: program as Effect.Effect<unknown, unknown>,
          context: context as Context.Context<never>,
          shutdownTimeout: spawnOptions.shutdownTimeout === undefined
            ? shutdownTimeout
            : positiveDuration(spawnOptions.shutdownTimeout, "shutdownTimeout"),
          restartSchedule: spawnOptions.restartSchedule ?? restartSchedule,
          sup: internal
        }
        const admitted = SupervisorState.admit(state, child)
        if (admitted === undefined) {
          return
        }
        publish(admitted, now)
        yield* start(child, undefined, false)
      })

    // under the lock, like every decision: a stop that overlapped a group restart would otherwise
    // interrupt the old runner while the restart forks a new one, and the new one would run on,
    // marked stopped, beyond the reach of shutdown
    const stop = (childName: string): Effect.Effect<boolean> =>
      lock.withPermits(1)(Effect.suspend(() => {
        const child = state.programs.get(childName)
        if (child === undefined || !SupervisorState.isActive(child)) {
          return Effect.succeed(false)
        }
        return Effect.as(interruptAll([child], true), true)
      }))

    const snapshot = Effect.sync((): Snapshot => ({
      supervisor: name,
      strategy,
      escalated: state.escalated,
      children: SupervisorState.rows(state)
    }))

    // ends once the supervisor has shut down, after the changes published before the end
    const changes: Stream.Stream<ChildChange> = Stream.unwrapScoped(Effect.suspend(() =>
      ended ? Effect.succeed(Stream.empty) : Effect.map(
        Effect.acquireRelease(
          Effect.tap(PubSub.subscribe(hub), () =>
            Effect.sync(() =>
              subscribers++
            )),
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
      Effect.suspend(() => Effect.zipLeft(interruptAll(SupervisorState.shutdown(state), true), end))
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

    yield* Effect.addFinalizer(() => shutdown)

    yield* Health.registerIfPresent(
      `supervisor:${name}`,
      Effect.sync((): Health.ComponentHealth =>
        state.escalated
          ? { status: "down", details: { escalated: true } }
          : { status: "up", details: { programs: state.programs.size } }
      ),
      { kind: "liveness" }
    )
    yield* Health.registerIfPresent(
      `supervisor:${name}:programs`,
      Effect.sync((): Health.ComponentHealth =>
        state.backingOff > 0
          ? { status: "degraded", details: { backingOff: state.backingOff } }
          : { status: "up", details: { backingOff: 0 } }
      ),
      { kind: "readiness" }
    )

    const service: Service = {
      name,
      spawn,
      stop,
      snapshot,
      changes,
      awaitEscalation: Deferred.await(escalation),
      shutdown
    }
    watchersOf.set(service, { count: 0, delivered: false })
    return service
  })

/**
 * For each supervisor: how many {@link supervised} programs wait on its escalation, and whether
 * one of them has delivered it (the Layer's last resort is then not needed).
 */
const watchersOf = new WeakMap<Service, { count: number; delivered: boolean }>()

/**
 * Runs `main` so that an escalation of the supervisor in the context ends it with a failure it
 * can handle: `main` runs in its own fiber, raced against the escalation; when the supervisor
 * escalates, `main` is interrupted (its finalizers run) and `supervised(main)` fails with the
 * {@link SupervisorEscalation}, an ordinary failure that `Effect.catchTag`, `Effect.either`,
 * `Effect.exit` and every other combinator around it see. Use it at the boundary where the
 * supervisor's Layer is provided.
 *
 * @example
 * ```ts
 * import { FiberSupervisor } from "@bulwark/core"
 * import { Effect } from "effect"
 *
 * const main = FiberSupervisor.spawn("poller", Effect.log("polling"))
 *
 * const program = main.pipe(
 *   FiberSupervisor.supervised,
 *   Effect.provide(FiberSupervisor.layer({ name: "app" })),
 *   Effect.catchTag("SupervisorEscalation", (escalation) => Effect.logFatal(escalation.message))
 * )
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const supervised = <A, E, R>(
  main: Effect.Effect<A, E, R>
): Effect.Effect<A, E | SupervisorEscalation, R | FiberSupervisor> =>
  Effect.flatMap(FiberSupervisor, (service) => {
    const watchers = watchersOf.get(service)
    const raced = Effect.raceFirst(
      main,
      watchers === undefined ?
        service.awaitEscalation :
        Effect.tapError(service.awaitEscalation, () =>
          Effect.sync(() => {
            watchers.delivered = true
          }))
    )
    return watchers === undefined ? raced : Effect.acquireUseRelease(
      Effect.sync(() => {
        watchers.count++
      }),
      () => raced,
      () =>
        Effect.sync(() => {
          watchers.count--
        })
    )
  })

/**
 * Provides a supervisor for the lifetime of the Layer. Wrap the program that uses it in
 * {@link supervised} where the Layer is provided: an escalation then ends the program with a
 * {@link SupervisorEscalation} failure that anything around it can see and handle.
 *
 * Without `supervised`, an escalation can only stop the program by interrupting the fiber that
 * built the Layer (the main fiber, with `Effect.provide`); the Layer's scope then fails with the
 * escalation, so an unwrapped program ends in a failure that carries it. But an interrupted fiber
 * cannot handle anything: a `catchAll`, `either`, `exit` or `orDie` around the provided program
 * would only see the interruption. (Effect cannot fail another fiber from outside; only a fiber of
 * its own for the program, which `supervised` adds, turns an escalation into a failure.)
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
 * const program = main.pipe(FiberSupervisor.supervised, Effect.provide(FiberSupervisor.layer({ name: "app" })))
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
      // the last resort, for a program not wrapped in `supervised`
      const watchers = watchersOf.get(service)
      yield* Effect.forkScoped(
        Effect.catchAll(service.awaitEscalation, (error) =>
          watchers !== undefined && (watchers.count > 0 || watchers.delivered)
            ? Effect.void
            : Effect.zipRight(Deferred.fail(failed, error), Fiber.interruptAsFork(builder, builder.id())))
      )
      return service
    })
  )

/**
 * The supervisor's options read from `Config`: `NAME`, `STRATEGY`, `MAX_RESTARTS`, `WITHIN`,
 * `SHUTDOWN_TIMEOUT`, `ESCALATE_ON_DEFECT` and `RETAIN_FINISHED` (UPPER_SNAKE, like every Bulwark module, so the
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
  escalateOnDefect: Config.boolean("ESCALATE_ON_DEFECT").pipe(Config.withDefault(true)),
  retainFinished: InternalConfig.integer("RETAIN_FINISHED").pipe(
    Config.validate({ message: "must be a whole number >= 0", validation: (n) => n >= 0 }),
    Config.withDefault(100)
  )
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
   * `retryAfter` hint (from its classification) lengthens the delay. Default: exponential from
   * 5 seconds, doubling, capped at 5 minutes (5 s, 10 s, 20 s … 5 min).
   */
  readonly schedule?: Schedule.Schedule<unknown, E> | undefined
  /**
   * A table (or rule function) for the step's errors, tried before the classifier in the
   * program's context, which still classifies whatever it leaves out. Default: none.
   */
  readonly classify?: Failure.Classify<E> | undefined
  /**
   * Decides whether a failure is retried inside the loop, instead of the classification's
   * `retryable` (and whatever severity escalation says). The classification still gives the
   * retry-after hint, the count (unless `maxRetries` is given; a category that allows no retries
   * gets 3), the code and the log level. Default: the classification decides.
   */
  readonly retryWhile?: ((error: E, classification: Failure.Classification) => boolean) | undefined
  /**
   * How many consecutive failures in a row are retried before giving up: a whole number >= 0, or
   * `Infinity` for no limit. A number given here is honoured in full: severity escalation (which
   * abandons a critical failure after its second attempt) does not cut it short. Default: the
   * classification's `maxRetries` (5 for connection errors, 2 for timeouts …).
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
 * The longest a retry-after hint can hold the loop when the classification did not cap it (a
 * hand-written classifier; `Failure`'s classifiers cap hints at their `maxRetryAfter`).
 */
const maxRetryAfterMillis = Duration.toMillis(Failure.defaultMaxRetryAfter)

/** Retries a failure whose category allows none gets when `retryWhile` retries it anyway. */
const forcedRetries = 3

const logAt = (severity: Failure.Severity) => {
  const level = Failure.logLevel(severity)
  return level === "Fatal"
    ? Effect.logFatal
    : level === "Error"
    ? Effect.logError
    : level === "Warning"
    ? Effect.logWarning
    : Effect.logInfo
}

/**
 * The inner tier: runs `step` again and again. A typed failure is classified when it happens, in
 * the fiber that runs the loop: by the `classify` table when it knows the error, otherwise by the
 * classifier in the context. A failure that the classification (or `retryWhile`) says to retry is
 * recovered inside the loop (a log at the level of its severity with the attempt and the delay,
 * then the loop carries on) as long as the consecutive failures stay within the budget; the budget
 * and the schedule start afresh after each successful step. Whatever else happens — a failure
 * that is not retried or exceeds the budget, a defect, an interruption — leaves the loop for the
 * outer tier, which reports a failure the loop gave up on with the classification the loop made.
 *
 * Run under a supervisor, each recovered failure is counted in the program's `errors`, and the
 * program shows as `backing-off` while any of its loops waits.
 *
 * @example
 * ```ts
 * import { FiberSupervisor } from "@bulwark/core"
 * import { Effect } from "effect"
 *
 * const pollOnce: Effect.Effect<void, Error> = Effect.log("polled")
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
    const child = yield* FiberRef.get(currentChild)
    const name = options.name ?? child?.name ?? "loop"
    const schedule = (options.schedule ?? defaultLoopSchedule) as Schedule.Schedule<unknown, unknown>
    const table = options.classify
    const intervalMillis = options.interval === undefined ? undefined : InternalDuration.toMillis(options.interval)
    if (intervalMillis !== undefined && !(intervalMillis >= 0)) {
      return yield* Effect.dieMessage(
        `FiberSupervisor.loop: interval must be a duration >= 0, got ${describe(options.interval)}`
      )
    }
    const interval = intervalMillis === undefined ? undefined : Duration.millis(intervalMillis)
    const keepGoing = options.while
    const retryWhile = options.retryWhile
    const maxRetries = options.maxRetries
    if (maxRetries !== undefined && !(maxRetries === Infinity || (Number.isInteger(maxRetries) && maxRetries >= 0))) {
      return yield* Effect.dieMessage(
        `FiberSupervisor.loop: maxRetries must be a whole number >= 0 or Infinity, got ${maxRetries}`
      )
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
      // classified now, with the classifier of the fiber that saw the failure, refined by the table
      const classifier = Failure.refine(yield* Failure.currentClassifier, table)
      const classification = classifySafely(classifier, error, { attempt: failures })
      yield* Failure.logWarnings(classifier, classification)
      let retry: boolean
      let budget = maxRetries ?? classification.maxRetries
      if (retryWhile !== undefined) {
        retry = retryWhile(error, classification)
        // a failure the classification would never retry, retried anyway: a bounded count
        if (retry && maxRetries === undefined && !classification.retryable && classification.maxRetries === 0) {
          budget = forcedRetries
        }
      } else if (maxRetries !== undefined && !classification.retryable && classification.strategy === "abandon") {
        // a number the user gave wins over severity escalation: decide as on the first attempt
        retry = classifySafely(classifier, error, { attempt: 1 }).retryable
      } else {
        retry = classification.retryable
      }
      const now = yield* Clock.currentTimeMillis
      const next = retry && failures <= budget
        ? yield* nextDelay(schedule, state, error, now)
        : Option.none()
      const annotations = {
        "bulwark.program": name,
        "bulwark.attempt": failures,
        "bulwark.category": classification.category,
        "bulwark.code": classification.code,
        "bulwark.severity": classification.severity
      }
      const log = logAt(classification.severity)
      if (Option.isNone(next)) {
        if (child !== undefined) child.sup.loopGaveUp(child, child.generation, { error, classification })
        yield* log(
          `Program "${name}" gave up on attempt ${failures}: ${classification.code}${
            !retry ? " (not retried)" : failures > budget ? " (retry budget exhausted)" : " (schedule ended)"
          }`,
          loggableCause(cause)
        ).pipe(Effect.annotateLogs(annotations))
        return yield* Effect.failCause(cause)
      }
      state = next.value[0]
      const hint = Option.match(classification.retryAfter, {
        onNone: () => 0,
        onSome: (d) => Duration.toMillis(d)
      })
      const delay = Math.max(next.value[1], Number.isFinite(hint) ? hint : maxRetryAfterMillis)
      const generation = child?.generation ?? 0
      if (child !== undefined) {
        child.sup.recordError(
          child,
          Failure.fromClassification(classification, describe(error), now, { taskId: name }),
          now
        )
        child.sup.loopBackoff(child, generation, 1, now)
      }
      yield* Metric.increment(
        tagged(recoveredTotal, {
          program: name,
          category: classification.category,
          code: classification.code
        })
      )
      const delayText = Duration.format(Duration.millis(delay))
      yield* log(
        `Program "${name}" failed on attempt ${failures} (${classification.code}); retrying in ${delayText}`,
        loggableCause(cause)
      ).pipe(Effect.annotateLogs({ ...annotations, "bulwark.delay": delayText }))
      const wait = Effect.sleep(Duration.millis(delay))
      yield* child === undefined ? wait : Effect.ensuring(
        wait,
        Effect.flatMap(
          Clock.currentTimeMillis,
          (end) => Effect.sync(() => child.sup.loopBackoff(child, generation, -1, end))
        )
      )
    }
  })
