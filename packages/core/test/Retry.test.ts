import { Backoff, Deadline, Failure, Retry, RetryBudget } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  Data,
  Duration,
  Effect,
  Exit,
  Fiber,
  HashMap,
  Logger,
  Metric,
  MetricLabel,
  Ref,
  TestClock
} from "effect"

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
  it.effect("seed 002: a connection error twice, then success → exactly 3 attempts after 1s and 2s", () =>
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
      expect(budgetErrors.length).toBeGreaterThanOrEqual(90)
      const snapshot = yield* budget.snapshot
      expect(snapshot).toMatchObject({ calls: 100, retries: 10, available: 0 })
      const [first] = budgetErrors
      if (first !== undefined && Exit.isFailure(first)) {
        const err = Cause.failureOption(first.cause)
        expect(err._tag === "Some" && err.value.message).toMatch(/Retry budget "storm" is spent/)
      }
      // the window slides: after it has passed, calls earn retries again
      yield* TestClock.adjust("11 seconds")
      expect((yield* budget.snapshot).retries).toBe(0)
    }).pipe(Effect.provide(Classified)))

  it.effect("logs: warning per retry with attempt and delay, info on success after retries, error on exhaustion", () =>
    Effect.gen(function*() {
      const { entries, layer } = yield* captureLogs
      const { effect } = yield* scripted<ApiError>([new ConnectionError({ reason: "down" }), "ok"])
      const fiber = yield* Effect.fork(effect.pipe(Retry.retry({ name: "orders" }), Effect.provide(layer)))
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(fiber)
      expect(entries.map((e) => e.level)).toEqual(["WARN", "INFO"])
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
      expect(entries.map((e) => e.level)).toEqual(["WARN", "WARN", "ERROR"])
      expect(entries[2]!.message).toMatch(/All retries exhausted after attempt 3: TIMEOUT/)
    }).pipe(Effect.provide(Classified), Effect.withLogSpan("retry-test")))

  it.effect("an escalated failure is logged as abandoned, not as unretryable", () =>
    Effect.gen(function*() {
      const { entries, layer } = yield* captureLogs
      const { effect } = yield* scripted<ApiError>([new ConnectionError({ reason: "down" })])
      const fiber = yield* Effect.fork(effect.pipe(Retry.retry({}), Effect.provide(layer)))
      yield* TestClock.adjust("1 hour")
      yield* Fiber.await(fiber)
      const last = entries[entries.length - 1]!
      expect(last.level).toBe("ERROR")
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

  it("bad options name the field", () => {
    expect(() => Retry.policy({ maxRetries: -1 })).toThrow(
      /Retry.policy: maxRetries must be a whole number >= 0, got -1/
    )
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
})
