import { Alerts, Backoff, BreakerRegistry, CircuitBreaker, Health, Retry, RetryBudget } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Data, Effect, Exit, Layer, Ref, TestClock } from "effect"
import { failTimes } from "./breakers.js"

class Down extends Data.TaggedError("Down")<{}> {}

const collectAlerts = Effect.gen(function*() {
  const delivered = yield* Ref.make<ReadonlyArray<Alerts.Alert>>([])
  const layer = Alerts.layer((alert) => Ref.update(delivered, (xs) => [...xs, alert]), { interval: "1 minute" })
  return { delivered: Ref.get(delivered), layer }
})

const failDown = (breaker: CircuitBreaker.CircuitBreaker, n: number) => failTimes(breaker, n, Effect.fail(new Down()))

describe("wiring between modules", () => {
  it.scoped("a breaker that opens announces a breaker_open alert, rate-limited per breaker", () =>
    Effect.gen(function*() {
      const { delivered, layer } = yield* collectAlerts
      const context = yield* Layer.build(layer)
      const breaker = yield* CircuitBreaker.make({ name: "payments", openDuration: "10 seconds" }).pipe(
        Effect.provide(context)
      )
      yield* failDown(breaker, 5)
      expect(yield* breaker.state).toBe("Open")
      const [first] = yield* delivered
      expect(first).toMatchObject({
        key: "breaker:payments",
        kind: "breaker_open",
        severity: "major",
        annotations: { breaker: "payments", retryAfterMillis: 10_000 }
      })
      expect(first!.message).toMatch(/Circuit "payments" opened: 5 consecutive failures; next attempt in 10s/)

      // it flaps: half-open after 10 s, a probe fails, it opens again — within the minute
      yield* TestClock.adjust("10 seconds")
      yield* failDown(breaker, 1)
      expect(yield* breaker.state).toBe("Open")
      expect((yield* delivered).length).toBe(1)

      // a minute later the next opening is delivered, with the count held back
      yield* TestClock.adjust("61 seconds")
      yield* failDown(breaker, 1)
      const all = yield* delivered
      expect(all.length).toBe(2)
      expect(all[1]!.suppressed).toBe(1)
    }))

  it.scoped("an open breaker makes readiness degraded; closing makes it ready again", () =>
    Effect.gen(function*() {
      const context = yield* Layer.build(Health.layer())
      const health = yield* Effect.provide(Health.Health, context)
      const breaker = yield* CircuitBreaker.make({
        name: "search",
        openDuration: "5 seconds",
        halfOpenProbes: 1,
        successThreshold: 1
      }).pipe(Effect.provide(context))

      const ready = yield* health.report
      expect(ready).toMatchObject({ ready: true, live: true, status: "up" })
      expect(ready.components.map((c) => c.name)).toContain("breaker:search")

      yield* failDown(breaker, 5)
      const open = yield* health.report
      expect(open).toMatchObject({ ready: false, live: true, status: "degraded" })
      const line = open.components.find((c) => c.name === "breaker:search")!
      expect(line).toMatchObject({ kind: "readiness", status: "degraded", details: { state: "Open" } })

      yield* TestClock.adjust("5 seconds")
      yield* breaker.protect(Effect.void)
      expect(yield* breaker.state).toBe("Closed")
      expect(yield* health.report).toMatchObject({ ready: true, status: "up" })
    }))

  it.scoped("a registry's breakers do not each register a health check", () =>
    Effect.gen(function*() {
      const context = yield* Layer.build(Health.layer())
      const health = yield* Effect.provide(Health.Health, context)
      const registry = yield* BreakerRegistry.make({ name: "hosts", capacity: 10 }).pipe(Effect.provide(context))
      for (const host of ["a", "b", "c"]) yield* registry.protect(host)(Effect.void)
      const report = yield* health.report
      expect(report.components.filter((c) => c.name.startsWith("breaker:"))).toEqual([])
    }))

  it.effect("a spent retry budget announces retry_budget_exhausted", () =>
    Effect.gen(function*() {
      const { delivered, layer } = yield* collectAlerts
      const budget = yield* RetryBudget.make({ name: "orders", ratio: 0, minRetriesPerSecond: 0 })
      const exit = yield* Effect.exit(
        Effect.fail(new Down()).pipe(
          Retry.retry({ budget, classify: () => "connection" as const, schedule: Backoff.fromDelays([0]) }),
          Effect.provide(layer)
        )
      )
      expect(Exit.isFailure(exit)).toBe(true)
      const alerts = yield* delivered
      expect(alerts).toHaveLength(1)
      expect(alerts[0]).toMatchObject({
        key: "retry_budget:orders",
        kind: "retry_budget_exhausted",
        severity: "major",
        annotations: { budget: "orders", calls: 1, retries: 0 }
      })
    }))
})
