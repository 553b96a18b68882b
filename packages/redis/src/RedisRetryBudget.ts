/**
 * A `RetryBudget` shared by a fleet through Redis: the ratio of retries to calls holds across
 * every process that uses the same budget name, and the floor of retries always allowed is
 * counted once for the fleet instead of once per replica. With `floorMode: "minimum"` the floor
 * is the fleet's minimum rather than an extra: a fleet whose calls reach `floor / ratio` retries
 * `ratio` of them, where separate budgets would each still grant their own floor.
 *
 * Every process decides locally (a withdrawal never waits on Redis): it counts its own calls
 * and retries and adds them to the fleet's totals as last read. Every `syncInterval` a
 * background fiber adds its counts to per-bucket counters in Redis (one Lua script) and reads
 * back the fleet's totals over the window and how many processes share the budget. Between two
 * syncs a process does not see the other processes' retries, so it spends at most its share of
 * what the fleet had left (the shares add up to it) plus the ratio of its own new calls
 * (measured in docs/distributed.md). When Redis has not answered a sync for three intervals
 * (and at least a second: a sync waits that long for its answer), each process falls back to a local budget with the same options.
 *
 * @since 0.1.0
 */
import { RetryBudget } from "@bulwark/core"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import type * as Scope from "effect/Scope"
import * as RedisClient from "./RedisClient.js"

/**
 * Options of a shared budget: the core budget's options, plus where and how often it syncs.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends RetryBudget.Options {
  /** Prefix of the keys. Default: `"bulwark:"`. */
  readonly prefix?: string | undefined
  /** How often counts are exchanged with Redis. Default: 100 milliseconds. */
  readonly syncInterval?: Duration.DurationInput | undefined
}

const BUCKETS = 10

/**
 * Exchanges of a shared budget's counts with Redis, by `budget` and `result` (`ok`, or
 * `unreachable` when Redis did not answer in time: the process then decides on a local budget
 * once the fleet's totals are older than three sync intervals, and at least a second).
 *
 * @since 0.1.0
 * @category metrics
 */
export const syncsCounter = Metric.counter("bulwark_redis_budget_syncs_total", {
  description: "Exchanges of a shared retry budget's counts with Redis, by result",
  incremental: true
})

/**
 * Adds a process's counts to the current bucket and returns the fleet's totals over the window,
 * how many processes synced within the last `ARGV[8]` ms (this one included) and this one's rank
 * among their ids.
 * KEYS[1] the key prefix; ARGV: bucket, calls, retries, bucket count, bucket millis, process id,
 * now, liveness millis.
 *
 * @since 0.1.0
 * @category internals
 */
export const syncScript = `
local members = KEYS[1] .. ':p'
local now = tonumber(ARGV[7])
redis.call('ZADD', members, now, ARGV[6])
redis.call('ZREMRANGEBYSCORE', members, '-inf', now - tonumber(ARGV[8]))
redis.call('PEXPIRE', members, ARGV[8])
local processes = redis.call('ZCARD', members)
local rank = 0
for _, id in ipairs(redis.call('ZRANGE', members, 0, -1)) do
  if id < ARGV[6] then rank = rank + 1 end
end
local bucket = tonumber(ARGV[1])
local n = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5]) * (n + 1)
local c = KEYS[1] .. ':c:' .. bucket
local r = KEYS[1] .. ':r:' .. bucket
if tonumber(ARGV[2]) > 0 then redis.call('INCRBY', c, ARGV[2]); redis.call('PEXPIRE', c, ttl) end
if tonumber(ARGV[3]) > 0 then redis.call('INCRBY', r, ARGV[3]); redis.call('PEXPIRE', r, ttl) end
local calls, retries = 0, 0
for i = bucket - n + 1, bucket do
  calls = calls + tonumber(redis.call('GET', KEYS[1] .. ':c:' .. i) or '0')
  retries = retries + tonumber(redis.call('GET', KEYS[1] .. ':r:' .. i) or '0')
end
return {calls, retries, processes, rank}
`

/**
 * Makes a shared budget; needs a `RedisClient`. The sync fiber ends with the scope, after a last
 * sync of what is left.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<RetryBudget.RetryBudget, never, Scope.Scope | RedisClient.RedisClient> =>
  Effect.gen(function*() {
    // validates the shared options the same way (a defect naming the field)
    const local = RetryBudget.unsafeMake(options)
    const name = local.name
    const ratio = local.ratio
    const floor = (options.minRetriesPerSecond ?? 10) *
      (Duration.toMillis(Duration.decode(options.window ?? Duration.seconds(10))) / 1000)
    const windowMillis = Duration.toMillis(Duration.decode(options.window ?? Duration.seconds(10)))
    const bucketMillis = windowMillis / BUCKETS
    const decoded = Duration.decodeUnknown(options.syncInterval ?? "100 millis")
    const syncMillis = Option.isSome(decoded) ? Duration.toMillis(decoded.value) : NaN
    if (!(syncMillis > 0) || !Number.isFinite(syncMillis)) {
      throw new Error(`RedisRetryBudget "${name}": \`syncInterval\` must be a positive, finite duration`)
    }
    const key = `${options.prefix ?? "bulwark:"}budget:{${name}}`
    const redis = yield* RedisClient.RedisClient
    redis.client.defineCommand("bulwarkBudgetSync", { numberOfKeys: 1, lua: syncScript })
    const sync = redis.client as unknown as {
      bulwarkBudgetSync: (...args: Array<string | number>) => Promise<[number, number, number, number]>
    }
    const processId = (yield* Random.nextIntBetween(0, 2 ** 31 - 1)).toString(36)
    const liveness = Math.max(3 * syncMillis, 1000)

    // counts not yet added to Redis, and the fleet's totals as last read
    let unsyncedCalls = 0
    let unsyncedRetries = 0
    let fleetCalls = 0
    let fleetRetries = 0
    // this process's share of what the fleet had left at the last sync: until the next one it does
    // not see the others' retries, so it spends at most that share plus the ratio of its own new
    // calls
    let share = Number.POSITIVE_INFINITY

    // whether the last sync was answered, and since when a sync has been waiting for its answer:
    // the totals count as stale when Redis has not answered for three intervals (at least the second
    // a sync waits for its answer, so that a slow answer still counts), not when the sync
    // fiber itself ran late (a busy event loop), for the share above still bounds this process
    let reachable = false
    let asking: number | undefined = undefined
    const fresh = (now: number) => reachable && (asking === undefined || now - asking <= liveness)
    const minimum = options.floorMode === "minimum"
    const allowedBy = (calls: number) => Math.floor(minimum ? Math.max(floor, ratio * calls) : floor + ratio * calls)
    const allowed = () => allowedBy(fleetCalls + unsyncedCalls)

    const syncOnce = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const calls = unsyncedCalls
      const retries = unsyncedRetries
      asking = now
      const reply = yield* Effect.tryPromise(() =>
        sync.bulwarkBudgetSync(
          key,
          Math.floor(now / bucketMillis),
          calls,
          retries,
          BUCKETS,
          bucketMillis,
          processId,
          now,
          liveness
        )
      ).pipe(Effect.timeout(Duration.millis(Math.max(syncMillis, 1000))), Effect.option)
      const result = Option.isSome(reply) ? "ok" : "unreachable"
      yield* Metric.increment(Metric.tagged(Metric.tagged(syncsCounter, "budget", name), "result", result))
      asking = undefined
      reachable = Option.isSome(reply)
      if (Option.isNone(reply)) return
      unsyncedCalls -= calls
      unsyncedRetries -= retries
      fleetCalls = Number(reply.value[0])
      fleetRetries = Number(reply.value[1])
      // the shares add up to what the synced calls leave: the remainder goes one each to some of
      // the processes, by rank, turning every interval so that none is left out (the calls made
      // since this sync began add their ratio to this process's share alone, in tryWithdraw)
      const processes = Math.max(1, Number(reply.value[2]))
      const left = Math.max(0, allowedBy(fleetCalls) - fleetRetries)
      const turn = (Number(reply.value[3]) + Math.floor(now / syncMillis)) % processes
      share = Math.floor(left / processes) + (turn < left % processes ? 1 : 0)
    })
    yield* Effect.addFinalizer(() => syncOnce)
    yield* syncOnce.pipe(
      Effect.zipRight(Effect.sleep(Duration.millis(syncMillis))),
      Effect.forever,
      Effect.interruptible,
      Effect.forkScoped
    )

    const exhausted = Metric.increment(Metric.tagged(RetryBudget.exhaustedCounter, "budget", name))

    const budget: RetryBudget.RetryBudget = {
      name,
      ratio,
      deposit: Effect.zipRight(
        local.deposit,
        Effect.sync(() => {
          unsyncedCalls++
        })
      ),
      tryWithdraw: Effect.flatMap(Clock.currentTimeMillis, (now) => {
        if (!fresh(now)) {
          // Redis away: a local budget decides, and what it grants is added to the fleet later
          return Effect.tap(local.tryWithdraw, (ok) =>
            Effect.sync(() => {
              if (ok) unsyncedRetries++
            }))
        }
        return Effect.sync(() => {
          if (fleetRetries + unsyncedRetries + 1 > allowed()) return false
          if (unsyncedRetries + 1 > share + ratio * unsyncedCalls) return false
          unsyncedRetries++
          return true
        }).pipe(Effect.tap((ok) => ok ? Effect.ignore(local.tryWithdraw) : exhausted))
      }),
      snapshot: Effect.flatMap(Clock.currentTimeMillis, (now) =>
        fresh(now)
          ? Effect.succeed({
            name,
            calls: fleetCalls + unsyncedCalls,
            retries: fleetRetries + unsyncedRetries,
            available: Math.max(0, allowed() - fleetRetries - unsyncedRetries)
          })
          : local.snapshot)
    }
    return budget
  })

/**
 * Provides a shared budget as the `RetryBudget` service (needs a `RedisClient`).
 *
 * @example
 * ```ts
 * import { RedisClient, RedisRetryBudget } from "@bulwark/redis"
 * import { Layer } from "effect"
 *
 * const Budget = RedisRetryBudget.layer({ name: "payments", ratio: 0.1 }).pipe(
 *   Layer.provide(RedisClient.layer({ url: "redis://redis:6379" }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<RetryBudget.RetryBudget, never, RedisClient.RedisClient> =>
  Layer.scoped(RetryBudget.RetryBudget, make(options))
