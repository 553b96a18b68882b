/**
 * The rules of a circuit breaker as a plain state machine: admission (closed, open, half-open
 * with a probe budget), outcome recording (consecutive failures, a count or time window, slow
 * calls), transitions, the position in the open-duration schedule, and taking the state of a
 * snapshot. No `Effect` runs here: time comes from two plain functions, and every change of state is
 * reported to a plain callback. `CircuitBreaker.make` wires a `Clock`, metrics, logs, a store and
 * a `PubSub` around it; a model test drives it directly with a clock of its own.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import type { BreakerState as Phase } from "../BreakerStore.js"
import type { Metrics, Policy } from "../CircuitBreaker.js"
import * as Window from "./window.js"

/** The settings the rules read, checked and resolved by `CircuitBreaker`. */
export interface Rules {
  readonly policy: Policy
  /** The delay of the first open, in milliseconds (the open-duration schedule's first delay, if any). */
  readonly firstOpenDelay: number
  /** Where the open-duration schedule stands after its first delay (opaque to the rules). */
  readonly scheduleAfterFirst: unknown
  readonly halfOpenProbes: number
  readonly successThreshold: number
  /** Calls lasting at least this many milliseconds are slow; `Infinity` when not measured. */
  readonly slowMillis: number
  readonly slowRate: number
}

/** Where the breaker reads time: wall time (reported, exchanged) and monotonic time (decided on). */
export interface Time {
  /** Epoch milliseconds. */
  readonly wall: () => number
  /** Monotonic milliseconds: measures how long the breaker stays open. */
  readonly mono: () => number
}

/** Told on every change of state; `publish` is false when the new state came from a snapshot. */
export type OnChange = (from: Phase, to: Phase, at: number, publish: boolean) => void

/** The outcome of one call, as the shell classified it. */
export const SUCCESS = 0
export const FAILURE = 1
/** A failure that counts as neither success nor failure. */
export const IGNORED = 2
/** Interrupted, or an `isFailure` that threw: counts as nothing, frees a probe slot. */
export const INTERRUPTED = 3

/** Admission: run the call in the closed (or disabled) state. */
export const ADMIT = 0
/** Admission: the call may take a probe slot (see {@link Machine.takeProbe}). */
export const PROBE = 1
/** Admission: reject the call. */
export const REJECT = 2

/** A transition caused by an outcome: the shell steps the schedule and logs it. */
export interface Trip {
  readonly to: "Open" | "Closed"
  readonly at: number
  readonly reason: string
}

/** The fields of a snapshot the rules take. */
export interface Incoming {
  readonly state: Phase
  readonly since: number
  readonly openUntil: number | null
  readonly opens: number
}

/**
 * A breaker's state and rules. Fields are public for the shell to read; only the methods
 * change them.
 */
export class Machine {
  state: Phase = "Closed"
  /** Bumped by every transition: an outcome counts only against the generation it was admitted in. */
  generation = 0
  since: number
  /** When an open breaker admits probes, in wall time (reported) and in monotonic time (decided on). */
  openUntil = 0
  openUntilMono = 0
  opens = 0
  consecutiveFailures = 0
  probesInFlight = 0
  probeSuccesses = 0
  calls = 0
  successes = 0
  failures = 0
  ignored = 0
  slowCalls = 0
  rejections = 0
  /** The monotonic time read by the last admission of an open breaker. */
  checkedAt = 0
  /** The delay of the next open, and where the open-duration schedule stands. */
  nextOpenDelay: number
  scheduleState: unknown

  readonly window: Window.OutcomeWindow | undefined
  /** A window or slow calls need the wall time of every outcome. */
  readonly needsTime: boolean
  readonly timed: boolean
  private readonly consecutiveThreshold: number
  private readonly rateThreshold: number
  private readonly minimumCalls: number
  /** `time.wall`, held directly: read on every outcome of a timed breaker. */
  private readonly wall: () => number

  constructor(readonly rules: Rules, readonly time: Time, private readonly onChange: OnChange) {
    const policy = rules.policy
    this.window = policy._tag === "CountWindow"
      ? Window.countWindow(policy.size)
      : policy._tag === "TimeWindow"
      ? Window.timeWindow(Duration.toMillis(policy.window), policy.buckets)
      : undefined
    this.consecutiveThreshold = policy._tag === "Consecutive" ? policy.threshold : Infinity
    this.rateThreshold = policy._tag === "Consecutive" ? Infinity : policy.rateThreshold
    this.minimumCalls = policy._tag === "Consecutive" ? Infinity : policy.minimumCalls
    this.timed = rules.slowMillis !== Infinity
    this.needsTime = this.timed || policy._tag === "TimeWindow"
    this.wall = time.wall
    this.since = time.wall()
    this.nextOpenDelay = rules.firstOpenDelay
    this.scheduleState = rules.scheduleAfterFirst
  }

  /** Moves to `to`; every transition starts the counters afresh and voids calls in flight. */
  transition(to: Phase, at: number, publish = true): void {
    const from = this.state
    this.state = to
    this.generation++
    this.since = at
    this.probesInFlight = 0
    this.probeSuccesses = 0
    this.consecutiveFailures = 0
    this.window?.clear()
    if (to === "Open") {
      this.openUntil = at + this.nextOpenDelay
      this.openUntilMono = this.time.mono() + this.nextOpenDelay
      this.opens++
    } else if (to === "Closed") {
      this.opens = 0
      this.restartSchedule()
    }
    this.onChange(from, to, at, publish)
  }

  /** Back to the open duration of a first open. */
  restartSchedule(): void {
    this.nextOpenDelay = this.rules.firstOpenDelay
    this.scheduleState = this.rules.scheduleAfterFirst
  }

  /** The schedule stepped once more after an open: `delay` is undefined once it is done (the last delay stays). */
  scheduleStepped(scheduleState: unknown, delay: number | undefined): void {
    this.scheduleState = scheduleState
    if (delay !== undefined) this.nextOpenDelay = delay
  }

  /** Moves an open breaker whose time has come to half-open; `m` is the monotonic time. */
  refresh(m: number): void {
    if (this.state === "Open" && m >= this.openUntilMono) this.transition("HalfOpen", this.time.wall())
  }

  /**
   * Decides on one call: {@link ADMIT} (counted as a call), {@link PROBE} (take a slot with
   * {@link takeProbe}) or {@link REJECT} (counted as a rejection). Reads the monotonic time only
   * when the breaker is open (kept in `checkedAt`).
   */
  admit(): number {
    let s = this.state
    if (s === "Closed" || s === "Disabled") {
      this.calls++
      return ADMIT
    }
    if (s === "Open") {
      const m = this.time.mono()
      this.checkedAt = m
      this.refresh(m)
      s = this.state
    }
    if (s === "HalfOpen" && this.probesInFlight < this.rules.halfOpenProbes) return PROBE
    this.rejections++
    return REJECT
  }

  /**
   * Takes a probe slot if one is still free (the caller may have yielded since {@link admit});
   * false when the call must be decided afresh.
   */
  takeProbe(): boolean {
    if (this.state !== "HalfOpen" || this.probesInFlight >= this.rules.halfOpenProbes) return false
    this.probesInFlight++
    this.calls++
    return true
  }

  /** Milliseconds until a rejected call could be admitted, at monotonic time `m`. */
  retryAfter(m: number): number {
    return this.state === "Isolated" ? Infinity : this.state === "Open" ? this.openUntilMono - m : 0
  }

  /**
   * Counts the outcome of a call admitted in generation `gen` while the breaker was `admittedIn`,
   * started at wall time `start` (0 when slow calls are not measured). Returns the transition it
   * caused, if any.
   */
  record(gen: number, admittedIn: Phase, outcome: number, start: number): Trip | undefined {
    const at = this.needsTime ? this.wall() : 0
    const current = gen === this.generation
    if (outcome === INTERRUPTED || outcome === IGNORED) {
      if (outcome === IGNORED) this.ignored++
      if (current && admittedIn === "HalfOpen") this.probesInFlight--
      return undefined
    }
    const failed = outcome === FAILURE
    const slow = this.timed && at - start >= this.rules.slowMillis
    if (failed) this.failures++
    else this.successes++
    if (slow) this.slowCalls++
    // an outcome counts against the state its call was admitted in
    if (!current) return undefined
    if (admittedIn === "Closed" || admittedIn === "Disabled") {
      this.consecutiveFailures = failed ? this.consecutiveFailures + 1 : 0
      this.window?.record(at, failed, slow)
      if (admittedIn === "Disabled") return undefined
      if (this.consecutiveFailures >= this.consecutiveThreshold) {
        return this.trip(
          "Open",
          this.needsTime ? at : this.wall(),
          `${this.consecutiveFailures} consecutive failures`
        )
      }
      if (this.window !== undefined) {
        // a count window reads no time: the wall clock is read only to date the transition
        const reason = this.windowTripped(at)
        if (reason !== undefined) return this.trip("Open", this.needsTime ? at : this.wall(), reason)
      }
      return undefined
    }
    if (admittedIn === "HalfOpen") {
      this.probesInFlight--
      const now = this.needsTime ? at : this.wall()
      if (failed || slow) return this.trip("Open", now, failed ? "a probe failed" : "a probe was slow")
      this.probeSuccesses++
      if (this.probeSuccesses >= this.rules.successThreshold) {
        return this.trip("Closed", now, `${this.rules.successThreshold} probes succeeded`)
      }
    }
    return undefined
  }

  private trip(to: "Open" | "Closed", at: number, reason: string): Trip {
    this.transition(to, at)
    return { to, at, reason }
  }

  /** Why the window opens the breaker at wall time `at`, if it does. */
  private windowTripped(at: number): string | undefined {
    const window = this.window!
    window.advance(at)
    const total = window.total()
    if (total < this.minimumCalls) return undefined
    if (window.failures() / total >= this.rateThreshold) {
      return `failure rate ${window.failures()}/${total} reached ${this.rateThreshold}`
    }
    if (window.slow() / total >= this.rules.slowRate) {
      return `slow-call rate ${window.slow()}/${total} reached ${this.rules.slowRate}`
    }
    return undefined
  }

  /** Back to closed with empty counters; returns the state it left. */
  reset(): Phase {
    const was = this.state
    this.transition("Closed", this.time.wall())
    return was
  }

  /** Ends `isolate` or `disable`; false when the breaker was in neither. */
  release(): boolean {
    if (this.state !== "Isolated" && this.state !== "Disabled") return false
    this.transition("Closed", this.time.wall())
    return true
  }

  /** Forces the breaker open (isolated) or closed (disabled); false when it already was. */
  force(to: "Isolated" | "Disabled"): boolean {
    if (this.state === to) return false
    this.transition(to, this.time.wall())
    return true
  }

  /**
   * How many opens a snapshot stands for: 0 to close, its `opens` when it is a whole number > 0,
   * else 1 for an open state. The shell moves the open-duration schedule to that count before
   * {@link apply} (see `longest` there).
   */
  static opensOf(incoming: Incoming): number {
    return incoming.state === "Closed"
      ? 0
      : Number.isInteger(incoming.opens) && incoming.opens > 0
      ? incoming.opens
      : incoming.state === "Open"
      ? 1
      : 0
  }

  /** False when the snapshot would change nothing. */
  changesOn(incoming: Incoming): boolean {
    return !(incoming.state === this.state && incoming.state !== "Open")
  }

  /**
   * Takes the state of a snapshot. `longest` is the open duration this breaker would have chosen
   * for its `opensOf(incoming)`-th open: an open snapshot stays open at most that long. Times
   * that are not finite numbers are not trusted.
   */
  apply(incoming: Incoming, at: number, longest: number): void {
    const to = incoming.state
    const count = Machine.opensOf(incoming)
    this.transition(to, at, false)
    if (count === 0) this.restartSchedule()
    this.since = Number.isFinite(incoming.since) ? incoming.since : at
    this.opens = count
    if (to === "Open") {
      const left = incoming.openUntil === null || Number.isNaN(incoming.openUntil)
        ? longest
        : Math.min(Math.max(0, incoming.openUntil - at), longest)
      this.openUntil = at + left
      this.openUntilMono = this.time.mono() + left
    }
  }

  /**
   * Moves the end of the current open to the one of `incoming` (an open of the same count), when
   * later (or wherever it is, when `exact`): no transition. `longest` bounds it as in {@link apply}.
   */
  extendOpen(incoming: Incoming, at: number, longest: number, exact = false): void {
    const left = incoming.openUntil === null || Number.isNaN(incoming.openUntil)
      ? longest
      : Math.min(Math.max(0, incoming.openUntil - at), longest)
    const mono = this.time.mono() + left
    if (!exact && mono <= this.openUntilMono) return
    this.openUntil = at + left
    this.openUntilMono = mono
  }

  /** The counters, after moving an open breaker whose time has come to half-open. */
  metrics(): Metrics {
    this.refresh(this.time.mono())
    const window = this.window
    window?.advance(this.time.wall())
    const total = window?.total() ?? 0
    return {
      state: this.state,
      calls: this.calls,
      successes: this.successes,
      failures: this.failures,
      ignored: this.ignored,
      slowCalls: this.slowCalls,
      rejections: this.rejections,
      consecutiveFailures: this.consecutiveFailures,
      windowCalls: total,
      failureRate: total === 0 ? 0 : window!.failures() / total,
      slowCallRate: total === 0 ? 0 : window!.slow() / total,
      probesInFlight: this.probesInFlight,
      opens: this.opens
    }
  }
}
