/**
 * Backoff families as Effect `Schedule`s: fixed delay tables, linear, exponential, fibonacci and
 * the three AWS jitter flavours, with caps on the delay, the number of retries and the elapsed
 * time. Every schedule outputs the delay it chose; all randomness comes from Effect's `Random`,
 * so a run under a seeded `Random` is reproducible.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Interval from "effect/ScheduleInterval"
import * as Intervals from "effect/ScheduleIntervals"
import { describe } from "./internal/describe.js"
import * as InternalDuration from "./internal/duration.js"

/**
 * A backoff: a schedule that outputs the delay before each retry and accepts any input.
 *
 * @since 0.1.0
 * @category models
 */
export type Backoff = Schedule.Schedule<Duration.Duration, unknown>

// -----------------------------------------------------------------------------
// the matrix's delay tables
// -----------------------------------------------------------------------------

/**
 * The `immediate_retry` delays: 0, 100 ms, 200 ms.
 *
 * @since 0.1.0
 * @category constants
 */
export const immediateRetryDelays: ReadonlyArray<Duration.Duration> = [0, 100, 200].map(Duration.millis)

/**
 * The `backoff_retry` delays: 1 s, 2 s, 4 s, 8 s, 16 s.
 *
 * @since 0.1.0
 * @category constants
 */
export const backoffRetryDelays: ReadonlyArray<Duration.Duration> = [1, 2, 4, 8, 16].map(Duration.seconds)

/**
 * The `exponential` delays (factor 3): 1 s, 3 s, 9 s, 27 s.
 *
 * @since 0.1.0
 * @category constants
 */
export const exponentialDelays: ReadonlyArray<Duration.Duration> = [1, 3, 9, 27].map(Duration.seconds)

// -----------------------------------------------------------------------------
// machinery
// -----------------------------------------------------------------------------

const continueAfter = (now: number, delayMillis: number): ScheduleDecision.ScheduleDecision =>
  ScheduleDecision.continueWith(Interval.after(now + delayMillis))

/**
 * The delay a decision asks for, in milliseconds from `now`.
 *
 * @since 0.1.0
 * @category utils
 */
export const decisionDelayMillis = (now: number, decision: ScheduleDecision.ScheduleDecision): number =>
  ScheduleDecision.isDone(decision) ? 0 : Math.max(0, Intervals.start(decision.intervals) - now)

/**
 * A backoff from a function of the retry number (1 for the first retry) and the previous delay,
 * in milliseconds. The function runs inside `Effect`, so it may draw from `Random`.
 */
const unfoldDelays = (
  next: (retry: number, previousMillis: number | undefined) => Effect.Effect<number>
): Backoff =>
  Schedule.makeWithState<{ readonly retry: number; readonly previous: number | undefined }, unknown, Duration.Duration>(
    { retry: 0, previous: undefined },
    (now, _input, state) =>
      Effect.map(next(state.retry + 1, state.previous), (millis) => {
        const delay = Math.max(0, millis)
        return [{ retry: state.retry + 1, previous: delay }, Duration.millis(delay), continueAfter(now, delay)] as const
      })
  )

const durationMillis = (where: string, field: string, input: Duration.DurationInput, min: "> 0" | ">= 0"): number => {
  const millis = InternalDuration.toMillis(input)
  const ok = Number.isFinite(millis) && (min === "> 0" ? millis > 0 : millis >= 0)
  if (!ok) throw new RangeError(`${where}: ${field} must be a finite duration ${min}, got ${describe(input)}`)
  return millis
}

const positiveMillis = (where: string, field: string, input: Duration.DurationInput): number =>
  durationMillis(where, field, input, "> 0")

const nonNegativeMillis = (where: string, field: string, input: Duration.DurationInput): number =>
  durationMillis(where, field, input, ">= 0")

const factorAtLeastOne = (where: string, factor: number): number => {
  if (!(factor >= 1) || !Number.isFinite(factor)) {
    throw new RangeError(`${where}: factor must be a finite number >= 1, got ${factor}`)
  }
  return factor
}

const capOf = (where: string, cap: Duration.DurationInput | undefined): number =>
  cap === undefined ? Number.POSITIVE_INFINITY : positiveMillis(where, "cap", cap)

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

/**
 * Delays from a table; once the table runs out its last delay repeats (the worker-pool
 * `get_retry_delay`), so a retry budget, not the table, ends the retries.
 *
 * @example
 * ```ts
 * import { Backoff } from "@bulwark/core"
 *
 * const schedule = Backoff.fromDelays(Backoff.backoffRetryDelays) // 1s, 2s, 4s, 8s, 16s, 16s, …
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromDelays = (delays: ReadonlyArray<Duration.DurationInput>): Backoff => {
  if (delays.length === 0) throw new RangeError("Backoff.fromDelays: delays must not be empty")
  const millis = delays.map((d, i) => nonNegativeMillis("Backoff.fromDelays", `delays[${i}]`, d))
  return unfoldDelays((retry) => Effect.succeed(millis[Math.min(retry, millis.length) - 1]!))
}

/**
 * @since 0.1.0
 * @category models
 */
export interface LinearOptions {
  /** The first delay; each later delay adds it again: base, 2·base, 3·base … */
  readonly base: Duration.DurationInput
  /** The largest delay. Default: no cap. */
  readonly cap?: Duration.DurationInput | undefined
}

/**
 * Linear backoff: `base × n` for the n-th retry (`attempt × base delay`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const linear = (options: LinearOptions): Backoff => {
  const base = positiveMillis("Backoff.linear", "base", options.base)
  const cap = capOf("Backoff.linear", options.cap)
  return unfoldDelays((retry) => Effect.succeed(Math.min(cap, base * retry)))
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ExponentialOptions {
  /** The first delay. */
  readonly base: Duration.DurationInput
  /** The growth factor, >= 1. Default: 2. */
  readonly factor?: number | undefined
  /** The largest delay. Default: no cap. */
  readonly cap?: Duration.DurationInput | undefined
}

/**
 * Exponential backoff: `base × factor^(n-1)` for the n-th retry.
 *
 * @example
 * ```ts
 * import { Backoff } from "@bulwark/core"
 *
 * // 100ms, 200ms, 400ms … never more than 10s
 * const schedule = Backoff.exponential({ base: "100 millis", cap: "10 seconds" })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const exponential = (options: ExponentialOptions): Backoff => {
  const base = positiveMillis("Backoff.exponential", "base", options.base)
  const factor = factorAtLeastOne("Backoff.exponential", options.factor ?? 2)
  const cap = capOf("Backoff.exponential", options.cap)
  return unfoldDelays((retry) => Effect.succeed(Math.min(cap, base * Math.pow(factor, retry - 1))))
}

/**
 * @since 0.1.0
 * @category models
 */
export interface FibonacciOptions {
  /** The unit: delays are base, base, 2·base, 3·base, 5·base … */
  readonly base: Duration.DurationInput
  /** The largest delay. Default: no cap. */
  readonly cap?: Duration.DurationInput | undefined
}

/**
 * Fibonacci backoff: `base × fib(n)` for the n-th retry (1, 1, 2, 3, 5, 8 …).
 *
 * @since 0.1.0
 * @category constructors
 */
export const fibonacci = (options: FibonacciOptions): Backoff => {
  const base = positiveMillis("Backoff.fibonacci", "base", options.base)
  const cap = capOf("Backoff.fibonacci", options.cap)
  return Schedule.makeWithState<readonly [number, number], unknown, Duration.Duration>(
    [1, 1],
    (now, _input, [current, next]) => {
      const delay = Math.min(cap, base * current)
      // once capped the sequence no longer matters; stop growing it before it overflows
      const state: readonly [number, number] = delay >= cap ? [current, next] : [next, current + next]
      return Effect.succeed([state, Duration.millis(delay), continueAfter(now, delay)] as const)
    }
  )
}

/**
 * @since 0.1.0
 * @category models
 */
export interface JitterOptions {
  /** The first (or smallest) delay. */
  readonly base: Duration.DurationInput
  /** The largest delay. */
  readonly cap: Duration.DurationInput
  /** The growth factor of the underlying exponential, >= 1. Default: 2. */
  readonly factor?: number | undefined
}

const jitterArgs = (where: string, options: JitterOptions) => {
  const base = positiveMillis(where, "base", options.base)
  const cap = positiveMillis(where, "cap", options.cap)
  if (cap < base) throw new RangeError(`${where}: cap (${cap}ms) must be >= base (${base}ms)`)
  return { base, cap, factor: factorAtLeastOne(where, options.factor ?? 2) }
}

/**
 * AWS "decorrelated jitter": each delay is random in `[base, min(cap, 3 × previous)]`, starting
 * from `previous = base`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const decorrelatedJitter = (options: Omit<JitterOptions, "factor">): Backoff => {
  const { base, cap } = jitterArgs("Backoff.decorrelatedJitter", options)
  return unfoldDelays((_retry, previous) => {
    const upper = Math.min(cap, 3 * (previous ?? base))
    return Effect.map(Random.next, (r) => base + r * (upper - base))
  })
}

/**
 * AWS "full jitter": random in `[0, min(cap, base × factor^(n-1))]`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fullJitter = (options: JitterOptions): Backoff => {
  const { base, cap, factor } = jitterArgs("Backoff.fullJitter", options)
  return unfoldDelays((retry) => {
    const ceiling = Math.min(cap, base * Math.pow(factor, retry - 1))
    return Effect.map(Random.next, (r) => r * ceiling)
  })
}

/**
 * AWS "equal jitter": half of `min(cap, base × factor^(n-1))` plus a random share of the other
 * half.
 *
 * @since 0.1.0
 * @category constructors
 */
export const equalJitter = (options: JitterOptions): Backoff => {
  const { base, cap, factor } = jitterArgs("Backoff.equalJitter", options)
  return unfoldDelays((retry) => {
    const ceiling = Math.min(cap, base * Math.pow(factor, retry - 1))
    return Effect.map(Random.next, (r) => ceiling / 2 + r * (ceiling / 2))
  })
}

/**
 * A custom backoff from the retry number (1 for the first retry); the function may use
 * `Random`, `Clock` or anything else in `Effect`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const custom = (
  delay: (retry: number) => Duration.DurationInput | Effect.Effect<Duration.DurationInput>
): Backoff =>
  unfoldDelays((retry) => {
    const out = delay(retry)
    return Effect.isEffect(out)
      ? Effect.map(out, (d) => Duration.toMillis(Duration.decode(d)))
      : Effect.succeed(Duration.toMillis(Duration.decode(out)))
  })

// -----------------------------------------------------------------------------
// caps
// -----------------------------------------------------------------------------

/**
 * Limits for {@link limit}. `maxRetries` counts retries (recurrences), not calls.
 *
 * @since 0.1.0
 * @category models
 */
export interface Limits {
  /** No single delay is longer than this. Default: no cap. */
  readonly maxDelay?: Duration.DurationInput | undefined
  /** At most this many retries. Default: no limit. */
  readonly maxRetries?: number | undefined
  /** No retry starts later than this after the first failure. Default: no limit. */
  readonly maxElapsed?: Duration.DurationInput | undefined
}

interface LimitState {
  readonly inner: unknown
  readonly retries: number
  readonly start: number | undefined
}

/**
 * Caps a schedule: each delay at most `maxDelay`, at most `maxRetries` recurrences, and no
 * recurrence that would start more than `maxElapsed` after the first step.
 *
 * @example
 * ```ts
 * import { Backoff } from "@bulwark/core"
 *
 * const schedule = Backoff.exponential({ base: "100 millis" }).pipe(
 *   Backoff.limit({ maxDelay: "5 seconds", maxRetries: 8, maxElapsed: "1 minute" })
 * )
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const limit: {
  (limits: Limits): <Out, In, R>(self: Schedule.Schedule<Out, In, R>) => Schedule.Schedule<Out, In, R>
  <Out, In, R>(self: Schedule.Schedule<Out, In, R>, limits: Limits): Schedule.Schedule<Out, In, R>
} = dual(2, <Out, In, R>(self: Schedule.Schedule<Out, In, R>, limits: Limits): Schedule.Schedule<Out, In, R> => {
  const maxDelay = limits.maxDelay === undefined
    ? Number.POSITIVE_INFINITY
    : nonNegativeMillis("Backoff.limit", "maxDelay", limits.maxDelay)
  const maxElapsed = limits.maxElapsed === undefined
    ? Number.POSITIVE_INFINITY
    : nonNegativeMillis("Backoff.limit", "maxElapsed", limits.maxElapsed)
  const maxRetries = limits.maxRetries ?? Number.POSITIVE_INFINITY
  if (!(maxRetries >= 0) || (Number.isFinite(maxRetries) && !Number.isInteger(maxRetries))) {
    throw new RangeError(`Backoff.limit: maxRetries must be a whole number >= 0, got ${limits.maxRetries}`)
  }
  return Schedule.makeWithState<LimitState, In, Out, R>(
    { inner: self.initial, retries: 0, start: undefined },
    (now, input, state) =>
      Effect.map(self.step(now, input, state.inner), ([inner, out, decision]) => {
        const start = state.start ?? now
        const next: LimitState = { inner, retries: state.retries + 1, start }
        if (ScheduleDecision.isDone(decision) || state.retries >= maxRetries) {
          return [next, out, ScheduleDecision.done] as const
        }
        const delay = Math.min(maxDelay, decisionDelayMillis(now, decision))
        if (now + delay - start > maxElapsed) return [next, out, ScheduleDecision.done] as const
        return [next, out, continueAfter(now, delay)] as const
      })
  )
})

/**
 * The first `n` delays a schedule would choose, stepping a virtual clock from 0 (fewer when it
 * stops sooner). Useful for tests, charts and docs; uses the `Random` in the context.
 *
 * @since 0.1.0
 * @category utils
 */
export const delays = <Out, R>(
  schedule: Schedule.Schedule<Out, unknown, R>,
  n: number
): Effect.Effect<Array<Duration.Duration>, never, R> =>
  Effect.gen(function*() {
    const out: Array<Duration.Duration> = []
    let state = schedule.initial
    let now = 0
    for (let i = 0; i < n; i++) {
      const [next, , decision] = yield* schedule.step(now, undefined, state)
      if (ScheduleDecision.isDone(decision)) break
      const delay = decisionDelayMillis(now, decision)
      out.push(Duration.millis(delay))
      now += delay
      state = next
    }
    return out
  })
