import { Backoff, CircuitBreaker, Testing, Timeout } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Duration, Effect, FastCheck as fc, Logger, Random, Schedule } from "effect"

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
