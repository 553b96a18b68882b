import { Failure, RetryBudget } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Config, ConfigProvider, Duration, Effect, Either, Layer, Metric, TestClock } from "effect"

const withdrawN = (budget: RetryBudget.RetryBudget, n: number) =>
  Effect.gen(function*() {
    let granted = 0
    for (let i = 0; i < n; i++) if (yield* budget.tryWithdraw) granted++
    return granted
  })

describe("RetryBudget", () => {
  it.effect("allows retries as a ratio of calls in the window, plus the per-second floor", () =>
    Effect.gen(function*() {
      const budget = yield* RetryBudget.make({ ratio: 0.2, minRetriesPerSecond: 1, window: "10 seconds" })
      for (let i = 0; i < 50; i++) yield* budget.deposit
      // floor: 1/s × 10 s = 10; ratio: 0.2 × 50 = 10
      expect(yield* withdrawN(budget, 100)).toBe(20)
      expect(yield* budget.snapshot).toEqual({ name: "default", calls: 50, retries: 20, available: 0 })
    }))

  it.effect("the allowance rounds down: ratio 0.5 of 3 calls is 1 retry, not 2", () =>
    Effect.gen(function*() {
      const budget = yield* RetryBudget.make({ ratio: 0.5, minRetriesPerSecond: 0, window: "10 seconds" })
      for (let i = 0; i < 3; i++) yield* budget.deposit
      expect(yield* budget.snapshot).toEqual({ name: "default", calls: 3, retries: 0, available: 1 })
      expect(yield* withdrawN(budget, 5)).toBe(1)
      // a fractional floor rounds down with the ratio's share: 0.15/s × 10 s + 0.5 × 3 = 3
      const floored = yield* RetryBudget.make({ ratio: 0.5, minRetriesPerSecond: 0.15, window: "10 seconds" })
      for (let i = 0; i < 3; i++) yield* floored.deposit
      expect(yield* withdrawN(floored, 5)).toBe(3)
    }))

  it.effect("floorMode minimum: the floor is a minimum, not an extra; the larger of floor and ratio × calls", () =>
    Effect.gen(function*() {
      const options = { ratio: 0.1, minRetriesPerSecond: 3, window: "10 seconds", floorMode: "minimum" } as const
      // quiet: 100 calls, ratio 10 < floor 30: the floor
      const quiet = yield* RetryBudget.make(options)
      for (let i = 0; i < 100; i++) yield* quiet.deposit
      expect(yield* withdrawN(quiet, 100)).toBe(30)
      // busy: 500 calls, ratio 50 > floor 30: the ratio alone (added, it would be 80)
      const busy = yield* RetryBudget.make(options)
      for (let i = 0; i < 500; i++) yield* busy.deposit
      expect(yield* withdrawN(busy, 100)).toBe(50)
      const added = yield* RetryBudget.make({ ...options, floorMode: "added" })
      for (let i = 0; i < 500; i++) yield* added.deposit
      expect(yield* withdrawN(added, 100)).toBe(80)
    }))

  it.effect("floorMode: a bad literal is a defect naming the field; from Config, a ConfigError naming FLOOR_MODE", () =>
    Effect.gen(function*() {
      expect(() => RetryBudget.unsafeMake({ floorMode: "max" as "minimum" })).toThrow(
        /floorMode must be "added" or "minimum"/
      )
      class PaymentsBudget extends RetryBudget.Tag("payments")<PaymentsBudget>() {}
      const read = (mode: string) =>
        PaymentsBudget.pipe(
          Effect.provide(PaymentsBudget.layerConfig()),
          Effect.withConfigProvider(
            ConfigProvider.fromJson({ PAYMENTS: { RATIO: 0.1, MIN_RETRIES_PER_SECOND: 3, FLOOR_MODE: mode } })
          )
        )
      const budget = yield* read("minimum")
      for (let i = 0; i < 500; i++) yield* budget.deposit
      expect(yield* withdrawN(budget, 100)).toBe(50)
      const error = yield* Effect.flip(read("max"))
      expect(String(error)).toMatch(/PAYMENTS_FLOOR_MODE/)
    }))

  it.effect("calls and retries leave the window as time passes", () =>
    Effect.gen(function*() {
      const budget = yield* RetryBudget.make({ ratio: 0.5, minRetriesPerSecond: 0, window: "10 seconds" })
      for (let i = 0; i < 10; i++) yield* budget.deposit
      expect(yield* withdrawN(budget, 10)).toBe(5)
      yield* TestClock.adjust("5 seconds")
      for (let i = 0; i < 10; i++) yield* budget.deposit
      expect(yield* withdrawN(budget, 10)).toBe(5)
      // the first 10 calls and 5 retries have left the window; the last 10 calls and 5 retries remain
      yield* TestClock.adjust("6 seconds")
      expect(yield* budget.snapshot).toMatchObject({ calls: 10, retries: 5, available: 0 })
      yield* TestClock.adjust("10 seconds")
      expect(yield* budget.snapshot).toMatchObject({ calls: 0, retries: 0, available: 0 })
    }))

  it.effect("counts only the last window's calls, however many were made", () =>
    Effect.gen(function*() {
      const budget = yield* RetryBudget.make({ ratio: 0.1, minRetriesPerSecond: 0, window: "10 seconds" })
      // 20,000 calls over 200 s of virtual time: 100 per second
      for (let i = 0; i < 20_000; i++) {
        yield* budget.deposit
        if (i % 100 === 99) yield* TestClock.adjust("1 second")
      }
      const snapshot = yield* budget.snapshot
      // ten buckets of one second at t = 200 s: seconds 191 to 199 hold 100 calls each, second 200 none yet
      expect(snapshot).toEqual({ name: "default", calls: 900, retries: 0, available: 90 })
    }))

  it.effect("a per-dependency Tag has its own layers and its own state", () =>
    Effect.gen(function*() {
      class PaymentsBudget extends RetryBudget.Tag("payments")<PaymentsBudget>() {}
      class SearchBudget extends RetryBudget.Tag("search")<SearchBudget>() {}
      const layer = Layer.merge(
        PaymentsBudget.layer({ ratio: 0, minRetriesPerSecond: 0 }),
        SearchBudget.layer({ ratio: 1, minRetriesPerSecond: 0 })
      )
      const [payments, search] = yield* Effect.all([PaymentsBudget, SearchBudget]).pipe(Effect.provide(layer))
      expect(PaymentsBudget.dependency).toBe("payments")
      expect(payments.name).toBe("payments")
      yield* payments.deposit
      yield* search.deposit
      expect(yield* payments.tryWithdraw).toBe(false)
      expect(yield* search.tryWithdraw).toBe(true)
    }))

  it.effect("layerConfig reads its options from Config under the dependency's name", () =>
    Effect.gen(function*() {
      class PaymentsBudget extends RetryBudget.Tag("payments")<PaymentsBudget>() {}
      const provider = ConfigProvider.fromJson({
        PAYMENTS: { RATIO: 0.5, MIN_RETRIES_PER_SECOND: 0, WINDOW: "20 seconds" }
      })
      const budget = yield* PaymentsBudget.pipe(
        Effect.provide(PaymentsBudget.layerConfig()),
        Effect.withConfigProvider(provider)
      )
      expect(budget.ratio).toBe(0.5)
      for (let i = 0; i < 4; i++) yield* budget.deposit
      expect(yield* withdrawN(budget, 4)).toBe(2)
    }))

  it.effect("from the environment a dependency's keys read as PAYMENTS_RATIO …", () =>
    Effect.gen(function*() {
      class PaymentsBudget extends RetryBudget.Tag("payments")<PaymentsBudget>() {}
      // the shape of ConfigProvider.fromEnv: keys joined with "_"
      const env = ConfigProvider.fromMap(
        new Map([["PAYMENTS_RATIO", "0.25"], ["PAYMENTS_MIN_RETRIES_PER_SECOND", "0"], [
          "PAYMENTS_WINDOW",
          "4 seconds"
        ]]),
        { pathDelim: "_" }
      )
      const budget = yield* PaymentsBudget.pipe(
        Effect.provide(PaymentsBudget.layerConfig()),
        Effect.withConfigProvider(env)
      )
      expect(budget.ratio).toBe(0.25)
      for (let i = 0; i < 8; i++) yield* budget.deposit
      expect((yield* budget.snapshot).available).toBe(2)
    }))

  it.effect("bad Config fails with a ConfigError naming the key", () =>
    Effect.gen(function*() {
      class PaymentsBudget extends RetryBudget.Tag("payments")<PaymentsBudget>() {}
      const provider = ConfigProvider.fromJson({ PAYMENTS: { RATIO: 1.5 } })
      const error = yield* PaymentsBudget.pipe(
        Effect.provide(PaymentsBudget.layerConfig()),
        Effect.withConfigProvider(provider),
        Effect.flip
      )
      expect(error._op).toBe("InvalidData")
      expect(String(error)).toMatch(/PAYMENTS_RATIO/)
      expect(String(error)).toMatch(/ratio must be in \[0, 1\]/)
    }))

  it.effect("an infinite minRetriesPerSecond from Config fails with a ConfigError naming the key", () =>
    Effect.gen(function*() {
      class PaymentsBudget extends RetryBudget.Tag("payments")<PaymentsBudget>() {}
      const provider = ConfigProvider.fromJson({ PAYMENTS: { MIN_RETRIES_PER_SECOND: "Infinity" } })
      const error = yield* PaymentsBudget.pipe(
        Effect.provide(PaymentsBudget.layerConfig()),
        Effect.withConfigProvider(provider),
        Effect.flip
      )
      expect(error._op).toBe("InvalidData")
      expect(String(error)).toMatch(/PAYMENTS_MIN_RETRIES_PER_SECOND/)
      expect(String(error)).toMatch(/minRetriesPerSecond must be >= 0 and finite/)
    }))

  it("bad literal options name the field and the rule", () => {
    expect(() => RetryBudget.unsafeMake({ name: "x", ratio: 2 })).toThrow(
      /RetryBudget "x": ratio must be in \[0, 1\], got 2/
    )
    expect(() => RetryBudget.unsafeMake({ minRetriesPerSecond: -1 })).toThrow(/minRetriesPerSecond must be >= 0/)
    expect(() => RetryBudget.unsafeMake({ window: 0 })).toThrow(
      /window must be a finite duration of at least 10 millis/
    )
  })

  it.effect("an empty numeric value is a ConfigError naming the key, never 0", () =>
    Effect.gen(function*() {
      class PaymentsBudget extends RetryBudget.Tag("payments")<PaymentsBudget>() {}
      for (const key of ["RATIO", "MIN_RETRIES_PER_SECOND"]) {
        for (const value of ["", "  "]) {
          const env = ConfigProvider.fromMap(new Map([[`PAYMENTS_${key}`, value]]), { pathDelim: "_" })
          const error = yield* PaymentsBudget.pipe(
            Effect.provide(PaymentsBudget.layerConfig()),
            Effect.withConfigProvider(env),
            Effect.flip
          )
          expect(error._op).toBe("InvalidData")
          expect(String(error)).toMatch(new RegExp(`PAYMENTS[._]${key}`))
          expect(String(error)).toMatch(/empty value/)
        }
      }
      // a number still reads as one
      const ok = ConfigProvider.fromMap(new Map([["PAYMENTS_RATIO", " 0.5 "]]), { pathDelim: "_" })
      const budget = yield* PaymentsBudget.pipe(
        Effect.provide(PaymentsBudget.layerConfig()),
        Effect.withConfigProvider(ok)
      )
      expect(budget.ratio).toBe(0.5)
    }))

  it("literal options at and past their bounds: the edges are accepted, beyond them a defect names the field", () => {
    for (const ratio of [0, 1]) expect(RetryBudget.unsafeMake({ ratio }).ratio).toBe(ratio)
    for (const ratio of [-0.01, 1.01, Number.NaN, "0.5" as unknown as number]) {
      expect(() => RetryBudget.unsafeMake({ ratio })).toThrow(/ratio must be in \[0, 1\]/)
    }
    expect(() => RetryBudget.unsafeMake({ window: "10 millis" })).not.toThrow()
    expect(() => RetryBudget.unsafeMake({ window: "9 millis" })).toThrow(
      /window must be a finite duration of at least 10/
    )
    expect(() => RetryBudget.unsafeMake({ window: Duration.infinity })).toThrow(/window/)
  })

  it.effect("Config values at and past their bounds: the edges are accepted, beyond them a ConfigError", () =>
    Effect.gen(function*() {
      const read = (values: Record<string, string>) =>
        Effect.either(
          Effect.flatMap(RetryBudget.RetryBudget, (b) => b.snapshot).pipe(
            Effect.provide(RetryBudget.layerConfig()),
            Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(values))))
          )
        )
      for (const ok of [{ RATIO: "0" }, { RATIO: "1" }, { MIN_RETRIES_PER_SECOND: "0" }, { WINDOW: "10 millis" }]) {
        const got = yield* read(ok)
        expect(Either.isRight(got)).toBe(true)
      }
      const bad = [
        [{ RATIO: "-0.1" }, "RATIO"],
        [{ RATIO: "1.1" }, "RATIO"],
        [{ MIN_RETRIES_PER_SECOND: "-1" }, "MIN_RETRIES_PER_SECOND"],
        [{ WINDOW: "9 millis" }, "WINDOW"],
        [{ WINDOW: "Infinity" }, "WINDOW"]
      ] as const
      for (const [values, key] of bad) {
        const got = yield* read(values)
        if (Either.isRight(got)) return expect.unreachable(`accepted ${JSON.stringify(values)}`)
        expect(String(got.left)).toContain(key)
      }
    }))

  it.effect("the default layers work: layer(options) and layerConfig() with the defaults", () =>
    Effect.gen(function*() {
      const fromLayer = yield* RetryBudget.RetryBudget.pipe(
        Effect.provide(RetryBudget.layer({ ratio: 0.5, minRetriesPerSecond: 0 }))
      )
      expect(fromLayer.ratio).toBe(0.5)
      const fromConfig = yield* RetryBudget.RetryBudget.pipe(
        Effect.provide(RetryBudget.layerConfig()),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map()))
      )
      expect(yield* fromConfig.snapshot).toEqual({ name: "default", calls: 0, retries: 0, available: 100 })
      expect(RetryBudget.RetryBudget.key).toBe("@bulwark/core/RetryBudget")
    }))

  it.effect("a refused withdrawal counts in bulwark_retry_budget_exhausted_total by budget", () =>
    Effect.gen(function*() {
      const budget = yield* RetryBudget.make({ name: "refused-count", ratio: 0, minRetriesPerSecond: 0 })
      expect(yield* budget.tryWithdraw).toBe(false)
      expect(yield* budget.tryWithdraw).toBe(false)
      // the metric's key is its name, description, incrementality and tags: all of them must match
      const counter = Metric.counter("bulwark_retry_budget_exhausted_total", {
        description: "Retries refused because a retry budget was spent",
        incremental: true
      }).pipe(Metric.tagged("budget", "refused-count"))
      expect((yield* Metric.value(counter)).count).toBe(2)
    }))

  it("RetryBudgetExhaustedError: its tag, message and classification", () => {
    const error = new RetryBudget.RetryBudgetExhaustedError({ budget: "quotes", calls: 10, retries: 2, ratio: 0.2 })
    expect(error._tag).toBe("RetryBudgetExhaustedError")
    expect(error.message).toBe(
      "Retry budget \"quotes\" is spent: 2 retries for 10 calls in the window (ratio 0.2); not retrying"
    )
    expect(Failure.defaultClassifier.classify(error)).toMatchObject({
      category: "resource",
      code: "RETRY_BUDGET_EXHAUSTED",
      strategy: "abandon",
      retryable: false
    })
  })
})

describe("RetryBudget: the clock, Config and the error paths", () => {
  it.effect("a wall clock stepped back loses no calls: when it comes forward again they are still in the window", () =>
    Effect.gen(function*() {
      const budget = yield* RetryBudget.make({ ratio: 1, minRetriesPerSecond: 0, window: "10 seconds" })
      yield* TestClock.setTime(5_000)
      for (let i = 0; i < 10; i++) yield* budget.deposit
      // the wall clock is corrected two seconds back, then runs on past where it was
      yield* TestClock.setTime(3_000)
      expect(yield* budget.snapshot).toMatchObject({ calls: 10, retries: 0 })
      yield* TestClock.setTime(5_500)
      expect(yield* budget.snapshot).toMatchObject({ calls: 10, retries: 0, available: 10 })
      expect(yield* withdrawN(budget, 20)).toBe(10)
    }))

  it.effect("FLOOR_MODE reads \"added\" as well as \"minimum\"", () =>
    Effect.gen(function*() {
      const budget = yield* RetryBudget.RetryBudget.pipe(
        Effect.provide(RetryBudget.layerConfig()),
        Effect.withConfigProvider(
          ConfigProvider.fromJson({ RATIO: 0.1, MIN_RETRIES_PER_SECOND: 3, FLOOR_MODE: "added" })
        )
      )
      for (let i = 0; i < 500; i++) yield* budget.deposit
      // 30 from the floor plus 50 from the ratio
      expect(yield* withdrawN(budget, 100)).toBe(80)
    }))

  it.effect("a window from Config below 10 millis fails with a ConfigError naming WINDOW and the rule", () =>
    Effect.gen(function*() {
      const error = yield* RetryBudget.RetryBudget.pipe(
        Effect.provide(RetryBudget.layerConfig()),
        Effect.withConfigProvider(ConfigProvider.fromJson({ WINDOW: "9 millis" })),
        Effect.flip
      )
      expect(error._op).toBe("InvalidData")
      expect(String(error)).toMatch(/WINDOW/)
      expect(String(error)).toMatch(/window must be at least 10 millis/)
    }))

  it.effect("a Config of options that break a rule fails with a ConfigError carrying the budget's message", () =>
    Effect.gen(function*() {
      const bad = Config.succeed<RetryBudget.Options>({ ratio: 2 })
      const error = yield* RetryBudget.RetryBudget.pipe(Effect.provide(RetryBudget.layerConfig(bad)), Effect.flip)
      expect(error._op).toBe("InvalidData")
      expect(error._op === "InvalidData" && error.message).toBe(
        "RetryBudget \"default\": ratio must be in [0, 1], got 2"
      )
      // the options are one value: the error names no key of its own
      expect(error._op === "InvalidData" && error.path).toEqual([])
      // a dependency's Tag names its budget, whatever the Config says
      class PaymentsBudget extends RetryBudget.Tag("payments")<PaymentsBudget>() {}
      const named = yield* PaymentsBudget.pipe(
        Effect.provide(PaymentsBudget.layerConfig(Config.succeed<RetryBudget.Options>({ name: "other", ratio: 2 }))),
        Effect.flip
      )
      expect(named._op === "InvalidData" && named.message).toBe(
        "RetryBudget \"payments\": ratio must be in [0, 1], got 2"
      )
      const budget = yield* PaymentsBudget.pipe(
        Effect.provide(PaymentsBudget.layerConfig(Config.succeed<RetryBudget.Options>({ name: "other" })))
      )
      expect(budget.name).toBe("payments")
      // without a Tag, the Config's own name stays
      const own = yield* RetryBudget.RetryBudget.pipe(
        Effect.provide(RetryBudget.layerConfig(Config.succeed<RetryBudget.Options>({ name: "quotes" })))
      )
      expect(own.name).toBe("quotes")
    }))
})
