/**
 * Timeouts that interrupt the work and fail with a typed, classified {@link TimeoutError}.
 *
 * The interrupted work's finalizers have finished before the `TimeoutError` is raised, so a
 * caller that sees the error can rely on the work's resources having been released.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as Metric from "effect/Metric"
import * as RuntimeFlags from "effect/RuntimeFlags"
import * as Schema from "effect/Schema"
import * as Deadline from "./Deadline.js"
import * as Failure from "./Failure.js"
import { describe } from "./internal/describe.js"
import * as InternalDuration from "./internal/duration.js"
import { Armed, TimerLane } from "./internal/timerLane.js"
import * as VirtualTimer from "./internal/virtualTimer.js"

/**
 * The work did not finish within its time limit and was interrupted.
 *
 * Classification: category `timeout`, code `TIMEOUT`; the rest comes from the decision matrix's
 * `timeout` row (major, backoff retry, 2 retries, trips a breaker).
 *
 * @since 0.1.0
 * @category errors
 */
export class TimeoutError extends Schema.TaggedError<TimeoutError>()("TimeoutError", {
  duration: Schema.DurationFromSelf,
  operation: Schema.optional(Schema.String)
}) {
  override get message(): string {
    const what = this.operation === undefined ? "The operation" : `Operation "${this.operation}"`
    return `${what} timed out after ${Duration.format(this.duration)} and was interrupted`
  }
  get [Failure.RuleKey](): Failure.RuleObject {
    return { category: "timeout", code: "TIMEOUT" }
  }
}

/**
 * Timeouts raised (tagged `operation` when the timeout is named).
 *
 * @since 0.1.0
 * @category metrics
 */
export const timeoutsCounter = Metric.counter("bulwark_timeout_total", {
  description: "Calls interrupted by a timeout",
  incremental: true
})

/**
 * Options for {@link timeout}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** A name for the operation, carried by the error and the metric tag. Default: none. */
  readonly name?: string | undefined
}

/** The clock every runtime starts with; a timeout on it arms one Node timer directly. */
const liveClock: Clock.Clock = Context.get(DefaultServices.liveServices, Clock.Clock)

/** A longer wait never fires (Node clamps it to 1 ms); `Effect.sleep` treats it the same way. */
const MAX_TIMER_MILLIS = 2 ** 31 - 1

/**
 * The children of a running fiber. `getChildren` is a method of Effect's fiber runtime that
 * its public `RuntimeFiber` type does not list; without it the live-clock path is not taken.
 */
const childrenOf = (
  fiber: Fiber.RuntimeFiber<unknown, unknown>
): ReadonlySet<Fiber.RuntimeFiber<unknown, unknown>> | undefined => {
  const get = (fiber as { readonly getChildren?: unknown }).getChildren
  return typeof get === "function" ? get.call(fiber) : undefined
}

/** The defects of the interrupted work's exit (a finalizer that died), or `undefined`. */
const defectsOf = (cause: Cause.Cause<unknown>): Cause.Cause<never> | undefined =>
  Cause.isDie(cause)
    ? [...Cause.defects(cause)].reduce<Cause.Cause<never>>(
      (all, defect) => Cause.sequential(all, Cause.die(defect)),
      Cause.empty
    )
    : undefined

/** `cause` without the one interruption this timeout delivered (found by identity). */
const withoutInterruption = (cause: Cause.Cause<never>, by: FiberId.FiberId): Cause.Cause<never> =>
  Cause.match(cause, {
    onEmpty: Cause.empty,
    onFail: Cause.fail,
    onDie: Cause.die,
    onInterrupt: (id) => (id === by ? Cause.empty : Cause.interrupt(id)),
    onSequential: Cause.sequential,
    onParallel: Cause.parallel
  })

/**
 * Takes back the interruption this timeout delivered (found by identity). With no other
 * interruption pending, the fiber's interrupted cause is removed rather than set to an empty
 * cause: setting a fiber ref compares the old value with the new one, and comparing two causes
 * hashes both (most of what a timeout's failure path cost). Either way it then reads as empty.
 */
const forgetInterruption = (by: FiberId.FiberId): Effect.Effect<void> =>
  Effect.withFiberRuntime((fiber) => {
    const rest = withoutInterruption(fiber.getFiberRef(FiberRef.interruptedCause), by)
    return Cause.isEmpty(rest)
      ? FiberRef.delete(FiberRef.interruptedCause)
      : FiberRef.set(FiberRef.interruptedCause, rest)
  })

/**
 * The live-clock path: the work runs in the caller's fiber and one timer is armed for it. When
 * the timer fires it interrupts the caller's fiber (as Effect's own timeout interrupts the
 * work's fiber: by the caller's id). The interruption unwinds the work, its finalizers run, and
 * only then does the handler below see the work's exit: it takes back the interruption it
 * delivered (so the caller's fiber is not left interrupted) and fails with the TimeoutError.
 * An interruption from elsewhere is left in place and wins, as it does with a forked work.
 * Fibers the work forked and left running are interrupted and awaited when it ends, as they
 * are when the work has a fiber of its own.
 */
class LiveCall<A, E> extends Armed {
  /** The interruption this call's timer delivered, once it fired. */
  by: FiberId.FiberId | undefined = undefined
  /** Cancels the timer armed on a virtual clock (the testing kit's). */
  cancelVirtual: (() => void) | undefined = undefined
  constructor(
    readonly fiber: Fiber.RuntimeFiber<unknown, unknown>,
    readonly timedOut: Cause.Cause<TimeoutError>,
    readonly counter: Metric.Metric.Counter<number>
  ) {
    super()
  }
  override cancel(): void {
    if (this.cancelVirtual === undefined) return super.cancel()
    this.cancelVirtual()
  }
  fire(): void {
    const own = this.fiber.id()
    // a fresh object, so the handler finds this interruption and no other one
    this.by = FiberId.make(own.id, own.startTimeMillis)
    this.fiber.unsafeInterruptAsFork(this.by)
  }
  /** The work has ended with `exit`: the caller's answer. */
  settle(exit: Exit.Exit<A, E>): Effect.Effect<A, E | TimeoutError> {
    this.cancel()
    const children = childrenOf(this.fiber)
    if (children !== undefined && children.size > 0) {
      return Effect.zipRight(Fiber.interruptAll(Array.from(children)), Effect.suspend(() => this.answer(exit)))
    }
    return this.answer(exit)
  }
  answer(exit: Exit.Exit<A, E>): Effect.Effect<A, E | TimeoutError> {
    const by = this.by
    if (by === undefined) return exit
    return Effect.suspend(() => {
      this.counter.unsafeUpdate(1, [])
      const died = Exit.isFailure(exit) ? defectsOf(exit.cause) : undefined
      return Effect.zipRight(
        forgetInterruption(by),
        Effect.failCause(died === undefined ? this.timedOut : Cause.sequential(this.timedOut, died))
      )
    })
  }
}

const runLive = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  interruptible: boolean,
  lane: TimerLane,
  millis: number,
  timedOut: Cause.Cause<TimeoutError>,
  counter: Metric.Metric.Counter<number>,
  virtual?: VirtualTimer.VirtualTimer
): Effect.Effect<A, E | TimeoutError, R> => {
  const call = new LiveCall<A, E>(fiber, timedOut, counter)
  if (virtual !== undefined) call.cancelVirtual = virtual[VirtualTimer.TypeId](millis, () => call.fire())
  else if (lane.millis === millis) lane.arm(call)
  else if (millis <= MAX_TIMER_MILLIS) call.armAlone(millis)
  const handled = Effect.matchCauseEffect(interruptible ? Effect.interruptible(self) : self, {
    onSuccess: (a: A) => call.settle(Exit.succeed(a)),
    onFailure: (cause: Cause.Cause<E>) => call.settle(Exit.failCause(cause))
  })
  return interruptible ? Effect.uninterruptible(handled) : handled
}

/**
 * The error of each limit and name, made once: it is immutable, and a policy made again with
 * the same ones (the testing kit makes one per run) would otherwise build and check it again.
 * Bounded: past the bound the cache starts over.
 */
const timeoutErrors = new Map<string, TimeoutError>()

const timeoutErrorOf = (limit: Duration.Duration, name: string | undefined): TimeoutError => {
  const value = limit.value
  const key = `${value._tag === "Millis" ? value.millis : value._tag === "Nanos" ? `${value.nanos}n` : "Infinity"}${
    name === undefined ? "" : `|${name}`
  }`
  let error = timeoutErrors.get(key)
  if (error === undefined) {
    error = new TimeoutError(name === undefined ? { duration: limit } : { duration: limit, operation: name })
    if (timeoutErrors.size >= 256) timeoutErrors.clear()
    timeoutErrors.set(key, error)
  }
  return error
}

/**
 * A policy function that interrupts its effect once `duration` has passed on `Clock` and
 * fails with {@link TimeoutError}; when the `Deadline` is closer, it waits only for the time
 * left (and fails at once, without running the work, once the deadline has passed). The error
 * is raised only after the interrupted work's finalizers have finished; a defect in those finalizers is kept beside the error (a bug is
 * never dropped). A duration that is not a positive duration is a defect.
 *
 * On the live clock (and the virtual clock of `Testing.runScript`) the work runs in the caller's
 * fiber under one timer; with another `Clock` (`TestClock`) it runs as Effect's own timeout runs
 * it, in a fiber of its own raced against `Clock.sleep`. The results are the same, with one difference: a `FiberRef` the work sets
 * directly (not with `Effect.locally`) keeps its value on the live clock after a timeout or a
 * failure, where a forked work's changes are dropped.
 *
 * @example
 * ```ts
 * import { Timeout } from "@bulwark/core"
 * import { Effect } from "effect"
 *
 * const slow = Effect.sleep("5 seconds").pipe(Effect.as("done"))
 * const bounded = slow.pipe(Timeout.timeout("1 second", { name: "fetchUser" }))
 * // Effect<string, TimeoutError>
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const timeout = (
  duration: Duration.DurationInput,
  options: Options = {}
): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | TimeoutError, R> => {
  // negative values in every written form ("-5 seconds", -5n, [-5, 0]) are rejected, not clamped
  const millis = InternalDuration.toMillis(duration)
  if (!(millis > 0)) {
    throw new RangeError(`Timeout.timeout: duration must be a duration > 0, got ${describe(duration)}`)
  }
  const limit = millis === Infinity ? Duration.infinity : Duration.decode(duration)
  // preallocated: a timeout must not capture a stack per call
  const error = timeoutErrorOf(limit, options.name)
  const counter = options.name === undefined
    ? timeoutsCounter
    : Metric.tagged(timeoutsCounter, "operation", options.name)
  const timedOut = Cause.fail(error)
  const run = <A, E, R>(self: Effect.Effect<A, E, R>, limit: Duration.Duration, timedOut: Cause.Cause<TimeoutError>) =>
    Effect.suspend(() => {
      // the interrupted work's exit is otherwise dropped by the race: a finalizer that died on
      // the way out would vanish. Its defects are kept, after the TimeoutError.
      let died: Cause.Cause<never> | undefined
      const watched = Effect.onExit(self, (exit) => {
        if (Exit.isFailure(exit)) died = defectsOf(exit.cause)
        return Effect.void
      })
      // lazy: evaluated once the interrupted work (and so its finalizers) has finished
      return Effect.timeoutFailCause(watched, {
        duration: limit,
        onTimeout: () => {
          counter.unsafeUpdate(1, [])
          return died === undefined ? timedOut : Cause.sequential(timedOut, died)
        }
      })
    })
  // a deadline closer than the limit shortens it; the error then names the time actually given
  const limitMillis = Duration.toMillis(limit)
  const shortened = (left: number) => {
    const duration = Duration.millis(left)
    return Cause.fail(
      new TimeoutError(options.name === undefined ? { duration } : { duration, operation: options.name })
    )
  }
  // every call of this policy waits the same time: their timers share one Node timer
  const lane = new TimerLane(limitMillis <= MAX_TIMER_MILLIS ? limitMillis : Number.NaN)
  const passed = Effect.suspend(() => {
    counter.unsafeUpdate(1, [])
    return Effect.failCause(shortened(0))
  })
  const onAnyClock = <A, E, R>(self: Effect.Effect<A, E, R>) =>
    Deadline.shorten(limitMillis, (left) =>
      left === undefined
        ? run(self, limit, timedOut)
        : left > 0
        ? run(self, Duration.millis(left), shortened(left))
        : passed)
  return <A, E, R>(self: Effect.Effect<A, E, R>) =>
    Effect.withFiberRuntime<A, E | TimeoutError, R>((fiber, status) => {
      const children = childrenOf(fiber)
      const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
      // the testing kit's virtual clock has a timer of its own: the same path as the live clock
      const virtual = clock === liveClock ? undefined : VirtualTimer.of(clock)
      // a fiber with children of its own keeps the forked path: the timer's interruption
      // would reach them too
      if ((clock !== liveClock && virtual === undefined) || children === undefined || children.size > 0) {
        return onAnyClock(self)
      }
      const interruptible = RuntimeFlags.interruptible(status.runtimeFlags)
      const deadline = fiber.getFiberRef(Deadline.currentDeadline)
      if (deadline === Number.POSITIVE_INFINITY) {
        return runLive(self, fiber, interruptible, lane, limitMillis, timedOut, counter, virtual)
      }
      const left = Math.max(0, deadline - clock.unsafeCurrentTimeMillis())
      return left >= limitMillis
        ? runLive(self, fiber, interruptible, lane, limitMillis, timedOut, counter, virtual)
        : left > 0
        ? runLive(self, fiber, interruptible, lane, left, shortened(left), counter, virtual)
        : passed
    })
}
