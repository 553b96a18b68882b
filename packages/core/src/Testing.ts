/**
 * A kit for property-testing schedules and policies, on `effect`'s own `FastCheck`.
 *
 * - {@link scheduleLaws} checks the laws a schedule should keep (a cap on each delay, at most N
 *   retries, no retry past an elapsed limit, non-decreasing delays, jitter within bounds) over
 *   random seeds, inputs and attempt durations. Each run draws from a fresh `Random` seeded by
 *   the run, so a failing run replays exactly and shrinks to the shortest list of delays that
 *   breaks the law.
 * - {@link Arbitrary} generates the toolkit's backoff options and call scripts: sequences of
 *   outcomes (success, typed failure of a category, defect, hang, latency) and arrival times.
 * - {@link runScript} plays a script through a policy on a virtual clock and returns a
 *   {@link Timeline}: every attempt with its time, outcome, breaker state, bulkhead occupancy and
 *   retry decision. {@link invariants} holds the checks every policy should pass, and
 *   {@link policyLaws} checks them over random scripts, shrinking a failure to a small script.
 *
 * Everything here returns an `Effect` (or a `FastCheck.Arbitrary`), so it runs in
 * `@effect/vitest`'s `it.effect` and composes with `it.effect.prop`, and depends on `effect`
 * only.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as fc from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Runtime from "effect/Runtime"
import type * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Backoff from "./Backoff.js"
import * as Bulkhead from "./Bulkhead.js"
import type * as Chaos from "./Chaos.js"
import * as CircuitBreaker from "./CircuitBreaker.js"
import * as Failure from "./Failure.js"
import * as InternalDuration from "./internal/duration.js"
import * as Simulation from "./internal/simulation.js"
import * as Synchronous from "./internal/synchronous.js"
import * as Policy from "./Policy.js"
import * as Retry from "./Retry.js"

// -----------------------------------------------------------------------------
// formatting
// -----------------------------------------------------------------------------

const ms = (millis: number): string => {
  if (!Number.isFinite(millis)) return String(millis)
  const rounded = Math.round(millis * 1000) / 1000
  return `${rounded}ms`
}

const list = (delays: ReadonlyArray<number>): string => `[${delays.map(ms).join(", ")}]`

const show = (u: unknown): string => {
  if (u === undefined) return "undefined"
  try {
    return fc.stringify(u)
  } catch {
    return String(u)
  }
}

const quiet = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Logger.withMinimumLogLevel(self, LogLevel.None)

// -----------------------------------------------------------------------------
// schedule laws
// -----------------------------------------------------------------------------

/**
 * Bounds of the n-th delay (n = 1 for the first retry), in milliseconds, given the previous
 * delay (`undefined` for the first).
 *
 * @since 0.1.0
 * @category models
 */
export type JitterBounds = (retry: number, previousMillis: number | undefined) => readonly [min: number, max: number]

/**
 * The laws a schedule should keep, and how to look for a run that breaks them. Every law is
 * optional: state those your schedule promises.
 *
 * @since 0.1.0
 * @category models
 */
export interface ScheduleLaws<In = unknown> {
  /** No delay is longer than this. */
  readonly maxDelay?: Duration.DurationInput | undefined
  /** At most this many recurrences (retries). */
  readonly maxRetries?: number | undefined
  /** No retry starts later than this after the first step. */
  readonly maxElapsed?: Duration.DurationInput | undefined
  /** Each delay is at least the one before. */
  readonly monotone?: boolean | undefined
  /**
   * Each delay lies within bounds: fixed ones, or a function of the retry number and the
   * previous delay (in milliseconds). The function may skip a run with `FastCheck.pre`; when
   * FastCheck gives up on too many skips, the check dies with an error saying so.
   */
  readonly jitter?:
    | { readonly min: Duration.DurationInput; readonly max: Duration.DurationInput }
    | JitterBounds
    | undefined
  /**
   * The inputs fed to the schedule (the errors, for a retry schedule); a failure shows them when
   * you give them, or when they change the outcome. Default: `FastCheck.anything()`.
   */
  readonly inputs?: fc.Arbitrary<In> | undefined
  /** The longest an attempt takes between two steps, in milliseconds. Default: `10_000`. */
  readonly maxAttemptDuration?: number | undefined
  /** How many steps a run takes at most. Default: `maxRetries + 2`, or `40`. */
  readonly steps?: number | undefined
  /** How many runs. Default: `100`. */
  readonly runs?: number | undefined
  /** The `FastCheck` seed, to replay a failure. Default: a random one (shown in the failure). */
  readonly seed?: number | undefined
}

/**
 * A schedule broke a law. `delays` are those the shrunk run chose, up to the one that broke
 * it; the message shows them, the run that produced them and how to replay it.
 *
 * @since 0.1.0
 * @category errors
 */
export class ScheduleLawError extends Schema.TaggedError<ScheduleLawError>()("ScheduleLawError", {
  law: Schema.String,
  delays: Schema.Array(Schema.Number),
  message: Schema.String
}) {}

interface ScheduleRun<In> {
  readonly seed: number
  readonly steps: ReadonlyArray<{ readonly input: In; readonly duration: number }>
}

interface Stepped {
  readonly delays: ReadonlyArray<number>
  /** When each retry starts, from the first step. */
  readonly starts: ReadonlyArray<number>
}

interface Violation {
  readonly law: string
  /** The index of the offending delay. */
  readonly index: number
  readonly text: string
}

const EPSILON = 1e-6

const checkSchedule = (
  stepped: Stepped,
  laws: {
    readonly maxDelay: number | undefined
    readonly maxRetries: number | undefined
    readonly maxElapsed: number | undefined
    readonly monotone: boolean
    readonly jitter: JitterBounds | undefined
  }
): Violation | undefined => {
  const { delays, starts } = stepped
  for (let i = 0; i < delays.length; i++) {
    const delay = delays[i]!
    const n = i + 1
    if (laws.maxRetries !== undefined && n > laws.maxRetries) {
      return { law: "maxRetries", index: i, text: `retry ${n} was scheduled, but maxRetries is ${laws.maxRetries}` }
    }
    if (laws.maxDelay !== undefined && delay > laws.maxDelay + EPSILON) {
      return { law: "maxDelay", index: i, text: `delay ${n} is ${ms(delay)}, above maxDelay ${ms(laws.maxDelay)}` }
    }
    if (laws.maxElapsed !== undefined && starts[i]! > laws.maxElapsed + EPSILON) {
      return {
        law: "maxElapsed",
        index: i,
        text: `retry ${n} starts ${ms(starts[i]!)} after the first step, past maxElapsed ${ms(laws.maxElapsed)}`
      }
    }
    if (laws.monotone && i > 0 && delay < delays[i - 1]! - EPSILON) {
      return {
        law: "monotone",
        index: i,
        text: `delay ${n} is ${ms(delay)}, shorter than delay ${n - 1} (${ms(delays[i - 1]!)})`
      }
    }
    if (laws.jitter !== undefined) {
      const [min, max] = laws.jitter(n, i === 0 ? undefined : delays[i - 1])
      if (delay < min - EPSILON || delay > max + EPSILON) {
        return {
          law: "jitter",
          index: i,
          text: `delay ${n} is ${ms(delay)}, outside its jitter bounds [${ms(min)}, ${ms(max)}]`
        }
      }
    }
  }
  return undefined
}

const lawMillis = (field: string, input: Duration.DurationInput | undefined): number | undefined => {
  if (input === undefined) return undefined
  const millis = InternalDuration.toMillis(input)
  if (!(millis >= 0)) {
    throw new RangeError(`Testing.scheduleLaws: ${field} must be a duration >= 0, got ${String(input)}`)
  }
  return millis
}

const positiveWhole = (where: string, field: string, value: number | undefined, min = 1): number | undefined => {
  if (value === undefined) return undefined
  if (!Number.isInteger(value) || value < min) {
    throw new RangeError(`${where}: ${field} must be a whole number >= ${min}, got ${value}`)
  }
  return value
}

/**
 * Why a property failed with no counterexample: the only way is a callback of the caller's that
 * calls `fc.pre` and so skips too many runs (FastCheck gives up after many skips in a row).
 */
const tooManySkips = (
  where: string,
  callback: string,
  details: { readonly numSkips: number; readonly numRuns: number }
): Error =>
  new Error(
    `${where}: too many runs were skipped (${details.numSkips} skipped, ${details.numRuns} checked): ` +
      `an fc.pre in ${callback} rejects them`
  )

/**
 * Steps a schedule through one run: a fresh `Random` seeded by the run, a virtual clock that
 * moves by each delay plus the attempt's duration. Returns the delays it chose.
 */
const stepSchedule = <Out, In, R>(
  schedule: Schedule.Schedule<Out, In, R>,
  run: ScheduleRun<In>
): Effect.Effect<Stepped, never, R> =>
  Effect.gen(function*() {
    const delays: Array<number> = []
    const starts: Array<number> = []
    let state = schedule.initial
    let now = 0
    for (const { duration, input } of run.steps) {
      const [next, , decision] = yield* schedule.step(now, input, state)
      if (ScheduleDecision.isDone(decision)) break
      const delay = Backoff.decisionDelayMillis(now, decision)
      delays.push(delay)
      starts.push(now + delay)
      now = now + delay + duration
      state = next
    }
    return { delays, starts }
  }).pipe(Effect.withRandom(Random.make(run.seed)), quiet)

/**
 * Checks that a schedule keeps the laws you state, over random runs: each run has its own
 * `Random` seed (a fresh seeded `Random` per run, so runs never share random state and a failure
 * replays exactly), its own inputs and attempt durations. A broken law fails with a
 * {@link ScheduleLawError} whose message is the shrunk list of delays that broke it.
 *
 * @example
 * ```ts
 * import { Backoff, Testing } from "@bulwark/core"
 *
 * const schedule = Backoff.fullJitter({ base: "100 millis", cap: "10 seconds" }).pipe(Backoff.limit({ maxRetries: 5 }))
 * const check = Testing.scheduleLaws(schedule, { maxDelay: "10 seconds", maxRetries: 5 })
 * // in a test: it.effect("backoff keeps its caps", () => check)
 * ```
 *
 * @since 0.1.0
 * @category schedules
 */
export const scheduleLaws = <Out, In = unknown, R = never>(
  schedule: Schedule.Schedule<Out, In, R>,
  laws: ScheduleLaws<In> = {}
): Effect.Effect<void, ScheduleLawError, R> => {
  const where = "Testing.scheduleLaws"
  const maxRetries = positiveWhole(where, "maxRetries", laws.maxRetries, 0)
  const resolved = {
    maxDelay: lawMillis("maxDelay", laws.maxDelay),
    maxRetries,
    maxElapsed: lawMillis("maxElapsed", laws.maxElapsed),
    monotone: laws.monotone ?? false,
    jitter: jitterBounds(laws.jitter)
  }
  const steps = positiveWhole(where, "steps", laws.steps) ?? (maxRetries !== undefined ? maxRetries + 2 : 40)
  const runs = positiveWhole(where, "runs", laws.runs) ?? 100
  const maxDuration = laws.maxAttemptDuration ?? 10_000
  if (!(maxDuration >= 0)) throw new RangeError(`${where}: maxAttemptDuration must be >= 0, got ${maxDuration}`)
  const inputs = (laws.inputs ?? fc.anything()) as fc.Arbitrary<In>
  const arbitrary: fc.Arbitrary<ScheduleRun<In>> = fc.record({
    seed: fc.integer(),
    steps: fc.array(fc.record({ input: inputs, duration: fc.nat({ max: Math.floor(maxDuration) }) }), {
      minLength: 1,
      maxLength: steps
    })
  })
  return Effect.flatMap(Effect.runtime<R>(), (runtime) => {
    const runSync = Runtime.runSync(runtime)
    const evaluate = (run: ScheduleRun<In>) => runSync(stepSchedule(schedule, run))
    const details = fc.check(
      fc.property(arbitrary, (run) => checkSchedule(evaluate(run), resolved) === undefined),
      { numRuns: runs, ...(laws.seed !== undefined ? { seed: laws.seed } : {}) }
    )
    if (!details.failed) return Effect.void
    if (details.counterexample === null) {
      return Effect.die(tooManySkips(where, "the jitter bounds", details))
    }
    const [run] = details.counterexample
    const stepped = evaluate(run)
    const violation = checkSchedule(stepped, resolved)!
    const shown = stepped.delays.slice(0, violation.index + 1)
    const used = run.steps.slice(0, violation.index + 1)
    // inputs you chose are always shown; the default ones only when they matter (the run
    // without them keeps the law)
    const withoutInputs = laws.inputs !== undefined ? undefined : checkSchedule(
      evaluate({ ...run, steps: run.steps.map((step) => ({ ...step, input: undefined as In })) }),
      resolved
    )
    const inputsMatter = withoutInputs === undefined || withoutInputs.text !== violation.text
    const inputsShown = inputsMatter ? `\n  inputs: [${used.map((s) => show(s.input)).join(", ")}]` : ""
    const message = [
      `Schedule law "${violation.law}" broken: ${violation.text}`,
      `  delays: ${list(shown)}`,
      `  run: Random seed ${run.seed}, attempt durations ${list(used.map((s) => s.duration))}${inputsShown}`,
      `  shrunk ${details.numShrinks} time(s); replay with { seed: ${details.seed} }`
    ].join("\n")
    return Effect.fail(new ScheduleLawError({ law: violation.law, delays: shown, message }))
  })
}

const jitterBounds = (jitter: ScheduleLaws["jitter"]): JitterBounds | undefined => {
  if (jitter === undefined || typeof jitter === "function") return jitter
  const min = lawMillis("jitter.min", jitter.min)!
  const max = lawMillis("jitter.max", jitter.max)!
  if (max < min) throw new RangeError(`Testing.scheduleLaws: jitter.max must not be below jitter.min`)
  return () => [min, max]
}

// -----------------------------------------------------------------------------
// backoff options
// -----------------------------------------------------------------------------

/**
 * Options of one of the toolkit's backoffs, tagged by its constructor, durations in
 * milliseconds, with optional {@link Backoff.limit} caps. {@link backoff} builds it and
 * {@link backoffLaws} states the laws it promises.
 *
 * @since 0.1.0
 * @category models
 */
export type BackoffOptions =
  & (
    | { readonly _tag: "fromDelays"; readonly delays: ReadonlyArray<number> }
    | { readonly _tag: "linear"; readonly base: number; readonly cap?: number }
    | { readonly _tag: "exponential"; readonly base: number; readonly factor: number; readonly cap?: number }
    | { readonly _tag: "fibonacci"; readonly base: number; readonly cap?: number }
    | { readonly _tag: "decorrelatedJitter"; readonly base: number; readonly cap: number }
    | { readonly _tag: "fullJitter"; readonly base: number; readonly cap: number; readonly factor: number }
    | { readonly _tag: "equalJitter"; readonly base: number; readonly cap: number; readonly factor: number }
  )
  & {
    readonly limits?: {
      readonly maxDelay?: number
      readonly maxRetries?: number
      readonly maxElapsed?: number
    }
  }

/**
 * Builds the backoff that {@link BackoffOptions} describe.
 *
 * @since 0.1.0
 * @category schedules
 */
export const backoff = (options: BackoffOptions): Backoff.Backoff => {
  const schedule = options._tag === "fromDelays"
    ? Backoff.fromDelays(options.delays)
    : options._tag === "linear"
    ? Backoff.linear(options)
    : options._tag === "exponential"
    ? Backoff.exponential(options)
    : options._tag === "fibonacci"
    ? Backoff.fibonacci(options)
    : options._tag === "decorrelatedJitter"
    ? Backoff.decorrelatedJitter(options)
    : options._tag === "fullJitter"
    ? Backoff.fullJitter(options)
    : Backoff.equalJitter(options)
  return options.limits === undefined ? schedule : Backoff.limit(schedule, options.limits)
}

const fib = (n: number): number => {
  let a = 1
  let b = 1
  for (let i = 1; i < n; i++) [a, b] = [b, a + b]
  return a
}

/**
 * The laws a backoff built from `options` promises: its cap (and `maxDelay`) bounds every
 * delay, its `maxRetries` and `maxElapsed` hold, the deterministic families are non-decreasing
 * (a table only when sorted) and give exactly their formula, and the jitter families stay
 * within AWS's bounds.
 *
 * @since 0.1.0
 * @category schedules
 */
export const backoffLaws = (options: BackoffOptions): ScheduleLaws => {
  const maxDelay = options.limits?.maxDelay
  const clamp = (d: number) => maxDelay === undefined ? d : Math.min(d, maxDelay)
  const cap = "cap" in options && options.cap !== undefined ? options.cap : Number.POSITIVE_INFINITY
  const exact = (f: (n: number) => number): JitterBounds => (n) => {
    const d = clamp(f(n))
    return [d, d]
  }
  const within =
    (f: (n: number, previous: number | undefined) => readonly [number, number]): JitterBounds => (n, p) => {
      const [lo, hi] = f(n, p)
      return [clamp(lo), clamp(hi)]
    }
  let jitter: JitterBounds
  let monotone = true
  let ceiling = cap
  switch (options._tag) {
    case "fromDelays": {
      const table = options.delays
      jitter = exact((n) => table[Math.min(n, table.length) - 1]!)
      monotone = table.every((d, i) => i === 0 || d >= table[i - 1]!)
      ceiling = Math.max(...table)
      break
    }
    case "linear": {
      jitter = exact((n) => Math.min(cap, options.base * n))
      break
    }
    case "exponential": {
      jitter = exact((n) => Math.min(cap, options.base * Math.pow(options.factor, n - 1)))
      break
    }
    case "fibonacci": {
      jitter = exact((n) => Math.min(cap, options.base * fib(n)))
      break
    }
    case "decorrelatedJitter": {
      const { base } = options
      // the previous delay seen is clamped by maxDelay, so only the outer bounds can be stated then
      jitter = maxDelay === undefined
        ? (_n, previous) => [base, Math.min(cap, 3 * (previous ?? base))]
        : within(() => [base, cap])
      monotone = false
      break
    }
    case "fullJitter": {
      jitter = within((n) => [0, Math.min(cap, options.base * Math.pow(options.factor, n - 1))])
      monotone = false
      break
    }
    case "equalJitter": {
      jitter = within((n) => {
        const c = Math.min(cap, options.base * Math.pow(options.factor, n - 1))
        return [c / 2, c]
      })
      monotone = false
      break
    }
  }
  const limitDelay = maxDelay === undefined ? ceiling : Math.min(ceiling, maxDelay)
  return {
    jitter,
    monotone,
    ...(Number.isFinite(limitDelay) ? { maxDelay: limitDelay } : {}),
    ...(options.limits?.maxRetries !== undefined ? { maxRetries: options.limits.maxRetries } : {}),
    ...(options.limits?.maxElapsed !== undefined ? { maxElapsed: options.limits.maxElapsed } : {})
  }
}

// -----------------------------------------------------------------------------
// scripts
// -----------------------------------------------------------------------------

/**
 * What the dependency does on one invocation: succeed, fail with a typed failure of a
 * category, die with a defect, or hang until interrupted; `latency` (milliseconds) passes
 * before it answers.
 *
 * @since 0.1.0
 * @category models
 */
export type Outcome =
  | { readonly _tag: "Success"; readonly latency: number }
  | { readonly _tag: "Failure"; readonly category: Failure.Category; readonly latency: number }
  | { readonly _tag: "Defect"; readonly latency: number }
  | { readonly _tag: "Hang" }

/**
 * One call of a script: when it arrives (milliseconds from the start) and what the dependency
 * answers to its successive attempts (the first attempt takes the first outcome, each retry the
 * next; once they run out the dependency succeeds at once).
 *
 * @since 0.1.0
 * @category models
 */
export interface ScriptedCall {
  readonly at: number
  readonly outcomes: ReadonlyArray<Outcome>
}

/**
 * A call script: calls in order of arrival, and the seed of the run's `Random`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Script {
  readonly calls: ReadonlyArray<ScriptedCall>
  readonly seed: number
}

/**
 * The typed failure a script injects: it classifies itself under its category, so retry and
 * breakers treat it as they would a real failure of that kind.
 *
 * @since 0.1.0
 * @category errors
 */
export class ScriptedFailure implements Failure.SelfClassifying {
  /** @since 0.1.0 */
  readonly _tag = "ScriptedFailure"
  constructor(readonly category: Failure.Category) {}
  get message(): string {
    return `scripted ${this.category} failure`
  }
  get [Failure.RuleKey](): Failure.RuleObject {
    return scriptedRule(this.category)
  }
}

/** The rule of each category's scripted failure, made once: every failure is classified twice (breaker, retry). */
const scriptedRules = new Map<Failure.Category, Failure.RuleObject>()

const scriptedRule = (category: Failure.Category): Failure.RuleObject => {
  let rule = scriptedRules.get(category)
  if (rule === undefined) {
    rule = { category, code: `SCRIPTED_${String(category).toUpperCase()}` }
    if (scriptedRules.size < 64) scriptedRules.set(category, rule)
  }
  return rule
}

/**
 * The defect a script injects.
 *
 * @since 0.1.0
 * @category errors
 */
export class ScriptedDefect {
  /** @since 0.1.0 */
  readonly _tag = "ScriptedDefect"
  /** @since 0.1.0 */
  readonly message = "scripted defect"
}

const instantSuccess: Outcome = { _tag: "Success", latency: 0 }

/**
 * The outcome as a `Chaos` decision (the form `Chaos.Injector.decide` returns).
 *
 * @since 0.1.0
 * @category scripts
 */
export const toChaosDecision = (outcome: Outcome): Chaos.Decision => ({
  fault: outcome._tag === "Success"
    ? "none"
    : outcome._tag === "Failure"
    ? "failure"
    : outcome._tag === "Defect"
    ? "defect"
    : "hang",
  latency: Duration.millis(outcome._tag === "Hang" ? 0 : outcome.latency)
})

/**
 * A hang inside a run: suspended until interrupted. `Effect.never` also holds a Node timer so
 * that the process stays alive, which a run (synchronous, on its own clock) has no use for. The
 * register function takes exactly one parameter: `Effect.async` gives any other an `AbortSignal`
 * and wraps the effect in an interruption handler for it.
 */
const suspended: Effect.Effect<never> = Effect.async<never>((_resume) => {})

const play = <A, E, R>(
  outcome: Outcome,
  self: Effect.Effect<A, E, R>,
  hang: Effect.Effect<never> = Effect.never
): Effect.Effect<A, E | ScriptedFailure, R> => {
  if (outcome._tag === "Hang") return hang
  const answer: Effect.Effect<A, E | ScriptedFailure, R> = outcome._tag === "Success"
    ? self
    : outcome._tag === "Failure"
    ? Effect.fail(new ScriptedFailure(outcome.category))
    : Effect.die(new ScriptedDefect())
  return outcome.latency > 0 ? Effect.zipRight(Effect.sleep(outcome.latency), answer) : answer
}

/**
 * A `Chaos`-compatible injector that follows a script's outcomes in order (then lets every
 * call through): use it where you would use `Chaos.inject`, e.g. around a service call in a
 * scenario test.
 *
 * @since 0.1.0
 * @category scripts
 */
export const injector = (outcomes: ReadonlyArray<Outcome>): Chaos.Injector<ScriptedFailure> => {
  let next = 0
  const take = Effect.sync(() => outcomes[next++] ?? instantSuccess)
  const inject = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | ScriptedFailure, R> =>
    Effect.flatMap(take, (outcome) => play(outcome, self))
  return Object.assign(inject, { decide: Effect.map(take, toChaosDecision) })
}

// -----------------------------------------------------------------------------
// arbitraries
// -----------------------------------------------------------------------------

/**
 * Options of {@link Arbitrary.script}.
 *
 * @since 0.1.0
 * @category models
 */
export interface ScriptOptions {
  /** Categories of the typed failures. Default: `connection`, `timeout`, `communication`, `validation`. */
  readonly categories?: ReadonlyArray<Failure.Category> | undefined
  /** At most this many calls. Default: `6`. */
  readonly maxCalls?: number | undefined
  /** At most this many scripted outcomes per call. Default: `6`. */
  readonly maxOutcomes?: number | undefined
  /** The longest latency, in milliseconds. Default: `2000`. */
  readonly maxLatency?: number | undefined
  /** The longest gap between two arrivals, in milliseconds. Default: `5000`. */
  readonly maxGap?: number | undefined
  /** Inject defects. Default: `true`. */
  readonly defects?: boolean | undefined
  /** Inject hangs. Default: `true`. */
  readonly hangs?: boolean | undefined
}

const defaultCategories: ReadonlyArray<Failure.Category> = ["connection", "timeout", "communication", "validation"]

const outcomeArbitrary = (options: ScriptOptions = {}): fc.Arbitrary<Outcome> => {
  const latency = fc.nat({ max: Math.max(0, Math.floor(options.maxLatency ?? 2000)) })
  const categories = options.categories ?? defaultCategories
  if (categories.length === 0) throw new RangeError("Testing.Arbitrary.outcome: categories must not be empty")
  const arbitraries: Array<fc.WeightedArbitrary<Outcome>> = [
    { weight: 4, arbitrary: latency.map((latency): Outcome => ({ _tag: "Success", latency })) },
    {
      weight: 4,
      arbitrary: fc.record({ category: fc.constantFrom(...categories), latency }).map((
        { category, latency }
      ): Outcome => ({ _tag: "Failure", category, latency }))
    }
  ]
  if (options.defects ?? true) {
    arbitraries.push({ weight: 1, arbitrary: latency.map((latency): Outcome => ({ _tag: "Defect", latency })) })
  }
  if (options.hangs ?? true) arbitraries.push({ weight: 1, arbitrary: fc.constant<Outcome>({ _tag: "Hang" }) })
  return fc.oneof(...arbitraries)
}

const scriptArbitrary = (options: ScriptOptions = {}): fc.Arbitrary<Script> => {
  const maxCalls = positiveWhole("Testing.Arbitrary.script", "maxCalls", options.maxCalls) ?? 6
  const maxOutcomes = positiveWhole("Testing.Arbitrary.script", "maxOutcomes", options.maxOutcomes, 0) ?? 6
  const gap = fc.nat({ max: Math.max(0, Math.floor(options.maxGap ?? 5000)) })
  const outcomes = fc.array(outcomeArbitrary(options), { maxLength: maxOutcomes })
  return fc.record({
    // each call comes its gap after the one before; the first gap counts from 0
    calls: fc.array(fc.record({ gap, outcomes }), { minLength: 1, maxLength: maxCalls }),
    seed: fc.integer()
  }).map(({ calls, seed }) => {
    let at = 0
    return { calls: calls.map(({ gap, outcomes }) => ({ at: (at += gap), outcomes })), seed }
  })
}

const millisArb = (min: number, max: number) => fc.integer({ min, max })

const limitsArbitrary = fc.record({
  maxDelay: millisArb(0, 60_000),
  maxRetries: fc.nat({ max: 12 }),
  maxElapsed: millisArb(0, 300_000)
}, { requiredKeys: [] })

const withLimits = <A extends object>(arbitrary: fc.Arbitrary<A>): fc.Arbitrary<A & Pick<BackoffOptions, "limits">> =>
  fc.tuple(arbitrary, fc.option(limitsArbitrary, { nil: undefined })).map(([options, limits]) =>
    limits === undefined ? options : { ...options, limits }
  )

const factorArb = fc.double({ min: 1, max: 4, noNaN: true })

const backoffOptionsArbitrary: fc.Arbitrary<BackoffOptions> = withLimits(fc.oneof(
  fc.record({
    _tag: fc.constant("exponential" as const),
    base: millisArb(1, 5_000),
    factor: factorArb,
    cap: millisArb(1, 120_000)
  }, {
    requiredKeys: ["_tag", "base", "factor"]
  }),
  fc.record({ _tag: fc.constant("linear" as const), base: millisArb(1, 5_000), cap: millisArb(1, 120_000) }, {
    requiredKeys: ["_tag", "base"]
  }),
  fc.record({ _tag: fc.constant("fibonacci" as const), base: millisArb(1, 5_000), cap: millisArb(1, 120_000) }, {
    requiredKeys: ["_tag", "base"]
  }),
  fc.record({
    _tag: fc.constant("fromDelays" as const),
    delays: fc.array(millisArb(0, 60_000), { minLength: 1, maxLength: 8 })
  }),
  fc.tuple(millisArb(1, 5_000), millisArb(0, 120_000)).map(([base, extra]) => ({
    _tag: "decorrelatedJitter" as const,
    base,
    cap: base + extra
  })),
  fc.tuple(
    fc.constantFrom("fullJitter" as const, "equalJitter" as const),
    millisArb(1, 5_000),
    millisArb(0, 120_000),
    factorArb
  )
    .map(([_tag, base, extra, factor]) => ({ _tag, base, cap: base + extra, factor }))
) as fc.Arbitrary<BackoffOptions>)

/**
 * Arbitraries for the toolkit's options and for call scripts, built on `effect`'s `FastCheck`
 * (use them in `it.prop` / `it.effect.prop`, or with `FastCheck.assert`).
 *
 * @since 0.1.0
 * @category arbitraries
 */
export const Arbitrary = {
  /** Any valid {@link BackoffOptions}: every backoff family, with or without `Backoff.limit` caps. */
  backoffOptions: backoffOptionsArbitrary,
  /** Valid `Backoff.Limits` in milliseconds (each field may be absent). */
  limits: limitsArbitrary,
  /** One scripted {@link Outcome}. */
  outcome: outcomeArbitrary,
  /** A call {@link Script}: arrivals, outcomes and a seed. */
  script: scriptArbitrary,
  /**
   * Valid `Chaos.Options` (rates that sum to at most 1, a latency range, a seed) injecting the
   * failure `failure` builds: the rate-based form of a script, for `Chaos.inject`.
   */
  chaosOptions: <E>(failure: () => E): fc.Arbitrary<Chaos.Options<E>> =>
    fc.record({
      seed: fc.integer(),
      rates: fc.tuple(fc.nat({ max: 100 }), fc.nat({ max: 100 }), fc.nat({ max: 100 }), fc.nat({ max: 100 })),
      latency: fc.tuple(fc.nat({ max: 1000 }), fc.nat({ max: 1000 }))
    }).map(({ latency: [a, b], rates: [f, d, h, n], seed }) => {
      const total = Math.max(1, f + d + h + n)
      return {
        seed,
        failure,
        failureRate: f / total,
        defectRate: d / total,
        hangRate: h / total,
        latency: { min: Math.min(a, b), max: Math.max(a, b) }
      }
    })
}

// -----------------------------------------------------------------------------
// subjects
// -----------------------------------------------------------------------------

/**
 * The limits a policy promises, checked by {@link invariants}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Limits {
  /** Retries after the first attempt, per call. Default: not checked. */
  readonly maxRetries?: number | undefined
  /** Half-open probes in flight at once. Default: not checked. */
  readonly halfOpenProbes?: number | undefined
  /** Attempts running at once. Default: not checked. */
  readonly maxConcurrent?: number | undefined
}

/**
 * What {@link runScript} runs: a policy function, the breaker and bulkhead it uses (so the
 * timeline can show their state) and the limits it promises.
 *
 * @since 0.1.0
 * @category models
 */
export interface Subject {
  readonly policy: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, unknown, R>
  readonly breaker?: CircuitBreaker.CircuitBreaker | undefined
  readonly bulkhead?: Bulkhead.Bulkhead | undefined
  readonly limits?: Limits | undefined
}

/**
 * Options of {@link policy}: the stages of a `Policy.make`, each given by its options so that a
 * fresh breaker and bulkhead are made for every run.
 *
 * @since 0.1.0
 * @category models
 */
export interface PolicyOptions {
  readonly name?: string | undefined
  /** Per-attempt time limit. Default: none. */
  readonly timeout?: Duration.DurationInput | undefined
  /** Bulkhead options. Default: no bulkhead. */
  readonly bulkhead?: Bulkhead.Options | undefined
  /** Breaker options. Default: no breaker. */
  readonly breaker?: CircuitBreaker.Options | undefined
  /** Retry options (`Retry.policy`). Default: no retries. */
  readonly retry?: Retry.Options<unknown> | undefined
  /** Time limit of the whole call. Default: none. */
  readonly totalTimeout?: Duration.DurationInput | undefined
}

const matrixMaxRetries = Math.max(...Object.values(Failure.defaultMatrix).map((row) => row.maxRetries))

/**
 * A subject built with `Policy.make` from stage options: a fresh breaker (without a health
 * check) and bulkhead per run, and the limits they promise (`retry.maxRetries`, or the largest
 * budget of the decision matrix; `halfOpenProbes`, default 3; the bulkhead's `maxConcurrent`).
 *
 * @since 0.1.0
 * @category subjects
 */
export const policy = (options: PolicyOptions): Effect.Effect<Subject, never, Scope.Scope> => {
  const maxRetries = options.retry === undefined ? 0 : options.retry.maxRetries ?? matrixMaxRetries
  // checked on the first run, so that bad options are a defect of the run, as with every stage
  let retry: ReturnType<typeof Retry.policy> | undefined
  const stages = (
    breaker: CircuitBreaker.CircuitBreaker | undefined,
    bulkhead: Bulkhead.Bulkhead | undefined
  ): Subject["policy"] =>
    Policy.make({
      ...(options.name !== undefined ? { name: options.name } : {}),
      timeout: options.timeout,
      totalTimeout: options.totalTimeout,
      bulkhead: bulkhead?.protect,
      breaker: breaker?.protect,
      retry: options.retry === undefined ? undefined : retry ??= Retry.policy(options.retry)
    }) as Subject["policy"]
  // without a breaker or a bulkhead the policy holds no state between calls: it is built (and
  // its options checked) on the first run and shared by every run after it
  if (options.breaker === undefined && options.bulkhead === undefined) {
    let shared: Subject | undefined
    return Effect.sync(() => shared ??= { policy: stages(undefined, undefined), limits: { maxRetries } })
  }
  return Effect.gen(function*() {
    const breaker = options.breaker === undefined
      ? undefined
      : yield* CircuitBreaker.make({ health: false, ...options.breaker })
    const bulkhead = options.bulkhead === undefined ? undefined : yield* Bulkhead.make(options.bulkhead)
    return {
      policy: stages(breaker, bulkhead),
      breaker,
      bulkhead,
      limits: {
        maxRetries,
        halfOpenProbes: breaker === undefined ? undefined : options.breaker?.halfOpenProbes ?? 3,
        maxConcurrent: bulkhead?.options.maxConcurrent
      }
    }
  })
}

// -----------------------------------------------------------------------------
// timeline
// -----------------------------------------------------------------------------

/**
 * What an attempt did, as the dependency saw it.
 *
 * @since 0.1.0
 * @category models
 */
export type AttemptOutcome =
  | { readonly _tag: "Success" }
  | { readonly _tag: "Failure"; readonly category: Failure.Category }
  | { readonly _tag: "Defect" }
  | { readonly _tag: "Interrupted" }
  | { readonly _tag: "Running" }

/**
 * What the policy did after an attempt: retried after a delay, or stopped.
 *
 * @since 0.1.0
 * @category models
 */
export type RetryDecision =
  | { readonly _tag: "Retry"; readonly after: number }
  | { readonly _tag: "Stop" }
  | { readonly _tag: "Pending" }

/**
 * One invocation of the dependency.
 *
 * @since 0.1.0
 * @category models
 */
export interface Attempt {
  /** The call it belongs to (its index in the script). */
  readonly call: number
  /** 1 for the first attempt of the call. */
  readonly attempt: number
  readonly start: number
  /** `undefined` while it still runs. */
  readonly end: number | undefined
  /** What the script told the dependency to do. */
  readonly scripted: Outcome
  readonly outcome: AttemptOutcome
  /** The breaker's state when the attempt was admitted. */
  readonly breaker: CircuitBreaker.State | undefined
  /** Half-open probes in flight when it started, itself included (0 when not a probe). */
  readonly probes: number
  /** Attempts running when it started, itself included: the bulkhead's occupancy. */
  readonly inFlight: number
  /** The bulkhead's own count of active calls when it started. */
  readonly bulkheadActive: number | undefined
  readonly decision: RetryDecision
}

/**
 * How a call ended, as its caller saw it.
 *
 * @since 0.1.0
 * @category models
 */
export type CallExit =
  | { readonly _tag: "Success" }
  | { readonly _tag: "Failure"; readonly error: unknown }
  | { readonly _tag: "Defect"; readonly defect: unknown }
  | { readonly _tag: "Interrupted" }
  | { readonly _tag: "Pending" }

/**
 * One call of the script.
 *
 * @since 0.1.0
 * @category models
 */
export interface Call {
  readonly call: number
  readonly start: number
  /** `undefined` when the call never ended. */
  readonly end: number | undefined
  readonly exit: CallExit
  readonly attempts: number
}

/**
 * What happened when a script ran through a policy.
 *
 * @since 0.1.0
 * @category models
 */
export interface Timeline {
  readonly script: Script
  readonly calls: ReadonlyArray<Call>
  /** Every attempt, in the order they started. */
  readonly attempts: ReadonlyArray<Attempt>
  readonly limits: Limits
  /** Virtual time when the run stopped. */
  readonly end: number
  /** `stuck`: something waited forever; `horizon`: time ran past the horizon. */
  readonly ending: Simulation.Ending
}

/**
 * Options of {@link runScript}.
 *
 * @since 0.1.0
 * @category models
 */
export interface RunOptions {
  /** Stop after this much virtual time past the last arrival, in milliseconds. Default: 1 hour. */
  readonly horizon?: number | undefined
  /** Keep the policy's logs. Default: `false` (a run is silent). */
  readonly logs?: boolean | undefined
}

interface MutableAttempt {
  call: number
  attempt: number
  start: number
  end: number | undefined
  scripted: Outcome
  outcome: AttemptOutcome
  breaker: CircuitBreaker.State | undefined
  probes: number
  inFlight: number
  bulkheadActive: number | undefined
  decision: RetryDecision
  generation: number
}

interface MutableCall {
  call: number
  start: number
  end: number | undefined
  exit: CallExit
  attempts: number
}

const callSucceeded: CallExit = { _tag: "Success" }

const exitOfCause = (cause: Cause.Cause<unknown>): CallExit => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) return { _tag: "Failure", error: failure.value }
  const defect = Cause.dieOption(cause)
  if (Option.isSome(defect)) return { _tag: "Defect", defect: defect.value }
  return { _tag: "Interrupted" }
}

const attemptSucceeded: AttemptOutcome = { _tag: "Success" }

const attemptOutcomeOfCause = (cause: Cause.Cause<unknown>): AttemptOutcome => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const error = failure.value
    return { _tag: "Failure", category: error instanceof ScriptedFailure ? error.category : "system" }
  }
  return Cause.isDie(cause) ? { _tag: "Defect" } : { _tag: "Interrupted" }
}

const isSubjectEffect = (u: Subject | Effect.Effect<Subject, never, any>): u is Effect.Effect<Subject, never, any> =>
  Effect.isEffect(u)

const runScriptSync = <R>(
  runtime: Runtime.Runtime<R>,
  subject: Subject | Effect.Effect<Subject, never, Scope.Scope | R>,
  script: Script,
  options: RunOptions
): Timeline => {
  const attempts: Array<MutableAttempt> = []
  const calls: Array<MutableCall> = script.calls.map(({ at }, call) => ({
    call,
    start: at,
    end: undefined,
    exit: { _tag: "Pending" },
    attempts: 0
  }))
  let limits: Limits = {}
  let inFlight = 0
  // once the run is stopped, what the final interruption does is not part of the timeline
  let stopped = false
  const probesByGeneration = new Map<number, number>()
  const lastArrival = script.calls.reduce((last, call) => Math.max(last, call.at), 0)
  const horizon = lastArrival + (options.horizon ?? 3_600_000)

  const program = (clock: { unsafeCurrentTimeMillis(): number }) =>
    Effect.scoped(Effect.gen(function*() {
      const made = isSubjectEffect(subject) ? yield* subject : subject
      limits = made.limits ?? {}
      const { breaker, bulkhead } = made
      const readBreaker = breaker === undefined ? undefined : Synchronous.readOf(breaker.metrics)
      const readBulkhead = bulkhead === undefined ? undefined : Synchronous.readOf(bulkhead.state)
      const readsAreSynchronous = (breaker === undefined || readBreaker !== undefined) &&
        (bulkhead === undefined || readBulkhead !== undefined)
      const observeBreaker = (attempt: MutableAttempt, metrics: CircuitBreaker.Metrics): void => {
        attempt.breaker = metrics.state
        if (metrics.state === "HalfOpen") {
          attempt.generation = metrics.opens
          const probes = (probesByGeneration.get(metrics.opens) ?? 0) + 1
          probesByGeneration.set(metrics.opens, probes)
          attempt.probes = probes
        }
      }
      const observeAsEffects = (attempt: MutableAttempt, played: Effect.Effect<void, ScriptedFailure>) => {
        const afterBulkhead = bulkhead === undefined ? played : Effect.flatMap(bulkhead.state, (state) => {
          attempt.bulkheadActive = state.active
          return played
        })
        return breaker === undefined ? afterBulkhead : Effect.flatMap(breaker.metrics, (metrics) => {
          observeBreaker(attempt, metrics)
          return afterBulkhead
        })
      }
      const dependency = (call: number): Effect.Effect<void, ScriptedFailure> =>
        Effect.suspend(() => {
          const record = calls[call]!
          const scripted = script.calls[call]!.outcomes[record.attempts] ?? instantSuccess
          record.attempts++
          inFlight++
          const attempt: MutableAttempt = {
            call,
            attempt: record.attempts,
            start: clock.unsafeCurrentTimeMillis(),
            end: undefined,
            scripted,
            outcome: { _tag: "Running" },
            breaker: undefined,
            probes: 0,
            inFlight,
            bulkheadActive: undefined,
            decision: { _tag: "Pending" },
            generation: -1
          }
          attempts.push(attempt)
          const played = play(scripted, Effect.void, suspended)
          // the breaker's state, then the bulkhead's, then the answer: read in one step when both
          // are the toolkit's own (their reads are plain functions), else one step each
          const observed = breaker === undefined && bulkhead === undefined
            ? played
            : readsAreSynchronous
            ? Effect.suspend(() => {
              if (readBreaker !== undefined) observeBreaker(attempt, readBreaker())
              if (readBulkhead !== undefined) attempt.bulkheadActive = readBulkhead().active
              return played
            })
            : observeAsEffects(attempt, played)
          const ended = (outcome: AttemptOutcome): void => {
            if (stopped) return
            inFlight--
            attempt.end = clock.unsafeCurrentTimeMillis()
            attempt.outcome = outcome
            if (attempt.generation >= 0) {
              probesByGeneration.set(attempt.generation, probesByGeneration.get(attempt.generation)! - 1)
            }
          }
          // `Effect.onExit` in one frame: the attempt's end is recorded however it ends, interrupted included
          return Effect.uninterruptibleMask((restore) =>
            Effect.matchCauseEffect(restore(observed), {
              onSuccess: () => {
                ended(attemptSucceeded)
                return Effect.void
              },
              onFailure: (cause) => {
                ended(attemptOutcomeOfCause(cause))
                return Effect.failCause(cause)
              }
            })
          )
        })
      const fibers: Array<Fiber.RuntimeFiber<void>> = []
      for (const call of calls) {
        const ended = (exit: CallExit): void => {
          call.end = clock.unsafeCurrentTimeMillis()
          call.exit = exit
        }
        // `Effect.exit` and a step after it, in one: recorded when the call ends. Only the stop
        // interrupts a call fiber (the root is interruptible), and an interrupted fiber runs
        // neither handler, even when its policy ends after the stop: nothing is recorded then
        const run = Effect.matchCause(made.policy(dependency(call.call)), {
          onSuccess: () => ended(callSucceeded),
          onFailure: (cause) => ended(exitOfCause(cause))
        })
        fibers.push(yield* Effect.fork(call.start > 0 ? Effect.delay(run, call.start) : run))
      }
      yield* Fiber.awaitAll(fibers)
    }))

  const result = Simulation.run(runtime, program, {
    horizon,
    tasks: 10_000_000,
    onStop: () => {
      stopped = true
    },
    random: Random.make(script.seed),
    quiet: options.logs !== true
  })
  // a subject that could not be made (bad options are a defect) is the caller's error, not a timeline
  if (result.exit !== undefined && Exit.isFailure(result.exit) && !Cause.isInterruptedOnly(result.exit.cause)) {
    throw Cause.squash(result.exit.cause)
  }
  // decisions: a later attempt of the same call means the policy retried
  const byCall = new Map<number, Array<MutableAttempt>>()
  for (const attempt of attempts) {
    const list = byCall.get(attempt.call)
    if (list === undefined) byCall.set(attempt.call, [attempt])
    else list.push(attempt)
  }
  for (const list of byCall.values()) {
    for (let i = 0; i < list.length; i++) {
      const attempt = list[i]!
      const next = list[i + 1]
      if (next !== undefined) {
        attempt.decision = { _tag: "Retry", after: next.start - (attempt.end ?? next.start) }
      } else if (attempt.end !== undefined && calls[attempt.call]!.end !== undefined) {
        attempt.decision = { _tag: "Stop" }
      }
    }
  }
  return {
    script,
    calls,
    attempts: attempts.map(({ generation: _, ...attempt }) => attempt),
    limits,
    end: result.now,
    ending: result.ending
  }
}

/**
 * Plays a script through a policy on a virtual clock and returns its {@link Timeline}. The
 * subject is made afresh for the run (pass `Testing.policy(...)` or your own effect that makes
 * one), time starts at 0 and moves, as with `TestClock`, only when every fiber waits on it,
 * and the run has its own `Random` seeded by `script.seed`. A run is synchronous and never
 * waits for real time, so hundreds to thousands of scripts fit in one test.
 *
 * @example
 * ```ts
 * import { Testing } from "@bulwark/core"
 * import { Effect } from "effect"
 *
 * const subject = Testing.policy({ timeout: "1 second", retry: { maxRetries: 2 }, breaker: { halfOpenProbes: 1 } })
 * const script: Testing.Script = {
 *   calls: [
 *     { at: 0, outcomes: [{ _tag: "Failure", category: "connection", latency: 10 }] },
 *     { at: 100, outcomes: [{ _tag: "Hang" }] }
 *   ],
 *   seed: 1
 * }
 * const program = Effect.gen(function*() {
 *   const timeline = yield* Testing.runScript(subject, script)
 *   yield* Testing.check(timeline)
 * })
 * ```
 *
 * @since 0.1.0
 * @category policies
 */
export const runScript = <R = never>(
  subject: Subject | Effect.Effect<Subject, never, Scope.Scope | R>,
  script: Script,
  options: RunOptions = {}
): Effect.Effect<Timeline, never, Exclude<R, Scope.Scope>> =>
  Effect.flatMap(
    Effect.runtime<Exclude<R, Scope.Scope>>(),
    (runtime) => Effect.sync(() => runScriptSync(runtime as Runtime.Runtime<R>, subject, script, options))
  )

// -----------------------------------------------------------------------------
// rendering
// -----------------------------------------------------------------------------

const showOutcome = (outcome: Outcome): string =>
  outcome._tag === "Hang"
    ? "hang"
    : outcome._tag === "Failure"
    ? `fail ${outcome.category}${outcome.latency > 0 ? ` after ${ms(outcome.latency)}` : ""}`
    : `${outcome._tag === "Success" ? "succeed" : "die"}${outcome.latency > 0 ? ` after ${ms(outcome.latency)}` : ""}`

const showAttemptOutcome = (outcome: AttemptOutcome): string =>
  outcome._tag === "Failure" ? `failed ${outcome.category}` : outcome._tag.toLowerCase()

const showError = (error: unknown): string => {
  if (error instanceof ScriptedFailure) return `ScriptedFailure(${error.category})`
  const tag = typeof error === "object" && error !== null ? (error as { readonly _tag?: unknown })._tag : undefined
  return typeof tag === "string" ? tag : show(error)
}

const showExit = (exit: CallExit): string =>
  exit._tag === "Failure"
    ? `failed with ${showError(exit.error)}`
    : exit._tag === "Defect"
    ? `died with ${exit.defect instanceof ScriptedDefect ? "the scripted defect" : show(exit.defect)}`
    : exit._tag === "Pending"
    ? "never ended"
    : exit._tag.toLowerCase()

/**
 * A script as text: one line per call (arrival and outcomes), then the seed.
 *
 * @since 0.1.0
 * @category rendering
 */
export const renderScript = (script: Script): string =>
  [
    ...script.calls.map((call, i) =>
      `call ${i} at ${ms(call.at)}: ${
        call.outcomes.length === 0 ? "succeeds" : `${call.outcomes.map(showOutcome).join(", ")}, then succeeds`
      }`
    ),
    `Random seed ${script.seed}`
  ].join("\n")

/**
 * A timeline as text: each attempt on a line (time, call, attempt, outcome, breaker state,
 * occupancy, decision), then how each call ended.
 *
 * @since 0.1.0
 * @category rendering
 */
export const render = (timeline: Timeline): string => {
  const lines = timeline.attempts.map((a) => {
    const decision = a.decision._tag === "Retry"
      ? `retry after ${ms(a.decision.after)}`
      : a.decision._tag === "Stop"
      ? "stop"
      : "-"
    const breaker = a.breaker === undefined ? "" : ` breaker ${a.breaker}${a.probes > 0 ? ` (probe ${a.probes})` : ""}`
    return `  ${ms(a.start)}: call ${a.call} attempt ${a.attempt}: ${showOutcome(a.scripted)} -> ${
      showAttemptOutcome(a.outcome)
    }${a.end !== undefined ? ` at ${ms(a.end)}` : ""};${breaker} in flight ${a.inFlight}; ${decision}`
  })
  const calls = timeline.calls.map((c) =>
    `  call ${c.call} (at ${ms(c.start)}): ${showExit(c.exit)}${
      c.end !== undefined ? ` at ${ms(c.end)}` : ""
    } after ${c.attempts} attempt(s)`
  )
  return ["attempts:", ...(lines.length === 0 ? ["  (none)"] : lines), "calls:", ...calls].join("\n")
}

// -----------------------------------------------------------------------------
// invariants
// -----------------------------------------------------------------------------

/**
 * A check over a timeline: `undefined` when it holds, else what broke it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Invariant {
  readonly name: string
  readonly check: (timeline: Timeline) => string | undefined
}

/**
 * Makes an invariant of your own.
 *
 * @since 0.1.0
 * @category invariants
 */
export const invariant = (name: string, check: (timeline: Timeline) => string | undefined): Invariant => ({
  name,
  check
})

const everyCallEnds = invariant("everyCallEnds", (t) => {
  const pending = t.calls.filter((c) => c.exit._tag === "Pending")
  return pending.length === 0
    ? undefined
    : `call(s) ${pending.map((c) => c.call).join(", ")} never ended (the run ${
      t.ending === "stuck" ? "got stuck: nothing left to wait for" : "passed its horizon"
    })`
})

const nothingLost = invariant("nothingLost", (t) => {
  for (const a of t.attempts) {
    const call = t.calls[a.call]!
    if (call.end !== undefined && (a.end === undefined || a.end > call.end)) {
      return `call ${a.call} ended at ${ms(call.end)} while its attempt ${a.attempt} was still running`
    }
  }
  for (const c of t.calls) {
    if (c.end === undefined) continue
    const own = t.attempts.filter((a) => a.call === c.call)
    const last = own[own.length - 1]
    // a deadline reached at the very instant the attempt succeeded may win: boundaries are
    // inclusive, so only a success that came strictly before the call ended can be lost
    if (last?.outcome._tag === "Success" && c.exit._tag !== "Success" && last.end! < c.end) {
      return `call ${c.call}'s last attempt succeeded, but the caller saw: ${showExit(c.exit)}`
    }
  }
  return undefined
})

const failuresTyped = invariant("failuresTyped", (t) => {
  for (const c of t.calls) {
    if (c.exit._tag === "Interrupted") return `call ${c.call} was interrupted instead of failing with a typed error`
    if (c.exit._tag === "Defect" && !(c.exit.defect instanceof ScriptedDefect)) {
      return `call ${c.call} died with a defect that was not injected: ${show(c.exit.defect)}`
    }
  }
  return undefined
})

const retriesWithinBudget = (maxRetries?: number): Invariant =>
  invariant("retriesWithinBudget", (t) => {
    const max = maxRetries ?? t.limits.maxRetries
    if (max === undefined) return undefined
    const over = t.calls.find((c) => c.attempts > max + 1)
    return over === undefined
      ? undefined
      : `call ${over.call} made ${over.attempts} attempts; at most ${max + 1} (1 + maxRetries ${max})`
  })

const probesWithinLimit = (halfOpenProbes?: number): Invariant =>
  invariant("probesWithinLimit", (t) => {
    const max = halfOpenProbes ?? t.limits.halfOpenProbes
    if (max === undefined) return undefined
    const over = t.attempts.find((a) => a.probes > max)
    return over === undefined
      ? undefined
      : `at ${ms(over.start)} call ${over.call} was probe ${over.probes} in flight; halfOpenProbes is ${max}`
  })

const bulkheadWithinLimit = (maxConcurrent?: number): Invariant =>
  invariant("bulkheadWithinLimit", (t) => {
    const max = maxConcurrent ?? t.limits.maxConcurrent
    if (max === undefined) return undefined
    const over = t.attempts.find((a) => a.inFlight > max)
    return over === undefined
      ? undefined
      : `at ${ms(over.start)} call ${over.call} made ${over.inFlight} attempts in flight; maxConcurrent is ${max}`
  })

/**
 * The invariants every policy should keep. The budget ones read their limit from the
 * timeline's {@link Limits} unless you pass one.
 *
 * @since 0.1.0
 * @category invariants
 */
export const invariants = {
  /** Every call ends (a hang without a timeout breaks it). */
  everyCallEnds,
  /**
   * No attempt outlives its call, and a call whose last attempt succeeded before it ended
   * succeeds (a deadline reached at the same instant may win: boundaries are inclusive).
   */
  nothingLost,
  /** Every failure the caller sees is typed, or a defect the script injected. */
  failuresTyped,
  /** No call makes more than `1 + maxRetries` attempts. */
  retriesWithinBudget,
  /** A half-open breaker never has more probes in flight than `halfOpenProbes`. */
  probesWithinLimit,
  /** Never more attempts in flight than the bulkhead's `maxConcurrent`. */
  bulkheadWithinLimit
} as const

/**
 * All of {@link invariants}, with limits from the timeline.
 *
 * @since 0.1.0
 * @category invariants
 */
export const allInvariants: ReadonlyArray<Invariant> = [
  everyCallEnds,
  nothingLost,
  failuresTyped,
  retriesWithinBudget(),
  probesWithinLimit(),
  bulkheadWithinLimit()
]

/**
 * A policy broke an invariant. The message names it, says what broke it, and shows the
 * (shrunk) script and its timeline.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvariantError extends Schema.TaggedError<InvariantError>()("InvariantError", {
  invariant: Schema.String,
  message: Schema.String
}) {}

const firstBroken = (
  timeline: Timeline,
  checks: ReadonlyArray<Invariant>
): { readonly name: string; readonly text: string } | undefined => {
  for (const check of checks) {
    const text = check.check(timeline)
    if (text !== undefined) return { name: check.name, text }
  }
  return undefined
}

const describeBroken = (broken: { readonly name: string; readonly text: string }, timeline: Timeline): string =>
  [
    `Invariant "${broken.name}" broken: ${broken.text}`,
    "script:",
    ...renderScript(timeline.script).split("\n").map((line) => `  ${line}`),
    render(timeline)
  ].join("\n")

/**
 * Checks invariants over one timeline (all of them by default); fails with an
 * {@link InvariantError} on the first broken one.
 *
 * @since 0.1.0
 * @category invariants
 */
export const check = (
  timeline: Timeline,
  checks: ReadonlyArray<Invariant> = allInvariants
): Effect.Effect<void, InvariantError> =>
  Effect.suspend(() => {
    const broken = firstBroken(timeline, checks)
    return broken === undefined
      ? Effect.void
      : Effect.fail(new InvariantError({ invariant: broken.name, message: describeBroken(broken, timeline) }))
  })

/**
 * Options of {@link policyLaws}.
 *
 * @since 0.1.0
 * @category models
 */
export interface PolicyLawsOptions extends RunOptions {
  /** The scripts to try. Default: `Arbitrary.script()`. */
  readonly scripts?: fc.Arbitrary<Script> | undefined
  /** The invariants to check. Default: {@link allInvariants}. */
  readonly invariants?: ReadonlyArray<Invariant> | undefined
  /** How many scripts. Default: `200`. */
  readonly runs?: number | undefined
  /** The `FastCheck` seed, to replay a failure. */
  readonly seed?: number | undefined
}

const withoutIndex = <A>(items: ReadonlyArray<A>, index: number): Array<A> => items.filter((_, i) => i !== index)

/**
 * Finishes what `FastCheck`'s shrinking leaves: drops every call and outcome the failure does
 * not need and zeroes latencies, as long as the script still fails.
 */
const minimize = (script: Script, fails: (script: Script) => boolean): Script => {
  let current = script
  const attempt = (candidate: Script): boolean => {
    if (!fails(candidate)) return false
    current = candidate
    return true
  }
  for (let progress = true; progress;) {
    progress = false
    for (let c = current.calls.length - 1; c >= 0 && current.calls.length > 1; c--) {
      if (attempt({ ...current, calls: withoutIndex(current.calls, c) })) progress = true
    }
    for (let c = 0; c < current.calls.length; c++) {
      for (let o = current.calls[c]!.outcomes.length - 1; o >= 0; o--) {
        const call = current.calls[c]!
        const outcome = call.outcomes[o]!
        const calls = (outcomes: Array<Outcome>) =>
          current.calls.map((other, i) => i === c ? { ...call, outcomes } : other)
        if (attempt({ ...current, calls: calls(withoutIndex(call.outcomes, o)) })) {
          progress = true
        } else if (outcome._tag !== "Hang" && outcome.latency > 0) {
          const zero = call.outcomes.map((other, i) => i === o ? { ...outcome, latency: 0 } : other)
          if (attempt({ ...current, calls: calls(zero) })) progress = true
        }
      }
    }
  }
  return current
}

/**
 * Checks that a policy keeps its invariants over random call scripts. A failure is shrunk to
 * a small script and reported with its timeline in an {@link InvariantError}. An invariant may
 * skip a script with `FastCheck.pre`; when FastCheck gives up on too many skips, the check dies
 * with an error saying so.
 *
 * @example
 * ```ts
 * import { Testing } from "@bulwark/core"
 *
 * const check = Testing.policyLaws(
 *   Testing.policy({ timeout: "2 seconds", retry: { maxRetries: 3 }, breaker: {}, bulkhead: { maxConcurrent: 2, maxQueued: 4 } })
 * )
 * // in a test: it.effect("the payments policy keeps its invariants", () => check)
 * ```
 *
 * @since 0.1.0
 * @category policies
 */
export const policyLaws = <R = never>(
  subject: Subject | Effect.Effect<Subject, never, Scope.Scope | R>,
  options: PolicyLawsOptions = {}
): Effect.Effect<void, InvariantError, Exclude<R, Scope.Scope>> =>
  Effect.flatMap(Effect.runtime<Exclude<R, Scope.Scope>>(), (runtime) =>
    Effect.suspend(() => {
      const checks = options.invariants ?? allInvariants
      const runs = positiveWhole("Testing.policyLaws", "runs", options.runs) ?? 200
      const play = (script: Script) => runScriptSync(runtime as Runtime.Runtime<R>, subject, script, options)
      const details = fc.check(
        fc.property(options.scripts ?? scriptArbitrary(), (script) => firstBroken(play(script), checks) === undefined),
        { numRuns: runs, ...(options.seed !== undefined ? { seed: options.seed } : {}) }
      )
      if (!details.failed) return Effect.void
      if (details.counterexample === null) {
        return Effect.die(tooManySkips("Testing.policyLaws", "an invariant", details))
      }
      const fails = (script: Script) => firstBroken(play(script), checks) !== undefined
      const timeline = play(minimize(details.counterexample[0], fails))
      const broken = firstBroken(timeline, checks)!
      const message = `${
        describeBroken(broken, timeline)
      }\nshrunk ${details.numShrinks} time(s); replay with { seed: ${details.seed} }`
      return Effect.fail(new InvariantError({ invariant: broken.name, message }))
    }))
