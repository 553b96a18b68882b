import { RetryBudget } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, TestClock } from "effect"

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
      // ten buckets of one second: between 9 and 10 seconds' worth of calls remain
      expect(snapshot.calls).toBeGreaterThanOrEqual(900)
      expect(snapshot.calls).toBeLessThanOrEqual(1000)
      expect(snapshot.available).toBe(Math.floor(snapshot.calls * 0.1))
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
})
