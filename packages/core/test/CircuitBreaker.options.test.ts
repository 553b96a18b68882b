/**
 * The options of a breaker, word for word: the defect each broken rule gives, the defaults the
 * policy constructors fill in, the keys and messages of `CircuitBreaker.config`, and the error a
 * rejection carries.
 */
import { CircuitBreaker, Failure } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Cause, ConfigProvider, Duration, Effect, Exit, Option, Schedule } from "effect"

/** The message of the defect that making a breaker with these options dies with. */
const defectOf = (options: CircuitBreaker.Options) =>
  Effect.map(Effect.exit(Effect.scoped(CircuitBreaker.make(options))), (exit) => {
    if (Exit.isSuccess(exit)) return "no defect"
    const defect = Option.getOrUndefined(Cause.dieOption(exit.cause))
    return defect instanceof Error ? defect.message : String(defect)
  })

/** Whether a breaker can be made with these options. */
const makes = (options: CircuitBreaker.Options) =>
  Effect.map(Effect.exit(Effect.scoped(CircuitBreaker.make(options))), Exit.isSuccess)

const readConfig = (entries: ReadonlyArray<[string, string]>, name?: string) =>
  Effect.either(CircuitBreaker.config(name).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(entries)))))

/** The error of reading the config from these entries, as text. */
const configError = (entries: ReadonlyArray<[string, string]>) =>
  Effect.map(readConfig(entries), (either) => either._tag === "Left" ? String(either.left) : "no error")

const readOptions = (entries: ReadonlyArray<[string, string]>, name?: string) =>
  Effect.flatMap(
    readConfig(entries, name),
    (either) => either._tag === "Right" ? Effect.succeed(either.right) : Effect.dieMessage(String(either.left))
  )

const window = (policy: Partial<Extract<CircuitBreaker.Policy, { _tag: "TimeWindow" }>>): CircuitBreaker.Policy => ({
  _tag: "TimeWindow",
  window: Duration.seconds(10),
  buckets: 10,
  rateThreshold: 0.5,
  minimumCalls: 1,
  ...policy
})

describe("CircuitBreaker options", () => {
  it.effect("each broken rule is a defect naming the breaker, the field, the rule and the value", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<[CircuitBreaker.Options, string]> = [
        [{ halfOpenProbes: 0 }, "CircuitBreaker \"default\": halfOpenProbes must be a whole number >= 1, got 0"],
        [
          { name: "n", halfOpenProbes: 1.5 },
          "CircuitBreaker \"n\": halfOpenProbes must be a whole number >= 1, got 1.5"
        ],
        [
          { name: "n", successThreshold: 0 },
          "CircuitBreaker \"n\": successThreshold must be a whole number >= 1, got 0"
        ],
        [
          { name: "n", policy: CircuitBreaker.consecutive(0) },
          "CircuitBreaker \"n\": policy.threshold must be a whole number >= 1, got 0"
        ],
        [
          { name: "n", policy: CircuitBreaker.consecutive("3" as unknown as number) },
          "CircuitBreaker \"n\": policy.threshold must be a whole number >= 1, got 3"
        ],
        [
          { name: "n", policy: CircuitBreaker.countWindow({ size: 0, rateThreshold: 0.5, minimumCalls: 1 }) },
          "CircuitBreaker \"n\": policy.size must be a whole number in [1, 1000000], got 0"
        ],
        [
          { name: "n", policy: CircuitBreaker.countWindow({ size: 1_000_001, rateThreshold: 0.5 }) },
          "CircuitBreaker \"n\": policy.size must be a whole number in [1, 1000000], got 1000001"
        ],
        [
          { name: "n", policy: CircuitBreaker.countWindow({ size: 10, rateThreshold: 1.5 }) },
          "CircuitBreaker \"n\": policy.rateThreshold must be a rate in (0, 1], got 1.5"
        ],
        [
          { name: "n", policy: CircuitBreaker.countWindow({ size: 10, rateThreshold: "0.5" as unknown as number }) },
          "CircuitBreaker \"n\": policy.rateThreshold must be a rate in (0, 1], got 0.5"
        ],
        [
          { name: "n", policy: CircuitBreaker.countWindow({ size: 4, rateThreshold: 0.5, minimumCalls: 5 }) },
          "CircuitBreaker \"n\": policy.minimumCalls must be a whole number in [1, size = 4], got 5"
        ],
        [
          { name: "n", policy: CircuitBreaker.countWindow({ size: 4, rateThreshold: 0.5, minimumCalls: 0 }) },
          "CircuitBreaker \"n\": policy.minimumCalls must be a whole number in [1, size = 4], got 0"
        ],
        [
          { name: "n", policy: window({ window: Duration.infinity }) },
          "CircuitBreaker \"n\": policy.window must be a finite duration > 0, got Infinity"
        ],
        [
          { name: "n", policy: window({ window: 1000 as unknown as Duration.Duration }) },
          "CircuitBreaker \"n\": policy.window must be a finite duration > 0, got 1000"
        ],
        [
          { name: "n", policy: window({ buckets: 0 }) },
          "CircuitBreaker \"n\": policy.buckets must be a whole number in [1, 10000], got 0"
        ],
        [
          { name: "n", policy: window({ window: Duration.millis(10), buckets: 11 }) },
          "CircuitBreaker \"n\": policy.buckets must be at most window / 1 ms = 10 (each bucket at least 1 ms wide), got 11"
        ],
        [
          { name: "n", policy: window({ rateThreshold: 0 }) },
          "CircuitBreaker \"n\": policy.rateThreshold must be a rate in (0, 1], got 0"
        ],
        [
          { name: "n", policy: window({ minimumCalls: 0 }) },
          "CircuitBreaker \"n\": policy.minimumCalls must be a whole number >= 1, got 0"
        ],
        [
          { name: "n", policy: { _tag: "Other" } as unknown as CircuitBreaker.Policy },
          "CircuitBreaker \"n\": policy must be built with consecutive, countWindow or timeWindow, got {\"_tag\":\"Other\"}"
        ],
        [
          { name: "n", openDuration: "-5 seconds" },
          "CircuitBreaker \"n\": openDuration must be a finite duration >= 0 or a Schedule, got -5 seconds"
        ],
        [
          { name: "n", openDuration: Duration.infinity },
          "CircuitBreaker \"n\": openDuration must be a finite duration >= 0 or a Schedule, got Infinity"
        ],
        [
          { name: "n", openDuration: -5n },
          "CircuitBreaker \"n\": openDuration must be a finite duration >= 0 or a Schedule, got -5n"
        ],
        [
          { name: "n", openDuration: [-5, 0] },
          "CircuitBreaker \"n\": openDuration must be a finite duration >= 0 or a Schedule, got [-5, 0]"
        ],
        [
          { name: "n", slowCall: { duration: "1 second" } },
          "CircuitBreaker \"n\": slowCall must be used with a window policy (countWindow or timeWindow), got the consecutive policy"
        ],
        [
          { name: "n", policy: window({}), slowCall: { duration: 0 } },
          "CircuitBreaker \"n\": slowCall.duration must be a finite duration > 0, got 0"
        ],
        [
          { name: "n", policy: window({}), slowCall: { duration: Duration.infinity } },
          "CircuitBreaker \"n\": slowCall.duration must be a finite duration > 0, got Infinity"
        ],
        [
          { name: "n", policy: window({}), slowCall: { duration: "1 second", rateThreshold: 0 } },
          "CircuitBreaker \"n\": slowCall.rateThreshold must be a rate in (0, 1], got 0"
        ]
      ]
      const messages: Array<string> = []
      for (const [options] of cases) messages.push(yield* defectOf(options))
      expect(messages).toEqual(cases.map(([, message]) => message))
      // validateOptions throws the same message
      expect(() => CircuitBreaker.validateOptions({ name: "n", halfOpenProbes: 0 })).toThrow(
        new TypeError("CircuitBreaker \"n\": halfOpenProbes must be a whole number >= 1, got 0")
      )
      expect(() => CircuitBreaker.validateOptions()).not.toThrow()
    }))

  it.effect("the bounds of each rule are allowed", () =>
    Effect.gen(function*() {
      const allowed: ReadonlyArray<CircuitBreaker.Options> = [
        { policy: CircuitBreaker.countWindow({ size: 1_000_000, rateThreshold: 1, minimumCalls: 1_000_000 }) },
        { policy: CircuitBreaker.countWindow({ size: 1, rateThreshold: 0.01, minimumCalls: 1 }) },
        { policy: window({ window: Duration.millis(10), buckets: 10 }) },
        { policy: window({ buckets: 1, rateThreshold: 1 }) },
        { openDuration: 0 },
        { openDuration: Schedule.spaced("1 second") },
        { policy: window({}), slowCall: { duration: 1, rateThreshold: 1 } },
        { policy: window({}), slowCall: { duration: "1 second" } },
        { halfOpenProbes: 1, successThreshold: 1 }
      ]
      const results: Array<boolean> = []
      for (const options of allowed) results.push(yield* makes(options))
      expect(results).toEqual(allowed.map(() => true))
    }))

  it("the policy constructors fill in their defaults", () => {
    expect(CircuitBreaker.consecutive()).toEqual({ _tag: "Consecutive", threshold: 5 })
    expect(CircuitBreaker.countWindow({ size: 20, rateThreshold: 0.5 })).toEqual({
      _tag: "CountWindow",
      size: 20,
      rateThreshold: 0.5,
      minimumCalls: 20
    })
    expect(CircuitBreaker.countWindow({ size: 20, rateThreshold: 0.5, minimumCalls: 5 })).toMatchObject({
      minimumCalls: 5
    })
    expect(CircuitBreaker.timeWindow({ window: "30 seconds", rateThreshold: 0.25 })).toEqual({
      _tag: "TimeWindow",
      window: Duration.millis(30_000),
      buckets: 10,
      rateThreshold: 0.25,
      minimumCalls: 10
    })
    expect(CircuitBreaker.timeWindow({ window: "1 second", rateThreshold: 0.25, buckets: 4, minimumCalls: 2 }))
      .toMatchObject({ buckets: 4, minimumCalls: 2 })
    expect(() => CircuitBreaker.timeWindow({ window: "0 millis", rateThreshold: 0.5 })).toThrow(
      new TypeError("CircuitBreaker.timeWindow: policy.window must be a finite duration > 0, got 0 millis")
    )
    expect(() => CircuitBreaker.timeWindow({ window: Duration.infinity, rateThreshold: 0.5 })).toThrow(
      new TypeError("CircuitBreaker.timeWindow: policy.window must be a finite duration > 0, got Infinity")
    )
    expect(CircuitBreaker.CircuitBreaker.key).toBe("@bulwark/core/CircuitBreaker")
  })

  it.effect("config: each key, read and checked, with its message", () =>
    Effect.gen(function*() {
      const read = yield* readOptions([
        ["POLICY", "consecutive"],
        ["FAILURE_THRESHOLD", "1"],
        ["OPEN_DURATION", "0 seconds"],
        ["HALF_OPEN_PROBES", "1"],
        ["SUCCESS_THRESHOLD", "2"]
      ], "cfg")
      expect(read).toStrictEqual({
        name: "cfg",
        policy: { _tag: "Consecutive", threshold: 1 },
        openDuration: Duration.zero,
        halfOpenProbes: 1,
        successThreshold: 2
      })
      // no name given: none in the options
      const defaults = yield* readOptions([])
      expect(defaults).toStrictEqual({
        policy: { _tag: "Consecutive", threshold: 5 },
        openDuration: Duration.seconds(60),
        halfOpenProbes: 3,
        successThreshold: 3
      })
      const count = yield* readOptions([
        ["POLICY", "count"],
        ["WINDOW_SIZE", "1000000"],
        ["MINIMUM_CALLS", "2"],
        ["FAILURE_RATE_THRESHOLD", "1"],
        ["SLOW_CALL_DURATION", "2 seconds"],
        ["SLOW_CALL_RATE_THRESHOLD", "0.5"],
        // a time window's bucket rule does not apply to a count window
        ["WINDOW_DURATION", "10 millis"],
        ["WINDOW_BUCKETS", "60"]
      ])
      expect(count).toMatchObject({
        policy: { _tag: "CountWindow", size: 1_000_000, rateThreshold: 1, minimumCalls: 2 },
        slowCall: { duration: Duration.seconds(2), rateThreshold: 0.5 }
      })
      // the smallest window, of one call
      const smallest = yield* readOptions([["POLICY", "count"], ["WINDOW_SIZE", "1"], ["MINIMUM_CALLS", "1"]])
      expect(smallest.policy).toMatchObject({ _tag: "CountWindow", size: 1, minimumCalls: 1 })
      const slowDefault = yield* readOptions([["POLICY", "count"], ["SLOW_CALL_DURATION", "2 seconds"]])
      expect(slowDefault.slowCall).toStrictEqual({ duration: Duration.seconds(2), rateThreshold: 1 })
      const time = yield* readOptions([
        ["POLICY", "time"],
        ["WINDOW_DURATION", "10 millis"],
        ["WINDOW_BUCKETS", "10"],
        // a count window's minimum rule does not apply to a time window
        ["MINIMUM_CALLS", "200"]
      ])
      expect(time.policy).toStrictEqual({
        _tag: "TimeWindow",
        window: Duration.millis(10),
        buckets: 10,
        rateThreshold: 0.5,
        minimumCalls: 200
      })
      const edges = yield* readOptions([["POLICY", "time"], ["WINDOW_BUCKETS", "10000"]])
      expect(edges.policy).toMatchObject({ buckets: 10_000 })
      expect((yield* readOptions([["POLICY", "time"], ["WINDOW_BUCKETS", "1"]])).policy).toMatchObject({ buckets: 1 })

      // a number too large for a double decodes to an infinite duration
      const tooLarge = `${"9".repeat(400)} millis`
      const errors: ReadonlyArray<[ReadonlyArray<[string, string]>, string]> = [
        [[["FAILURE_THRESHOLD", "0"]], "(Invalid data at FAILURE_THRESHOLD: \"must be a whole number >= 1\")"],
        [[["FAILURE_RATE_THRESHOLD", "0"]], "(Invalid data at FAILURE_RATE_THRESHOLD: \"must be a rate in (0, 1]\")"],
        [[["WINDOW_SIZE", "0"]], "(Invalid data at WINDOW_SIZE: \"must be a whole number in [1, 1000000]\")"],
        [[["WINDOW_SIZE", "1000001"]], "(Invalid data at WINDOW_SIZE: \"must be a whole number in [1, 1000000]\")"],
        [[["WINDOW_BUCKETS", "0"]], "(Invalid data at WINDOW_BUCKETS: \"must be a whole number in [1, 10000]\")"],
        [[["WINDOW_BUCKETS", "10001"]], "(Invalid data at WINDOW_BUCKETS: \"must be a whole number in [1, 10000]\")"],
        [[["MINIMUM_CALLS", "0"]], "(Invalid data at MINIMUM_CALLS: \"must be a whole number >= 1\")"],
        [[["HALF_OPEN_PROBES", "0"]], "(Invalid data at HALF_OPEN_PROBES: \"must be a whole number >= 1\")"],
        [[["SUCCESS_THRESHOLD", "0"]], "(Invalid data at SUCCESS_THRESHOLD: \"must be a whole number >= 1\")"],
        [
          [["SLOW_CALL_RATE_THRESHOLD", "1.5"]],
          "(Invalid data at SLOW_CALL_RATE_THRESHOLD: \"must be a rate in (0, 1]\")"
        ],
        [
          [["OPEN_DURATION", "-1 seconds"]],
          "(Invalid data at OPEN_DURATION: \"must be a finite duration >= 0, got \"-1 seconds\"\")"
        ],
        [
          [["OPEN_DURATION", tooLarge]],
          `(Invalid data at OPEN_DURATION: "must be a finite duration >= 0, got \"${tooLarge}\"")`
        ],
        [
          [["WINDOW_DURATION", "0 seconds"]],
          "(Invalid data at WINDOW_DURATION: \"must be a finite duration > 0, got \"0 seconds\"\")"
        ],
        [
          [["POLICY", "count"], ["SLOW_CALL_DURATION", "0 seconds"]],
          "(Invalid data at SLOW_CALL_DURATION: \"must be a finite duration > 0, got \"0 seconds\"\")"
        ],
        [
          [["POLICY", "count"], ["WINDOW_SIZE", "4"], ["MINIMUM_CALLS", "5"]],
          "(Invalid data at MINIMUM_CALLS: \"must be at most WINDOW_SIZE (4), got 5\")"
        ],
        [
          [["POLICY", "time"], ["WINDOW_DURATION", "10 millis"], ["WINDOW_BUCKETS", "11"]],
          "(Invalid data at WINDOW_BUCKETS: \"must leave buckets at least 1 ms wide: at most 10 for WINDOW_DURATION 10ms, got 11\")"
        ],
        [
          [["SLOW_CALL_DURATION", "1 second"]],
          "(Invalid data at SLOW_CALL_DURATION: \"needs POLICY count or time (slow calls are measured by rate)\")"
        ]
      ]
      const messages: Array<string> = []
      for (const [entries] of errors) messages.push(yield* configError(entries))
      expect(messages).toEqual(errors.map(([, message]) => message))
    }))

  it.effect("the rejection error: its tag, its states, its message and its classification", () =>
    Effect.gen(function*() {
      const halfOpen = new CircuitBreaker.CircuitOpenError({
        breaker: "b",
        state: "HalfOpen",
        retryAfter: Duration.zero
      })
      const open = new CircuitBreaker.CircuitOpenError({ breaker: "b", state: "Open", retryAfter: Duration.seconds(2) })
      const isolated = new CircuitBreaker.CircuitOpenError({
        breaker: "b",
        state: "Isolated",
        retryAfter: Duration.infinity
      })
      expect([halfOpen._tag, halfOpen.breaker, halfOpen.state]).toEqual(["CircuitOpenError", "b", "HalfOpen"])
      expect([halfOpen.message, open.message, isolated.message]).toEqual([
        "Circuit \"b\" is half-open with every probe slot taken; next attempt in 0",
        "Circuit \"b\" is open; next attempt in 2s",
        "Circuit \"b\" is isolated until released"
      ])
      const rule = {
        category: "resource",
        code: "CIRCUIT_OPEN",
        severity: "minor",
        strategy: "failover",
        tripsBreaker: false
      }
      expect(open[Failure.RuleKey]).toEqual({ ...rule, retryAfter: Duration.seconds(2) })
      expect(isolated[Failure.RuleKey]).toEqual({ ...rule, retryable: false })
      expect(Failure.defaultClassifier.classify(isolated)).toMatchObject({ ...rule, retryable: false })
      expect(Failure.defaultClassifier.classify(open)).toMatchObject({ ...rule, retryable: true })
    }))
})
