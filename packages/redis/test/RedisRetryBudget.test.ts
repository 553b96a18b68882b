import { RetryBudget } from "@bulwark/core"
import { RedisClient, RedisRetryBudget } from "@bulwark/redis"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Clock, Duration, Effect, Exit, Layer, Metric, Random, Scope, TestClock } from "effect"
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
      const late = shifted(yield* Effect.clock, 1000)
      expect(yield* Effect.withClock(a.tryWithdraw, late)).toBe(false)
      expect(yield* Effect.withClock(a.snapshot, late)).toMatchObject({ retries: floor, available: 0 })
    }))
})

/** Fleet options: a floor of 10 retries over the window, syncs every 1.5 s, stale after 4.5 s. */
const fleetOptions = (name: string) =>
  ({ name, ratio: 0.1, minRetriesPerSecond: 1, window: "10 seconds", syncInterval: "1500 millis" }) as const

/** A process of the fleet on `client` whose id is `id` in base 36: the ids order the processes' ranks. */
const member = (client: RedisClient.Service, id: number, budgetOptions: RedisRetryBudget.Options) =>
  RedisRetryBudget.make(budgetOptions).pipe(
    Effect.provideService(RedisClient.RedisClient, client),
    Effect.withRandom(Random.fixed([id]))
  )

/** A Redis reply arrives on the event loop, which a TestClock step does not wait for. */
const realPause = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 5)))

const syncsOf = (name: string, result: string) =>
  Effect.map(
    Metric.value(Metric.tagged(Metric.tagged(RedisRetryBudget.syncsCounter, "budget", name), "result", result)),
    (state) => state.count
  )

/** How many syncs the processes of budget `name` have finished, answered or not. */
const finished = (name: string) =>
  Effect.zipWith(syncsOf(name, "ok"), syncsOf(name, "unreachable"), (ok, unreachable) => ok + unreachable)

/** Waits until the processes of budget `name` have finished `n` syncs in all. */
const syncedTimes = (name: string, n: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < 2000 && (yield* finished(name)) < n; i++) yield* realPause
    expect(yield* finished(name)).toBe(n)
  })

/** Withdraws until the budget refuses; returns how many it granted. */
const drain = (budget: RetryBudget.RetryBudget) =>
  Effect.gen(function*() {
    let granted = 0
    while (granted < 100 && (yield* budget.tryWithdraw)) granted++
    return granted
  })

/** The test clock moved by `offsetMillis`, as read by a caller whose clock differs from the sync fiber's. */
const shifted = (clock: Clock.Clock, offsetMillis: number): Clock.Clock => ({
  [Clock.ClockTypeId]: Clock.ClockTypeId,
  unsafeCurrentTimeMillis: () => clock.unsafeCurrentTimeMillis() + offsetMillis,
  currentTimeMillis: Effect.map(clock.currentTimeMillis, (t) => t + offsetMillis),
  unsafeCurrentTimeNanos: () => clock.unsafeCurrentTimeNanos() + BigInt(offsetMillis) * 1_000_000n,
  currentTimeNanos: Effect.map(clock.currentTimeNanos, (t) => t + BigInt(offsetMillis) * 1_000_000n),
  sleep: (duration) => clock.sleep(duration)
})

/**
 * Stops the Redis server's process (SIGSTOP) for the scope: it keeps its connections and answers
 * nothing until it is continued when the scope closes.
 */
const frozen = (client: RedisClient.Service) =>
  Effect.gen(function*() {
    const info = yield* Effect.promise(() => client.client.info("server"))
    const pid = Number(/process_id:(\d+)/.exec(info)![1])
    yield* Effect.acquireRelease(
      Effect.sync(() => process.kill(pid, "SIGSTOP")),
      () => Effect.sync(() => process.kill(pid, "SIGCONT"))
    )
  })

describe.skipIf(!hasRedisServer())("RedisRetryBudget: shares, liveness and keys", () => {
  it.scoped("the fleet's allowance is split into shares that add up to it, the remainder turning by rank every interval", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const client = yield* RedisClient.make({ connection: { path: server.socket } })
      const name = "shares"
      // ids "a", "b", "c": ranks 0, 1 and 2; each joins after the one before has synced
      const a = yield* member(client, 10, fleetOptions(name))
      yield* syncedTimes(name, 1)
      const b = yield* member(client, 11, fleetOptions(name))
      yield* syncedTimes(name, 2)
      const c = yield* member(client, 12, fleetOptions(name))
      yield* syncedTimes(name, 3)
      // interval 1: 10 left for 3 processes, 3 each and the remainder's 1 to rank (3 - 1) % 3 = 2
      yield* TestClock.adjust("1500 millis")
      yield* syncedTimes(name, 6)
      expect(yield* drain(a)).toBe(3)
      expect(yield* drain(c)).toBe(4)
      // interval 2 adds a's and c's 7 retries to Redis; at interval 3 every process has read them:
      // 3 left, 1 each
      yield* TestClock.adjust("1500 millis")
      yield* syncedTimes(name, 9)
      yield* TestClock.adjust("1500 millis")
      yield* syncedTimes(name, 12)
      expect(yield* b.snapshot).toEqual({ name, calls: 0, retries: 7, available: 3 })
      expect(yield* drain(b)).toBe(1)
      expect(yield* drain(a)).toBe(1)
      expect(yield* drain(c)).toBe(1)
      // each drain ended on one refusal of the shared budget, counted like a local budget's
      const exhausted = Metric.tagged(RetryBudget.exhaustedCounter, "budget", name)
      expect((yield* Metric.value(exhausted)).count).toBe(5)
    }))

  it.scoped("floorMode minimum: the fleet's floor is a minimum, not an extra, and its new calls add their ratio past it", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const client = yield* RedisClient.make({ connection: { path: server.socket } })
      const name = "minimum"
      const budget = yield* member(client, 10, { ...fleetOptions(name), floorMode: "minimum" })
      yield* syncedTimes(name, 1)
      // 50 calls' 10% (5) is below the floor of 10: the floor decides
      for (let i = 0; i < 50; i++) yield* budget.deposit
      expect(yield* budget.snapshot).toEqual({ name, calls: 50, retries: 0, available: 10 })
      expect(yield* drain(budget)).toBe(10)
      expect(yield* budget.snapshot).toEqual({ name, calls: 50, retries: 10, available: 0 })
      yield* TestClock.adjust("1500 millis")
      yield* syncedTimes(name, 2)
      // 200 calls: their 10% (20) is past the floor; 10 of it is spent
      for (let i = 0; i < 150; i++) yield* budget.deposit
      expect(yield* budget.snapshot).toEqual({ name, calls: 200, retries: 10, available: 10 })
      expect(yield* drain(budget)).toBe(10)
      expect(yield* budget.snapshot).toEqual({ name, calls: 200, retries: 20, available: 0 })
    }))

  it.scoped("the floor is added to the ratio of the fleet's calls, those not yet synced included", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const client = yield* RedisClient.make({ connection: { path: server.socket } })
      const name = "added"
      const budget = yield* member(client, 10, fleetOptions(name))
      yield* syncedTimes(name, 1)
      for (let i = 0; i < 20; i++) yield* budget.deposit
      expect(yield* budget.snapshot).toEqual({ name, calls: 20, retries: 0, available: 12 })
      expect(yield* drain(budget)).toBe(12)
      expect(yield* budget.snapshot).toEqual({ name, calls: 20, retries: 12, available: 0 })
    }))

  it.scoped("while a sync waits for Redis, the fleet's totals decide for three intervals; then the local budget, charged with what the fleet granted", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const client = yield* RedisClient.make({ connection: { path: server.socket } })
      const name = "liveness"
      yield* TestClock.setTime(10_000)
      // b, alone, spends the fleet's floor; a joins once Redis has it
      const b = yield* member(client, 11, fleetOptions(name))
      yield* syncedTimes(name, 1)
      expect(yield* drain(b)).toBe(10)
      yield* TestClock.adjust("1500 millis")
      yield* syncedTimes(name, 2)
      const a = yield* member(client, 10, fleetOptions(name))
      yield* syncedTimes(name, 3)
      const fleet = { name, calls: 0, retries: 10, available: 0 }
      const local = { name, calls: 0, retries: 0, available: 10 }
      expect(yield* a.tryWithdraw).toBe(false)
      expect(yield* a.snapshot).toEqual(fleet)
      const clock = yield* Effect.clock
      yield* Effect.scoped(Effect.gen(function*() {
        yield* frozen(client)
        // both syncs of 11.5 s + 1.5 s wait for Redis; past 4.5 s of waiting, a falls back to its local budget
        yield* TestClock.adjust("1500 millis")
        const pastLiveness = shifted(clock, 4501)
        for (let i = 0; i < 2000 && (yield* Effect.withClock(a.snapshot, pastLiveness)).retries !== 0; i++) {
          yield* realPause
        }
        expect(yield* a.snapshot).toEqual(fleet)
        expect(yield* Effect.withClock(a.snapshot, shifted(clock, 1001))).toEqual(fleet)
        expect(yield* Effect.withClock(a.snapshot, shifted(clock, 4500))).toEqual(fleet)
        expect(yield* Effect.withClock(a.tryWithdraw, shifted(clock, 4500))).toBe(false)
        expect(yield* Effect.withClock(a.snapshot, pastLiveness)).toEqual(local)
        expect(yield* Effect.withClock(a.tryWithdraw, pastLiveness)).toBe(true)
        // b's local budget was charged with the 10 retries the fleet granted it
        expect(yield* Effect.withClock(b.tryWithdraw, pastLiveness)).toBe(false)
        // a sync waits up to its interval (1.5 s) for Redis: after 1 s it still waits
        yield* TestClock.adjust("1 second")
        for (let i = 0; i < 20; i++) yield* realPause
        expect(yield* syncsOf(name, "unreachable")).toBe(0)
        expect(yield* a.snapshot).toEqual({ name, calls: 0, retries: 11, available: 0 })
      }))
      yield* syncedTimes(name, 5)
      expect(yield* syncsOf(name, "unreachable")).toBe(0)
    }))

  it.scoped("calls made while a sync waits for Redis add their ratio once, to this process's share", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const client = yield* RedisClient.make({ connection: { path: server.socket } })
      const name = "in-flight"
      const b = yield* member(client, 11, fleetOptions(name))
      yield* syncedTimes(name, 1)
      for (let i = 0; i < 6; i++) expect(yield* b.tryWithdraw).toBe(true)
      yield* TestClock.adjust("1500 millis")
      yield* syncedTimes(name, 2)
      const a = yield* member(client, 10, fleetOptions(name))
      yield* syncedTimes(name, 3)
      const clock = yield* Effect.clock
      yield* Effect.scoped(Effect.gen(function*() {
        yield* frozen(client)
        yield* TestClock.adjust("1500 millis")
        // a's sync has started once a caller 4.5 s ahead sees the totals as stale
        for (let i = 0; i < 2000 && (yield* Effect.withClock(a.snapshot, shifted(clock, 4501))).retries !== 0; i++) {
          yield* realPause
        }
        for (let i = 0; i < 20; i++) yield* a.deposit
      }))
      yield* syncedTimes(name, 5)
      // the synced calls allow 10, 6 spent: 4 left, 2 each; a's 20 calls made during the sync add
      // 2 to its share, once (the fleet's rule, 10 + 20 * 10% = 12, would allow 6)
      expect(yield* a.snapshot).toEqual({ name, calls: 20, retries: 6, available: 6 })
      expect(yield* drain(a)).toBe(4)
    }))

  it.scoped("until Redis answers a first sync, the local budget decides, and counts its refusals", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const client = yield* RedisClient.make({ connection: { path: server.socket } })
      const name = "first-sync"
      const scope = yield* Effect.scope
      const exhausted = Metric.counter("bulwark_retry_budget_exhausted_total", {
        description: "Retries refused because a retry budget was spent",
        incremental: true
      }).pipe(Metric.tagged("budget", name))
      yield* Effect.scoped(Effect.gen(function*() {
        yield* frozen(client)
        const budget = yield* member(client, 10, { ...fleetOptions(name), ratio: 0, minRetriesPerSecond: 0 }).pipe(
          Scope.extend(scope)
        )
        expect(yield* budget.tryWithdraw).toBe(false)
        expect((yield* Metric.value(exhausted)).count).toBe(1)
      }))
      yield* syncedTimes(name, 1)
    }))

  it.scoped("keys live under the prefix, default \"bulwark:\", in the window's 1 s buckets; process ids are base 36 below 2^31 - 1", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const client = yield* RedisClient.make({ connection: { path: server.socket } })
      yield* TestClock.setTime(12_345)
      const plain = yield* member(client, 2 ** 40, fleetOptions("keyed"))
      const prefixed = yield* member(client, 11, { ...fleetOptions("keyed"), prefix: "app:" })
      yield* syncedTimes("keyed", 2)
      yield* plain.deposit
      yield* plain.deposit
      expect(yield* plain.tryWithdraw).toBe(true)
      yield* prefixed.deposit
      yield* TestClock.adjust("1500 millis")
      yield* syncedTimes("keyed", 4)
      const keys = yield* Effect.promise(() => client.client.keys("*"))
      expect(keys.sort()).toEqual([
        "app:budget:{keyed}:c:13",
        "app:budget:{keyed}:p",
        "bulwark:budget:{keyed}:c:13",
        "bulwark:budget:{keyed}:p",
        "bulwark:budget:{keyed}:r:13"
      ])
      expect(yield* Effect.promise(() => client.client.get("bulwark:budget:{keyed}:c:13"))).toBe("2")
      expect(yield* Effect.promise(() => client.client.zrange("bulwark:budget:{keyed}:p", 0, -1, "WITHSCORES")))
        .toEqual([(2 ** 31 - 2).toString(36), "13845"])
      expect(yield* Effect.promise(() => client.client.zrange("app:budget:{keyed}:p", 0, -1))).toEqual(["b"])
    }))

  it.scoped("syncs count in bulwark_redis_budget_syncs_total, a counter that only goes up, by budget and result", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const client = yield* RedisClient.make({ connection: { path: server.socket } })
      yield* member(client, 10, fleetOptions("counted"))
      yield* syncedTimes("counted", 1)
      yield* TestClock.adjust("1500 millis")
      yield* syncedTimes("counted", 2)
      // the metric's key is its name, description, incrementality and tags: all of them must match
      const counter = (result: string) =>
        Metric.counter("bulwark_redis_budget_syncs_total", {
          description: "Exchanges of a shared retry budget's counts with Redis, by result",
          incremental: true
        }).pipe(Metric.tagged("budget", "counted"), Metric.tagged("result", result))
      expect((yield* Metric.value(counter("ok"))).count).toBe(2)
      expect((yield* Metric.value(counter("unreachable"))).count).toBe(0)
      // it only counts up: a negative update is ignored
      yield* Metric.incrementBy(counter("ok"), -1)
      expect((yield* Metric.value(counter("ok"))).count).toBe(2)
    }))

  it.scoped("syncInterval must be a positive, finite duration", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const client = yield* RedisClient.make({ connection: { path: server.socket } })
      const defect = (syncInterval: RedisRetryBudget.Options["syncInterval"]) =>
        Effect.map(
          Effect.exit(member(client, 10, { name: "checked", syncInterval })),
          (exit) => Exit.isFailure(exit) ? (Cause.squash(exit.cause) as Error).message : "made"
        )
      const message = "RedisRetryBudget \"checked\": `syncInterval` must be a positive, finite duration"
      expect(yield* defect(0)).toBe(message)
      expect(yield* defect("-5 millis")).toBe(message)
      expect(yield* defect(Infinity)).toBe(message)
      expect(yield* defect("often" as Duration.DurationInput)).toBe(message)
      expect(yield* defect("1 millis")).toBe("made")
    }))
})
