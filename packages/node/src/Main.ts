/**
 * A fail-fast `main` for Node services: runs the program on `NodeRuntime.runMain` and turns how it
 * ended into what an operator (or an orchestrator) can act on.
 *
 * - a defect or a `SupervisorEscalation` → one FATAL banner on stderr naming the program and
 *   showing the whole cause, then exit code 1 (a bug: let the orchestrator restart the process);
 * - a typed failure escaping main → an error log carrying its classification (the
 *   `ExecutionError` JSON), then exit code 1;
 * - SIGTERM / SIGINT → the program is interrupted, every finalizer runs, exit code 0;
 * - a shutdown that outlasts the grace period → a log of what is still running, then
 *   {@link Options.gracePeriodExitCode};
 * - a second signal during shutdown → exit at once (128 + the signal number).
 *
 * Interruption is never fatal.
 *
 * @since 0.1.0
 */
import * as Failure from "@bulwark/core/Failure"
import * as FiberSupervisor from "@bulwark/core/FiberSupervisor"
import * as InternalDuration from "@bulwark/core/internal/duration"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as MetricState from "effect/MetricState"
import * as Option from "effect/Option"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The program's name, in the FATAL banner and the logs. Default: the entry file's base name, or `"main"`. */
  readonly name?: string | undefined
  /**
   * How long a graceful shutdown (after SIGTERM / SIGINT) may take before the process gives up,
   * logs what is still running and exits with {@link Options.gracePeriodExitCode}. Keep it below
   * the orchestrator's own kill deadline (Kubernetes: `terminationGracePeriodSeconds`, 30 s by
   * default). A duration > 0. Default: 25 seconds.
   */
  readonly gracePeriod?: Duration.DurationInput | undefined
  /** The exit code of a shutdown that overran the grace period; an integer in [2, 125]. Default: 124. */
  readonly gracePeriodExitCode?: number | undefined
  /** Keep Effect's default logger instead of the pretty one `runMain` installs. Default: `false`. */
  readonly disablePrettyLogger?: boolean | undefined
}

interface Resolved {
  name: string
  gracePeriodMillis: number
  gracePeriodExitCode: number
}

const defaultName = (): string => {
  const entry = process.argv[1]
  if (entry === undefined) return "main"
  const base = entry.split(/[\\/]/).pop() ?? "main"
  return base.replace(/\.[cm]?[jt]s$/, "") || "main"
}

const resolve = (options: Options): Resolved => {
  const name = options.name ?? defaultName()
  if (name.length === 0) throw new TypeError("Main: name must not be empty")
  const gracePeriodMillis = InternalDuration.toMillis(options.gracePeriod ?? "25 seconds")
  if (!(gracePeriodMillis > 0)) {
    throw new RangeError(`Main: gracePeriod must be a duration > 0, got ${String(options.gracePeriod)}`)
  }
  const gracePeriodExitCode = options.gracePeriodExitCode ?? 124
  if (!Number.isInteger(gracePeriodExitCode) || gracePeriodExitCode < 2 || gracePeriodExitCode > 125) {
    throw new RangeError(`Main: gracePeriodExitCode must be an integer in [2, 125], got ${gracePeriodExitCode}`)
  }
  return { name, gracePeriodMillis, gracePeriodExitCode }
}

/**
 * The options read from `Config`: `NAME`, `GRACE_PERIOD` (a duration such as `"10 seconds"`) and
 * `GRACE_PERIOD_EXIT_CODE`, each optional with the defaults of {@link Options}. Nest it
 * (`Config.nested("MAIN")`) to read `MAIN_GRACE_PERIOD` … A bad value fails with a `ConfigError`
 * naming the key, and the process exits with code 1.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Options> = Config.all({
  name: Config.option(Config.nonEmptyString("NAME")),
  gracePeriod: Config.duration("GRACE_PERIOD").pipe(
    Config.validate({ message: "must be a duration > 0", validation: (d) => Duration.toMillis(d) > 0 }),
    Config.withDefault(Duration.seconds(25))
  ),
  gracePeriodExitCode: Config.integer("GRACE_PERIOD_EXIT_CODE").pipe(
    Config.validate({ message: "must be an integer in [2, 125]", validation: (n) => n >= 2 && n <= 125 }),
    Config.withDefault(124)
  )
}).pipe(Config.map(({ name, ...rest }): Options => ({ ...rest, ...(Option.isSome(name) ? { name: name.value } : {}) })))

// -----------------------------------------------------------------------------
// how main ended
// -----------------------------------------------------------------------------

/**
 * How a program ended, as {@link run} sees it.
 *
 * @since 0.1.0
 * @category models
 */
export type Outcome =
  | { readonly _tag: "Success" }
  | { readonly _tag: "Interrupted" }
  | { readonly _tag: "Failure"; readonly error: unknown }
  | { readonly _tag: "Fatal"; readonly reason: "defect" | "escalation" }

const isEscalation = (u: unknown): boolean =>
  u instanceof FiberSupervisor.SupervisorEscalation ||
  (typeof u === "object" && u !== null && (u as { readonly _tag?: unknown })._tag === "SupervisorEscalation")

/**
 * Whether a cause holds a `SupervisorEscalation` anywhere: as a failure, as a defect (a finalizer
 * that died with it), in sequential or parallel branches.
 *
 * @since 0.1.0
 * @category models
 */
export const hasEscalation = (cause: Cause.Cause<unknown>): boolean =>
  Cause.reduce(cause, false, (found, c) =>
    found
      ? Option.some(true)
      : (c._tag === "Fail" && isEscalation(c.error)) || (c._tag === "Die" && isEscalation(c.defect))
      ? Option.some(true)
      : Option.none())

/**
 * Decides how a program ended. `escalated` says whether a supervisor escalated while it ran: an
 * escalation can reach main as a bare interruption (the supervisor interrupts the fiber that
 * provided it), which must still be fatal.
 *
 * @since 0.1.0
 * @category models
 */
export const outcome = (exit: Exit.Exit<unknown, unknown>, escalated: boolean): Outcome => {
  // a process never exits 0 after an escalation, even one the program caught and survived
  if (Exit.isSuccess(exit)) return escalated ? { _tag: "Fatal", reason: "escalation" } : { _tag: "Success" }
  const cause = exit.cause
  if (hasEscalation(cause)) return { _tag: "Fatal", reason: "escalation" }
  if (Option.isSome(Cause.dieOption(cause))) return { _tag: "Fatal", reason: "defect" }
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) return { _tag: "Failure", error: failure.value }
  return escalated ? { _tag: "Fatal", reason: "escalation" } : { _tag: "Interrupted" }
}

/** Escalations counted by every supervisor of the process (a global Effect counter). */
const escalationCount = (): number => {
  let total = 0
  for (const pair of Metric.unsafeSnapshot()) {
    if (
      pair.metricKey.name === "bulwark_supervisor_escalations_total" && MetricState.isCounterState(pair.metricState)
    ) {
      total += Number(pair.metricState.count)
    }
  }
  return total
}

const bar = "═".repeat(72)

/**
 * The FATAL banner written to stderr.
 *
 * @since 0.1.0
 * @category rendering
 */
export const fatalBanner = (name: string, reason: "defect" | "escalation", cause: Cause.Cause<unknown>): string => {
  const title = reason === "defect"
    ? `FATAL: "${name}" died with a defect`
    : `FATAL: "${name}" stopped: a supervisor escalated`
  const pretty = Cause.isInterruptedOnly(cause)
    ? "(main was interrupted by the supervisor's escalation; its log above holds the program's cause)"
    : Cause.pretty(cause, { renderErrorCause: true })
  return `\n╔${bar}\n║ ${title}\n║ exit code 1: the process stops so that it can be restarted\n╚${bar}\n${pretty}\n`
}

const signalNumbers: Record<string, number> = { SIGINT: 2, SIGTERM: 15 }

/** The fibers still running under `root`, with their span, for the grace-period log. */
const describeRunning = (root: Fiber.RuntimeFiber<unknown, unknown>): Effect.Effect<ReadonlyArray<string>> =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const visit = (fiber: Fiber.RuntimeFiber<unknown, unknown>, depth: number): Effect.Effect<void> =>
      Effect.gen(function*() {
        if (fiber.unsafePoll() !== null) return
        const span = fiber.currentSpan
        const spanName = span !== undefined && span._tag === "Span" ? ` in span "${span.name}"` : ""
        const status = yield* Fiber.status(fiber)
        lines.push(`${"  ".repeat(depth)}fiber #${fiber.id().id} ${status._tag}${spanName}`)
        if (depth >= 8) return
        const children = yield* fiber.children
        for (const child of children) yield* visit(child, depth + 1)
      })
    yield* visit(root, 0)
    return lines
  })

// -----------------------------------------------------------------------------
// run
// -----------------------------------------------------------------------------

/**
 * Runs a program as the process's main. Options may be given in code or as a `Config` (see
 * {@link config}), read when the program starts.
 *
 * @example
 * ```ts
 * import { Main } from "@bulwark/node"
 * import { FiberSupervisor } from "@bulwark/core"
 * import { Effect } from "effect"
 *
 * // a supervised worker ticks every second; when the program ends (here after 3 seconds, in a
 * // service on SIGTERM) the worker is interrupted, its finalizers run and the process exits 0
 * const program = Effect.gen(function*() {
 *   yield* FiberSupervisor.spawn("worker", FiberSupervisor.loop(Effect.log("tick"), { interval: "1 second" }))
 *   yield* Effect.sleep("3 seconds")
 * }).pipe(FiberSupervisor.supervised, Effect.provide(FiberSupervisor.layer({ name: "app" })))
 *
 * Main.run(program, { name: "billing", gracePeriod: "20 seconds" })
 * ```
 *
 * @since 0.1.0
 * @category running
 */
export const run = <A, E>(
  program: Effect.Effect<A, E, never>,
  options: Options | Config.Config<Options> = {}
): void => {
  // literal options are checked at once: a bad one is a programmer error
  const resolved: Resolved = Config.isConfig(options)
    ? resolve({})
    : resolve(options)
  const disablePrettyLogger = !Config.isConfig(options) && options.disablePrettyLogger === true

  const escalationsAtStart = escalationCount()
  let signalled: string | undefined
  // every supervisor built inside the program reports its escalation here before failing anything
  let escalationHeard = false
  const escalatedSoFar = () => escalationHeard || escalationCount() > escalationsAtStart
  // escalations before the first signal count; what the shutdown it starts brings does not
  let escalatedBeforeSignal = false
  let mainFiber: Fiber.RuntimeFiber<unknown, unknown> | undefined
  let exiting = false

  const exitNow = (code: number) => {
    if (exiting) return
    exiting = true
    process.exit(code)
  }

  const onGraceExpired = () => {
    const header = `Main "${resolved.name}": shutdown did not finish within ${
      Duration.format(Duration.millis(resolved.gracePeriodMillis))
    }; exiting with code ${resolved.gracePeriodExitCode}. Still running:`
    const fiber = mainFiber
    const report = fiber === undefined
      ? Effect.succeed<ReadonlyArray<string>>([])
      : describeRunning(fiber).pipe(
        Effect.timeoutTo({
          duration: "500 millis",
          onTimeout: () => ["(the fibers did not answer)"],
          onSuccess: (l) => l
        })
      )
    Effect.runPromise(report).then(
      (lines) => {
        process.stderr.write(`${header}\n${lines.map((l) => `  ${l}`).join("\n")}\n`)
        exitNow(resolved.gracePeriodExitCode)
      },
      () => exitNow(resolved.gracePeriodExitCode)
    )
  }

  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled !== undefined) {
      process.stderr.write(`Main "${resolved.name}": second signal (${signal}) during shutdown; exiting now\n`)
      exitNow(128 + (signalNumbers[signal] ?? 15))
      return
    }
    signalled = signal
    escalatedBeforeSignal = escalatedSoFar()
    process.stderr.write(
      `Main "${resolved.name}": ${signal} received; shutting down (grace period ${
        Duration.format(Duration.millis(resolved.gracePeriodMillis))
      }, a second signal exits at once)\n`
    )
    setTimeout(onGraceExpired, resolved.gracePeriodMillis)
  }
  // registered before runMain's own listeners: the first signal reaches both (runMain interrupts
  // main), the second only this one
  process.on("SIGINT", onSignal)
  process.on("SIGTERM", onSignal)

  let code = 0
  const main = Effect.gen(function*() {
    mainFiber = yield* Effect.withFiberRuntime<Fiber.RuntimeFiber<unknown, unknown>>((fiber) => Effect.succeed(fiber))
    if (Config.isConfig(options)) {
      const read = yield* options
      Object.assign(resolved, resolve(read))
    }
    return yield* program
  }).pipe(
    Effect.provideService(FiberSupervisor.EscalationListener, {
      onEscalation: () =>
        Effect.sync(() => {
          escalationHeard = true
        })
    }),
    Effect.onExit((exit) =>
      Effect.suspend(() => {
        const escalated = signalled === undefined ? escalatedSoFar() : escalatedBeforeSignal
        const ended = outcome(exit, escalated)
        switch (ended._tag) {
          case "Success":
          case "Interrupted":
            code = 0
            return signalled !== undefined
              ? Effect.logInfo(`Main "${resolved.name}": stopped after ${signalled}`)
              : Effect.void
          case "Fatal":
            code = 1
            return Effect.sync(() => {
              process.stderr.write(
                fatalBanner(resolved.name, ended.reason, Exit.isFailure(exit) ? exit.cause : Cause.empty)
              )
            })
          case "Failure":
            code = 1
            return Effect.flatMap(
              Failure.toExecutionError(ended.error, {
                taskId: resolved.name,
                // a ConfigError's message leaves out the key; its string form names it
                ...(ConfigError.isConfigError(ended.error) ? { details: String(ended.error) } : {})
              }),
              (error) =>
                Effect.logError(
                  `Main "${resolved.name}" failed: ${error.details ?? error.message}`,
                  JSON.stringify(Failure.encodeExecutionError(error))
                ).pipe(Effect.annotateLogs({ "bulwark.main": resolved.name, "bulwark.category": error.type }))
            )
        }
      })
    )
  )

  NodeRuntime.runMain(main, {
    disableErrorReporting: true,
    disablePrettyLogger,
    teardown: (_exit, onExit) => {
      // a process kept alive by something else after main ended must not run this shutdown again
      process.off("SIGINT", onSignal)
      process.off("SIGTERM", onSignal)
      onExit(code)
    }
  })
}
