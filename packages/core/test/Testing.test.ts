import { Backoff, CircuitBreaker, Failure, Health, Testing, Timeout } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  Clock,
  Duration,
  Effect,
  FastCheck as fc,
  Fiber,
  Logger,
  Option,
  Random,
  Schedule,
  TestClock
} from "effect"
import * as VirtualTimer from "../src/internal/virtualTimer.js"

const failure = (category: "connection" | "validation" = "connection", latency = 0): Testing.Outcome => ({
  _tag: "Failure",
  category,
  latency
})
const success = (latency = 0): Testing.Outcome => ({ _tag: "Success", latency })

/** A "retry" that ignores its budget: it promises 2 retries, but retries up to 5 times. */
const retryIgnoringBudget: Testing.Subject = {
  policy: (self) => Effect.retry(self, Schedule.recurs(5)),
  limits: { maxRetries: 2 }
}

describe("Testing.scheduleLaws", () => {
  it.effect("passes a backoff that keeps the laws it states", () =>
    Testing.scheduleLaws(
      Backoff.exponential({ base: 100, cap: 5_000 }).pipe(Backoff.limit({ maxRetries: 6, maxElapsed: 20_000 })),
      { maxDelay: 5_000, maxRetries: 6, maxElapsed: 20_000, monotone: true }
    ))

  it.effect("reports a broken cap as the shrunk list of delays", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Testing.scheduleLaws(Backoff.exponential({ base: 100 }), { maxDelay: 1_000, seed: 42 })
      )
      expect(error.law).toBe("maxDelay")
      // 100, 200, 400, 800, 1600: the shortest run that breaks the cap, nothing after it
      expect(error.delays).toEqual([100, 200, 400, 800, 1600])
      expect(error.message.split("\n").slice(0, 3)).toEqual([
        "Schedule law \"maxDelay\" broken: delay 5 is 1600ms, above maxDelay 1000ms",
        "  delays: [100ms, 200ms, 400ms, 800ms, 1600ms]",
        "  run: Random seed 0, attempt durations [0ms, 0ms, 0ms, 0ms, 0ms]"
      ])
      expect(error.message).toMatch(/replay with \{ seed: 42 \}$/)
    }))

  it.effect("catches too many retries, a late retry and a decreasing delay", () =>
    Effect.gen(function*() {
      const retries = yield* Effect.flip(Testing.scheduleLaws(Backoff.linear({ base: 10 }), { maxRetries: 3 }))
      expect(retries.law).toBe("maxRetries")
      expect(retries.delays).toEqual([10, 20, 30, 40])

      const elapsed = yield* Effect.flip(
        Testing.scheduleLaws(Backoff.fromDelays([1_000]), { maxElapsed: 2_500, maxAttemptDuration: 0 })
      )
      expect(elapsed.law).toBe("maxElapsed")
      expect(elapsed.message).toContain("retry 3 starts 3000ms after the first step, past maxElapsed 2500ms")

      const monotone = yield* Effect.flip(Testing.scheduleLaws(Backoff.fromDelays([300, 100]), { monotone: true }))
      expect(monotone.law).toBe("monotone")
      expect(monotone.delays).toEqual([300, 100])
    }))

  it.effect("checks jitter bounds over random seeds and shrinks the seed", () =>
    Effect.gen(function*() {
      // full jitter draws in [0, 100]: claiming [50, 100] is wrong for about half the seeds
      const error = yield* Effect.flip(
        Testing.scheduleLaws(Backoff.fullJitter({ base: 100, cap: 100 }), {
          jitter: { min: 50, max: 100 },
          seed: 7
        })
      )
      expect(error.law).toBe("jitter")
      expect(error.delays).toHaveLength(1)
      expect(error.delays[0]!).toBeLessThan(50)
      expect(error.message).toMatch(
        /^Schedule law "jitter" broken: delay 1 is [\d.]+ms, outside its jitter bounds \[50ms, 100ms\]/
      )
    }))

  it.effect("gives every run a fresh seeded Random, so a failure replays exactly", () =>
    Effect.gen(function*() {
      const law = { jitter: { min: 50, max: 100 }, seed: 3 } as const
      const schedule = Backoff.fullJitter({ base: 100, cap: 100 })
      const first = yield* Effect.flip(Testing.scheduleLaws(schedule, law))
      const second = yield* Effect.flip(Testing.scheduleLaws(schedule, law))
      expect(second.message).toBe(first.message)
      // the reported seed reproduces the reported delays on its own
      const seed = Number(/Random seed (-?\d+)/.exec(first.message)![1])
      const replayed = yield* Backoff.delays(schedule, 1).pipe(Effect.withRandom(Random.make(seed)))
      expect(Duration.toMillis(replayed[0]!)).toBeCloseTo(first.delays[0]!, 6)
    }))

  it("shows why the fresh seed matters: one seeded Random shared by runs does not replay", () => {
    const schedule = Backoff.fullJitter({ base: 100, cap: 100 })
    const shared = Random.make(3)
    const once = () =>
      Effect.runSync(Backoff.delays(schedule, 3).pipe(Effect.withRandom(shared))).map(Duration.toMillis)
    const fresh = () =>
      Effect.runSync(Backoff.delays(schedule, 3).pipe(Effect.withRandom(Random.make(3)))).map(Duration.toMillis)
    expect(once()).not.toEqual(once())
    expect(fresh()).toEqual(fresh())
  })

  it.effect("shows the inputs when the law depends on them, and only then", () =>
    Effect.gen(function*() {
      const untilStop = Schedule.spaced(100).pipe(Schedule.whileInput((input: string) => input !== "stop"))
      const error = yield* Effect.flip(
        Testing.scheduleLaws(untilStop, { maxRetries: 2, inputs: fc.constantFrom("stop", "go"), seed: 2 })
      )
      expect(error.message.split("\n").slice(0, 4)).toEqual([
        "Schedule law \"maxRetries\" broken: retry 3 was scheduled, but maxRetries is 2",
        "  delays: [100ms, 100ms, 100ms]",
        "  run: Random seed 0, attempt durations [0ms, 0ms, 0ms]",
        "  inputs: [\"go\", \"go\", \"go\"]"
      ])
      const noInputs = yield* Effect.flip(
        Testing.scheduleLaws(Backoff.linear({ base: 10 }), { maxRetries: 1, seed: 2 })
      )
      expect(noInputs.message).not.toContain("inputs:")
    }))

  it("rejects bad laws with a message naming the field", () => {
    expect(() => Testing.scheduleLaws(Backoff.linear({ base: 1 }), { maxRetries: -1 })).toThrow(
      "Testing.scheduleLaws: maxRetries must be a whole number >= 0, got -1"
    )
    expect(() => Testing.scheduleLaws(Backoff.linear({ base: 1 }), { maxDelay: "-1 seconds" })).toThrow(
      "Testing.scheduleLaws: maxDelay must be a duration >= 0"
    )
  })
})

describe("Testing.Arbitrary", () => {
  it.prop("backoffOptions are valid options of the toolkit's constructors", [Testing.Arbitrary.backoffOptions], ([
    options
  ]) => {
    expect(() => Testing.backoff(options)).not.toThrow()
  })

  it.prop(
    "scripts arrive in order, within their limits",
    [Testing.Arbitrary.script({ maxCalls: 5, maxOutcomes: 3 })],
    ([
      script
    ]) => {
      expect(script.calls.length).toBeGreaterThanOrEqual(1)
      expect(script.calls.length).toBeLessThanOrEqual(5)
      script.calls.forEach((call, i) => {
        expect(call.at).toBeGreaterThanOrEqual(script.calls[i - 1]?.at ?? 0)
        expect(call.outcomes.length).toBeLessThanOrEqual(3)
      })
    }
  )

  it.prop(
    "scripts without defects or hangs hold none",
    [Testing.Arbitrary.script({ defects: false, hangs: false, categories: ["timeout"] })],
    ([script]) => {
      for (const outcome of script.calls.flatMap((call) => call.outcomes)) {
        expect(outcome._tag === "Success" || (outcome._tag === "Failure" && outcome.category === "timeout")).toBe(true)
      }
    }
  )

  it.effect("the Chaos-compatible injector follows the script, then lets calls through", () =>
    Effect.gen(function*() {
      const outcomes: Array<Testing.Outcome> = [failure("validation"), { _tag: "Defect", latency: 0 }, success()]
      const decisions = yield* Effect.all(Array.from({ length: 4 }, () => Testing.injector(outcomes).decide))
      expect(decisions.map((d) => d.fault)).toEqual(["failure", "failure", "failure", "failure"])
      const inject = Testing.injector(outcomes)
      const seen = [
        (yield* inject.decide).fault,
        (yield* inject.decide).fault,
        (yield* inject.decide).fault,
        (yield* inject.decide).fault
      ]
      expect(seen).toEqual(["failure", "defect", "none", "none"])
      const call = Testing.injector(outcomes)(Effect.succeed("ok"))
      const error = yield* Effect.flip(call)
      expect(error).toBeInstanceOf(Testing.ScriptedFailure)
      expect(error.category).toBe("validation")
    }))

  it.prop("chaosOptions keep Chaos's rules", [Testing.Arbitrary.chaosOptions(() => "boom")], ([options]) => {
    const total = (options.failureRate ?? 0) + (options.defectRate ?? 0) + (options.hangRate ?? 0)
    expect(total).toBeLessThanOrEqual(1 + 1e-12)
  })
})

describe("Testing.runScript", () => {
  it.effect("records every attempt: time, outcome, breaker state, occupancy, retry decision", () =>
    Effect.gen(function*() {
      const subject = Testing.policy({
        retry: { maxRetries: 2, schedule: Backoff.fromDelays([100]) },
        breaker: { policy: CircuitBreaker.consecutive(2), openDuration: 1_000, halfOpenProbes: 1 }
      })
      const timeline = yield* Testing.runScript(subject, {
        calls: [
          { at: 0, outcomes: [failure("connection", 10), failure("connection", 10)] },
          { at: 1_500, outcomes: [success(5)] }
        ],
        seed: 1
      })
      expect(timeline.attempts.map((a) => [a.start, a.call, a.attempt, a.outcome._tag, a.breaker, a.decision])).toEqual(
        [
          [0, 0, 1, "Failure", "Closed", { _tag: "Retry", after: 100 }],
          [110, 0, 2, "Failure", "Closed", { _tag: "Stop" }],
          [1_500, 1, 1, "Success", "HalfOpen", { _tag: "Stop" }]
        ]
      )
      expect(timeline.attempts[2]!.probes).toBe(1)
      // the second failure opened the breaker: the retry after it was rejected, not run
      expect(timeline.calls.map((c) => [c.exit._tag, c.end, c.attempts])).toEqual([
        ["Failure", 220, 2],
        ["Success", 1_505, 1]
      ])
      const exit = timeline.calls[0]!.exit
      expect(exit._tag === "Failure" && (exit.error as { _tag: string })._tag).toBe("CircuitOpenError")
      yield* Testing.check(timeline)
    }))

  it.effect("a hang under a timeout ends as a typed TimeoutError", () =>
    Effect.gen(function*() {
      const timeline = yield* Testing.runScript(Testing.policy({ timeout: 500 }), {
        calls: [{ at: 0, outcomes: [{ _tag: "Hang" }] }],
        seed: 1
      })
      expect(timeline.attempts[0]!.outcome._tag).toBe("Interrupted")
      expect(timeline.calls[0]!.end).toBe(500)
      const exit = timeline.calls[0]!.exit
      expect(exit._tag === "Failure" && (exit.error as { _tag: string })._tag).toBe("TimeoutError")
      yield* Testing.check(timeline)
    }))

  it.effect("a sleep cut short by a timeout leaves nothing on the run's clock: time stops where the run got stuck", () =>
    Effect.gen(function*() {
      // the first call's dependency would answer at 5,000 ms but its timeout cuts it at 1,000 ms;
      // the second call hangs with no timeout. Once the first call has ended nothing can happen:
      // the run is stuck at 1,000 ms, not at the time the interrupted sleep would have ended
      let calls = 0
      const subject: Testing.Subject = {
        policy: (self) => calls++ === 0 ? Timeout.timeout("1 second")(self) : self
      }
      const timeline = yield* Testing.runScript(subject, {
        calls: [{ at: 0, outcomes: [failure("connection", 5_000)] }, { at: 0, outcomes: [{ _tag: "Hang" }] }],
        seed: 1
      })
      expect(timeline.attempts.map((a) => [a.end, a.outcome._tag])).toEqual([[1_000, "Interrupted"], [
        undefined,
        "Running"
      ]])
      expect([timeline.end, timeline.ending]).toEqual([1_000, "stuck"])
    }))

  it.effect("a breaker and a bulkhead of the user's own (wrapped) are observed the same as the toolkit's", () =>
    Effect.gen(function*() {
      const options = {
        timeout: "1 second",
        retry: { maxRetries: 2 },
        breaker: { policy: CircuitBreaker.consecutive(2), openDuration: "2 seconds", halfOpenProbes: 1 },
        bulkhead: { maxConcurrent: 1, maxQueued: 4 }
      } as const
      // the same stages, with state reads the kit cannot read directly: it runs them as effects
      const wrapped = Effect.map(Testing.policy(options), (subject): Testing.Subject => ({
        ...subject,
        breaker: { ...subject.breaker!, metrics: Effect.map(subject.breaker!.metrics, (metrics) => metrics) },
        bulkhead: { ...subject.bulkhead!, state: Effect.map(subject.bulkhead!.state, (state) => state) }
      }))
      const script: Testing.Script = {
        // two failures open the breaker; a probe at 2,500 ms holds the one slot while a call is rejected
        calls: [
          { at: 0, outcomes: [failure()] },
          { at: 10, outcomes: [failure()] },
          { at: 2_500, outcomes: [success(300)] },
          { at: 2_600, outcomes: [] },
          { at: 2_900, outcomes: [] }
        ],
        seed: 3
      }
      const direct = yield* Testing.runScript(Testing.policy(options), script)
      const viaEffects = yield* Testing.runScript(wrapped, script)
      expect(direct.attempts.some((a) => a.breaker === "HalfOpen" && a.probes === 1)).toBe(true)
      expect(direct.attempts.every((a) => a.bulkheadActive !== undefined)).toBe(true)
      expect(Testing.render(viaEffects)).toBe(Testing.render(direct))
      expect(viaEffects.attempts).toEqual(direct.attempts)
    }))

  it.effect("a timeout due at the instant the dependency answers wins: its limit is inclusive, as on the live clock", () =>
    Effect.gen(function*() {
      const timeline = yield* Testing.runScript(
        Testing.policy({ timeout: 100, retry: { maxRetries: 1, schedule: Backoff.fromDelays([0]) } }),
        {
          calls: [{ at: 0, outcomes: [success(100), success(100), success(50)] }],
          seed: 1
        }
      )
      // the timer was armed before the answer's own wait began, so it fires first at 100
      expect(timeline.attempts.map((a) => [a.start, a.end, a.outcome._tag])).toEqual([
        [0, 100, "Interrupted"],
        [100, 200, "Interrupted"]
      ])
      const exit = timeline.calls[0]!.exit
      expect(exit._tag === "Failure" && (exit.error as { _tag: string })._tag).toBe("TimeoutError")
      expect(timeline.calls[0]!.end).toBe(200)
      yield* Testing.check(timeline)
    }))

  it.effect("a hang without a timeout breaks everyCallEnds", () =>
    Effect.gen(function*() {
      const timeline = yield* Testing.runScript(Testing.policy({}), {
        calls: [{ at: 0, outcomes: [{ _tag: "Hang" }] }],
        seed: 1
      })
      expect(timeline.ending).toBe("stuck")
      // the run stopped with the attempt still running: the final interruption is not recorded
      expect(timeline.attempts[0]!.outcome._tag).toBe("Running")
      expect(timeline.attempts[0]!.end).toBeUndefined()
      const error = yield* Effect.flip(Testing.check(timeline))
      expect(error.invariant).toBe("everyCallEnds")
      expect(error.message.split("\n")[0]).toBe(
        "Invariant \"everyCallEnds\" broken: call(s) 0 never ended (the run got stuck: nothing left to wait for)"
      )
    }))

  it.effect("occupancy counts attempts in flight, and the bulkhead bounds it", () =>
    Effect.gen(function*() {
      const call = { at: 0, outcomes: [success(100)] }
      const script: Testing.Script = { calls: [call, call, call], seed: 1 }
      const open = yield* Testing.runScript(Testing.policy({}), script)
      expect(open.attempts.map((a) => a.inFlight)).toEqual([1, 2, 3])
      const guarded = yield* Testing.runScript(Testing.policy({ bulkhead: { maxConcurrent: 2, maxQueued: 5 } }), script)
      expect(guarded.attempts.map((a) => [a.start, a.inFlight, a.bulkheadActive])).toEqual([[0, 1, 1], [0, 2, 2], [
        100,
        1,
        1
      ]])
      yield* Testing.check(guarded)
      const error = yield* Effect.flip(Testing.check(open, [Testing.invariants.bulkheadWithinLimit(2)]))
      expect(error.message.split("\n")[0]).toBe(
        "Invariant \"bulkheadWithinLimit\" broken: at 0ms call 2 made 3 attempts in flight; maxConcurrent is 2"
      )
    }))

  it.effect("nothingLost catches a policy that drops a success, but lets a deadline win a tie", () =>
    Effect.gen(function*() {
      const script: Testing.Script = { calls: [{ at: 0, outcomes: [success(100)] }], seed: 1 }
      // answers "dropped" 10 ms after the dependency succeeded
      const dropping: Testing.Subject = {
        policy: (self) => self.pipe(Effect.zipRight(Effect.sleep(10)), Effect.zipRight(Effect.fail("dropped")))
      }
      const lost = yield* Effect.flip(Testing.check(yield* Testing.runScript(dropping, script)))
      expect(lost.message.split("\n")[0]).toBe(
        "Invariant \"nothingLost\" broken: call 0's last attempt succeeded, but the caller saw: failed with \"dropped\""
      )
      // the retry starts, and succeeds, at the instant the total timeout is reached: the call
      // lasted its limit, so the timeout may win (a policy whose timeout races a forked fiber
      // can end this way)
      const tieScript: Testing.Script = {
        calls: [{ at: 0, outcomes: [failure("connection", 50), success()] }],
        seed: 1
      }
      const attempt = (n: number, start: number, end: number, outcome: Testing.AttemptOutcome): Testing.Attempt => ({
        call: 0,
        attempt: n,
        start,
        end,
        scripted: tieScript.calls[0]!.outcomes[n - 1]!,
        outcome,
        breaker: undefined,
        probes: 0,
        inFlight: 1,
        bulkheadActive: undefined,
        decision: n === 1 ? { _tag: "Retry", after: 100 } : { _tag: "Stop" }
      })
      const tie: Testing.Timeline = {
        script: tieScript,
        calls: [{ call: 0, start: 0, end: 150, exit: { _tag: "Failure", error: "timed out" }, attempts: 2 }],
        attempts: [
          attempt(1, 0, 50, { _tag: "Failure", category: "connection" }),
          attempt(2, 150, 150, { _tag: "Success" })
        ],
        limits: {},
        end: 150,
        ending: "done"
      }
      yield* Testing.check(tie, [Testing.invariants.nothingLost])
      // on the run's virtual clock the timeout's timer, armed first, fires first: the retry due
      // at the deadline does not start, and the call fails then
      const timedOut = yield* Testing.runScript(
        Testing.policy({ totalTimeout: 150, retry: { maxRetries: 1, schedule: Backoff.fromDelays([100]) } }),
        tieScript
      )
      expect(timedOut.attempts.map((a) => [a.end, a.outcome._tag])).toEqual([[50, "Failure"]])
      expect([timedOut.calls[0]!.end, timedOut.calls[0]!.exit._tag]).toEqual([150, "Failure"])
      yield* Testing.check(timedOut, [Testing.invariants.nothingLost])
    }))

  it.effect("a subject that cannot be made is a defect naming the field, not an empty timeline", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(
        Testing.runScript(Testing.policy({ bulkhead: { maxConcurrent: 0 } }), {
          calls: [{ at: 0, outcomes: [] }],
          seed: 1
        })
      )
      expect(exit._tag).toBe("Failure")
      expect(String(exit._tag === "Failure" ? Cause.squash(exit.cause) : "")).toContain("maxConcurrent")
    }))

  it.effect("state from one run never reaches the next: after a run that opens the breaker, the next sees it closed", () =>
    Effect.gen(function*() {
      const subject = Testing.policy({
        breaker: { policy: CircuitBreaker.consecutive(2), openDuration: "1 minute" },
        bulkhead: { maxConcurrent: 1, maxQueued: 0 }
      })
      const opening = yield* Testing.runScript(subject, {
        calls: [{ at: 0, outcomes: [failure()] }, { at: 10, outcomes: [failure()] }, { at: 20, outcomes: [] }],
        seed: 1
      })
      // the third call is rejected by the open breaker: it never reaches the dependency
      expect(opening.attempts.map((a) => a.breaker)).toEqual(["Closed", "Closed"])
      expect(opening.calls[2]!.exit).toMatchObject({ _tag: "Failure", error: { _tag: "CircuitOpenError" } })
      const next = yield* Testing.runScript(subject, { calls: [{ at: 0, outcomes: [] }], seed: 1 })
      expect(next.attempts.map((a) => [a.breaker, a.inFlight, a.bulkheadActive])).toEqual([["Closed", 1, 1]])
      expect(next.calls[0]!.exit._tag).toBe("Success")
    }))

  it.effect("a run draws from a Random seeded by its script and drops the policy's logs unless kept", () =>
    Effect.gen(function*() {
      const drawn: Array<number> = []
      const logged: Array<unknown> = []
      const subject: Testing.Subject = {
        policy: (self) => Effect.zipRight(Effect.tap(Random.nextInt, (n) => Effect.log(drawn.push(n))), self)
      }
      const script: Testing.Script = { calls: [{ at: 0, outcomes: [] }, { at: 5, outcomes: [] }], seed: 7 }
      const capture = Logger.replace(Logger.defaultLogger, Logger.make(({ message }) => logged.push(message)))
      yield* Testing.runScript(subject, script).pipe(Effect.provide(capture))
      yield* Testing.runScript(subject, script).pipe(Effect.provide(capture))
      const expected = yield* Effect.zip(Random.nextInt, Random.nextInt).pipe(Effect.withRandom(Random.make(7)))
      expect(drawn).toEqual([...expected, ...expected])
      expect(logged).toEqual([])
      yield* Testing.runScript(subject, script, { logs: true }).pipe(Effect.provide(capture))
      expect(logged).toEqual([[5], [6]])
    }))

  it.effect("a policy without breaker or bulkhead still reports bad options as a defect of the run", () =>
    Effect.gen(function*() {
      const subject = Testing.policy({ retry: { maxRetries: -1 } })
      for (let i = 0; i < 2; i++) {
        const exit = yield* Effect.exit(Testing.runScript(subject, { calls: [{ at: 0, outcomes: [] }], seed: 1 }))
        expect(exit._tag).toBe("Failure")
        expect(String(exit._tag === "Failure" ? Cause.squash(exit.cause) : "")).toContain("maxRetries")
      }
    }))

  it.effect("a run is deterministic: the same script gives the same timeline", () =>
    Effect.gen(function*() {
      const subject = Testing.policy({
        timeout: 300,
        retry: { maxRetries: 3, schedule: Backoff.decorrelatedJitter({ base: 10, cap: 1_000 }) },
        breaker: {},
        bulkhead: { maxConcurrent: 2, maxQueued: 2 }
      })
      const scripts = fc.sample(Testing.Arbitrary.script(), { numRuns: 20, seed: 11 })
      for (const script of scripts) {
        const a = yield* Testing.runScript(subject, script)
        const b = yield* Testing.runScript(subject, script)
        expect(Testing.render(b)).toBe(Testing.render(a))
      }
    }))
})

describe("Testing.policyLaws", () => {
  it.effect("catches a retry that ignores its budget, with a readable shrunk counterexample", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Testing.policyLaws(retryIgnoringBudget, { scripts: Testing.Arbitrary.script({ hangs: false }), seed: 1 })
      )
      expect(error.invariant).toBe("retriesWithinBudget")
      const lines = error.message.split("\n")
      expect(lines.slice(0, -1)).toEqual([
        "Invariant \"retriesWithinBudget\" broken: call 0 made 4 attempts; at most 3 (1 + maxRetries 2)",
        "script:",
        "  call 0 at 0ms: fail connection, fail connection, fail connection, then succeeds",
        "  Random seed 0",
        "attempts:",
        "  0ms: call 0 attempt 1: fail connection -> failed connection at 0ms; in flight 1; retry after 0ms",
        "  0ms: call 0 attempt 2: fail connection -> failed connection at 0ms; in flight 1; retry after 0ms",
        "  0ms: call 0 attempt 3: fail connection -> failed connection at 0ms; in flight 1; retry after 0ms",
        "  0ms: call 0 attempt 4: succeed -> success at 0ms; in flight 1; stop",
        "calls:",
        "  call 0 (at 0ms): success at 0ms after 4 attempt(s)"
      ])
      expect(lines[lines.length - 1]).toMatch(/^shrunk \d+ time\(s\); replay with \{ seed: 1 \}$/)
    }))

  it.effect("passes the same retry when it keeps its budget", () =>
    Testing.policyLaws(
      { policy: (self) => Effect.retry(self, Schedule.recurs(2)), limits: { maxRetries: 2 } },
      { scripts: Testing.Arbitrary.script({ hangs: false }), runs: 100 }
    ))

  it.effect("users add their own invariants over the timeline", () =>
    Effect.gen(function*() {
      const noRetryAfterValidation = Testing.invariant("noRetryAfterValidation", (t) => {
        const bad = t.attempts.find((a) =>
          a.outcome._tag === "Failure" && a.outcome.category === "validation" && a.decision._tag === "Retry"
        )
        return bad === undefined ? undefined : `call ${bad.call} retried after a validation failure`
      })
      yield* Testing.policyLaws(Testing.policy({ timeout: 1_000, retry: { maxRetries: 3 } }), {
        invariants: [noRetryAfterValidation],
        runs: 50
      })
      const error = yield* Effect.flip(
        Testing.policyLaws(retryIgnoringBudget, { invariants: [noRetryAfterValidation], seed: 5 })
      )
      expect(error.message.split("\n")[0]).toBe(
        "Invariant \"noRetryAfterValidation\" broken: call 0 retried after a validation failure"
      )
    }))
})

/** The message a synchronous call throws. */
const thrown = (f: () => unknown): string => {
  try {
    f()
  } catch (error) {
    return error instanceof Error ? error.message : String(error)
  }
  return "nothing thrown"
}

/** A table of delays that stops after `maxRetries` retries. */
const limited = (delays: ReadonlyArray<number>, maxRetries: number) =>
  Backoff.fromDelays(delays).pipe(Backoff.limit({ maxRetries }))

/** Every line of a ScheduleLawError's message but the last, and the last. */
const lawLines = (error: Testing.ScheduleLawError) => {
  const lines = error.message.split("\n")
  return { head: lines.slice(0, -1), last: lines[lines.length - 1]! }
}

describe("Testing.scheduleLaws: each law on its limit and one past it", () => {
  it.effect("a schedule exactly on every limit keeps every law", () =>
    // three retries of 1,000 ms that take no time: the third starts at 3,000 ms
    Testing.scheduleLaws(limited([1_000], 3), {
      maxDelay: 1_000,
      maxRetries: 3,
      maxElapsed: 3_000,
      monotone: true,
      jitter: { min: 1_000, max: 1_000 },
      maxAttemptDuration: 0,
      runs: 10
    }))

  it.effect("every bound tolerates a rounding error of 1e-6 ms, and no more", () =>
    Effect.gen(function*() {
      // a delay of 1e-6 ms against limits of 0
      yield* Testing.scheduleLaws(limited([1e-6], 1), {
        maxDelay: 0,
        maxElapsed: 0,
        jitter: { min: 0, max: 0 },
        maxAttemptDuration: 0,
        runs: 5
      })
      // a delay of 0 after one of 1e-6 ms, and below a jitter minimum of 1e-6 ms
      yield* Testing.scheduleLaws(limited([1e-6, 0], 2), {
        monotone: true,
        jitter: { min: 1e-6, max: 1e-6 },
        maxAttemptDuration: 0,
        runs: 5
      })
      const past = yield* Effect.flip(
        Testing.scheduleLaws(limited([2e-6], 1), { maxDelay: 0, maxAttemptDuration: 0, runs: 5, seed: 1 })
      )
      expect(past.law).toBe("maxDelay")
    }))

  it.effect("a retry past maxRetries: its number and the limit", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Testing.scheduleLaws(limited([10], 4), { maxRetries: 3, maxAttemptDuration: 0, seed: 5 })
      )
      expect(error._tag).toBe("ScheduleLawError")
      expect([error.law, error.delays]).toEqual(["maxRetries", [10, 10, 10, 10]])
      const { head, last } = lawLines(error)
      expect(head).toEqual([
        "Schedule law \"maxRetries\" broken: retry 4 was scheduled, but maxRetries is 3",
        "  delays: [10ms, 10ms, 10ms, 10ms]",
        "  run: Random seed 0, attempt durations [0ms, 0ms, 0ms, 0ms]"
      ])
      expect(last).toMatch(/^ {2}shrunk \d+ time\(s\); replay with \{ seed: 5 \}$/)
    }))

  it.effect("a delay past maxDelay, shown to the microsecond", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Testing.scheduleLaws(Backoff.fromDelays([1_000.12345]), { maxDelay: 1_000, maxAttemptDuration: 0, seed: 5 })
      )
      expect(lawLines(error).head).toEqual([
        "Schedule law \"maxDelay\" broken: delay 1 is 1000.123ms, above maxDelay 1000ms",
        "  delays: [1000.123ms]",
        "  run: Random seed 0, attempt durations [0ms]"
      ])
    }))

  it.effect("a retry that starts past maxElapsed: when it starts and the limit", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Testing.scheduleLaws(limited([1_000], 4), { maxElapsed: 3_000, maxAttemptDuration: 0, seed: 5 })
      )
      expect(error.law).toBe("maxElapsed")
      expect(lawLines(error).head).toEqual([
        "Schedule law \"maxElapsed\" broken: retry 4 starts 4000ms after the first step, past maxElapsed 3000ms",
        "  delays: [1000ms, 1000ms, 1000ms, 1000ms]",
        "  run: Random seed 0, attempt durations [0ms, 0ms, 0ms, 0ms]"
      ])
    }))

  it.effect("the attempts' durations count toward the elapsed time", () =>
    Effect.gen(function*() {
      // retries without delay: the second starts when the first attempt has taken its time
      const error = yield* Effect.flip(
        Testing.scheduleLaws(Backoff.fromDelays([0]), { maxElapsed: 0, maxAttemptDuration: 1_000, seed: 5 })
      )
      expect(lawLines(error).head).toEqual([
        "Schedule law \"maxElapsed\" broken: retry 2 starts 1ms after the first step, past maxElapsed 0ms",
        "  delays: [0ms, 0ms]",
        "  run: Random seed 0, attempt durations [1ms, 0ms]"
      ])
    }))

  it.effect("a shorter delay breaks monotone: both delays named", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Testing.scheduleLaws(Backoff.fromDelays([300, 100]), { monotone: true, maxAttemptDuration: 0, seed: 5 })
      )
      expect(lawLines(error).head).toEqual([
        "Schedule law \"monotone\" broken: delay 2 is 100ms, shorter than delay 1 (300ms)",
        "  delays: [300ms, 100ms]",
        "  run: Random seed 0, attempt durations [0ms, 0ms]"
      ])
    }))

  it.effect("a delay above its jitter maximum, and bounds that are not finite", () =>
    Effect.gen(function*() {
      const above = yield* Effect.flip(
        Testing.scheduleLaws(Backoff.fromDelays([200]), { jitter: { min: 0, max: 100 }, seed: 5 })
      )
      expect(above.message.split("\n")[0]).toBe(
        "Schedule law \"jitter\" broken: delay 1 is 200ms, outside its jitter bounds [0ms, 100ms]"
      )
      const infinite = yield* Effect.flip(
        Testing.scheduleLaws(Backoff.fromDelays([10]), {
          jitter: () => [Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY],
          seed: 5
        })
      )
      expect(infinite.message.split("\n")[0]).toBe(
        "Schedule law \"jitter\" broken: delay 1 is 10ms, outside its jitter bounds [Infinity, Infinity]"
      )
    }))

  it.effect("jitter bounds given as a function see the retry number and the previous delay", () =>
    Effect.gen(function*() {
      const seen: Array<readonly [number, number | undefined]> = []
      // each delay doubles the one before: exactly what the bounds promise
      yield* Testing.scheduleLaws(
        Backoff.exponential({ base: 100, factor: 2 }).pipe(Backoff.limit({ maxRetries: 3 })),
        {
          jitter: (n, previous) => {
            seen.push([n, previous])
            const d = previous === undefined ? 100 : previous * 2
            return [d, d]
          },
          runs: 20,
          seed: 1
        }
      )
      expect(seen).toContainEqual([1, undefined])
      expect(seen).toContainEqual([2, 100])
      expect(seen).toContainEqual([3, 200])
      expect(seen.every(([n, previous]) => n === 1 ? previous === undefined : previous === 100 * 2 ** (n - 2))).toBe(
        true
      )
    }))

  it.effect("a law that is not stated is not checked", () =>
    Testing.scheduleLaws(Backoff.fromDelays([300, 100]), { runs: 5 }))

  it.effect("runs and steps bound the search: one property run per run, at most `steps` steps each", () =>
    Effect.gen(function*() {
      let evaluated = 0
      yield* Testing.scheduleLaws(Backoff.fromDelays([10]), {
        steps: 1,
        runs: 3,
        jitter: () => {
          evaluated++
          return [10, 10]
        }
      })
      expect(evaluated).toBe(3)
      // two steps make at most two retries
      yield* Testing.scheduleLaws(Backoff.linear({ base: 10 }), { maxRetries: 2, steps: 2, runs: 20 })
    }))

  it.effect("jitter bounds that skip every run with fc.pre are a defect saying so", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Testing.scheduleLaws(Backoff.fromDelays([10]), {
        runs: 5,
        jitter: () => {
          fc.pre(false)
          return [0, 10]
        }
      }))
      expect(exit._tag === "Failure" && String(Cause.squash(exit.cause))).toMatch(
        /^Error: Testing\.scheduleLaws: too many runs were skipped \(\d+ skipped, 0 checked\): an fc\.pre in the jitter bounds rejects them$/
      )
    }))

  it.effect("default inputs are shown when the run without them breaks the law differently", () =>
    Effect.gen(function*() {
      // the delay depends on the input: 3,000 ms without one, 2,000 ms with one
      const byInput = Schedule.identity<unknown>().pipe(
        Schedule.addDelay((input) => input === undefined ? 3_000 : 2_000)
      )
      const error = yield* Effect.flip(Testing.scheduleLaws(byInput, { maxDelay: 1_000, seed: 5 }))
      const lines = error.message.split("\n")
      expect(lines[0]).toBe("Schedule law \"maxDelay\" broken: delay 1 is 2000ms, above maxDelay 1000ms")
      expect(lines[3]).toMatch(/^ {2}inputs: \[.+\]$/)
      // inputs you give are shown, undefined included
      const given = yield* Effect.flip(
        Testing.scheduleLaws(Schedule.spaced(100), { maxRetries: 1, inputs: fc.constant(undefined), seed: 5 })
      )
      expect(given.message.split("\n")[3]).toBe("  inputs: [undefined, undefined]")
    }))

  it("rejects bad laws with a message naming the field and the value", () => {
    const schedule = Backoff.linear({ base: 1 })
    expect(thrown(() => Testing.scheduleLaws(schedule, { maxRetries: 1.5 }))).toBe(
      "Testing.scheduleLaws: maxRetries must be a whole number >= 0, got 1.5"
    )
    expect(thrown(() => Testing.scheduleLaws(schedule, { maxDelay: "-1 seconds" }))).toBe(
      "Testing.scheduleLaws: maxDelay must be a duration >= 0, got -1 seconds"
    )
    expect(thrown(() => Testing.scheduleLaws(schedule, { maxElapsed: -1 }))).toBe(
      "Testing.scheduleLaws: maxElapsed must be a duration >= 0, got -1"
    )
    expect(thrown(() => Testing.scheduleLaws(schedule, { steps: 0 }))).toBe(
      "Testing.scheduleLaws: steps must be a whole number >= 1, got 0"
    )
    expect(thrown(() => Testing.scheduleLaws(schedule, { runs: 0 }))).toBe(
      "Testing.scheduleLaws: runs must be a whole number >= 1, got 0"
    )
    expect(thrown(() => Testing.scheduleLaws(schedule, { maxAttemptDuration: -1 }))).toBe(
      "Testing.scheduleLaws: maxAttemptDuration must be >= 0, got -1"
    )
    expect(thrown(() => Testing.scheduleLaws(schedule, { jitter: { min: -1, max: 0 } }))).toBe(
      "Testing.scheduleLaws: jitter.min must be a duration >= 0, got -1"
    )
    expect(thrown(() => Testing.scheduleLaws(schedule, { jitter: { min: 0, max: -1 } }))).toBe(
      "Testing.scheduleLaws: jitter.max must be a duration >= 0, got -1"
    )
    expect(thrown(() => Testing.scheduleLaws(schedule, { jitter: { min: 100, max: 50 } }))).toBe(
      "Testing.scheduleLaws: jitter.max must not be below jitter.min"
    )
    // the smallest values accepted
    expect(thrown(() => Testing.scheduleLaws(schedule, { maxRetries: 0, steps: 1, runs: 1, maxDelay: 0 }))).toBe(
      "nothing thrown"
    )
  })
})

/** The delays a schedule chooses, in milliseconds, on a Random seeded by 1. */
const delaysOf = (schedule: Backoff.Backoff, n: number) =>
  Backoff.delays(schedule, n).pipe(
    Effect.map((delays) => delays.map(Duration.toMillis)),
    Effect.withRandom(Random.make(1))
  )

/** What `backoffLaws` promises, its bounds as a function. */
const lawsOf = (options: Testing.BackoffOptions) => {
  const { jitter, ...rest } = Testing.backoffLaws(options)
  return { rest, bounds: jitter as Testing.JitterBounds }
}

describe("Testing.backoff and Testing.backoffLaws", () => {
  it.effect("backoff builds each family from its options, with its limits", () =>
    Effect.gen(function*() {
      expect(yield* delaysOf(Testing.backoff({ _tag: "fromDelays", delays: [100, 50] }), 3)).toEqual([100, 50, 50])
      expect(yield* delaysOf(Testing.backoff({ _tag: "linear", base: 10, cap: 25 }), 4)).toEqual([10, 20, 25, 25])
      expect(yield* delaysOf(Testing.backoff({ _tag: "exponential", base: 10, factor: 3 }), 3)).toEqual([10, 30, 90])
      expect(yield* delaysOf(Testing.backoff({ _tag: "fibonacci", base: 10 }), 5)).toEqual([10, 10, 20, 30, 50])
      const jittered = [
        [{ _tag: "decorrelatedJitter", base: 10, cap: 1_000 }, Backoff.decorrelatedJitter({ base: 10, cap: 1_000 })],
        [
          { _tag: "fullJitter", base: 10, cap: 1_000, factor: 2 },
          Backoff.fullJitter({ base: 10, cap: 1_000, factor: 2 })
        ],
        [
          { _tag: "equalJitter", base: 10, cap: 1_000, factor: 2 },
          Backoff.equalJitter({ base: 10, cap: 1_000, factor: 2 })
        ]
      ] as const
      const drawn: Array<ReadonlyArray<number>> = []
      for (const [options, direct] of jittered) {
        const built = yield* delaysOf(Testing.backoff(options), 4)
        expect(built).toEqual(yield* delaysOf(direct, 4))
        drawn.push(built)
      }
      // the same Random draws give each family its own delays
      expect(new Set(drawn.map((d) => d.join(","))).size).toBe(3)
      expect(yield* delaysOf(Testing.backoff({ _tag: "linear", base: 10, limits: { maxRetries: 2 } }), 4)).toEqual([
        10,
        20
      ])
    }))

  it("backoffLaws gives each deterministic family its exact delays, and its cap", () => {
    const unsorted = lawsOf({ _tag: "fromDelays", delays: [100, 300, 200] })
    expect(unsorted.rest).toStrictEqual({ monotone: false, maxDelay: 300 })
    expect([1, 2, 3, 5].map((n) => unsorted.bounds(n, undefined))).toEqual([[100, 100], [300, 300], [200, 200], [
      200,
      200
    ]])
    expect(lawsOf({ _tag: "fromDelays", delays: [100, 100, 200] }).rest).toStrictEqual({
      monotone: true,
      maxDelay: 200
    })

    const linear = lawsOf({ _tag: "linear", base: 10, cap: 25 })
    expect(linear.rest).toStrictEqual({ monotone: true, maxDelay: 25 })
    expect([1, 2, 3].map((n) => linear.bounds(n, undefined))).toEqual([[10, 10], [20, 20], [25, 25]])
    const uncapped = lawsOf({ _tag: "linear", base: 10 })
    expect(uncapped.rest).toStrictEqual({ monotone: true })
    expect(uncapped.bounds(3, undefined)).toEqual([30, 30])
    // a cap written as undefined is no cap
    const undefinedCap = lawsOf({ _tag: "linear", base: 10, cap: undefined } as unknown as Testing.BackoffOptions)
    expect(undefinedCap.rest).toStrictEqual({ monotone: true })
    expect(undefinedCap.bounds(3, undefined)).toEqual([30, 30])

    const exponential = lawsOf({ _tag: "exponential", base: 10, factor: 3, cap: 200 })
    expect(exponential.rest).toStrictEqual({ monotone: true, maxDelay: 200 })
    expect([1, 2, 3, 4].map((n) => exponential.bounds(n, undefined))).toEqual([[10, 10], [30, 30], [90, 90], [
      200,
      200
    ]])

    const fibonacci = lawsOf({ _tag: "fibonacci", base: 10, cap: 45 })
    expect(fibonacci.rest).toStrictEqual({ monotone: true, maxDelay: 45 })
    expect([1, 2, 3, 4, 5].map((n) => fibonacci.bounds(n, undefined)[0])).toEqual([10, 10, 20, 30, 45])
  })

  it("backoffLaws gives each jitter family its bounds", () => {
    const decorrelated = lawsOf({ _tag: "decorrelatedJitter", base: 10, cap: 100 })
    expect(decorrelated.rest).toStrictEqual({ monotone: false, maxDelay: 100 })
    expect(decorrelated.bounds(1, undefined)).toEqual([10, 30])
    expect(decorrelated.bounds(2, 20)).toEqual([10, 60])
    expect(decorrelated.bounds(3, 50)).toEqual([10, 100])
    // under maxDelay the previous delay seen is clamped: only the outer bounds hold
    const clamped = lawsOf({ _tag: "decorrelatedJitter", base: 10, cap: 100, limits: { maxDelay: 50 } })
    expect(clamped.rest).toStrictEqual({ monotone: false, maxDelay: 50 })
    expect(clamped.bounds(2, 20)).toEqual([10, 50])

    const full = lawsOf({ _tag: "fullJitter", base: 10, cap: 50, factor: 2 })
    expect(full.rest).toStrictEqual({ monotone: false, maxDelay: 50 })
    expect([1, 3, 4].map((n) => full.bounds(n, undefined))).toEqual([[0, 10], [0, 40], [0, 50]])
    const equal = lawsOf({ _tag: "equalJitter", base: 10, cap: 50, factor: 2 })
    expect(equal.rest).toStrictEqual({ monotone: false, maxDelay: 50 })
    expect([1, 3, 4].map((n) => equal.bounds(n, undefined))).toEqual([[5, 10], [20, 40], [25, 50]])
  })

  it("backoffLaws carries the limits: maxDelay clamps every bound, maxRetries and maxElapsed pass through", () => {
    const limitedLinear = lawsOf({
      _tag: "linear",
      base: 100,
      limits: { maxDelay: 250, maxRetries: 4, maxElapsed: 1_000 }
    })
    expect(limitedLinear.rest).toStrictEqual({ monotone: true, maxDelay: 250, maxRetries: 4, maxElapsed: 1_000 })
    expect([2, 3].map((n) => limitedLinear.bounds(n, undefined))).toEqual([[200, 200], [250, 250]])
    // the cap below maxDelay is the bound
    expect(lawsOf({ _tag: "exponential", base: 10, factor: 2, cap: 1_000, limits: { maxDelay: 5_000 } }).rest)
      .toStrictEqual({ monotone: true, maxDelay: 1_000 })
    expect(lawsOf({ _tag: "linear", base: 10, limits: { maxRetries: 0 } }).rest).toStrictEqual({
      monotone: true,
      maxRetries: 0
    })
  })
})

describe("Testing scripted outcomes", () => {
  it("a scripted failure classifies itself under its category, with one rule per category", () => {
    const failure = new Testing.ScriptedFailure("timeout")
    expect([failure._tag, failure.message]).toEqual(["ScriptedFailure", "scripted timeout failure"])
    expect(failure[Failure.RuleKey]).toEqual({ category: "timeout", code: "SCRIPTED_TIMEOUT" })
    expect(new Testing.ScriptedFailure("timeout")[Failure.RuleKey]).toBe(failure[Failure.RuleKey])
    // a category no other test scripts: its rule is made here (the rules are kept per category)
    expect(new Testing.ScriptedFailure("user_code")[Failure.RuleKey]).toEqual({
      category: "user_code",
      code: "SCRIPTED_USER_CODE"
    })
    const defect = new Testing.ScriptedDefect()
    expect([defect._tag, defect.message]).toEqual(["ScriptedDefect", "scripted defect"])
  })

  it("toChaosDecision maps each outcome to its fault and latency", () => {
    const decisions = ([
      { _tag: "Success", latency: 5 },
      { _tag: "Failure", category: "connection", latency: 7 },
      { _tag: "Defect", latency: 9 },
      { _tag: "Hang" }
    ] as const).map((outcome) => {
      const decision = Testing.toChaosDecision(outcome)
      return [decision.fault, Duration.toMillis(decision.latency)]
    })
    expect(decisions).toEqual([["none", 5], ["failure", 7], ["defect", 9], ["hang", 0]])
  })

  it.effect("the injector waits out each latency, dies with the scripted defect and hangs on a hang", () =>
    Effect.gen(function*() {
      const inject = Testing.injector([success(50), { _tag: "Defect", latency: 0 }, { _tag: "Hang" }])
      const slow = yield* Effect.fork(inject(Effect.succeed("ok")))
      yield* TestClock.adjust(49)
      expect(Option.isNone(yield* Fiber.poll(slow))).toBe(true)
      yield* TestClock.adjust(1)
      expect(yield* Fiber.join(slow)).toBe("ok")
      const died = yield* Effect.exit(inject(Effect.succeed("ok")))
      expect(died._tag === "Failure" && Cause.squash(died.cause)).toBeInstanceOf(Testing.ScriptedDefect)
      const hung = yield* Effect.fork(inject(Effect.succeed("ok")))
      yield* TestClock.adjust("1 hour")
      expect(Option.isNone(yield* Fiber.poll(hung))).toBe(true)
      yield* Fiber.interrupt(hung)
      expect(yield* inject(Effect.succeed("after"))).toBe("after")
    }))
})

describe("Testing.Arbitrary: option ranges", () => {
  it("outcome: by default every kind, the four default categories, latencies up to 2,000 ms", () => {
    const outcomes = fc.sample(Testing.Arbitrary.outcome(), { numRuns: 300, seed: 1 })
    expect(new Set(outcomes.map((o) => o._tag))).toEqual(new Set(["Success", "Failure", "Defect", "Hang"]))
    expect(new Set(outcomes.flatMap((o) => o._tag === "Failure" ? [o.category] : []))).toEqual(
      new Set(["connection", "timeout", "communication", "validation"])
    )
    const latencies = outcomes.flatMap((o) => o._tag === "Hang" ? [] : [o.latency])
    expect(latencies.every((l) => Number.isInteger(l) && l >= 0 && l <= 2_000)).toBe(true)
    expect(Math.max(...latencies)).toBeGreaterThan(1_000)
    for (const o of outcomes) {
      expect(Object.keys(o).sort()).toEqual(
        o._tag === "Failure" ? ["_tag", "category", "latency"] : o._tag === "Hang" ? ["_tag"] : ["_tag", "latency"]
      )
    }
  })

  it("outcome: maxLatency, defects and hangs narrow it; no categories is an error", () => {
    const short = fc.sample(Testing.Arbitrary.outcome({ maxLatency: 10 }), { numRuns: 200, seed: 2 })
    const latencies = short.flatMap((o) => o._tag === "Hang" ? [] : [o.latency])
    expect(Math.max(...latencies)).toBe(10)
    expect(
      new Set(fc.sample(Testing.Arbitrary.outcome({ defects: false }), { numRuns: 200, seed: 3 }).map((o) => o._tag))
    )
      .toEqual(new Set(["Success", "Failure", "Hang"]))
    expect(
      new Set(fc.sample(Testing.Arbitrary.outcome({ hangs: false }), { numRuns: 200, seed: 3 }).map((o) => o._tag))
    )
      .toEqual(new Set(["Success", "Failure", "Defect"]))
    expect(thrown(() => Testing.Arbitrary.outcome({ categories: [] }))).toBe(
      "Testing.Arbitrary.outcome: categories must not be empty"
    )
  })

  it("script: by default up to 6 calls of up to 6 outcomes, gaps up to 5,000 ms", () => {
    const scripts = fc.sample(Testing.Arbitrary.script(), { numRuns: 300, seed: 1 })
    const counts = scripts.map((s) => s.calls.length)
    expect([Math.min(...counts), Math.max(...counts)]).toEqual([1, 6])
    const outcomes = scripts.flatMap((s) => s.calls.map((c) => c.outcomes.length))
    expect([Math.min(...outcomes), Math.max(...outcomes)]).toEqual([0, 6])
    const gaps = scripts.flatMap((s) => s.calls.map((c, i) => c.at - (i === 0 ? 0 : s.calls[i - 1]!.at)))
    expect(Math.min(...gaps)).toBe(0)
    expect(Math.max(...gaps)).toBeGreaterThan(2_500)
    expect(Math.max(...gaps)).toBeLessThanOrEqual(5_000)
  })

  it("script: maxCalls, maxOutcomes and maxGap bound it; bad bounds are errors", () => {
    const scripts = fc.sample(Testing.Arbitrary.script({ maxCalls: 2, maxOutcomes: 1, maxGap: 3 }), {
      numRuns: 200,
      seed: 2
    })
    expect(Math.max(...scripts.map((s) => s.calls.length))).toBe(2)
    expect(Math.max(...scripts.flatMap((s) => s.calls.map((c) => c.outcomes.length)))).toBe(1)
    expect(Math.max(...scripts.map((s) => s.calls[s.calls.length - 1]!.at))).toBe(6)
    const none = fc.sample(Testing.Arbitrary.script({ maxOutcomes: 0 }), { numRuns: 50, seed: 2 })
    expect(none.every((s) => s.calls.every((c) => c.outcomes.length === 0))).toBe(true)
    expect(thrown(() => Testing.Arbitrary.script({ maxCalls: 0 }))).toBe(
      "Testing.Arbitrary.script: maxCalls must be a whole number >= 1, got 0"
    )
    expect(thrown(() => Testing.Arbitrary.script({ maxOutcomes: -1 }))).toBe(
      "Testing.Arbitrary.script: maxOutcomes must be a whole number >= 0, got -1"
    )
  })

  it("limits: each field optional, within its range", () => {
    const limits = fc.sample(Testing.Arbitrary.limits, { numRuns: 300, seed: 1 })
    for (const key of ["maxDelay", "maxRetries", "maxElapsed"] as const) {
      expect(limits.some((l) => !(key in l))).toBe(true)
      expect(limits.some((l) => key in l)).toBe(true)
    }
    const all = (key: "maxDelay" | "maxRetries" | "maxElapsed") =>
      limits.flatMap((l) => l[key] === undefined ? [] : [l[key]])
    for (const [key, max] of [["maxDelay", 60_000], ["maxRetries", 12], ["maxElapsed", 300_000]] as const) {
      expect(Math.min(...all(key))).toBeGreaterThanOrEqual(0)
      expect(Math.max(...all(key))).toBe(max)
    }
  })

  it("backoffOptions: every family, with and without limits, factors within [1, 4]", () => {
    const options = fc.sample(Testing.Arbitrary.backoffOptions, { numRuns: 300, seed: 1 })
    expect(new Set(options.map((o) => o._tag))).toEqual(
      new Set(["fromDelays", "linear", "exponential", "fibonacci", "decorrelatedJitter", "fullJitter", "equalJitter"])
    )
    // some draws have limits; the others have no limits key at all (not one set to undefined)
    expect(options.some((o) => o.limits !== undefined)).toBe(true)
    expect(options.some((o) => !("limits" in o))).toBe(true)
    expect(options.filter((o) => "limits" in o && o.limits === undefined)).toEqual([])
    const factors = options.flatMap((o) => "factor" in o ? [o.factor] : [])
    expect(factors.every((f) => f >= 1 && f <= 4)).toBe(true)
  })

  it("chaosOptions: the given failure, rates summing to at most 1, an ordered latency range up to 1,000 ms", () => {
    const failure = () => "boom"
    const options = fc.sample(Testing.Arbitrary.chaosOptions(failure), { numRuns: 300, seed: 1 })
    expect(options.every((o) => o.failure === failure)).toBe(true)
    const latencies = options.map((o) => o.latency as { readonly min: number; readonly max: number })
    expect(latencies.every((l) => l.min <= l.max && l.max <= 1_000)).toBe(true)
    expect(latencies.some((l) => l.min < l.max)).toBe(true)
    expect(Math.max(...latencies.map((l) => l.max))).toBeGreaterThan(500)
    const sums = options.map((o) => o.failureRate! + o.defectRate! + o.hangRate!)
    expect(sums.every((s) => s >= 0 && s <= 1 + 1e-12)).toBe(true)
    expect(sums.some((s) => s > 0 && s < 1)).toBe(true)
  })
})

describe("Testing.policy: the subject and the limits it promises", () => {
  it.effect("each option gives its stage and its limit; a policy without state is made once", () =>
    Effect.gen(function*() {
      const made = (options: Testing.PolicyOptions) => Effect.scoped(Testing.policy(options))
      const plain = Testing.policy({ retry: { maxRetries: 2 } })
      const first = yield* Effect.scoped(plain)
      expect(yield* Effect.scoped(plain)).toBe(first)
      expect([first.breaker, first.bulkhead, first.limits]).toStrictEqual([undefined, undefined, { maxRetries: 2 }])
      expect((yield* made({})).limits).toStrictEqual({ maxRetries: 0 })
      // without maxRetries, the largest budget of the decision matrix (connection: 5)
      expect((yield* made({ retry: {} })).limits).toStrictEqual({ maxRetries: 5 })
      const breakerOnly = yield* made({ breaker: {} })
      expect(breakerOnly.breaker).toBeDefined()
      expect(breakerOnly.bulkhead).toBeUndefined()
      expect(breakerOnly.limits).toStrictEqual({ maxRetries: 0, halfOpenProbes: 3, maxConcurrent: undefined })
      const bulkheadOnly = yield* made({ bulkhead: { maxConcurrent: 2 } })
      expect(bulkheadOnly.breaker).toBeUndefined()
      expect(bulkheadOnly.bulkhead).toBeDefined()
      expect(bulkheadOnly.limits).toStrictEqual({ maxRetries: 0, halfOpenProbes: undefined, maxConcurrent: 2 })
      const both = Testing.policy({
        breaker: { halfOpenProbes: 1 },
        bulkhead: { maxConcurrent: 3 },
        retry: { maxRetries: 1 }
      })
      const one = yield* Effect.scoped(both)
      expect(one.limits).toStrictEqual({ maxRetries: 1, halfOpenProbes: 1, maxConcurrent: 3 })
      // a breaker and a bulkhead hold state: every run gets its own
      expect(yield* Effect.scoped(both)).not.toBe(one)
    }))

  it.effect("its breaker registers no health check, even where a Health service is provided", () =>
    Effect.gen(function*() {
      const seen: Array<ReadonlyArray<string>> = []
      const subject = Effect.tap(
        Testing.policy({ breaker: {} }),
        () =>
          Effect.flatMap(Health.Health, (health) =>
            Effect.map(health.report, (report) => {
              seen.push(report.components.map((c) => c.name))
            }))
      )
      yield* Testing.runScript(subject, { calls: [{ at: 0, outcomes: [] }], seed: 1 })
      expect(seen).toEqual([[]])
    }).pipe(Effect.provide(Health.layer())))
})

/** A policy with every stage, and a script that passes through each of the breaker's states. */
const fullPolicy = () =>
  Testing.policy({
    timeout: 100,
    retry: { maxRetries: 1, schedule: Backoff.fromDelays([50]) },
    breaker: { policy: CircuitBreaker.consecutive(2), openDuration: 1_000, halfOpenProbes: 2, successThreshold: 2 },
    bulkhead: { maxConcurrent: 2, maxQueued: 4 }
  })

const fullScript: Testing.Script = {
  calls: [
    // a failure, then a defect after the retry: the breaker opens
    { at: 0, outcomes: [failure("connection", 10), { _tag: "Defect", latency: 5 }] },
    // rejected while open
    { at: 500, outcomes: [] },
    // half-open: a probe that succeeds, a probe that hangs until its timeout
    { at: 1_100, outcomes: [success(20)] },
    { at: 1_105, outcomes: [{ _tag: "Hang" }] },
    // rejected: two probes in flight
    { at: 1_110, outcomes: [success()] },
    // the first probe has ended: this one is the second in flight, and the second success closes it
    { at: 1_130, outcomes: [success(10)] }
  ],
  seed: 4
}

describe("Testing.runScript: a fixed script checked exactly", () => {
  it.effect("every attempt's time, outcome, breaker state, probes, occupancy and retry decision", () =>
    Effect.gen(function*() {
      const timeline = yield* Testing.runScript(fullPolicy(), fullScript)
      const attempt = (
        call: number,
        n: number,
        start: number,
        end: number,
        outcome: Testing.AttemptOutcome,
        breaker: CircuitBreaker.State,
        probes: number,
        inFlight: number,
        decision: Testing.RetryDecision
      ): Testing.Attempt => ({
        call,
        attempt: n,
        start,
        end,
        scripted: fullScript.calls[call]!.outcomes[n - 1] ?? success(),
        outcome,
        breaker,
        probes,
        inFlight,
        bulkheadActive: inFlight,
        decision
      })
      expect(timeline.attempts).toEqual([
        attempt(0, 1, 0, 10, { _tag: "Failure", category: "connection" }, "Closed", 0, 1, { _tag: "Retry", after: 50 }),
        attempt(0, 2, 60, 65, { _tag: "Defect" }, "Closed", 0, 1, { _tag: "Stop" }),
        attempt(2, 1, 1_100, 1_120, { _tag: "Success" }, "HalfOpen", 1, 1, { _tag: "Stop" }),
        attempt(3, 1, 1_105, 1_205, { _tag: "Interrupted" }, "HalfOpen", 2, 2, { _tag: "Retry", after: 50 }),
        attempt(5, 1, 1_130, 1_140, { _tag: "Success" }, "HalfOpen", 2, 2, { _tag: "Stop" }),
        attempt(3, 2, 1_255, 1_255, { _tag: "Success" }, "Closed", 0, 1, { _tag: "Stop" })
      ])
      expect(timeline.calls.map((c) => [c.call, c.start, c.end, c.exit._tag, c.attempts])).toEqual([
        [0, 0, 65, "Defect", 2],
        [1, 500, 500, "Failure", 0],
        [2, 1_100, 1_120, "Success", 1],
        [3, 1_105, 1_255, "Success", 2],
        [4, 1_110, 1_110, "Failure", 0],
        [5, 1_130, 1_140, "Success", 1]
      ])
      const died = timeline.calls[0]!.exit
      expect(died._tag === "Defect" && died.defect).toBeInstanceOf(Testing.ScriptedDefect)
      expect([timeline.end, timeline.ending, timeline.limits]).toEqual([
        1_255,
        "done",
        { maxRetries: 1, halfOpenProbes: 2, maxConcurrent: 2 }
      ])
      yield* Testing.check(timeline)
    }))

  it.effect("render and renderScript show it line by line", () =>
    Effect.gen(function*() {
      const timeline = yield* Testing.runScript(fullPolicy(), fullScript)
      expect(Testing.renderScript(fullScript).split("\n")).toEqual([
        "call 0 at 0ms: fail connection after 10ms, die after 5ms, then succeeds",
        "call 1 at 500ms: succeeds",
        "call 2 at 1100ms: succeed after 20ms, then succeeds",
        "call 3 at 1105ms: hang, then succeeds",
        "call 4 at 1110ms: succeed, then succeeds",
        "call 5 at 1130ms: succeed after 10ms, then succeeds",
        "Random seed 4"
      ])
      expect(Testing.render(timeline).split("\n")).toEqual([
        "attempts:",
        "  0ms: call 0 attempt 1: fail connection after 10ms -> failed connection at 10ms; breaker Closed in flight 1; retry after 50ms",
        "  60ms: call 0 attempt 2: die after 5ms -> defect at 65ms; breaker Closed in flight 1; stop",
        "  1100ms: call 2 attempt 1: succeed after 20ms -> success at 1120ms; breaker HalfOpen (probe 1) in flight 1; stop",
        "  1105ms: call 3 attempt 1: hang -> interrupted at 1205ms; breaker HalfOpen (probe 2) in flight 2; retry after 50ms",
        "  1130ms: call 5 attempt 1: succeed after 10ms -> success at 1140ms; breaker HalfOpen (probe 2) in flight 2; stop",
        "  1255ms: call 3 attempt 2: succeed -> success at 1255ms; breaker Closed in flight 1; stop",
        "calls:",
        "  call 0 (at 0ms): died with the scripted defect at 65ms after 2 attempt(s)",
        "  call 1 (at 500ms): failed with CircuitOpenError at 500ms after 0 attempt(s)",
        "  call 2 (at 1100ms): success at 1120ms after 1 attempt(s)",
        "  call 3 (at 1105ms): success at 1255ms after 2 attempt(s)",
        "  call 4 (at 1110ms): failed with CircuitOpenError at 1110ms after 0 attempt(s)",
        "  call 5 (at 1130ms): success at 1140ms after 1 attempt(s)"
      ])
    }))

  it.effect("each budget invariant holds on its limit and breaks one below it", () =>
    Effect.gen(function*() {
      const timeline = yield* Testing.runScript(fullPolicy(), fullScript)
      // on the limits: 2 attempts for 1 retry, 2 probes, 2 in flight
      yield* Testing.check(timeline, [
        Testing.invariants.retriesWithinBudget(1),
        Testing.invariants.probesWithinLimit(2),
        Testing.invariants.bulkheadWithinLimit(2)
      ])
      const first = (invariant: Testing.Invariant) =>
        Effect.map(
          Effect.flip(Testing.check(timeline, [invariant])),
          (e) => [e._tag, e.invariant, e.message.split("\n")[0]]
        )
      expect(yield* first(Testing.invariants.retriesWithinBudget(0))).toEqual([
        "InvariantError",
        "retriesWithinBudget",
        "Invariant \"retriesWithinBudget\" broken: call 0 made 2 attempts; at most 1 (1 + maxRetries 0)"
      ])
      expect(yield* first(Testing.invariants.probesWithinLimit(1))).toEqual([
        "InvariantError",
        "probesWithinLimit",
        "Invariant \"probesWithinLimit\" broken: at 1105ms call 3 was probe 2 in flight; halfOpenProbes is 1"
      ])
      expect(yield* first(Testing.invariants.bulkheadWithinLimit(1))).toEqual([
        "InvariantError",
        "bulkheadWithinLimit",
        "Invariant \"bulkheadWithinLimit\" broken: at 1105ms call 3 made 2 attempts in flight; maxConcurrent is 1"
      ])
      // a limit passed in wins over the timeline's; without either, nothing is checked
      const looser = { ...timeline, limits: { maxRetries: 0, halfOpenProbes: 1, maxConcurrent: 1 } }
      yield* Testing.check(looser, [
        Testing.invariants.retriesWithinBudget(1),
        Testing.invariants.probesWithinLimit(2),
        Testing.invariants.bulkheadWithinLimit(2)
      ])
      expect(yield* Effect.flip(Testing.check(looser))).toMatchObject({ invariant: "retriesWithinBudget" })
      yield* Testing.check({ ...timeline, limits: {} })
    }))
})

/** An attempt of a hand-written timeline. */
const handAttempt = (fields: Partial<Testing.Attempt> & Pick<Testing.Attempt, "call" | "start" | "end" | "outcome">) =>
  ({
    attempt: 1,
    scripted: success(),
    breaker: undefined,
    probes: 0,
    inFlight: 1,
    bulkheadActive: undefined,
    decision: { _tag: "Stop" },
    ...fields
  }) satisfies Testing.Attempt

/** A hand-written timeline: calls at 0 with their ends, exits and attempts. */
const handTimeline = (
  calls: ReadonlyArray<Omit<Testing.Call, "call" | "start">>,
  attempts: ReadonlyArray<Testing.Attempt>,
  ending: Testing.Timeline["ending"] = "done"
): Testing.Timeline => ({
  script: { calls: calls.map(() => ({ at: 0, outcomes: [] })), seed: 1 },
  calls: calls.map((c, call) => ({ ...c, call, start: 0 })),
  attempts,
  limits: {},
  end: 0,
  ending
})

const broken = (timeline: Testing.Timeline, invariant: Testing.Invariant) =>
  Effect.map(Effect.flip(Testing.check(timeline, [invariant])), (e) => e.message.split("\n")[0])

describe("Testing.invariants on hand-written timelines", () => {
  it.effect("everyCallEnds names every pending call and why the run stopped", () =>
    Effect.gen(function*() {
      const pending = { end: undefined, exit: { _tag: "Pending" }, attempts: 0 } as const
      const ended = { end: 5, exit: { _tag: "Success" }, attempts: 0 } as const
      expect(yield* broken(handTimeline([ended, pending, pending], [], "horizon"), Testing.invariants.everyCallEnds))
        .toBe("Invariant \"everyCallEnds\" broken: call(s) 1, 2 never ended (the run passed its horizon)")
      yield* Testing.check(handTimeline([ended], []), [Testing.invariants.everyCallEnds])
    }))

  it.effect("nothingLost: an attempt that ends after its call, or never, is lost; one that ends with it is not", () =>
    Effect.gen(function*() {
      const failed = { end: 100, exit: { _tag: "Failure", error: "timed out" }, attempts: 1 } as const
      const interrupted = { _tag: "Interrupted" } as const
      expect(
        yield* broken(
          handTimeline([failed], [handAttempt({ call: 0, start: 0, end: 150, outcome: interrupted })]),
          Testing.invariants.nothingLost
        )
      ).toBe("Invariant \"nothingLost\" broken: call 0 ended at 100ms while its attempt 1 was still running")
      expect(
        yield* broken(
          handTimeline([failed], [handAttempt({ call: 0, start: 0, end: undefined, outcome: { _tag: "Running" } })]),
          Testing.invariants.nothingLost
        )
      ).toBe("Invariant \"nothingLost\" broken: call 0 ended at 100ms while its attempt 1 was still running")
      yield* Testing.check(
        handTimeline([failed], [handAttempt({ call: 0, start: 0, end: 100, outcome: interrupted })]),
        [Testing.invariants.nothingLost]
      )
      // a call still pending may have attempts still running
      yield* Testing.check(
        handTimeline([{ end: undefined, exit: { _tag: "Pending" }, attempts: 1 }], [
          handAttempt({ call: 0, start: 0, end: undefined, outcome: { _tag: "Running" } })
        ]),
        [Testing.invariants.nothingLost]
      )
    }))

  it.effect("nothingLost: only the call's own last attempt counts, and a success the caller saw is not lost", () =>
    Effect.gen(function*() {
      // call 0 failed after its own attempt failed; call 1 succeeded after its attempt did, which
      // ended before call 0 did (so reading every attempt, not the call's own, would see a loss)
      yield* Testing.check(
        handTimeline([
          { end: 20, exit: { _tag: "Failure", error: "boom" }, attempts: 1 },
          { end: 30, exit: { _tag: "Success" }, attempts: 1 },
          { end: 0, exit: { _tag: "Failure", error: "rejected" }, attempts: 0 }
        ], [
          handAttempt({ call: 0, start: 0, end: 10, outcome: { _tag: "Failure", category: "connection" } }),
          handAttempt({ call: 1, start: 0, end: 15, outcome: { _tag: "Success" } })
        ]),
        [Testing.invariants.nothingLost]
      )
    }))

  it.effect("failuresTyped: an interruption or a defect not injected breaks it, an injected defect does not", () =>
    Effect.gen(function*() {
      expect(
        yield* broken(
          handTimeline([{ end: 0, exit: { _tag: "Interrupted" }, attempts: 0 }], []),
          Testing.invariants.failuresTyped
        )
      ).toBe("Invariant \"failuresTyped\" broken: call 0 was interrupted instead of failing with a typed error")
      expect(
        yield* broken(
          handTimeline([
            { end: 0, exit: { _tag: "Success" }, attempts: 0 },
            { end: 0, exit: { _tag: "Defect", defect: "boom" }, attempts: 0 }
          ], []),
          Testing.invariants.failuresTyped
        )
      ).toBe("Invariant \"failuresTyped\" broken: call 1 died with a defect that was not injected: \"boom\"")
      yield* Testing.check(
        handTimeline([
          { end: 0, exit: { _tag: "Defect", defect: new Testing.ScriptedDefect() }, attempts: 0 },
          { end: 0, exit: { _tag: "Failure", error: "typed" }, attempts: 0 }
        ], []),
        [Testing.invariants.failuresTyped]
      )
    }))

  it.effect("check reports the first invariant broken, in the order given", () =>
    Effect.gen(function*() {
      const timeline = handTimeline([{ end: 0, exit: { _tag: "Interrupted" }, attempts: 3 }], [])
      const error = yield* Effect.flip(
        Testing.check(timeline, [Testing.invariants.failuresTyped, Testing.invariants.retriesWithinBudget(1)])
      )
      expect(error.invariant).toBe("failuresTyped")
      expect(error.message.split("\n")).toEqual([
        "Invariant \"failuresTyped\" broken: call 0 was interrupted instead of failing with a typed error",
        "script:",
        "  call 0 at 0ms: succeeds",
        "  Random seed 1",
        "attempts:",
        "  (none)",
        "calls:",
        "  call 0 (at 0ms): interrupted at 0ms after 3 attempt(s)"
      ])
    }))
})

describe("Testing.runScript: how calls end, and when the run stops", () => {
  it.effect("each way a call can end, as the timeline and render show it", () =>
    Effect.gen(function*() {
      let n = 0
      // each call meets a different policy: interrupted, a defect of its own, untyped failures, the script's failure
      const odd: Testing.Subject = {
        policy: (self) => {
          const i = n++
          return i === 0
            ? Effect.interrupt
            : i === 1
            ? Effect.die("boom")
            : i === 2
            ? Effect.fail(undefined)
            : i === 3
            ? Effect.fail({ code: 1 })
            : i === 4
            ? Effect.fail(null)
            : self
        }
      }
      const timeline = yield* Testing.runScript(odd, {
        calls: [0, 1, 2, 3, 4, 5].map((at) => ({ at, outcomes: at === 5 ? [failure("validation")] : [] })),
        seed: 1
      })
      expect(timeline.calls.map((c) => c.exit)).toEqual([
        { _tag: "Interrupted" },
        { _tag: "Defect", defect: "boom" },
        { _tag: "Failure", error: undefined },
        { _tag: "Failure", error: { code: 1 } },
        { _tag: "Failure", error: null },
        { _tag: "Failure", error: new Testing.ScriptedFailure("validation") }
      ])
      expect(Testing.render(timeline).split("\n")).toEqual([
        "attempts:",
        "  5ms: call 5 attempt 1: fail validation -> failed validation at 5ms; in flight 1; stop",
        "calls:",
        "  call 0 (at 0ms): interrupted at 0ms after 0 attempt(s)",
        "  call 1 (at 1ms): died with \"boom\" at 1ms after 0 attempt(s)",
        "  call 2 (at 2ms): failed with undefined at 2ms after 0 attempt(s)",
        "  call 3 (at 3ms): failed with {\"code\":1} at 3ms after 0 attempt(s)",
        "  call 4 (at 4ms): failed with null at 4ms after 0 attempt(s)",
        "  call 5 (at 5ms): failed with ScriptedFailure(validation) at 5ms after 1 attempt(s)"
      ])
      expect(timeline.limits).toEqual({})
    }))

  it.effect("an attempt that ended in a call that never did has no decision yet, nor has one still running", () =>
    Effect.gen(function*() {
      const waitsForever: Testing.Subject = { policy: (self) => Effect.zipRight(self, Effect.async<never>(() => {})) }
      const timeline = yield* Testing.runScript(waitsForever, {
        calls: [{ at: 0, outcomes: [] }, { at: 0, outcomes: [{ _tag: "Hang" }] }],
        seed: 1
      })
      expect(timeline.attempts.map((a) => [a.end, a.outcome._tag, a.decision])).toEqual([
        [0, "Success", { _tag: "Pending" }],
        [undefined, "Running", { _tag: "Pending" }]
      ])
      expect(Testing.render(timeline).split("\n")).toEqual([
        "attempts:",
        "  0ms: call 0 attempt 1: succeed -> success at 0ms; in flight 1; -",
        "  0ms: call 1 attempt 1: hang -> running; in flight 1; -",
        "calls:",
        "  call 0 (at 0ms): never ended after 1 attempt(s)",
        "  call 1 (at 0ms): never ended after 1 attempt(s)"
      ])
      // a call that returned without waiting for its attempt: the attempt is lost, and undecided
      const detached: Testing.Subject = {
        policy: <A, E, R>(self: Effect.Effect<A, E, R>) =>
          Effect.asVoid(Effect.forkDaemon(self)) as unknown as Effect.Effect<A, unknown, R>
      }
      const lost = yield* Testing.runScript(detached, { calls: [{ at: 0, outcomes: [{ _tag: "Hang" }] }], seed: 1 })
      expect(lost.attempts.map((a) => [a.end, a.decision._tag])).toEqual([[undefined, "Pending"]])
      expect(lost.calls.map((c) => [c.end, c.exit._tag])).toEqual([[0, "Success"]])
      expect(yield* broken(lost, Testing.invariants.nothingLost)).toBe(
        "Invariant \"nothingLost\" broken: call 0 ended at 0ms while its attempt 1 was still running"
      )
    }))

  it.effect("the horizon: an hour past the last arrival by default, inclusive", () =>
    Effect.gen(function*() {
      const run = (latency: number) =>
        Testing.runScript(Testing.policy({}), { calls: [{ at: 0, outcomes: [success(latency)] }], seed: 1 })
      const onIt = yield* run(3_600_000)
      expect([onIt.end, onIt.ending, onIt.calls[0]!.exit._tag]).toEqual([3_600_000, "done", "Success"])
      const past = yield* run(3_600_001)
      expect([past.end, past.ending, past.calls[0]!.exit._tag]).toEqual([0, "horizon", "Pending"])
      expect(yield* broken(past, Testing.invariants.everyCallEnds)).toBe(
        "Invariant \"everyCallEnds\" broken: call(s) 0 never ended (the run passed its horizon)"
      )
    }))

  it.effect("the horizon option counts from the last arrival", () =>
    Effect.gen(function*() {
      const timeline = yield* Testing.runScript(Testing.policy({}), {
        calls: [{ at: 0, outcomes: [success(10_000)] }, { at: 5_000, outcomes: [success(50)] }],
        seed: 1
      }, { horizon: 100 })
      expect(timeline.calls.map((c) => [c.end, c.exit._tag])).toEqual([[undefined, "Pending"], [5_050, "Success"]])
      expect([timeline.end, timeline.ending]).toEqual([5_050, "horizon"])
    }))

  it.effect("a call that ends after the run stopped (its policy cannot be interrupted) is not recorded", () =>
    Effect.gen(function*() {
      const uninterruptible: Testing.Subject = { policy: (self) => Effect.uninterruptible(self) }
      const timeline = yield* Testing.runScript(uninterruptible, {
        calls: [{ at: 0, outcomes: [success(1_000)] }],
        seed: 1
      }, { horizon: 100 })
      // the run stopped at its horizon with the call in flight; the call's success at 1,000 ms,
      // after the stop, is not part of the timeline
      expect(timeline.calls.map((c) => [c.end, c.exit._tag])).toEqual([[undefined, "Pending"]])
      expect(timeline.attempts.map((a) => [a.end, a.outcome._tag])).toEqual([[undefined, "Running"]])
      expect(timeline.ending).toBe("horizon")
    }))

  it.effect("a run started from an uninterruptible region still stops at its horizon", () =>
    Effect.gen(function*() {
      const script: Testing.Script = {
        calls: [{ at: 0, outcomes: [success(1_000)] }, { at: 0, outcomes: [{ _tag: "Hang" }] }],
        seed: 1
      }
      const run = Testing.runScript(Testing.policy({}), script, { horizon: 100 })
      const outside = yield* run
      expect([outside.end, outside.ending]).toEqual([0, "horizon"])
      expect(outside.calls.map((c) => c.exit._tag)).toEqual(["Pending", "Pending"])
      // the caller's region does not reach into the run: it is interrupted at the same point
      expect(yield* Effect.uninterruptible(run)).toEqual(outside)
    }))

  it.effect("a breaker or a bulkhead of the user's own, alone, is observed the same as the toolkit's", () =>
    Effect.gen(function*() {
      const script: Testing.Script = {
        calls: [{ at: 0, outcomes: [failure("connection", 10)] }, { at: 0, outcomes: [success(10)] }, {
          at: 1_100,
          outcomes: []
        }],
        seed: 2
      }
      const breakerOptions = { breaker: { policy: CircuitBreaker.consecutive(1), openDuration: 1_000 } }
      const wrappedBreaker = Effect.map(Testing.policy(breakerOptions), (subject): Testing.Subject => ({
        ...subject,
        breaker: { ...subject.breaker!, metrics: Effect.map(subject.breaker!.metrics, (metrics) => metrics) }
      }))
      const direct = yield* Testing.runScript(Testing.policy(breakerOptions), script)
      expect(direct.attempts.map((a) => [a.breaker, a.probes])).toEqual([["Closed", 0], ["Closed", 0], ["HalfOpen", 1]])
      expect((yield* Testing.runScript(wrappedBreaker, script)).attempts).toEqual(direct.attempts)

      const bulkheadOptions = { bulkhead: { maxConcurrent: 2, maxQueued: 1 } }
      const wrappedBulkhead = Effect.map(Testing.policy(bulkheadOptions), (subject): Testing.Subject => ({
        ...subject,
        bulkhead: { ...subject.bulkhead!, state: Effect.map(subject.bulkhead!.state, (state) => state) }
      }))
      const guarded = yield* Testing.runScript(Testing.policy(bulkheadOptions), script)
      expect(guarded.attempts.map((a) => [a.start, a.bulkheadActive])).toEqual([[0, 1], [0, 2], [1_100, 1]])
      expect((yield* Testing.runScript(wrappedBulkhead, script)).attempts).toEqual(guarded.attempts)
    }))
})

describe("Testing.runScript: the run's virtual clock", () => {
  it.effect("the clock reads the run's time, in milliseconds and nanoseconds", () =>
    Effect.gen(function*() {
      const seen: Array<readonly [number, bigint]> = []
      const reading: Testing.Subject = {
        policy: (self) =>
          Effect.zipRight(
            Effect.flatMap(
              Effect.zip(Clock.currentTimeMillis, Clock.currentTimeNanos),
              (t) => Effect.sync(() => seen.push(t))
            ),
            self
          )
      }
      yield* Testing.runScript(reading, { calls: [{ at: 0, outcomes: [] }, { at: 250, outcomes: [] }], seed: 1 })
      expect(seen).toEqual([[0, 0n], [250, 250_000_000n]])
    }))

  it.effect("a zero sleep does not wait for the clock: a call that sleeps 0 ms still runs before a later one", () =>
    Effect.gen(function*() {
      const order: Array<number> = []
      let n = 0
      const subject: Testing.Subject = {
        policy: (self) => {
          const call = n++
          return Effect.zipRight(
            call === 0 ? Effect.sleep(0) : Effect.void,
            Effect.zipRight(Effect.sync(() => order.push(call)), self)
          )
        }
      }
      yield* Testing.runScript(subject, { calls: [{ at: 0, outcomes: [] }, { at: 0, outcomes: [] }], seed: 1 })
      expect(order).toEqual([0, 1])
    }))

  it.effect("a timeout's timer cancelled by an early answer leaves nothing on the clock", () =>
    Effect.gen(function*() {
      // call 0 answers at 10 ms under a 1 s timeout; call 1 hangs without one: stuck at 10 ms, not 1 s
      let calls = 0
      const subject: Testing.Subject = { policy: (self) => calls++ === 0 ? Timeout.timeout("1 second")(self) : self }
      const timeline = yield* Testing.runScript(subject, {
        calls: [{ at: 0, outcomes: [success(10)] }, { at: 0, outcomes: [{ _tag: "Hang" }] }],
        seed: 1
      })
      expect(timeline.calls.map((c) => c.end)).toEqual([10, undefined])
      expect([timeline.end, timeline.ending]).toEqual([10, "stuck"])
    }))

  it.effect("errors made during a run carry no stack, and the stack trace limit is restored after it", () =>
    Effect.gen(function*() {
      const limit = Error.stackTraceLimit
      let stack: string | undefined
      const subject: Testing.Subject = {
        policy: (self) => Effect.zipRight(Effect.sync(() => (stack = new Error("inside").stack)), self)
      }
      yield* Testing.runScript(subject, { calls: [{ at: 0, outcomes: [] }], seed: 1 })
      expect(stack).toBe("Error: inside")
      expect(Error.stackTraceLimit).toBe(limit)
    }))

  it.effect("a stuck run is interrupted: the subject's scope closes, and its finalizers may sleep", () =>
    Effect.gen(function*() {
      let closed = false
      const closing = Effect.as(
        Effect.addFinalizer(() => Effect.sync(() => (closed = true))),
        {
          policy: (self) => self
        } satisfies Testing.Subject
      )
      const stuck = yield* Testing.runScript(closing, { calls: [{ at: 0, outcomes: [{ _tag: "Hang" }] }], seed: 1 })
      expect([stuck.end, stuck.ending, closed]).toEqual([0, "stuck", true])

      const script: Testing.Script = {
        calls: [{ at: 0, outcomes: [success(20)] }, { at: 10, outcomes: [{ _tag: "Hang" }] }],
        seed: 1
      }
      // a finalizer that sleeps twice before it is done: the clock moves on for it
      let woke = 0
      const sleepy = Effect.as(
        Effect.addFinalizer(() => Effect.repeatN(Effect.zipRight(Effect.sleep(5), Effect.sync(() => woke++)), 1)),
        { policy: (self) => self } satisfies Testing.Subject
      )
      const slept = yield* Testing.runScript(sleepy, script)
      expect([slept.end, slept.ending, woke]).toEqual([30, "stuck", 2])
      // a finalizer that waits for nothing: the run stops where it got stuck
      const hanging = Effect.as(
        Effect.addFinalizer(() => Effect.async<void>(() => {})),
        {
          policy: (self) => self
        } satisfies Testing.Subject
      )
      const hung = yield* Testing.runScript(hanging, script)
      expect([hung.end, hung.ending]).toEqual([20, "stuck"])
    }))

  it("the virtual timer's key is registered globally, so every copy of the toolkit finds it", () => {
    expect(VirtualTimer.TypeId).toBe(Symbol.for("@bulwark/core/internal/VirtualTimer"))
  })
})

describe("Testing.policyLaws: options and the shrunk counterexample", () => {
  it.effect("drops every call and outcome the failure does not need, and zeroes latencies", () =>
    Effect.gen(function*() {
      // a fixed script (nothing for FastCheck to shrink): only call 1's first three failures matter
      const script: Testing.Script = {
        calls: [
          { at: 0, outcomes: [success(30)] },
          {
            at: 10,
            outcomes: [
              failure("connection", 20),
              failure("validation", 5),
              failure("connection", 7),
              failure(),
              success(9)
            ]
          },
          { at: 40, outcomes: [{ _tag: "Hang" }] }
        ],
        seed: 3
      }
      const error = yield* Effect.flip(
        Testing.policyLaws(retryIgnoringBudget, {
          scripts: fc.constant(script),
          invariants: [Testing.invariants.retriesWithinBudget()],
          runs: 1
        })
      )
      expect(error.message.split("\n").slice(0, 4)).toEqual([
        "Invariant \"retriesWithinBudget\" broken: call 0 made 4 attempts; at most 3 (1 + maxRetries 2)",
        "script:",
        "  call 0 at 10ms: fail connection, fail validation, fail connection, then succeeds",
        "  Random seed 3"
      ])
    }))

  it.effect("keeps at least one call, and every call a failure needs", () =>
    Effect.gen(function*() {
      const laws = (script: Testing.Script, invariant: Testing.Invariant) =>
        Effect.flip(
          Testing.policyLaws(Testing.policy({}), { scripts: fc.constant(script), invariants: [invariant], runs: 1 })
        )
      // broken by every script: one call is left, with nothing scripted
      const always = yield* laws({
        calls: [{ at: 0, outcomes: [success(5)] }, { at: 7, outcomes: [failure("connection", 3)] }],
        seed: 2
      }, Testing.invariant("always", () => "always broken"))
      expect(always.message.split("\n").slice(0, 4)).toEqual([
        "Invariant \"always\" broken: always broken",
        "script:",
        "  call 0 at 0ms: succeeds",
        "  Random seed 2"
      ])
      // broken when two calls fail: both stay, each with the one failure it needs
      const twoFailed = yield* laws(
        {
          calls: [
            { at: 0, outcomes: [failure("connection", 5)] },
            { at: 10, outcomes: [failure("validation", 3), success(4)] },
            { at: 20, outcomes: [success(9)] }
          ],
          seed: 2
        },
        Testing.invariant(
          "twoFailed",
          (t) => t.calls.filter((c) => c.exit._tag === "Failure").length >= 2 ? "two calls failed" : undefined
        )
      )
      expect(twoFailed.message.split("\n").slice(0, 5)).toEqual([
        "Invariant \"twoFailed\" broken: two calls failed",
        "script:",
        "  call 0 at 0ms: fail connection, then succeeds",
        "  call 1 at 10ms: fail validation, then succeeds",
        "  Random seed 2"
      ])
    }))

  it.effect("an invariant that skips every script with fc.pre is a defect saying so", () =>
    Effect.gen(function*() {
      const skipping = Testing.invariant("skipping", () => {
        fc.pre(false)
        return undefined
      })
      const exit = yield* Effect.exit(Testing.policyLaws(Testing.policy({}), { invariants: [skipping], runs: 5 }))
      expect(exit._tag === "Failure" && String(Cause.squash(exit.cause))).toMatch(
        /^Error: Testing\.policyLaws: too many runs were skipped \(\d+ skipped, 0 checked\): an fc\.pre in an invariant rejects them$/
      )
    }))

  it.effect("runs plays that many scripts; a bad count is a defect naming it", () =>
    Effect.gen(function*() {
      let played = 0
      const counting: Testing.Subject = { policy: (self) => Effect.zipRight(Effect.sync(() => played++), self) }
      yield* Testing.policyLaws(counting, {
        scripts: fc.constant({ calls: [{ at: 0, outcomes: [] }], seed: 1 }),
        runs: 3
      })
      expect(played).toBe(3)
      const exit = yield* Effect.exit(Testing.policyLaws(counting, { runs: 0 }))
      expect(exit._tag === "Failure" && String(Cause.squash(exit.cause))).toBe(
        "RangeError: Testing.policyLaws: runs must be a whole number >= 1, got 0"
      )
    }))
})
