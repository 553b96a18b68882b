/**
 * A discrete-event run of an effect: a virtual `Clock` whose time moves only when every fiber
 * is blocked, and a scheduler whose queue is drained synchronously. The same rule as
 * `TestClock.adjust` (time jumps to the next sleeper once everything else has run) without the
 * timer round-trips `TestClock` uses to see that fibers are suspended, so a run costs
 * microseconds, not milliseconds.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import type * as FiberId from "effect/FiberId"
import * as FiberIdModule from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import * as LogLevel from "effect/LogLevel"
import * as Random from "effect/Random"
import type * as Runtime from "effect/Runtime"
import * as RuntimeModule from "effect/Runtime"
import * as RuntimeFlags from "effect/RuntimeFlags"
import type * as Scheduler from "effect/Scheduler"
import * as VirtualTimer from "./virtualTimer.js"

interface Sleeper {
  readonly at: number
  resume: (() => void) | undefined
}

/** A scheduler whose tasks run only when {@link SimScheduler.drain} is called. */
export class SimScheduler implements Scheduler.Scheduler {
  private tasks: Array<Scheduler.Task> = []
  scheduleTask(task: Scheduler.Task): void {
    this.tasks.push(task)
  }
  shouldYield(fiber: Fiber.RuntimeFiber<unknown, unknown>): number | false {
    return fiber.currentOpCount > 2048 ? 0 : false
  }
  /** Runs tasks until none is left; false when the budget of tasks ran out first. */
  drain(budget: number): boolean {
    let ran = 0
    while (this.tasks.length > 0) {
      const batch = this.tasks
      this.tasks = []
      for (let i = 0; i < batch.length; i++) {
        batch[i]!()
        ran++
      }
      if (ran > budget) return false
    }
    return true
  }
}

/**
 * A clock whose time is moved by the driver only. Its timer (`VirtualTimer`) lets a `Timeout` run
 * the work in the caller's fiber, as it does on the live clock.
 */
class SimClock implements Clock.Clock, VirtualTimer.VirtualTimer {
  readonly [Clock.ClockTypeId]: Clock.ClockTypeId = Clock.ClockTypeId
  now = 0
  private sleepers: Array<Sleeper> = []
  unsafeCurrentTimeMillis(): number {
    return this.now
  }
  get currentTimeMillis(): Effect.Effect<number> {
    return Effect.sync(() => this.now)
  }
  unsafeCurrentTimeNanos(): bigint {
    return BigInt(Math.round(this.now * 1_000_000))
  }
  get currentTimeNanos(): Effect.Effect<bigint> {
    return Effect.sync(() => this.unsafeCurrentTimeNanos())
  }
  sleep(duration: Duration.Duration): Effect.Effect<void> {
    const millis = Duration.toMillis(duration)
    if (!(millis > 0)) return Effect.void
    return Effect.suspend(() => {
      let sleeper: Sleeper | undefined
      // an interrupted sleep takes its sleeper off the clock. Written out rather than as the
      // canceler `Effect.async` takes: that one runs through `Effect.onInterrupt`, which builds
      // the set of the interrupting fibers and runs two more steps on every sleep
      return Effect.uninterruptibleMask((restore) =>
        Effect.catchAllCause(
          restore(Effect.async<void>((resume) => {
            sleeper = { at: this.now + millis, resume: () => resume(Effect.void) }
            this.insert(sleeper)
          })),
          (cause) => {
            if (sleeper !== undefined) sleeper.resume = undefined
            return Effect.failCause(cause)
          }
        )
      )
    })
  }
  readonly [VirtualTimer.TypeId] = (millis: number, fire: () => void): () => void => {
    const sleeper: Sleeper = { at: this.now + Math.max(0, millis), resume: fire }
    this.insert(sleeper)
    return () => {
      sleeper.resume = undefined
    }
  }
  /** After every sleeper due at the same time or earlier: sleepers of one time wake in order. */
  private insert(sleeper: Sleeper): void {
    const list = this.sleepers
    let i = list.length
    while (i > 0 && list[i - 1]!.at > sleeper.at) i--
    list.splice(i, 0, sleeper)
  }
  /** The time of the next live sleeper, dropping interrupted ones. */
  next(): number | undefined {
    while (this.sleepers.length > 0 && this.sleepers[0]!.resume === undefined) this.sleepers.shift()
    return this.sleepers[0]?.at
  }
  /** Moves time to `at` and wakes every sleeper due by then, in order. */
  advanceTo(at: number): void {
    this.now = Math.max(this.now, at)
    while (this.sleepers.length > 0 && this.sleepers[0]!.at <= this.now) {
      const sleeper = this.sleepers.shift()!
      const resume = sleeper.resume
      sleeper.resume = undefined
      if (resume !== undefined) resume()
    }
  }
}

/**
 * How a run ended: `done` (the effect completed), `stuck` (every fiber waits on something
 * that will never happen: no sleeper left), `horizon` (virtual time passed the horizon).
 */
export type Ending = "done" | "stuck" | "horizon"

/**
 * The result of a simulated run.
 */
/**
 * Options of a simulated run. `random` and `quiet` are set in the run's root fiber before it
 * starts (the same as `Effect.withRandom` and `Logger.withMinimumLogLevel(None)` around the
 * effect, without the save-and-restore steps those take).
 */
export interface Options {
  readonly horizon: number
  /**
   * The most tasks one drain may run before time moves: past it a fiber loops without
   * yielding to the clock, and the run throws.
   */
  readonly tasks: number
  /** Called when the run stops before its effect completed (stuck or past the horizon). */
  readonly onStop?: ((now: number, ending: Ending) => void) | undefined
  /** The run's `Random`. Default: the runtime's. */
  readonly random?: Random.Random | undefined
  /** Drop every log. Default: `false`. */
  readonly quiet?: boolean | undefined
}

export interface Result<A, E> {
  readonly exit: Exit.Exit<A, E> | undefined
  readonly ending: Ending
  /** Virtual time when the run stopped. */
  readonly now: number
}

/**
 * Runs `make(clock)` in `runtime` on a virtual clock and a private scheduler until it
 * completes, gets stuck, or passes `horizon` virtual milliseconds; then interrupts what is
 * left. Synchronous; errors made during the run carry no stack trace.
 */
export const run = <A, E, R>(
  runtime: Runtime.Runtime<R>,
  make: (clock: Clock.Clock) => Effect.Effect<A, E, R>,
  options: Options
): Result<A, E> => {
  // a run is synchronous: errors raised inside it need no stack (capturing one dominates a
  // failure's cost), and the limit is restored before anything else runs
  const stackTraceLimit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return runUnsafe(runtime, make, options)
  } finally {
    Error.stackTraceLimit = stackTraceLimit
  }
}

/**
 * The runtime with the run's clock (and `Random`, and no logging when quiet) already in its
 * fiber refs, so the run's root fiber starts with them. The root is interruptible even when the
 * run was started from an uninterruptible region: the stop interrupts it, and the run must end
 * where it stopped whatever the caller's region.
 */
const withServices = <R>(runtime: Runtime.Runtime<R>, clock: Clock.Clock, options: Options): Runtime.Runtime<R> => {
  let services = Context.add(
    FiberRefs.getOrDefault(runtime.fiberRefs, DefaultServices.currentServices),
    Clock.Clock,
    clock
  )
  if (options.random !== undefined) services = Context.add(services, Random.Random, options.random)
  let fiberRefs = FiberRefs.updateAs(runtime.fiberRefs, {
    fiberId: runId,
    fiberRef: DefaultServices.currentServices,
    value: services
  })
  if (options.quiet === true) {
    fiberRefs = FiberRefs.updateAs(fiberRefs, {
      fiberId: runId,
      fiberRef: FiberRef.currentMinimumLogLevel,
      value: LogLevel.None
    })
  }
  return RuntimeModule.make({
    context: runtime.context,
    runtimeFlags: RuntimeFlags.enable(runtime.runtimeFlags, RuntimeFlags.Interruption),
    fiberRefs
  })
}

/** The fiber id the run's settings are written as. */
const runId = FiberIdModule.runtime(-1, 0)

const runUnsafe = <A, E, R>(
  runtime: Runtime.Runtime<R>,
  make: (clock: Clock.Clock) => Effect.Effect<A, E, R>,
  options: Options
): Result<A, E> => {
  const clock = new SimClock()
  const scheduler = new SimScheduler()
  let exit: Exit.Exit<A, E> | undefined
  const fiber = RuntimeModule.runFork(withServices(runtime, clock, options))(make(clock), { scheduler })
  fiber.addObserver((e) => {
    exit = e
  })
  let ending: Ending = "done"
  for (;;) {
    if (!scheduler.drain(options.tasks)) {
      throw new Error("Testing: a run did not settle (a fiber loops without yielding)")
    }
    if (exit !== undefined) break
    const next = clock.next()
    if (next === undefined) {
      ending = "stuck"
      break
    }
    if (next > options.horizon) {
      ending = "horizon"
      break
    }
    clock.advanceTo(next)
  }
  if (exit === undefined) {
    options.onStop?.(clock.now, ending)
    fiber.unsafeInterruptAsFork(fiber.id() as FiberId.FiberId)
    // finalizers may sleep: let them, up to a bounded number of steps
    // (only a drain completes the fiber: the check after it is the loop's only exit on `exit`)
    for (let i = 0; i < 10_000; i++) {
      scheduler.drain(options.tasks)
      if (exit !== undefined) break
      const next = clock.next()
      if (next === undefined) break
      clock.advanceTo(next)
    }
  }
  return { exit, ending, now: clock.now }
}
