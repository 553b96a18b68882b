/**
 * Model-based test: random sequences of calls, clock moves and operator actions run against the
 * breaker and against a small reference state machine written here; states, admission decisions
 * and counters must agree after every step.
 */
import { CircuitBreaker, Failure } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import {
  Data,
  Deferred,
  Duration,
  Effect,
  Exit,
  FastCheck as fc,
  Fiber,
  Logger,
  LogLevel,
  Option,
  Schedule,
  TestClock,
  TestContext
} from "effect"
import * as Rules from "../src/internal/breakerState.js"

/** Sequences per run; raise locally with BULWARK_MODEL_RUNS=20000. */
const NUM_RUNS = Number(process.env.BULWARK_MODEL_RUNS ?? (process.env.BULWARK_DEEP === "1" ? 1000 : 200))

class Invalid extends Data.TaggedError("Invalid")<{}> {
  get [Failure.RuleKey](): Failure.RuleObject {
    return { category: "validation" }
  }
}
class Broken extends Data.TaggedError("Broken")<{}> {}

type Outcome = "success" | "failure" | "ignored" | "defect" | "interrupt"

type Command =
  | { readonly _tag: "Call"; readonly outcome: Outcome; readonly duration: number }
  | { readonly _tag: "Start"; readonly outcome: Outcome }
  | { readonly _tag: "Finish"; readonly index: number }
  | { readonly _tag: "Interrupt"; readonly index: number }
  | { readonly _tag: "Advance"; readonly millis: number }
  | { readonly _tag: "Reset" }
  | { readonly _tag: "Isolate" }
  | { readonly _tag: "Release" }
  | { readonly _tag: "Disable" }
  /** Takes the state of an `Open` snapshot that opened `opens` times and has `left` ms to go. */
  | { readonly _tag: "ImportOpen"; readonly opens: number; readonly left: number }

interface Setup {
  readonly policy: CircuitBreaker.Policy
  readonly openMillis: number
  /** When set, the open duration is `Schedule.exponential(openMillis)`: it doubles on every open. */
  readonly growing: boolean
  readonly halfOpenProbes: number
  readonly successThreshold: number
  readonly slowMillis: number | undefined
  readonly slowRate: number
}

// -----------------------------------------------------------------------------
// the reference model: obviously correct, not fast
// -----------------------------------------------------------------------------

type State = CircuitBreaker.State

interface Ticket {
  readonly generation: number
  readonly admittedIn: State
  readonly start: number
}

type Admission = { readonly admitted: true; readonly ticket: Ticket } | {
  readonly admitted: false
  readonly state: "Open" | "HalfOpen" | "Isolated"
  readonly retryAfter: number
}

class Model {
  state: State = "Closed"
  generation = 0
  openUntil = 0
  opens = 0
  consecutiveFailures = 0
  history: Array<{ readonly at: number; readonly failed: boolean; readonly slow: boolean }> = []
  probesInFlight = 0
  probeSuccesses = 0
  calls = 0
  successes = 0
  failures = 0
  ignored = 0
  slowCalls = 0
  rejections = 0

  constructor(readonly setup: Setup) {}

  transition(to: State, now: number) {
    this.state = to
    this.generation++
    this.probesInFlight = 0
    this.probeSuccesses = 0
    this.consecutiveFailures = 0
    this.history = []
    if (to === "Open") {
      this.openUntil = now + (this.setup.growing ? this.setup.openMillis * 2 ** this.opens : this.setup.openMillis)
      this.opens++
    }
    if (to === "Closed") this.opens = 0
  }

  refresh(now: number) {
    if (this.state === "Open" && now >= this.openUntil) this.transition("HalfOpen", now)
  }

  /** The outcomes the window policy looks at now. */
  window(now: number) {
    const p = this.setup.policy
    if (p._tag === "CountWindow") return this.history.slice(-p.size)
    if (p._tag === "TimeWindow") {
      const width = Duration.toMillis(p.window) / p.buckets
      const current = Math.floor(now / width)
      return this.history.filter((o) => Math.floor(o.at / width) > current - p.buckets)
    }
    return []
  }

  admit(now: number): Admission {
    this.refresh(now)
    const s = this.state
    if (s === "Closed" || s === "Disabled") {
      this.calls++
      return { admitted: true, ticket: { generation: this.generation, admittedIn: s, start: now } }
    }
    if (s === "HalfOpen" && this.probesInFlight < this.setup.halfOpenProbes) {
      this.probesInFlight++
      this.calls++
      return { admitted: true, ticket: { generation: this.generation, admittedIn: s, start: now } }
    }
    this.rejections++
    return {
      admitted: false,
      state: s === "Open" ? "Open" : s === "HalfOpen" ? "HalfOpen" : "Isolated",
      retryAfter: s === "Isolated" ? Infinity : s === "Open" ? this.openUntil - now : 0
    }
  }

  settle(ticket: Ticket, outcome: Outcome, now: number) {
    const current = ticket.generation === this.generation
    if (outcome === "ignored" || outcome === "interrupt") {
      if (outcome === "ignored") this.ignored++
      if (current && ticket.admittedIn === "HalfOpen") this.probesInFlight--
      return
    }
    const failed = outcome === "failure" || outcome === "defect"
    const slow = this.setup.slowMillis !== undefined && now - ticket.start >= this.setup.slowMillis
    if (failed) this.failures++
    else this.successes++
    if (slow) this.slowCalls++
    if (!current) return
    if (ticket.admittedIn === "HalfOpen") {
      this.probesInFlight--
      if (failed || slow) return this.transition("Open", now)
      this.probeSuccesses++
      if (this.probeSuccesses >= this.setup.successThreshold) this.transition("Closed", now)
      return
    }
    this.consecutiveFailures = failed ? this.consecutiveFailures + 1 : 0
    if (this.setup.policy._tag !== "Consecutive") this.history.push({ at: now, failed, slow })
    if (ticket.admittedIn === "Disabled") return
    const p = this.setup.policy
    if (p._tag === "Consecutive") {
      if (this.consecutiveFailures >= p.threshold) this.transition("Open", now)
      return
    }
    const w = this.window(now)
    if (w.length < p.minimumCalls) return
    const failedRate = w.filter((o) => o.failed).length / w.length
    const slowRate = w.filter((o) => o.slow).length / w.length
    if (failedRate >= p.rateThreshold || slowRate >= this.setup.slowRate) this.transition("Open", now)
  }

  reset(now: number) {
    this.transition("Closed", now)
  }
  isolate(now: number) {
    if (this.state !== "Isolated") this.transition("Isolated", now)
  }
  release(now: number) {
    if (this.state === "Isolated" || this.state === "Disabled") this.transition("Closed", now)
  }
  disable(now: number) {
    if (this.state !== "Disabled") this.transition("Disabled", now)
  }
  /** An imported open state: it stays open at most as long as this breaker's own `opens`-th open would. */
  importOpen(now: number, opens: number, left: number) {
    this.transition("Open", now)
    const longest = this.setup.growing ? this.setup.openMillis * 2 ** (opens - 1) : this.setup.openMillis
    this.openUntil = now + Math.min(left, longest)
    this.opens = opens
  }

  metrics(now: number) {
    this.refresh(now)
    const w = this.window(now)
    return {
      state: this.state,
      calls: this.calls,
      successes: this.successes,
      failures: this.failures,
      ignored: this.ignored,
      slowCalls: this.slowCalls,
      rejections: this.rejections,
      consecutiveFailures: this.consecutiveFailures,
      windowCalls: w.length,
      failureRate: w.length === 0 ? 0 : w.filter((o) => o.failed).length / w.length,
      slowCallRate: w.length === 0 ? 0 : w.filter((o) => o.slow).length / w.length,
      probesInFlight: this.probesInFlight,
      opens: this.opens
    }
  }
}

// -----------------------------------------------------------------------------
// generators
// -----------------------------------------------------------------------------

const rate = fc.constantFrom(0.2, 0.25, 0.5, 0.6, 1)

const setupArb: fc.Arbitrary<Setup> = fc.record({
  policy: fc.oneof(
    fc.integer({ min: 1, max: 5 }).map((n) => CircuitBreaker.consecutive(n)),
    fc.record({ size: fc.integer({ min: 1, max: 8 }), rateThreshold: rate, min: fc.integer({ min: 1, max: 8 }) }).map((
      r
    ) => CircuitBreaker.countWindow({ ...r, minimumCalls: Math.min(r.min, r.size) })),
    fc.record({
      window: fc.constantFrom(1000, 2000, 3000),
      buckets: fc.constantFrom(1, 2, 4, 10),
      rateThreshold: rate,
      minimumCalls: fc.integer({ min: 1, max: 6 })
    }).map((r) => CircuitBreaker.timeWindow(r))
  ),
  openMillis: fc.constantFrom(0, 500, 1000, 2500),
  growing: fc.boolean(),
  halfOpenProbes: fc.integer({ min: 1, max: 3 }),
  successThreshold: fc.integer({ min: 1, max: 4 }),
  slowMillis: fc.option(fc.constantFrom(100, 250), { nil: undefined }),
  slowRate: rate
}).map((s) => ({
  ...s,
  // an exponential schedule needs a base above zero
  openMillis: s.growing && s.openMillis === 0 ? 100 : s.openMillis,
  slowMillis: s.policy._tag === "Consecutive" ? undefined : s.slowMillis
}))

const outcomeArb = fc.constantFrom<Outcome>(
  "success",
  "success",
  "success",
  "failure",
  "failure",
  "ignored",
  "defect",
  "interrupt"
)

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.record({
      _tag: fc.constant("Call" as const),
      outcome: outcomeArb,
      duration: fc.constantFrom(0, 0, 50, 100, 300)
    })
  },
  { weight: 3, arbitrary: fc.record({ _tag: fc.constant("Start" as const), outcome: outcomeArb }) },
  { weight: 3, arbitrary: fc.record({ _tag: fc.constant("Finish" as const), index: fc.nat(7) }) },
  { weight: 1, arbitrary: fc.record({ _tag: fc.constant("Interrupt" as const), index: fc.nat(7) }) },
  {
    weight: 4,
    arbitrary: fc.record({
      _tag: fc.constant("Advance" as const),
      millis: fc.constantFrom(1, 100, 499, 500, 1000, 2600)
    })
  },
  { weight: 1, arbitrary: fc.constant({ _tag: "Reset" as const }) },
  { weight: 1, arbitrary: fc.constant({ _tag: "Isolate" as const }) },
  { weight: 1, arbitrary: fc.constant({ _tag: "Release" as const }) },
  { weight: 1, arbitrary: fc.constant({ _tag: "Disable" as const }) },
  {
    weight: 1,
    arbitrary: fc.record({
      _tag: fc.constant("ImportOpen" as const),
      opens: fc.integer({ min: 1, max: 4 }),
      left: fc.constantFrom(0, 300, 1000, 1e12)
    })
  }
)

// -----------------------------------------------------------------------------
// running a sequence against both
// -----------------------------------------------------------------------------

const body = (outcome: Outcome): Effect.Effect<string, Invalid | Broken> => {
  switch (outcome) {
    case "success":
      return Effect.succeed("ok")
    case "failure":
      return Effect.fail(new Broken())
    case "ignored":
      return Effect.fail(new Invalid())
    case "defect":
      return Effect.die("boom")
    case "interrupt":
      return Effect.interrupt
  }
}

interface Pending {
  readonly fiber: Fiber.RuntimeFiber<string, unknown>
  readonly gate: Deferred.Deferred<void>
  readonly ticket: Ticket
  readonly outcome: Outcome
}

const runSequence = (setup: Setup, commands: ReadonlyArray<Command>) =>
  Effect.gen(function*() {
    const breaker = yield* CircuitBreaker.make({
      name: "model",
      policy: setup.policy,
      openDuration: setup.growing ? Schedule.exponential(setup.openMillis) : Duration.millis(setup.openMillis),
      halfOpenProbes: setup.halfOpenProbes,
      successThreshold: setup.successThreshold,
      ...(setup.slowMillis !== undefined
        ? { slowCall: { duration: setup.slowMillis, rateThreshold: setup.slowRate } }
        : {})
    })
    const model = new Model(setup)
    let now = 0
    const pending: Array<Pending> = []
    const fail = (step: number, what: string) => `step ${step} (${JSON.stringify(commands[step])}): ${what}`

    const checkRejection = (step: number, exit: Exit.Exit<unknown, unknown>, expected: Admission) => {
      if (expected.admitted) return
      expect(Exit.isFailure(exit), fail(step, "expected a rejection")).toBe(true)
      const error = Exit.isFailure(exit)
        ? Option.getOrUndefined(
          Exit.causeOption(exit).pipe(Option.flatMap((c) => c._tag === "Fail" ? Option.some(c.error) : Option.none()))
        )
        : undefined
      expect(error, fail(step, "rejection error")).toBeInstanceOf(CircuitBreaker.CircuitOpenError)
      const e = error as CircuitBreaker.CircuitOpenError
      expect([e.state, Duration.toMillis(e.retryAfter)], fail(step, "rejection")).toEqual([
        expected.state,
        expected.retryAfter
      ])
    }

    for (let step = 0; step < commands.length; step++) {
      const command = commands[step]!
      switch (command._tag) {
        case "Call": {
          const expected = model.admit(now)
          let started = false
          const exit = yield* breaker.protect(
            Effect.suspend(() => {
              started = true
              return Effect.zipRight(TestClock.adjust(command.duration), body(command.outcome))
            })
          ).pipe(Effect.exit)
          expect(started, fail(step, "admission")).toBe(expected.admitted)
          if (expected.admitted) {
            now += command.duration
            model.settle(expected.ticket, command.outcome, now)
          }
          checkRejection(step, exit, expected)
          break
        }
        case "Start": {
          const expected = model.admit(now)
          const gate = yield* Deferred.make<void>()
          let started = false
          const fiber = yield* breaker.protect(
            Effect.suspend(() => {
              started = true
              return Effect.zipRight(Deferred.await(gate), body(command.outcome))
            })
          ).pipe(Effect.fork)
          for (let i = 0; i < 5 && !started && fiber.unsafePoll() === null; i++) yield* Effect.yieldNow()
          expect(started, fail(step, "admission")).toBe(expected.admitted)
          if (expected.admitted) {
            pending.push({ fiber, gate, ticket: expected.ticket, outcome: command.outcome })
          } else {
            checkRejection(step, yield* Fiber.await(fiber), expected)
          }
          break
        }
        case "Finish":
        case "Interrupt": {
          if (pending.length === 0) break
          const [call] = pending.splice(command.index % pending.length, 1)
          if (command._tag === "Finish") {
            yield* Deferred.succeed(call!.gate, undefined)
            yield* Fiber.await(call!.fiber)
            model.settle(call!.ticket, call!.outcome, now)
          } else {
            yield* Fiber.interrupt(call!.fiber)
            model.settle(call!.ticket, "interrupt", now)
          }
          break
        }
        case "Advance":
          yield* TestClock.adjust(command.millis)
          now += command.millis
          break
        case "Reset":
          yield* breaker.reset
          model.reset(now)
          break
        case "Isolate":
          yield* breaker.isolate
          model.isolate(now)
          break
        case "Release":
          yield* breaker.release
          model.release(now)
          break
        case "Disable":
          yield* breaker.disable
          model.disable(now)
          break
        case "ImportOpen":
          yield* breaker.importState({
            version: 1,
            breaker: "model",
            state: "Open",
            since: now,
            openUntil: now + command.left,
            opens: command.opens,
            origin: "elsewhere"
          })
          model.importOpen(now, command.opens, command.left)
          break
      }
      const actual = yield* breaker.metrics
      expect(actual, fail(step, "metrics")).toEqual(model.metrics(now))
    }
    for (const call of pending) yield* Fiber.interrupt(call.fiber)
  })

// -----------------------------------------------------------------------------
// the same sequences against the breaker's rules alone (no Effect, no fibers)
// -----------------------------------------------------------------------------

const code: Record<Outcome, number> = {
  success: Rules.SUCCESS,
  failure: Rules.FAILURE,
  defect: Rules.FAILURE,
  ignored: Rules.IGNORED,
  interrupt: Rules.INTERRUPTED
}

/** The delay of the `n`-th open (1-based) under the setup's open duration. */
const openDelay = (setup: Setup, n: number) => setup.growing ? setup.openMillis * 2 ** (n - 1) : setup.openMillis

const runRules = (setup: Setup, commands: ReadonlyArray<Command>) => {
  let now = 0
  const changes: Array<{ readonly from: State; readonly to: State; readonly at: number }> = []
  const machine = new Rules.Machine(
    {
      policy: setup.policy,
      firstOpenDelay: setup.openMillis,
      scheduleAfterFirst: undefined,
      halfOpenProbes: setup.halfOpenProbes,
      successThreshold: setup.successThreshold,
      slowMillis: setup.slowMillis ?? Infinity,
      slowRate: setup.slowMillis !== undefined ? setup.slowRate : Infinity
    },
    { wall: () => now, mono: () => now },
    (from, to, at) => changes.push({ from, to, at })
  )
  const model = new Model(setup)
  const pending: Array<{ readonly ticket: Ticket; readonly outcome: Outcome }> = []
  const fail = (step: number, what: string) => `step ${step} (${JSON.stringify(commands[step])}): ${what}`
  /** What the shell does after an outcome opened the breaker: the schedule steps to the next open's delay. */
  const settle = (ticket: Ticket, outcome: number) => {
    const trip = machine.record(ticket.generation, ticket.admittedIn, outcome, ticket.start)
    if (trip?.to === "Open") machine.scheduleStepped(undefined, openDelay(setup, machine.opens + 1))
  }
  const admit = (step: number): Ticket | undefined => {
    const expected = model.admit(now)
    let admission = machine.admit()
    if (admission === Rules.PROBE) admission = machine.takeProbe() ? Rules.ADMIT : Rules.REJECT
    expect(admission === Rules.ADMIT, fail(step, "admission")).toBe(expected.admitted)
    if (expected.admitted) {
      expect(machine.generation, fail(step, "generation")).toBe(expected.ticket.generation)
      return { generation: machine.generation, admittedIn: machine.state, start: now }
    }
    expect([machine.state, machine.retryAfter(now)], fail(step, "rejection")).toEqual([
      expected.state,
      expected.retryAfter
    ])
    return undefined
  }
  for (let step = 0; step < commands.length; step++) {
    const command = commands[step]!
    const before = changes.length
    switch (command._tag) {
      case "Call": {
        const ticket = admit(step)
        if (ticket !== undefined) {
          now += command.duration
          settle(ticket, code[command.outcome])
          model.settle(ticket, command.outcome, now)
        }
        break
      }
      case "Start": {
        const ticket = admit(step)
        if (ticket !== undefined) pending.push({ ticket, outcome: command.outcome })
        break
      }
      case "Finish":
      case "Interrupt": {
        if (pending.length === 0) break
        const [call] = pending.splice(command.index % pending.length, 1)
        const outcome = command._tag === "Finish" ? call!.outcome : "interrupt"
        settle(call!.ticket, code[outcome])
        model.settle(call!.ticket, outcome, now)
        break
      }
      case "Advance":
        now += command.millis
        break
      case "Reset":
        machine.reset()
        model.reset(now)
        break
      case "Isolate":
        machine.force("Isolated")
        model.isolate(now)
        break
      case "Release":
        machine.release()
        model.release(now)
        break
      case "Disable":
        machine.force("Disabled")
        model.disable(now)
        break
      case "ImportOpen": {
        const incoming = { state: "Open" as const, since: now, openUntil: now + command.left, opens: command.opens }
        // the shell moves the schedule to the snapshot's opens first: the next open uses the delay after them
        machine.scheduleStepped(undefined, openDelay(setup, command.opens + 1))
        machine.apply(incoming, now, openDelay(setup, Rules.Machine.opensOf(incoming)))
        model.importOpen(now, command.opens, command.left)
        break
      }
    }
    expect(machine.metrics(), fail(step, "metrics")).toEqual(model.metrics(now))
    // every change of state is reported once, in order, and ends where the machine stands
    for (let i = Math.max(1, before); i < changes.length; i++) {
      expect(changes[i]!.from, fail(step, "transition chain")).toBe(changes[i - 1]!.to)
    }
    if (changes.length > 0) expect(changes[changes.length - 1]!.to, fail(step, "last transition")).toBe(machine.state)
  }
}

describe("CircuitBreaker rules (model)", () => {
  it(`the Effect-free rules agree with the reference state machine over ${NUM_RUNS * 2} random sequences`, () => {
    fc.assert(
      fc.property(setupArb, fc.array(commandArb, { minLength: 1, maxLength: 60 }), (setup, commands) => {
        runRules(setup, commands)
      }),
      { numRuns: NUM_RUNS * 2 }
    )
  })
})

describe("CircuitBreaker (model)", () => {
  it(`agrees with the reference state machine over ${NUM_RUNS} random sequences`, { timeout: 120_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(
        setupArb,
        fc.array(commandArb, { minLength: 1, maxLength: 60 }),
        (setup, commands) =>
          Effect.runPromise(
            runSequence(setup, commands).pipe(
              Effect.scoped,
              Effect.provide(TestContext.TestContext),
              Logger.withMinimumLogLevel(LogLevel.None)
            )
          )
      ),
      { numRuns: NUM_RUNS }
    )
  })
})
