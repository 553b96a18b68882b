import { RetryBudget } from "@bulwark/core"
import { RedisClient, RedisRetryBudget } from "@bulwark/redis"
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Layer, Metric } from "effect"
import { hasRedisServer, startRedisServer } from "./redisServer.js"

const options = { name: "payments", ratio: 0.1, minRetriesPerSecond: 1, window: "10 seconds" } as const
const CALLS = 100
const floor = 1 * 10

/** An outage: every call fails; each process retries up to 3 times while its budget allows. */
const outage = (budget: RetryBudget.RetryBudget) =>
  Effect.gen(function*() {
    let retries = 0
    for (let i = 0; i < CALLS; i++) {
      yield* budget.deposit
      for (let r = 0; r < 3; r++) {
        if (!(yield* budget.tryWithdraw)) break
        retries++
      }
      // rounds of 10 calls, two sync intervals apart: each round sees the fleet's previous ones
      if (i % 10 === 9) yield* Effect.sleep("200 millis")
    }
    return retries
  })

const sharedOn = (socket: string) =>
  Layer.build(
    RedisRetryBudget.layer(options).pipe(Layer.provide(RedisClient.layer({ connection: { path: socket } })))
  ).pipe(Effect.map((ctx) => ctx.unsafeMap.get(RetryBudget.RetryBudget.key) as RetryBudget.RetryBudget))

describe.skipIf(!hasRedisServer())("RedisRetryBudget", () => {
  it.scopedLive("three processes with a shared 10% budget retry about as much as one budget allows", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const shared = yield* Effect.all([0, 1, 2].map(() => sharedOn(server.socket)))
      const sharedRetries = (yield* Effect.all(shared.map(outage), { concurrency: "unbounded" }))
        .reduce((a, b) => a + b, 0)
      const locals = yield* Effect.all([0, 1, 2].map(() => RetryBudget.make(options)))
      const localRetries = (yield* Effect.all(locals.map(outage), { concurrency: "unbounded" }))
        .reduce((a, b) => a + b, 0)
      const calls = 3 * CALLS
      const fleetAllowed = Math.floor(floor + 0.1 * calls)
      console.log(
        `@bulwark/redis: retry budget, ${calls} failing calls on 3 processes: shared ${sharedRetries} retries (${
          (100 * sharedRetries / calls).toFixed(1)
        }%, the fleet rule allows ${fleetAllowed}), separate ${localRetries} (${
          (100 * localRetries / calls).toFixed(1)
        }%)`
      )
      // the precision batching costs: what the other two grant within one round (3 calls' worth of
      // ratio each), and the last round's calls not yet seen by the others
      expect(sharedRetries).toBeLessThanOrEqual(fleetAllowed + 6)
      expect(sharedRetries).toBeGreaterThanOrEqual(fleetAllowed - 3)
      // separate budgets each grant the floor: the fleet retries well above the shared figure
      expect(localRetries).toBe(3 * Math.floor(floor + 0.1 * CALLS))
      expect(localRetries).toBeGreaterThanOrEqual(sharedRetries + 10)
    }))

  it.scopedLive("its syncs with Redis are counted, and so are those Redis does not answer", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const name = "metered-budget"
      const syncs = (result: string) =>
        Effect.map(
          Metric.value(Metric.tagged(Metric.tagged(RedisRetryBudget.syncsCounter, "budget", name), "result", result)),
          (state) => state.count
        )
      yield* Layer.build(
        RedisRetryBudget.layer({ ...options, name, syncInterval: "20 millis" }).pipe(
          Layer.provide(RedisClient.layer({ connection: { path: server.socket } }))
        )
      )
      const until = (check: Effect.Effect<boolean>) =>
        Effect.gen(function*() {
          for (let i = 0; i < 500 && !(yield* check); i++) yield* Effect.sleep("10 millis")
          return yield* check
        })
      expect(yield* until(Effect.map(syncs("ok"), (n) => n >= 2))).toBe(true)
      expect(yield* syncs("unreachable")).toBe(0)
      yield* server.kill
      expect(yield* until(Effect.map(syncs("unreachable"), (n) => n >= 1))).toBe(true)
    }))

  it.scopedLive("a sync that runs late keeps the fleet's totals: the process does not fall back to a fresh local floor", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const [a, b] = yield* Effect.all([0, 1].map(() => sharedOn(server.socket)))
      const until = (check: Effect.Effect<boolean>) =>
        Effect.gen(function*() {
          for (let i = 0; i < 500 && !(yield* check); i++) yield* Effect.sleep("10 millis")
          return yield* check
        })
      // b spends the fleet's floor of 10 (no calls: the ratio adds nothing), its share at each sync
      let spent = 0
      for (let i = 0; i < 500 && spent < floor; i++) {
        if (yield* b.tryWithdraw) spent++
        else yield* Effect.sleep("10 millis")
      }
      expect(spent).toBe(floor)
      expect(yield* until(Effect.map(a.snapshot, (s) => s.retries === floor))).toBe(true)
      // a's caller reads a clock one second ahead of its sync fiber, as when the event loop was
      // too busy to sync: Redis answered the last sync, so the fleet's totals still decide
      const clock = yield* Effect.clock
      const late: Clock.Clock = {
        [Clock.ClockTypeId]: Clock.ClockTypeId,
        unsafeCurrentTimeMillis: () => clock.unsafeCurrentTimeMillis() + 1000,
        currentTimeMillis: Effect.map(clock.currentTimeMillis, (t) => t + 1000),
        unsafeCurrentTimeNanos: () => clock.unsafeCurrentTimeNanos() + 1_000_000_000n,
        currentTimeNanos: Effect.map(clock.currentTimeNanos, (t) => t + 1_000_000_000n),
        sleep: (duration) => clock.sleep(duration)
      }
      expect(yield* Effect.withClock(a.tryWithdraw, late)).toBe(false)
      expect(yield* Effect.withClock(a.snapshot, late)).toMatchObject({ retries: floor, available: 0 })
    }))
})
