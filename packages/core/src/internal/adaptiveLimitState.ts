/**
 * The limit algorithms of `AdaptiveLimit`, as pure functions of a state record and one latency
 * sample: no `Effect`, no clock, so a model test (and a simulation) can drive them directly.
 *
 * - **AIMD**: additive increase on a success while the limit is in use, multiplicative decrease
 *   on a dropped call (a timeout or an overload failure, or a call slower than `slowLatency`),
 *   at most once per round trip: a call that started before the last decrease does not cut again.
 * - **Gradient**: the limit is scaled by the ratio of a long-term to a short-term latency
 *   (exponential moving averages over `longWindow` round trips and `shortWindow` samples), with
 *   a tolerance, and `queueSize(limit)` added as an allowance for probing upwards; the result is
 *   smoothed. A timeout or an overload failure scales by the floor (0.5).
 *
 * @internal
 */

/** One finished call, as the limiter measured it. */
export interface Sample {
  /** How long the call ran, in milliseconds (its time in the queue excluded). */
  readonly latency: number
  /** When the call started, in `Clock` milliseconds. */
  readonly startedAt: number
  /** Calls in flight when this one started, itself included. */
  readonly inflight: number
  /** The call failed with a timeout or an overload failure. */
  readonly dropped: boolean
}

/** The settings both algorithms share. */
export interface Bounds {
  readonly minLimit: number
  readonly maxLimit: number
  readonly initialLimit: number
}

/** AIMD's settings. */
export interface AimdConfig extends Bounds {
  readonly _tag: "aimd"
  /** The factor applied to the limit on a drop, in (0, 1). */
  readonly backoffRatio: number
  /** Added to the limit on each success while the limit is in use. */
  readonly increase: number
  /** A success at least this slow (ms) counts as a drop; `Infinity` for none. */
  readonly slowLatency: number
}

/** The gradient algorithm's settings. */
export interface GradientConfig extends Bounds {
  readonly _tag: "gradient"
  /** How much the short-term latency may exceed the long-term before the limit falls; >= 1. */
  readonly tolerance: number
  /** The weight of each new limit estimate, in (0, 1]. */
  readonly smoothing: number
  /** Samples in the short-term moving average; >= 1. */
  readonly shortWindow: number
  /** Round trips in the long-term moving average; >= 2. */
  readonly longWindow: number
  /** The allowance for calls queued at the dependency, as a function of the limit. */
  readonly queueSize: (limit: number) => number
}

/** Either algorithm. */
export type LimitConfig = AimdConfig | GradientConfig

/** The limiter's estimate. `limit` is fractional; {@link admitLimit} is what admission uses. */
export interface LimitState {
  readonly limit: number
  /** The short-term latency (ms); 0 before the first sample. */
  readonly shortLatency: number
  /** The long-term latency (ms); 0 before the first sample. */
  readonly longLatency: number
  readonly samples: number
  /**
   * When the limit last changed (`Clock` ms). Both algorithms change it at most once per round
   * trip: only a call that started after the last change can change it again, so the limit
   * never reacts twice to the same congestion.
   */
  readonly changedAt: number
}

/** The default allowance of the gradient algorithm: the square root of the limit. */
export const defaultQueueSize = (limit: number): number => Math.sqrt(limit)

/** The state before any sample. */
export const initial = (config: LimitConfig): LimitState => ({
  limit: config.initialLimit,
  shortLatency: 0,
  longLatency: 0,
  samples: 0,
  changedAt: Number.NEGATIVE_INFINITY
})

/** The whole number of calls the limit admits at once. */
export const admitLimit = (state: LimitState): number => Math.floor(state.limit)

const clamp = (bounds: Bounds, limit: number): number => Math.min(bounds.maxLimit, Math.max(bounds.minLimit, limit))

/** An exponential moving average over `window` samples, seeded by the first. */
const average = (previous: number, sample: number, window: number, samples: number): number =>
  samples === 0 ? sample : previous + (sample - previous) * (2 / (window + 1))

/** The short-term latency follows every sample; the long-term one is seeded by the first. */
const withSample = (config: LimitConfig, state: LimitState, latency: number) => ({
  shortLatency: average(
    state.shortLatency,
    latency,
    config._tag === "gradient" ? config.shortWindow : 10,
    state.samples
  ),
  longLatency: state.samples === 0 ? latency : state.longLatency,
  samples: state.samples + 1
})

/**
 * At the end of a round the long-term latency takes in the short-term one: its window counts
 * rounds (round trips), not samples, so hours of heavy traffic do not drag it up within seconds.
 */
const longTerm = (config: LimitConfig, state: LimitState, shortLatency: number): number => {
  const window = config._tag === "gradient" ? config.longWindow : 600
  const next = state.longLatency + (shortLatency - state.longLatency) * (2 / (window + 1))
  // the dependency got faster for good: let the long-term latency catch up quickly
  return next > 2 * shortLatency ? next * 0.95 : next
}

/** A round ends with the first sample of a call that started after the limit last changed. */
const roundEnded = (state: LimitState, sample: Sample): boolean => sample.startedAt >= state.changedAt

/** AIMD: the next state after `sample` at `now`. */
export const aimd = (config: AimdConfig, state: LimitState, sample: Sample, now: number): LimitState => {
  const sampled = { ...state, ...withSample(config, state, sample.latency) }
  const dropped = sample.dropped || sample.latency >= config.slowLatency
  // one change per round trip: the calls in flight at the last change saw the old limit
  if (!roundEnded(state, sample)) return sampled
  const next = { ...sampled, longLatency: longTerm(config, sampled, sampled.shortLatency) }
  if (dropped) return { ...next, limit: clamp(config, state.limit * config.backoffRatio), changedAt: now }
  // the limit grows only while it is in use: a limit nobody reaches proves nothing
  if (sample.inflight * 2 < state.limit) return next
  return { ...next, limit: clamp(config, state.limit + config.increase), changedAt: now }
}

/** Gradient: the next state after `sample` at `now`. */
export const gradient = (config: GradientConfig, state: LimitState, sample: Sample, now: number): LimitState => {
  const sampled = { ...state, ...withSample(config, state, sample.latency) }
  if (!roundEnded(state, sample)) return sampled
  const { shortLatency } = sampled
  const longLatency = longTerm(config, sampled, shortLatency)
  const next = { ...sampled, longLatency }
  // an application-limited sample says nothing about the dependency's capacity
  if (sample.inflight * 2 < state.limit && !sample.dropped) return next
  // a timeout or an overload failure says the dependency is past its knee, whatever the ratio
  const scale = sample.dropped
    ? 0.5
    : shortLatency <= 0
    ? 1
    : Math.max(0.5, Math.min(1, (config.tolerance * longLatency) / shortLatency))
  const estimate = state.limit * scale + config.queueSize(state.limit)
  const limit = clamp(config, state.limit * (1 - config.smoothing) + estimate * config.smoothing)
  return { ...next, limit, changedAt: now }
}

/** The next state after `sample` at `now`, by the configured algorithm. */
export const update = (config: LimitConfig, state: LimitState, sample: Sample, now: number): LimitState =>
  config._tag === "aimd" ? aimd(config, state, sample, now) : gradient(config, state, sample, now)
