import { Alerts, Backoff, Deadline, Failure, Retry, RetryBudget } from "@bulwark/core"
import { describe, expect, expectTypeOf, it } from "@effect/vitest"
import {
  Cause,
  Data,
  Duration,
  Effect,
  Exit,
  Fiber,
  HashMap,
  Layer,
  Logger,
  LogLevel,
  Metric,
  MetricLabel,
  Ref,
  TestClock
} from "effect"
import { oddValues } from "./oddValues.js"

class ConnectionError extends Data.TaggedError("ConnectionError")<{ readonly reason: string }> {}
class Timeout extends Data.TaggedError("Timeout")<{}> {}
class Invalid extends Data.TaggedError("Invalid")<{}> {}
class Throttled extends Data.TaggedError("Throttled")<{ readonly retryAfterMs: number }> {}
type ApiError = ConnectionError | Timeout | Invalid | Throttled

const table = Failure.table<ApiError>({
  ConnectionError: "connection",
  Timeout: "timeout",
  Invalid: "validation",
  Throttled: (e) => ({ category: "resource", strategy: "backoff_retry", maxRetries: 3, retryAfter: e.retryAfterMs })
})
const Classified = Failure.layerClassifier({ tables: [table] })

interface Entry {
  readonly level: string
  readonly message: string
  readonly annotations: Record<string, unknown>
}

/** Captures log entries instead of printing them. */
const captureLogs = Effect.gen(function*() {
  const entries: Array<Entry> = []
  const logger = Logger.make(({ annotations, logLevel, message }) => {
    entries.push({
      level: logLevel.label,
      message: (Array.isArray(message) ? message : [message]).join(" "),
      annotations: Object.fromEntries(HashMap.toEntries(annotations))
    })
  })
  return { entries, layer: Logger.replace(Logger.defaultLogger, logger) }
})

/** An effect that records the time of each attempt and fails with the next scripted error. */
const scripted = <E>(script: ReadonlyArray<E | "ok">) =>
  Effect.gen(function*() {
    const attempts = yield* Ref.make<Array<number>>([])
    const effect = Effect.gen(function*() {
      const now = yield* TestClock.currentTimeMillis
      const n = (yield* Ref.getAndUpdate(attempts, (xs) => [...xs, now])).length
      const step = script[Math.min(n, script.length - 1)]!
      if (step === "ok") return n + 1
      return yield* Effect.fail(step as E)
    })
    return { effect, attempts: Ref.get(attempts) }
  })

const counterValue = (metric: keyof typeof Retry.metrics, labels: Record<string, string>) =>
  Metric.value(
    Metric.taggedWithLabels(
      Retry.metrics[metric],
      Object.entries(labels).map(([k, v]) => MetricLabel.make(k, v))
    )
  ).pipe(Effect.map((state) => state.count))

describe("Retry", () => {
  it.effect("a connection error twice, then success → exactly 3 attempts after 1s and 2s", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* scripted<ApiError>([
        new ConnectionError({ reason: "down" }),
        new ConnectionError({ reason: "down" }),
        "ok"
      ])
      const fiber = yield* Effect.fork(effect.pipe(Retry.retry(Retry.policy())))
      yield* TestClock.adjust("1 minute")
      expect(yield* Fiber.join(fiber)).toBe(3)
      expect(yield* attempts).toEqual([0, 1000, 3000])
    }).pipe(Effect.provide(Classified)))

  it.effect("a non-retryable error → 1 attempt, failing with that error", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* scripted<ApiError>([new Invalid()])
      const exit = yield* Effect.exit(effect.pipe(Retry.retry(Retry.policy())))
      expect(exit).toEqual(Exit.fail(new Invalid()))
      expect((yield* attempts).length).toBe(1)
    }).pipe(Effect.provide(Classified)))

  it.effect("a defect → 1 attempt; with retryDefects it is retried and dies again when retries end", () =>
    Effect.gen(function*() {
      let calls = 0
      const dying = Effect.suspend(() => {
        calls++
        return Effect.die(new Error("bug"))
      })
      const exit = yield* Effect.exit(dying.pipe(Retry.retry({})))
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      expect(calls).toBe(1)

      calls = 0
      const fiber = yield* Effect.fork(
        dying.pipe(Retry.retry({ retryDefects: true, schedule: Backoff.linear({ base: 10 }) }))
      )
      yield* TestClock.adjust("1 minute")
      const again = yield* Fiber.await(fiber)
      expect(Exit.isFailure(again) && Cause.isDie(again.cause)).toBe(true)
      expect(calls).toBe(4) // system's budget is 0, so a retried defect gets 3 retries
    }))

  it.effect("a defect beside a typed failure is not retried either", () =>
    Effect.gen(function*() {
      let calls = 0
      const both = Effect.suspend(() => {
        calls++
        return Effect.failCause(
          Cause.sequential(Cause.fail(new ConnectionError({ reason: "down" })), Cause.die(new Error("finalizer bug")))
        )
      })
      const exit = yield* Effect.exit(both.pipe(Retry.retry(Retry.policy())))
      expect(calls).toBe(1)
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
    }).pipe(Effect.provide(Classified)))

  it.effect("interruption mid-backoff → no further attempt", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* scripted<ApiError>([new ConnectionError({ reason: "down" })])
      const fiber = yield* Effect.fork(effect.pipe(Retry.retry(Retry.policy())))
      yield* TestClock.adjust("500 millis") // first backoff is 1s
      yield* Fiber.interrupt(fiber)
      yield* TestClock.adjust("1 hour")
      expect((yield* attempts).length).toBe(1)
    }).pipe(Effect.provide(Classified)))

  it.effect("an interruption inside the effect is not retried", () =>
    Effect.gen(function*() {
      let calls = 0
      const exit = yield* Effect.exit(
        Effect.suspend(() => {
          calls++
          return Effect.interrupt
        }).pipe(Retry.retry({ retryDefects: true }))
      )
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect(calls).toBe(1)
    }))

  it.effect("a retry-after hint longer than the backoff is respected", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* scripted<ApiError>([new Throttled({ retryAfterMs: 7_000 }), "ok"])
      const fiber = yield* Effect.fork(
        effect.pipe(Retry.retry(Retry.policy({ schedule: Backoff.fromDelays([100]), maxDelay: "1 second" })))
      )
      yield* TestClock.adjust("6999 millis")
      expect((yield* attempts).length).toBe(1)
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(fiber)).toBe(2)
      expect(yield* attempts).toEqual([0, 7000])
    }).pipe(Effect.provide(Classified)))

  it.effect("each category has its matrix budget; escalation abandons critical failures past attempt 2", () =>
    Effect.gen(function*() {
      const run = (error: ApiError, escalate: boolean) =>
        Effect.gen(function*() {
          const { attempts, effect } = yield* scripted<ApiError>([error])
          const fiber = yield* Effect.fork(effect.pipe(Retry.retry(Retry.policy({ escalate }))))
          yield* TestClock.adjust("1 hour")
          yield* Fiber.await(fiber)
          return (yield* attempts).length
        })
      // connection: 5 retries in the matrix; escalation makes attempt 4 critical → abandoned
      expect(yield* run(new ConnectionError({ reason: "x" }), true)).toBe(4)
      expect(yield* run(new ConnectionError({ reason: "x" }), false)).toBe(6)
      // timeout: 2 retries
      expect(yield* run(new Timeout(), true)).toBe(3)
      expect(yield* run(new Timeout(), false)).toBe(3)
    }).pipe(Effect.provide(Classified)))

  it.effect("budgets are per category: a mix of errors gets each category's own retries", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* scripted<ApiError>([
        new Timeout(),
        new Timeout(),
        new ConnectionError({ reason: "x" }),
        new Timeout(),
        "ok"
      ])
      const fiber = yield* Effect.fork(effect.pipe(Retry.retry({ escalate: false })))
      yield* TestClock.adjust("1 hour")
      const exit = yield* Fiber.await(fiber)
      // the third timeout is over the timeout budget of 2 retries
      expect(exit).toEqual(Exit.fail(new Timeout()))
      expect((yield* attempts).length).toBe(4)
    }).pipe(Effect.provide(Classified)))

  it.effect("maxRetries and maxElapsed cap the whole operation", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* scripted<ApiError>([new ConnectionError({ reason: "x" })])
      const fiber = yield* Effect.fork(effect.pipe(Retry.retry({ maxRetries: 1 })))
      yield* TestClock.adjust("1 hour")
      yield* Fiber.await(fiber)
      expect((yield* attempts).length).toBe(2)

      const second = yield* scripted<ApiError>([new ConnectionError({ reason: "x" })])
      const fiber2 = yield* Effect.fork(second.effect.pipe(Retry.retry({ maxElapsed: "3 seconds", escalate: false })))
      yield* TestClock.adjust("1 hour")
      yield* Fiber.await(fiber2)
      const times = yield* second.attempts
      expect(times.map((t) => t - times[0]!)).toEqual([0, 1000, 3000]) // the next (4s later) would start at 7s
    }).pipe(Effect.provide(Classified)))

  it.effect("a table given to the policy wins over the classifier in the context", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* scripted<ApiError>([new Invalid(), "ok"])
      const fiber = yield* Effect.fork(
        effect.pipe(
          Retry.retry(
            Retry.policy<ApiError>({
              classify: (e) => e._tag === "Invalid" ? { category: "session" } : "system"
            })
          )
        )
      )
      yield* TestClock.adjust("1 minute")
      expect(yield* Fiber.join(fiber)).toBe(2)
      expect(yield* attempts).toEqual([0, 0]) // session: immediate retry, first delay 0
    }))

  it.effect("the retry budget stops a retry storm with RetryBudgetExhaustedError", () =>
    Effect.gen(function*() {
      const budget = yield* RetryBudget.make({
        name: "storm",
        ratio: 0.1,
        minRetriesPerSecond: 0,
        window: "10 seconds"
      })
      let calls = 0
      const down = Effect.suspend(() => {
        calls++
        return Effect.fail(new ConnectionError({ reason: "down" }))
      })
      const policy = Retry.policy({ budget, schedule: Backoff.fromDelays([0]) })
      const exits = yield* Effect.forEach(
        Array.from({ length: 100 }, () => 0),
        () => Effect.exit(down.pipe(Retry.retry(policy))),
        { concurrency: "unbounded" }
      )
      const budgetErrors = exits.filter((e) =>
        Exit.isFailure(e) &&
        Cause.failureOption(e.cause).pipe((o) => o._tag === "Some" && o.value._tag === "RetryBudgetExhaustedError")
      )
      // 100 calls earn 10 retries; without the budget there would be 300 (3 retries each after escalation)
      expect(calls - 100).toBe(10)
      // and every call ends on the budget: 90 at their first retry, the 10 that got one at their second
      expect(budgetErrors.length).toBe(100)
      const snapshot = yield* budget.snapshot
      expect(snapshot).toMatchObject({ calls: 100, retries: 10, available: 0 })
      const [first] = budgetErrors
      if (first === undefined || !Exit.isFailure(first)) return expect.unreachable("no call met the budget")
      const err = Cause.failureOption(first.cause)
      expect(err._tag === "Some" && err.value.message).toMatch(/Retry budget "storm" is spent/)
      // the window slides: after it has passed, calls earn retries again
      yield* TestClock.adjust("11 seconds")
      expect((yield* budget.snapshot).retries).toBe(0)
    }).pipe(Effect.provide(Classified)))

  it.effect("logs: each retry and the give-up at the severity's level, info on success after retries", () =>
    Effect.gen(function*() {
      const { entries, layer } = yield* captureLogs
      const { effect } = yield* scripted<ApiError>([new ConnectionError({ reason: "down" }), "ok"])
      const fiber = yield* Effect.fork(effect.pipe(Retry.retry({ name: "orders" }), Effect.provide(layer)))
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(fiber)
      // connection is major: Error
      expect(entries.map((e) => e.level)).toEqual(["ERROR", "INFO"])
      expect(entries[0]!.message).toMatch(/Attempt 1 failed with CONNECTION_ERROR \(connection\); retrying in 1s/)
      expect(entries[0]!.annotations).toMatchObject({
        "bulwark.retry.attempt": 1,
        "bulwark.retry.delay_ms": 1000,
        "bulwark.retry.operation": "orders",
        "bulwark.failure.category": "connection"
      })
      expect(entries[1]!.message).toMatch(/Succeeded on attempt 2 after 1 retry/)

      entries.length = 0
      const failing = yield* scripted<ApiError>([new Timeout()])
      const fiber2 = yield* Effect.fork(failing.effect.pipe(Retry.retry({ name: "orders" }), Effect.provide(layer)))
      yield* TestClock.adjust("1 minute")
      yield* Fiber.await(fiber2)
      expect(entries.map((e) => e.level)).toEqual(["ERROR", "ERROR", "ERROR"])
      expect(entries[2]!.message).toMatch(/All retries exhausted after attempt 3: TIMEOUT/)

      // validation is severity warning: Info, never Error
      entries.length = 0
      yield* Effect.exit(Effect.fail(new Invalid()).pipe(Retry.retry({ name: "orders" }), Effect.provide(layer)))
      expect(entries.map((e) => e.level)).toEqual(["INFO"])
      expect(entries[0]!.message).toMatch(/Not retrying: INVALID \(validation\)/)
    }).pipe(Effect.provide(Classified), Effect.withLogSpan("retry-test")))

  it.effect("an escalated failure is logged as abandoned, not as unretryable", () =>
    Effect.gen(function*() {
      const { entries, layer } = yield* captureLogs
      const { effect } = yield* scripted<ApiError>([new ConnectionError({ reason: "down" })])
      const fiber = yield* Effect.fork(effect.pipe(Retry.retry({}), Effect.provide(layer)))
      yield* TestClock.adjust("1 hour")
      yield* Fiber.await(fiber)
      const last = entries[entries.length - 1]!
      expect(last.level).toBe("FATAL") // escalated to critical
      expect(last.message).toMatch(/Abandoning after attempt 4: CONNECTION_ERROR \(connection\) escalated to critical/)
      expect(last.annotations).toMatchObject({ "bulwark.retry.verdict": "abandoned", "bulwark.retry.attempt": 4 })
    }).pipe(Effect.provide(Classified)))

  it.effect("metrics: retries by category, exhaustions by reason, recoveries", () =>
    Effect.gen(function*() {
      const operation = "metrics-test"
      const { effect } = yield* scripted<ApiError>([
        new ConnectionError({ reason: "x" }),
        new ConnectionError({ reason: "x" }),
        "ok"
      ])
      const fiber = yield* Effect.fork(effect.pipe(Retry.retry({ name: operation })))
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(fiber)
      expect(yield* counterValue("retries", { category: "connection", operation })).toBe(2)
      expect(yield* counterValue("recovered", { operation })).toBe(1)

      yield* Effect.exit(Effect.fail(new Invalid()).pipe(Retry.retry({ name: operation })))
      expect(
        yield* counterValue("exhausted", {
          category: "validation",
          reason: "not_retryable",
          operation
        })
      ).toBe(1)
    }).pipe(Effect.provide(Classified)))

  it.effect("metrics keep the fiber's own metric tags beside the policy's", () =>
    Effect.gen(function*() {
      const operation = "tagged-metrics-test"
      const policy = Retry.policy({ name: operation, maxRetries: 1 })
      const call = (tenant: string) =>
        Effect.exit(Effect.fail(new Timeout()).pipe(Retry.retry(policy), Effect.tagMetrics("tenant", tenant)))
      const fiber = yield* Effect.fork(Effect.all([call("a"), call("b"), call("b")]))
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(fiber)
      expect(yield* counterValue("retries", { category: "timeout", operation, tenant: "a" })).toBe(1)
      expect(yield* counterValue("retries", { category: "timeout", operation, tenant: "b" })).toBe(2)
      expect(
        yield* counterValue("exhausted", { category: "timeout", reason: "exhausted", operation, tenant: "b" })
      ).toBe(2)
    }).pipe(Effect.provide(Classified)))

  it.effect("a log entry the minimum level drops is never built: the failure is not even described", () =>
    Effect.gen(function*() {
      let described = 0
      class Loud extends Data.TaggedError("ConnectionError")<{ readonly reason: string }> {
        override get message(): string {
          described++
          return "connection refused"
        }
      }
      const { entries, layer } = yield* captureLogs
      const { effect } = yield* scripted<Loud>([new Loud({ reason: "down" }), new Loud({ reason: "down" })])
      const run = effect.pipe(Retry.retry({ name: "quiet", maxRetries: 1 }), Effect.provide(layer))
      const dropped = yield* Effect.fork(Logger.withMinimumLogLevel(run, LogLevel.None))
      yield* TestClock.adjust("1 minute")
      yield* Fiber.await(dropped)
      expect(entries).toEqual([])
      expect(described).toBe(0)
      // kept: the same failures are described in the retry's and the give-up's entries
      const kept = yield* Effect.fork(run)
      yield* TestClock.adjust("1 minute")
      yield* Fiber.await(kept)
      expect(entries.map((e) => e.message)).toEqual([
        expect.stringMatching(/^Attempt 1 failed .*: connection refused$/),
        expect.stringMatching(/^All retries exhausted after attempt 2: .*: connection refused$/)
      ])
      expect(described).toBeGreaterThan(0)
    }).pipe(Effect.provide(Classified)))

  it.effect("the policy is a Schedule: Effect.retry uses the same decisions", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* scripted<ApiError>([new Timeout()])
      const fiber = yield* Effect.fork(Effect.retry(effect, Retry.policy()))
      yield* TestClock.adjust("1 hour")
      expect(yield* Fiber.await(fiber)).toEqual(Exit.fail(new Timeout()))
      expect(yield* attempts).toEqual([0, 1000, 3000])
    }).pipe(Effect.provide(Classified)))

  it.effect("the success path runs the effect once and returns its value", () =>
    Effect.gen(function*() {
      let calls = 0
      const value = yield* Effect.sync(() => ++calls).pipe(Retry.retry({}))
      expect(value).toBe(1)
      expect(calls).toBe(1)
    }))

  it.effect("one retried effect run many times, in sequence and at once, starts each run from the first attempt", () =>
    Effect.gen(function*() {
      // fails the first two calls of every run: the retry must give each run its full budget
      let calls = 0
      const flaky = Effect.suspend(() => ++calls % 3 === 0 ? Effect.succeed(calls) : Effect.fail(new Timeout()))
      const retried = flaky.pipe(Retry.retry(Retry.policy({ maxRetries: 2 })))
      for (let run = 1; run <= 3; run++) {
        const fiber = yield* Effect.fork(retried)
        yield* TestClock.adjust("1 minute")
        expect(yield* Fiber.join(fiber)).toBe(run * 3)
      }
      // runs at once interleave their attempts; each still gets two retries of its own
      let attempts = 0
      const failing = Effect.suspend(() => {
        attempts++
        return Effect.fail(new Timeout())
      }).pipe(Retry.retry(Retry.policy({ maxRetries: 2 })))
      const fibers = yield* Effect.forEach([1, 2, 3], () => Effect.fork(Effect.exit(failing)))
      yield* TestClock.adjust("1 minute")
      const exits = yield* Effect.forEach(fibers, Fiber.join)
      expect(attempts).toBe(9)
      expect(exits).toEqual([1, 2, 3].map(() => Exit.fail(new Timeout())))
    }).pipe(Effect.provide(Classified)))

  it("bad options name the field", () => {
    expect(() => Retry.policy({ maxRetries: -1 })).toThrow(
      /Retry.policy: maxRetries must be a whole number >= 0 or Infinity, got -1/
    )
    expect(() => Retry.policy({ maxDelay: "-5 seconds" })).toThrow(
      /Retry.policy: maxDelay must be a duration >= 0, got -5 seconds/
    )
    expect(() => Retry.policy({ maxElapsed: "-5 seconds" })).toThrow(
      /Retry.policy: maxElapsed must be a duration >= 0, got -5 seconds/
    )
    expect(() => Retry.policy({ maxRetries: Number.NaN })).toThrow(/maxRetries/)
    expect(() => Retry.policy({ maxDelay: "soon" as Duration.DurationInput })).toThrow(/maxDelay must be a duration/)
    expect(() => Retry.policy({ maxElapsed: -1 })).toThrow(/Retry.policy: maxElapsed must be a duration >= 0, got -1/)
  })

  it.effect("types: the budget's error appears in E only when a budget is given", () =>
    Effect.gen(function*() {
      const budget = yield* RetryBudget.make()
      const plain: Effect.Effect<number, Timeout | Deadline.DeadlineExceededError> = Effect.fail(new Timeout()).pipe(
        Effect.as(1),
        Retry.retry(Retry.policy())
      )
      const budgeted: Effect.Effect<
        number,
        Timeout | RetryBudget.RetryBudgetExhaustedError | Deadline.DeadlineExceededError
      > = Effect.fail(
        new Timeout()
      ).pipe(Effect.as(1), Retry.retry(Retry.policy({ budget })))
      // @ts-expect-error the budget's error must be handled
      const unhandled: Effect.Effect<number, Timeout> = budgeted
      expect([plain, budgeted, unhandled].every(Effect.isEffect)).toBe(true)
    }))

  describe("the classification rule", () => {
    class Unavailable extends Data.TaggedError("Unavailable")<{}> {}

    /** Attempts until `effect` ends, on the TestClock. */
    const attemptsOf = <E>(error: E, retry: (self: Effect.Effect<number, E>) => Effect.Effect<number, unknown>) =>
      Effect.gen(function*() {
        const { attempts, effect } = yield* scripted<E>([error])
        const fiber = yield* Effect.fork(retry(effect))
        yield* TestClock.adjust("1 day")
        const exit = yield* Fiber.await(fiber)
        const times = yield* attempts
        return { exit, times: times.map((t) => t - times[0]!) }
      })

    it.effect("Layer.mergeAll(..., Failure.layerClassifier) provided around the call classifies by the table", () =>
      Effect.gen(function*() {
        const layer = Layer.mergeAll(RetryBudget.layer({ ratio: 1 }), Failure.layerClassifier({ tables: [table] }))
        const program = <E>(error: E) =>
          Effect.gen(function*() {
            const budget = yield* RetryBudget.RetryBudget
            return yield* attemptsOf(error, (self) => self.pipe(Retry.retry({ budget })))
          }).pipe(Effect.provide(layer))
        expect((yield* program(new Invalid())).times).toEqual([0]) // validation: never retried
        expect((yield* program(new Timeout())).times).toEqual([0, 1000, 3000]) // timeout: 2 retries
      }))

    it.effect("a classifier provided only to another Layer is loud: one warning per tag naming it", () =>
      Effect.gen(function*() {
        const { entries, layer: logs } = yield* captureLogs
        // the mistake: the classifier reaches the budget's Layer, not the program that calls
        const layer = RetryBudget.layer({ ratio: 1 }).pipe(Layer.provide(Failure.layerClassifier({ tables: [table] })))
        const program = Effect.gen(function*() {
          const budget = yield* RetryBudget.RetryBudget
          const first = yield* attemptsOf(new Timeout(), (self) => self.pipe(Retry.retry({ budget })))
          const second = yield* attemptsOf(new Timeout(), (self) => self.pipe(Retry.retry({ budget })))
          return [first.times, second.times]
        }).pipe(Effect.provide(layer), Effect.provide(logs))
        const [first, second] = yield* program
        // unclassified: system / major, backoff retry at most 3 times (1s, 2s, 4s)
        expect(first).toEqual([0, 1000, 3000, 7000])
        expect(second).toEqual([0, 1000, 3000, 7000])
        const warnings = entries.filter((e) => e.message.includes("is not classified"))
        expect(warnings).toHaveLength(1)
        expect(warnings[0]!.level).toBe("WARN")
        expect(warnings[0]!.message).toMatch(/The failure "Timeout" is not classified/)
        expect(warnings[0]!.message).toMatch(/provide Failure.layerClassifier\(\{ tables \}\) around the program/)
        const gaveUp = entries.filter((e) => e.message.startsWith("All retries exhausted"))
        expect(gaveUp.map((e) => e.annotations["bulwark.failure.code"])).toEqual([
          "TIMEOUT",
          "TIMEOUT"
        ])
      }))

    it.effect("the policy's table is tried first; what it leaves out goes to the context's classifier", () =>
      Effect.gen(function*() {
        // the stage names Timeout only (as session: immediate retries 0, 100 ms); Invalid is the context's
        const stage = Failure.table<Timeout>({ Timeout: "session" })
        const policy = Retry.policy<ApiError>({
          classify: (e) => e._tag === "Timeout" ? stage.rule(e) : undefined
        })
        const timeout = yield* attemptsOf<ApiError>(new Timeout(), (self) => self.pipe(Retry.retry(policy)))
        expect(timeout.times).toEqual([0, 0, 100])
        const invalid = yield* attemptsOf<ApiError>(new Invalid(), (self) => self.pipe(Retry.retry(policy)))
        expect(invalid.times).toEqual([0])
        // without the context's classifier, Invalid is unclassified: retried 3 times
        const alone = yield* attemptsOf<ApiError>(new Invalid(), (self) => self.pipe(Retry.retry(policy))).pipe(
          Effect.provide(Failure.layerClassifier({}))
        )
        expect(alone.times).toHaveLength(4)
      }).pipe(Effect.provide(Classified)))

    it.effect("while: the predicate decides, the classification still gives the delays", () =>
      Effect.gen(function*() {
        // a validation error retried on request: its category allows none, so 3 retries, no delay
        const invalid = yield* attemptsOf<ApiError>(
          new Invalid(),
          (self) => self.pipe(Retry.retry({ while: (e: ApiError) => e._tag === "Invalid" }))
        )
        expect(invalid.times).toEqual([0, 0, 0, 0])
        // a retryable connection error refused by the predicate: 1 attempt
        const refused = yield* attemptsOf<ApiError>(
          new ConnectionError({ reason: "x" }),
          (self) => self.pipe(Retry.retry({ while: (_e: ApiError, c) => c.category !== "connection" }))
        )
        expect(refused.times).toEqual([0])
        // the predicate with a count: 5 retries on the connection row's delays
        const counted = yield* attemptsOf<ApiError>(
          new ConnectionError({ reason: "x" }),
          (self) => self.pipe(Retry.retry({ while: () => true, maxRetries: 5 }))
        )
        expect(counted.times).toEqual([0, 1000, 3000, 7000, 15000, 31000])
      }).pipe(Effect.provide(Classified)))

    it("types: a while predicate is checked against the effect's E", () => {
      const call: Effect.Effect<number, ConnectionError> = Effect.fail(new ConnectionError({ reason: "x" }))
      const ok = call.pipe(Retry.retry({ while: (e: ConnectionError) => e.reason === "x" }))
      // @ts-expect-error the predicate is over Invalid, the effect fails with ConnectionError
      const wrong = call.pipe(Retry.retry({ while: (e: Invalid) => e._tag === "Invalid" }))
      // @ts-expect-error a policy whose predicate reads a field E does not have
      Retry.policy<ConnectionError>({ while: (e) => e.missing === 1 })
      expectTypeOf(ok).toEqualTypeOf<Effect.Effect<number, ConnectionError | Deadline.DeadlineExceededError>>()
      expect([ok, wrong].every(Effect.isEffect)).toBe(true)
    })

    it.effect("maxRetries: Infinity retries for ever; a written maxRetries wins over escalation", () =>
      Effect.gen(function*() {
        const { entries, layer: logs } = yield* captureLogs
        const script: Array<ApiError | "ok"> = Array.from({ length: 50 }, () => new ConnectionError({ reason: "x" }))
        const { attempts, effect } = yield* scripted<ApiError>([...script, "ok"])
        const fiber = yield* Effect.fork(
          effect.pipe(Retry.retry({ maxRetries: Infinity, schedule: Backoff.fromDelays([10]) }))
        )
        yield* TestClock.adjust("1 hour")
        expect(yield* Fiber.join(fiber)).toBe(51)
        expect((yield* attempts).length).toBe(51)

        // connection, 5 retries written here: escalation (critical past attempt 2 at attempt 4) does not cut it
        const five = yield* attemptsOf<ApiError>(
          new ConnectionError({ reason: "x" }),
          (self) => self.pipe(Retry.retry({ maxRetries: 5 }), Effect.provide(logs))
        )
        expect(five.times).toEqual([0, 1000, 3000, 7000, 15000, 31000])
        const last = entries[entries.length - 1]!
        expect(last.message).toMatch(/All retries exhausted after attempt 6/)
        expect(last.annotations["bulwark.failure.severity"]).toBe("critical") // escalation still shows
      }).pipe(Effect.provide(Classified)))

    it.effect("a maxRetries written in a table rule is honoured in full (RateLimited: 3 retries, 4 attempts)", () =>
      Effect.gen(function*() {
        // Throttled: resource (critical), backoff_retry, maxRetries 3, retry-after 500 ms
        const throttled = yield* attemptsOf<ApiError>(
          new Throttled({ retryAfterMs: 500 }),
          (self) => self.pipe(Retry.retry({}))
        )
        expect(throttled.times).toEqual([0, 500, 1000, 1500])
      }).pipe(Effect.provide(Classified)))

    it.effect("retry-after: Infinity is capped at maxRetryAfter (1 hour); an invalid hint is ignored with a warning", () =>
      Effect.gen(function*() {
        const { entries, layer: logs } = yield* captureLogs
        class Hinted extends Data.TaggedError("Hinted")<{ readonly hint: unknown }> {}
        const hinted = Failure.table<Hinted>({
          Hinted: (e) => ({ category: "connection", retryAfter: e.hint as Duration.DurationInput })
        })
        const { attempts, effect } = yield* scripted<Hinted>([new Hinted({ hint: Infinity }), "ok"])
        const fiber = yield* Effect.fork(effect.pipe(Retry.retry({ classify: hinted })))
        yield* TestClock.adjust("59 minutes")
        expect((yield* attempts).length).toBe(1)
        yield* TestClock.adjust("1 minute")
        expect(yield* Fiber.join(fiber)).toBe(2)
        expect(yield* attempts).toEqual([0, 3_600_000])

        // a smaller cap from the classifier
        const capped = yield* attemptsOf(
          new Hinted({ hint: "1 day" }),
          (self) => self.pipe(Retry.retry({ classify: hinted, maxRetries: 1 }))
        ).pipe(Effect.provide(Failure.layerClassifier({ maxRetryAfter: "5 seconds" })))
        expect(capped.times).toEqual([0, 5000])

        // "soon" is not a duration: absent, so the backoff's 1 s applies, and a warning names it
        const soon = yield* attemptsOf(
          new Hinted({ hint: "soon" }),
          (self) => self.pipe(Retry.retry({ classify: hinted, maxRetries: 1 }), Effect.provide(logs))
        )
        expect(soon.times).toEqual([0, 1000])
        const warning = entries.find((e) => e.message.includes("retry-after"))
        expect(warning?.level).toBe("WARN")
        expect(warning?.message).toMatch(/The retry-after hint soon of "Hinted" is not a duration >= 0; it is ignored/)
      }))

    it.effect("the README example: Refused 4 attempts (1s, 2s, 4s), RateLimited 4, BadRequest 1", () =>
      Effect.gen(function*() {
        class Refused extends Data.TaggedError("Refused")<{ readonly host: string }> {}
        class RateLimited extends Data.TaggedError("RateLimited")<{ readonly retryAfterMs: number }> {}
        class BadRequest extends Data.TaggedError("BadRequest")<{ readonly reason: string }> {}
        type ReadmeError = Refused | RateLimited | BadRequest
        const apiErrors = Failure.table<ReadmeError>({
          Refused: "connection",
          RateLimited: (e) => ({
            category: "resource",
            strategy: "backoff_retry",
            maxRetries: 3,
            retryAfter: e.retryAfterMs
          }),
          BadRequest: "validation"
        })
        const run = (error: ReadmeError) =>
          attemptsOf<ReadmeError>(error, (self) =>
            self.pipe(
              Retry.retry({ name: "quotes" }),
              Effect.provide(Failure.layerClassifier({ tables: [apiErrors] }))
            ))
        expect((yield* run(new Refused({ host: "h" }))).times).toEqual([0, 1000, 3000, 7000])
        expect((yield* run(new RateLimited({ retryAfterMs: 2000 }))).times).toEqual([0, 2000, 4000, 6000])
        expect((yield* run(new BadRequest({ reason: "r" }))).times).toEqual([0])
      }))

    it.effect("docs/retry.md's escalation table: attempts per category with and without escalation", () =>
      Effect.gen(function*() {
        const rows = [
          ["connection", 4, 6],
          ["communication", 4, 4],
          ["timeout", 3, 3],
          ["health_check", 4, 4],
          ["session", 3, 3],
          ["external", 2, 2]
        ] as const
        for (const [category, escalated, plain] of rows) {
          const policy = (escalate: boolean) => Retry.policy<Unavailable>({ classify: () => category, escalate })
          const on = yield* attemptsOf(new Unavailable(), (self) => self.pipe(Retry.retry(policy(true))))
          const off = yield* attemptsOf(new Unavailable(), (self) => self.pipe(Retry.retry(policy(false))))
          expect([category, on.times.length, off.times.length]).toEqual([category, escalated, plain])
        }
      }))

    it.effect("docs/retry.md's RetryBudget example: Unavailable makes 4 attempts (1s, 2s, 4s)", () =>
      Effect.gen(function*() {
        class PaymentsBudget extends RetryBudget.Tag("payments")<PaymentsBudget>() {}
        const PaymentsErrors = Failure.layerClassifier({
          tables: [Failure.table<Unavailable>({ Unavailable: "connection" })]
        })
        const charge = (call: Effect.Effect<number, Unavailable>) =>
          Effect.gen(function*() {
            const budget = yield* PaymentsBudget
            return yield* call.pipe(Retry.retry({ name: "payments", budget }))
          }).pipe(Effect.provide(PaymentsErrors))
        const run = attemptsOf<Unavailable>(
          new Unavailable(),
          (call) => charge(call).pipe(Effect.provide(PaymentsBudget.layer({ ratio: 0.1 })))
        )
        expect((yield* run).times).toEqual([0, 1000, 3000, 7000])
      }))

    it.effect("the classification example's scenario 4: the give-up and its ExecutionError both say critical / abandon", () =>
      Effect.gen(function*() {
        const { entries, layer: logs } = yield* captureLogs
        const error = new ConnectionError({ reason: "down" })
        const { exit, times } = yield* attemptsOf<ApiError>(
          error,
          (self) =>
            self.pipe(Retry.retry({ schedule: Backoff.exponential({ base: "200 millis" }) }), Effect.provide(logs))
        )
        expect(times).toEqual([0, 200, 600, 1400])
        expect(exit).toEqual(Exit.fail(error))
        const last = entries[entries.length - 1]!
        expect(last.message).toMatch(
          /Abandoning after attempt 4: CONNECTION_ERROR \(connection\) escalated to critical/
        )
        const json = Failure.encodeExecutionError(
          yield* Failure.toExecutionError(error, { context: { attempt: times.length } })
        )
        expect(json).toMatchObject({ severity: "critical", strategy: "abandon", retryable: false })
        expect(last.annotations["bulwark.failure.severity"]).toBe(json.severity)
      }).pipe(Effect.provide(Classified)))

    it.effect("odd failure values never make Retry die: it fails with the value itself", () =>
      Effect.gen(function*() {
        for (const odd of oddValues()) {
          const { entries, layer: logs } = yield* captureLogs
          const fiber = yield* Effect.fork(
            Effect.fail(odd).pipe(Retry.retry({ name: "odd", maxRetries: 1 }), Effect.provide(logs))
          )
          yield* TestClock.adjust("1 hour")
          const exit = yield* Fiber.await(fiber)
          expect(Exit.isFailure(exit) && Cause.isFailType(exit.cause) && exit.cause.error === odd).toBe(true)
          expect(entries.length).toBeGreaterThan(0)
        }
      }))
  })
})

describe("Retry: what it reports", () => {
  it.effect("a budget's refusal: the error carries the budget's counts and the last failure, one alert, a log", () =>
    Effect.gen(function*() {
      const { entries, layer } = yield* captureLogs
      const alerts: Array<Alerts.Alert> = []
      const service = yield* Alerts.make((a) => Effect.sync(() => alerts.push(a)))
      const budget = yield* RetryBudget.make({ name: "quotes", ratio: 0.5, minRetriesPerSecond: 0 })
      yield* budget.deposit
      yield* budget.deposit
      const failure = new ConnectionError({ reason: "down" })
      const error = yield* Effect.fail(failure).pipe(
        Retry.retry({ name: "orders", budget, schedule: Backoff.fromDelays([0]) }),
        Effect.provide(layer),
        Effect.provideService(Alerts.Alerts, service),
        Effect.flip
      )
      // two deposits earlier and the call's own: 3 calls earn 1 retry, spent on the second attempt
      expect(error).toBeInstanceOf(RetryBudget.RetryBudgetExhaustedError)
      expect(error).toMatchObject({ budget: "quotes", calls: 3, retries: 1, ratio: 0.5 })
      expect((error as RetryBudget.RetryBudgetExhaustedError).cause).toBe(failure)
      expect(alerts).toEqual([{
        key: "retry_budget:quotes",
        kind: "retry_budget_exhausted",
        severity: "major",
        message: "Retry budget \"quotes\" is spent: 1 retries for 3 calls in the window; retries are refused",
        annotations: { budget: "quotes", calls: 3, retries: 1, ratio: 0.5 }
      }])
      const last = entries[entries.length - 1]!
      expect(last.message).toBe(
        "Retry budget \"quotes\" is spent; giving up after attempt 2: ConnectionError { reason: \"down\" }"
      )
      expect(last.annotations).toMatchObject({
        "bulwark.retry.verdict": "budget_exhausted",
        "bulwark.retry.attempt": 2
      })
    }).pipe(Effect.provide(Classified)))

  it.effect("the counters are bulwark_retry_{retries,exhausted,recovered}_total, each with its description", () =>
    Effect.gen(function*() {
      const operation = "named-metrics-test"
      const { effect } = yield* scripted<ApiError>([new Timeout(), "ok"])
      const fiber = yield* Effect.fork(effect.pipe(Retry.retry({ name: operation })))
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(fiber)
      yield* Effect.exit(Effect.fail(new Invalid()).pipe(Retry.retry({ name: operation })))
      const read = (name: string, description: string, tags: Record<string, string>) =>
        Metric.value(
          Metric.counter(name, { description, incremental: true }).pipe(
            Metric.taggedWithLabels(Object.entries(tags).map(([k, v]) => MetricLabel.make(k, v)))
          )
        ).pipe(Effect.map((state) => state.count))
      expect(
        yield* read("bulwark_retry_retries_total", "Retries scheduled, by category", { category: "timeout", operation })
      ).toBe(1)
      expect(
        yield* read("bulwark_retry_exhausted_total", "Operations that stopped retrying, by category and reason", {
          category: "validation",
          reason: "not_retryable",
          operation
        })
      ).toBe(1)
      expect(
        yield* read("bulwark_retry_recovered_total", "Operations that succeeded after at least one retry", {
          operation
        })
      ).toBe(1)
    }).pipe(Effect.provide(Classified)))

  it.effect("one policy counts each category and reason under its own counter; without a name, under operation \"\"", () =>
    Effect.gen(function*() {
      const operation = "shared-policy-test"
      const policy = Retry.policy<ApiError>({ name: operation, escalate: false })
      yield* Effect.exit(Effect.fail(new Invalid()).pipe(Retry.retry(policy)))
      const fiber = yield* Effect.fork(Effect.exit(Effect.fail(new Timeout()).pipe(Retry.retry(policy))))
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(fiber)
      expect(yield* counterValue("exhausted", { category: "validation", reason: "not_retryable", operation })).toBe(1)
      expect(yield* counterValue("exhausted", { category: "timeout", reason: "exhausted", operation })).toBe(1)
      expect(yield* counterValue("exhausted", { category: "timeout", reason: "not_retryable", operation })).toBe(0)
      expect(yield* counterValue("retries", { category: "timeout", operation })).toBe(2)
      // unnamed: the operation label is empty
      const before = yield* counterValue("exhausted", { category: "security", reason: "not_retryable", operation: "" })
      yield* Effect.exit(Effect.fail(new Invalid()).pipe(Retry.retry({ classify: () => "security" as const })))
      expect(yield* counterValue("exhausted", { category: "security", reason: "not_retryable", operation: "" })).toBe(
        before + 1
      )
    }).pipe(Effect.provide(Classified)))

  it.effect("a retry's log entry carries exactly its annotations; an unnamed policy adds no operation", () =>
    Effect.gen(function*() {
      const { entries, layer } = yield* captureLogs
      const { effect } = yield* scripted<ApiError>([new Timeout(), "ok"])
      const fiber = yield* Effect.fork(effect.pipe(Retry.retry({}), Effect.provide(layer)))
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(fiber)
      expect(entries[0]!.annotations).toStrictEqual({
        "bulwark.retry.attempt": 1,
        "bulwark.retry.delay_ms": 1000,
        "bulwark.retry.verdict": "retry",
        "bulwark.failure.category": "timeout",
        "bulwark.failure.code": "TIMEOUT",
        "bulwark.failure.severity": "major"
      })
      expect(entries[1]!.annotations).toStrictEqual({ "bulwark.retry.attempt": 2 })
    }).pipe(Effect.provide(Classified)))

  it.effect("a retried defect is logged as the defect itself, annotated as one", () =>
    Effect.gen(function*() {
      const { entries, layer } = yield* captureLogs
      const fiber = yield* Effect.fork(
        Effect.die(new Error("bug")).pipe(
          Retry.retry({ name: "orders", retryDefects: true, maxRetries: 1, schedule: Backoff.fromDelays([10]) }),
          Effect.provide(layer),
          Effect.exit
        )
      )
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(fiber)
      expect(entries.map((e) => e.message)).toEqual([
        expect.stringMatching(/^Attempt 1 failed with .*; retrying in 10ms: bug$/),
        expect.stringMatching(/^All retries exhausted after attempt 2: .*: bug$/)
      ])
      for (const entry of entries) expect(entry.annotations["bulwark.failure.defect"]).toBe(true)
    }))

  it.effect("a success after retries is logged with the count; a success at once logs nothing and counts no recovery", () =>
    Effect.gen(function*() {
      const { entries, layer } = yield* captureLogs
      const operation = "recovery-log-test"
      const { effect } = yield* scripted<ApiError>([new Timeout(), new Timeout(), "ok"])
      const fiber = yield* Effect.fork(
        effect.pipe(Retry.retry({ name: operation, escalate: false }), Effect.provide(layer))
      )
      yield* TestClock.adjust("1 minute")
      expect(yield* Fiber.join(fiber)).toBe(3)
      const success = entries[entries.length - 1]!
      expect(success.level).toBe("INFO")
      expect(success.message).toBe("Succeeded on attempt 3 after 2 retries")
      expect(success.annotations).toStrictEqual({ "bulwark.retry.attempt": 3, "bulwark.retry.operation": operation })
      expect(yield* counterValue("recovered", { operation })).toBe(1)
      entries.length = 0
      expect(yield* Effect.succeed(7).pipe(Retry.retry({ name: operation }), Effect.provide(layer))).toBe(7)
      expect(entries).toEqual([])
      expect(yield* counterValue("recovered", { operation })).toBe(1)
      // one retry, unnamed: counted under operation ""
      const before = yield* counterValue("recovered", { operation: "" })
      const once = yield* scripted<ApiError>([new Timeout(), "ok"])
      const unnamed = yield* Effect.fork(once.effect.pipe(Retry.retry({}), Effect.provide(layer)))
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(unnamed)
      expect(entries[entries.length - 1]!.message).toBe("Succeeded on attempt 2 after 1 retry")
      expect(yield* counterValue("recovered", { operation: "" })).toBe(before + 1)
    }).pipe(Effect.provide(Classified)))

  it.effect("maxRetries: 0 makes one attempt; while must be a function", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* scripted<ApiError>([new ConnectionError({ reason: "x" })])
      yield* Effect.exit(effect.pipe(Retry.retry({ maxRetries: 0 })))
      expect(yield* attempts).toEqual([0])
      expect(() => Retry.policy({ while: "yes" as unknown as () => boolean })).toThrow(
        /^Retry.policy: while must be a function, got yes$/
      )
    }).pipe(Effect.provide(Classified)))

  it.effect("matrixBackoff: the matrix's delays for each kind of row", () =>
    Effect.gen(function*() {
      const base = Failure.defaultClassifier.classify(new ConnectionError({ reason: "x" }))
      const delaysOf = (strategy: Failure.Strategy, backoff: Failure.Classification["backoff"]) =>
        Backoff.delays(Retry.matrixBackoff({ ...base, strategy, backoff }), 6).pipe(
          Effect.map((ds) => ds.map(Duration.toMillis))
        )
      expect(yield* delaysOf("immediate_retry", "exponential")).toEqual([0, 100, 200, 200, 200, 200])
      expect(yield* delaysOf("backoff_retry", "exponential")).toEqual([1000, 2000, 4000, 8000, 16000, 16000])
      expect(yield* delaysOf("backoff_retry", "linear")).toEqual([1000, 2000, 3000, 4000, 5000, 6000])
      expect(yield* delaysOf("backoff_retry", "none")).toEqual([0, 0, 0, 0, 0, 0])
    }))
})

describe("Retry: the bounds it reads", () => {
  const times = (attempts: Effect.Effect<ReadonlyArray<number>>) =>
    Effect.map(attempts, (xs) => xs.map((t) => t - xs[0]!))

  it.effect("maxDelay caps each delay; a zero maxDelay or maxElapsed is a bound, not an error", () =>
    Effect.gen(function*() {
      const run = (options: Retry.Options<ApiError>) =>
        Effect.gen(function*() {
          const { attempts, effect } = yield* scripted<ApiError>([new ConnectionError({ reason: "x" })])
          const fiber = yield* Effect.fork(effect.pipe(Retry.retry(options)))
          yield* TestClock.adjust("1 hour")
          yield* Fiber.await(fiber)
          return yield* times(attempts)
        })
      // connection: 1 s, 2 s, 4 s, each cut to 1.5 s
      expect(yield* run({ maxRetries: 3, maxDelay: "1500 millis" })).toEqual([0, 1000, 2500, 4000])
      expect(yield* run({ maxRetries: 3, maxDelay: 0 })).toEqual([0, 0, 0, 0])
      expect(yield* run({ maxElapsed: 0 })).toEqual([0])
    }).pipe(Effect.provide(Classified)))

  it.effect("a schedule that ends stops the retries before the count does", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* scripted<ApiError>([new ConnectionError({ reason: "x" })])
      const schedule = Backoff.linear({ base: "100 millis" }).pipe(Backoff.limit({ maxRetries: 2 }))
      const fiber = yield* Effect.fork(effect.pipe(Retry.retry({ schedule, maxRetries: 10 })))
      yield* TestClock.adjust("1 hour")
      expect(yield* Fiber.await(fiber)).toEqual(Exit.fail(new ConnectionError({ reason: "x" })))
      expect(yield* times(attempts)).toEqual([0, 100, 300])
    }).pipe(Effect.provide(Classified)))

  it.effect("a rule's own count: retryable with none allowed is one attempt; a forced retry keeps a count it gives", () =>
    Effect.gen(function*() {
      const run = (options: Retry.Options<ApiError>) =>
        Effect.gen(function*() {
          const { attempts, effect } = yield* scripted<ApiError>([new Invalid()])
          const fiber = yield* Effect.fork(effect.pipe(Retry.retry(options)))
          yield* TestClock.adjust("1 hour")
          expect(yield* Fiber.await(fiber)).toEqual(Exit.fail(new Invalid()))
          return (yield* attempts).length
        })
      expect(yield* run({ classify: () => ({ category: "connection", retryable: true, maxRetries: 0 }) })).toBe(1)
      // validation abandons: the predicate retries it anyway, as often as the rule says (not the forced 3)
      expect(yield* run({ classify: () => ({ category: "validation", maxRetries: 2 }), while: () => true })).toBe(3)
      expect(yield* run({ classify: () => ({ category: "validation", maxRetries: 5 }), while: () => true })).toBe(6)
      // with no count of its own, a forced retry gets 3
      expect(yield* run({ classify: () => "validation", while: () => true })).toBe(4)
    }))

  it.effect("without escalation, a classify function runs once for a failure it does not retry", () =>
    Effect.gen(function*() {
      let calls = 0
      const classify = () => {
        calls++
        return "validation" as const
      }
      expect(yield* Effect.flip(Effect.fail(new Invalid()).pipe(Retry.retry({ classify, escalate: false }))))
        .toEqual(new Invalid())
      expect(calls).toBe(1)
    }))

  it.effect("with a budget, a failure given up on for another reason fails as itself", () =>
    Effect.gen(function*() {
      const budget = yield* RetryBudget.make({
        name: "roomy",
        ratio: 1,
        minRetriesPerSecond: 100,
        window: "10 seconds"
      })
      const policy = Retry.policy<ApiError>({ budget })
      expect(yield* Effect.flip(Effect.fail(new Invalid()).pipe(Retry.retry(policy)))).toEqual(new Invalid())
      const fiber = yield* Effect.fork(
        Effect.flip(Effect.fail(new ConnectionError({ reason: "x" })).pipe(Retry.retry(policy)))
      )
      yield* TestClock.adjust("1 hour")
      expect(yield* Fiber.join(fiber)).toEqual(new ConnectionError({ reason: "x" }))
    }).pipe(Effect.provide(Classified)))

  it.effect("a step past escalation that the user's count retries is reported retryable, with the unescalated strategy", () =>
    Effect.gen(function*() {
      const policy = Retry.policy<ApiError>({ maxRetries: 5 })
      let state = policy.initial
      const steps: Array<Retry.Step> = []
      for (let i = 0; i < 4; i++) {
        const [next, step] = yield* policy.step(i * 1000, new Timeout(), state)
        steps.push(step)
        state = next
      }
      expect(
        steps.map((s) => [s.verdict, s.classification.severity, s.classification.strategy, s.classification.retryable])
      )
        .toEqual([
          ["retry", "major", "backoff_retry", true],
          ["retry", "major", "backoff_retry", true],
          ["retry", "major", "backoff_retry", true],
          // escalated to critical (which abandons), retried on because the user wrote a count
          ["retry", "critical", "backoff_retry", true]
        ])
    }).pipe(Effect.provide(Classified)))
})
