/**
 * A `BreakerStore` shared by every process that reaches one Redis: the same breakers, given this
 * Layer instead of the in-memory store, coordinate a fleet.
 *
 * - Every process decides on its own state: a call never waits on Redis.
 * - Each transition a breaker publishes is written by one Lua script that checks the version the
 *   process last saw (a writer that raced another is re-based on top of it, so no transition is
 *   lost and every process ends on the one with the highest version), then broadcast on a pub/sub
 *   channel; the other processes apply it, open-duration position included.
 * - Half-open probing is coordinated: when a breaker opens fleet-wide, `fleetProbes` processes
 *   win a probe slot; the others stay open for `probeLease` longer, so a recovering dependency
 *   sees `fleetProbes × halfOpenProbes` probes, not that many per replica.
 * - `quorum`: an open is shared only once `quorum` breakers (processes) reported it within
 *   `quorumWindow`; until then it stays local to the breakers that opened.
 * - Keys carry `prefix` and expire `ttl` after their last write.
 * - When Redis is unreachable, nothing fails: breakers run on local state, the client reports
 *   degraded, and when it comes back each process catches up with what it missed and writes
 *   what it did meanwhile.
 *
 * @since 0.1.0
 */
import { BreakerStore } from "@bulwark/core"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as State from "./internal/breakerStoreState.js"
import { RedisClient } from "./RedisClient.js"

/**
 * Options of the store.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Prefix of every key and of the channel. Default: `"bulwark:"`. */
  readonly prefix?: string | undefined
  /** Keys expire this long after their last write. Default: 1 day. */
  readonly ttl?: Duration.DurationInput | undefined
  /**
   * Processes that may probe a half-open dependency at once, fleet-wide. Default: 1. Each
   * admits its breaker's `halfOpenProbes`.
   */
  readonly fleetProbes?: number | undefined
  /**
   * How long the processes that did not win a probe slot stay open after the winners half-open
   * (the winners close or re-open the fleet meanwhile; past it, a vanished prober is replaced).
   * Default: 5 seconds.
   */
  readonly probeLease?: Duration.DurationInput | undefined
  /**
   * Breakers (one a process) that must report a dependency failing within `quorumWindow` before
   * it opens fleet-wide. Default: 1 (the first open is shared at once).
   */
  readonly quorum?: number | undefined
  /** The window of `quorum`. Default: 30 seconds. */
  readonly quorumWindow?: Duration.DurationInput | undefined
  /**
   * How often each process compares its breakers with the stored state, besides after every
   * reconnect (a message lost on the way is caught up within it). Default: 10 seconds.
   */
  readonly syncInterval?: Duration.DurationInput | undefined
  /** The longest a write to Redis may take before it counts as failed. Default: 1 second. */
  readonly commandTimeout?: Duration.DurationInput | undefined
}

/**
 * The Lua script that writes a transition: compare-and-set on the version, quorum votes, probe
 * slots for the opener, expiry and broadcast, in one atomic step.
 *
 * Replies `{1, version}` written, `{0, current}` version conflict, `{2, votes}` quorum vote recorded
 * (not shared), `{3, 0}` local-only transition (not shared).
 *
 * @since 0.1.0
 * @category internals
 */
export const publishScript = `
local cur = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if cur ~= tonumber(ARGV[1]) then return {0, cur} end
local fleet = redis.call('HGET', KEYS[1], 'st') or 'Closed'
local quorum = tonumber(ARGV[7])
local state = ARGV[3]
if quorum > 1 and fleet == 'Closed' then
  if state == 'Open' then
    local now = tonumber(ARGV[5])
    redis.call('ZADD', KEYS[2], now, ARGV[4])
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[8]))
    redis.call('PEXPIRE', KEYS[2], ARGV[6])
    local votes = redis.call('ZCARD', KEYS[2])
    if votes < quorum then return {2, votes} end
    redis.call('DEL', KEYS[2])
  elseif state == 'HalfOpen' or state == 'Closed' then
    redis.call('ZREM', KEYS[2], ARGV[4])
    return {3, 0}
  end
end
local v = cur + 1
redis.call('HSET', KEYS[1], 'v', v, 's', ARGV[2], 'st', state)
if state == 'Open' then redis.call('HSET', KEYS[1], 'pe', v, 'pc', 1) end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PUBLISH', ARGV[9], v .. '|' .. ARGV[10] .. '|' .. ARGV[2])
return {1, v}
`

/**
 * The Lua script that claims a probe slot for the open written at version `ARGV[1]`: replies 1
 * when granted, 0 when the fleet's slots are taken, -1 when that open is no longer current.
 *
 * @since 0.1.0
 * @category internals
 */
export const claimScript = `
if redis.call('HGET', KEYS[1], 'pe') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then return -1 end
local pc = tonumber(redis.call('HGET', KEYS[1], 'pc') or '0')
if pc >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'pc', pc + 1)
return 1
`

/**
 * Transitions this process wrote (or tried to write), by `breaker` and `result`: `written`,
 * `conflict` (another process wrote first; the write is re-based and tried again), `vote` (an
 * open counted towards the quorum, not shared yet), `local` (a transition the quorum keeps
 * local), `unreachable` (Redis did not answer; kept for when it is back).
 *
 * @since 0.1.0
 * @category metrics
 */
export const writesCounter = Metric.counter("bulwark_redis_breaker_writes_total", {
  description: "Breaker transitions written to Redis, by result",
  incremental: true
})

/**
 * Transitions of other processes applied to this process's breakers, by `breaker`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const receivedCounter = Metric.counter("bulwark_redis_breaker_received_total", {
  description: "Breaker transitions received from other processes and applied",
  incremental: true
})

/**
 * Claims of a fleet-wide probe slot, by `breaker` and `result`: `granted`, `taken` (the fleet's
 * slots are in use), `stale` (that open is no longer current), `unreachable`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const probeClaimsCounter = Metric.counter("bulwark_redis_breaker_probe_claims_total", {
  description: "Claims of a fleet-wide half-open probe slot, by result",
  incremental: true
})

/**
 * Re-synchronisations with the stored state (after a reconnect, and every `syncInterval`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const resyncsCounter = Metric.counter("bulwark_redis_breaker_resyncs_total", {
  description: "Comparisons of the local breakers with the state stored in Redis",
  incremental: true
})

const count = (counter: Metric.Metric.Counter<number>, tags: Record<string, string>) =>
  Metric.increment(Object.entries(tags).reduce((m, [k, v]) => Metric.tagged(m, k, v), counter))

const positive = (field: string, value: number | undefined, fallback: number): number => {
  const v = value ?? fallback
  if (!Number.isInteger(v) || v < 1) {
    throw new Error(`RedisBreakerStore: \`${field}\` must be an integer >= 1, got ${v}`)
  }
  return v
}

const millis = (field: string, value: Duration.DurationInput | undefined, fallback: Duration.DurationInput): number => {
  const decoded = Duration.decodeUnknown(value ?? fallback)
  const ms = Option.isSome(decoded) ? Duration.toMillis(decoded.value) : NaN
  if (!(ms > 0) || !Number.isFinite(ms)) {
    throw new Error(`RedisBreakerStore: \`${field}\` must be a positive, finite duration`)
  }
  return ms
}

interface Entry extends State.Entry {
  /** The local breakers' subscriptions. */
  readonly queues: Set<Queue.Queue<BreakerStore.Snapshot>>
}

const STORE_ORIGIN = "@bulwark/redis"

const results: Record<State.Reply["_tag"], string> = {
  Unreachable: "unreachable",
  Conflict: "conflict",
  Written: "written",
  Vote: "vote",
  Local: "local"
}

/**
 * Makes the store; needs a `RedisClient`. Its subscription and background fibers end with the
 * scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<BreakerStore.BreakerStore, never, Scope.Scope | RedisClient> =>
  Effect.gen(function*() {
    const prefix = options.prefix ?? "bulwark:"
    const ttl = millis("ttl", options.ttl, "1 day")
    const fleetProbes = positive("fleetProbes", options.fleetProbes, 1)
    const probeLease = millis("probeLease", options.probeLease, "5 seconds")
    const quorum = positive("quorum", options.quorum, 1)
    const quorumWindow = millis("quorumWindow", options.quorumWindow, "30 seconds")
    const commandTimeout = millis("commandTimeout", options.commandTimeout, "1 second")
    const syncInterval = Duration.millis(millis("syncInterval", options.syncInterval, "10 seconds"))
    const channel = `${prefix}breaker`
    const stateKey = (breaker: string) => `${prefix}breaker:{${breaker}}`
    const votesKey = (breaker: string) => `${prefix}breaker:{${breaker}}:votes`

    const redis = yield* RedisClient
    const storeId = (yield* Random.nextIntBetween(0, 2 ** 31 - 1)).toString(36)
    const scope = yield* Effect.scope
    const handBack = Duration.millis(2)
    const client = redis.client
    client.defineCommand("bulwarkBreakerPublish", { numberOfKeys: 2, lua: publishScript })
    client.defineCommand("bulwarkBreakerClaim", { numberOfKeys: 1, lua: claimScript })
    const run = <A>(f: () => Promise<A>): Effect.Effect<Either.Either<A, unknown>> =>
      Effect.tryPromise(f).pipe(
        Effect.timeoutFail({ duration: commandTimeout, onTimeout: () => new Error("timeout") }),
        Effect.either
      )
    const call = client as unknown as {
      bulwarkBreakerPublish: (...args: Array<string | number>) => Promise<[number, number]>
      bulwarkBreakerClaim: (...args: Array<string | number>) => Promise<number>
    }

    const entries = new Map<string, Entry>()
    const entry = (breaker: string): Entry => {
      let e = entries.get(breaker)
      if (e === undefined) {
        e = { ...State.make(), queues: new Set() }
        entries.set(breaker, e)
      }
      return e
    }
    // the order of everything handed to the local breakers and of every write's outcome: a
    // breaker never takes a delivery ordered before what it published or took since
    let revision = 0
    const deliver = (e: Entry, snapshot: BreakerStore.Snapshot) => {
      const delivered = { ...snapshot, revision: ++revision }
      for (const q of e.queues) q.unsafeOffer(delivered)
    }

    const decodeJson = Schema.decodeUnknownOption(Schema.parseJson(BreakerStore.Snapshot))
    // a snapshot this release cannot read (bad JSON, another format version) is ignored; a
    // revision or a lease is this store's to give, never one read from Redis
    const decode = (json: string): Option.Option<BreakerStore.Snapshot> =>
      Option.map(decodeJson(json), ({ leaseUntil: _lease, revision: _revision, ...snapshot }) => snapshot)

    /**
     * Claims a probe slot for an open written at `version`. The local breakers are held open from
     * the start and released when the slot is granted (or when Redis cannot answer: nobody
     * coordinates then), so a slow answer cannot let them half-open meanwhile.
     */
    const claim = (breaker: string, version: number, snapshot: BreakerStore.Snapshot) =>
      Effect.gen(function*() {
        const e = entry(breaker)
        yield* hold(e, version, snapshot)
        const reply = yield* run(() => call.bulwarkBreakerClaim(stateKey(breaker), version, fleetProbes))
        // 1 granted, -1 that open is no longer current, Left: Redis did not answer. A stale open
        // keeps its hold: what replaced it (the probers half-opening, their verdict, a newer open
        // with its own claim) comes by message or at the next resync
        if (Either.isLeft(reply) || reply.right === 1) yield* release(e, version, snapshot)
        const result = Either.isLeft(reply)
          ? "unreachable"
          : reply.right === 1
          ? "granted"
          : reply.right === 0
          ? "taken"
          : "stale"
        yield* count(probeClaimsCounter, { breaker, result })
      })

    /**
     * Keeps the local breakers open while the fleet's probers work, until `probeLease` past the
     * open's end: they are told the lease's end (`leaseUntil`), which holds them whatever their
     * own open duration (an open of the count they are open for only moves its end). The probers'
     * verdict, or a transition of this process, ends it as any newer transition does.
     */
    const hold = (e: Entry, version: number, snapshot: BreakerStore.Snapshot) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const holdUntil = (snapshot.openUntil ?? now) + probeLease
        if (State.holding(e, version, false, now, holdUntil)) {
          deliver(e, { ...snapshot, openUntil: holdUntil, leaseUntil: holdUntil, origin: STORE_ORIGIN })
        }
      })

    /**
     * This process may probe after all (its claim was granted, or Redis cannot answer: nobody
     * coordinates then): the held breakers go back to the open's own end, unless a newer
     * transition followed the open meanwhile.
     */
    const release = (e: Entry, version: number, snapshot: BreakerStore.Snapshot) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        if (State.holding(e, version, false, now, (snapshot.openUntil ?? now) + probeLease)) {
          deliver(e, { ...snapshot, leaseUntil: now, origin: STORE_ORIGIN })
        }
      })

    /** Hands a delivery to the local breakers: counts it, and claims a probe slot for a foreign open. */
    const handOver = (breaker: string, e: Entry, version: number, delivery: State.Delivery) => {
      if (delivery._tag === "Ignore") return Effect.void
      deliver(e, delivery.snapshot)
      if (!delivery.foreign) return Effect.void
      return Effect.zipRight(
        count(receivedCounter, { breaker }),
        delivery.claim ? Effect.asVoid(Effect.forkIn(claim(breaker, version, delivery.snapshot), scope)) : Effect.void
      )
    }

    /** Applies a snapshot that arrived from Redis at `version`. */
    const receive = (breaker: string, version: number, snapshot: BreakerStore.Snapshot, writer: string) =>
      Effect.suspend(() => {
        const e = entries.get(breaker)
        if (e === undefined) return Effect.void
        return handOver(breaker, e, version, State.onMessage(e, version, snapshot, writer === storeId))
      })

    /** Hands `back` to the local breakers `handBack` later, if it is still due then. */
    const scheduleHandBack = (e: Entry, back: State.HandBack) =>
      Effect.asVoid(Effect.forkIn(
        Effect.zipRight(
          Effect.sleep(handBack),
          Effect.sync(() => {
            if (State.handBackNow(e, back)) deliver(e, back.snapshot)
          })
        ),
        scope
      ))

    /**
     * Ends a write: its outcome takes the next revision (what was delivered before it is older
     * than it; what arrived during it and is newer goes out again after it, as a hand-back).
     */
    const finish = (e: Entry, next: State.Next): Effect.Effect<number> => {
      const written = ++revision
      return next._tag === "Done" && next.handBack !== undefined
        ? Effect.as(scheduleHandBack(e, next.handBack), written)
        : Effect.succeed(written)
    }

    const write = (snapshot: BreakerStore.Snapshot): Effect.Effect<number> =>
      Effect.gen(function*() {
        const breaker = snapshot.breaker
        const e = entry(breaker)
        const json = JSON.stringify(BreakerStore.encodeSnapshot(snapshot))
        const now = yield* Clock.currentTimeMillis
        const w = State.beginWrite(e, snapshot)
        for (let attempt = 0; attempt < 16; attempt++) {
          const reply = yield* run(() =>
            call.bulwarkBreakerPublish(
              stateKey(breaker),
              votesKey(breaker),
              w.expected,
              json,
              snapshot.state,
              snapshot.origin,
              now,
              ttl,
              quorum,
              quorumWindow,
              channel,
              storeId
            )
          )
          const decoded: State.Reply = Either.isLeft(reply)
            ? { _tag: "Unreachable" }
            : reply.right[0] === 0
            ? { _tag: "Conflict", current: reply.right[1] }
            : reply.right[0] === 1
            ? { _tag: "Written", version: reply.right[1] }
            : reply.right[0] === 2
            ? { _tag: "Vote" }
            : { _tag: "Local" }
          yield* count(writesCounter, { breaker, result: results[decoded._tag] })
          const next = State.onReply(e, w, decoded, STORE_ORIGIN)
          if (next._tag === "Done") return yield* finish(e, next)
        }
        return yield* finish(e, State.giveUp(e, w))
      })

    /**
     * Reads the stored version and snapshot: `undefined` inside when there is no key, none when
     * Redis could not be read or holds what does not decode.
     */
    const read = (breaker: string) =>
      Effect.map(
        run(() => client.hmget(stateKey(breaker), "v", "s")),
        Either.match({
          onLeft: () => Option.none<readonly [number, BreakerStore.Snapshot] | undefined>(),
          onRight: ([v, s]) =>
            v === null || s === null
              ? Option.some(undefined)
              : Option.map(decode(s), (snapshot) => [Number(v), snapshot] as const)
        })
      )

    /** After an outage: catch up with what was missed, then write what happened meanwhile. */
    const resync = Effect.suspend(() =>
      Effect.zipRight(
        count(resyncsCounter, {}),
        Effect.forEach(
          Array.from(entries.keys()),
          (breaker) =>
            Effect.gen(function*() {
              const e = entry(breaker)
              const stored = yield* read(breaker)
              if (Option.isNone(stored)) return
              const next = State.onResync(e, stored.value)
              if (next._tag === "Write") return yield* Effect.asVoid(write(next.snapshot))
              if (next._tag === "CatchUp") yield* handOver(breaker, e, e.version, next.delivery)
            }),
          { discard: true }
        )
      )
    )

    // ----- subscription: one connection, one channel for every breaker
    const subscriber = yield* redis.duplicate
    const incoming = yield* Queue.unbounded<string>()
    const onMessage = (_channel: string, message: string) => incoming.unsafeOffer(message)
    subscriber.on("message", onMessage)
    yield* Effect.addFinalizer(() => Effect.sync(() => subscriber.off("message", onMessage)))
    // queued until connected when Redis is away; after each reconnect `onSubscriberReady` below
    // subscribes again
    const subscribed = subscriber.subscribe(channel).catch(() => undefined)
    yield* Effect.promise(() => subscribed).pipe(Effect.timeout(commandTimeout), Effect.ignore)
    yield* Queue.take(incoming).pipe(
      Effect.flatMap((message) => {
        const bar = message.indexOf("|")
        const bar2 = message.indexOf("|", bar + 1)
        const version = Number(message.slice(0, bar))
        const snapshot = decode(message.slice(bar2 + 1))
        return Option.isSome(snapshot)
          ? receive(snapshot.value.breaker, version, snapshot.value, message.slice(bar + 1, bar2))
          : Effect.void
      }),
      Effect.forever,
      Effect.interruptible,
      Effect.forkScoped
    )
    // re-synchronise when either connection is back (the subscriber once its subscription is
    // live again, so that nothing published after the sweep is missed), and every `syncInterval`
    const sync = yield* Queue.sliding<void>(1)
    const onSubscriberReady = () => {
      subscriber.subscribe(channel).then(() => sync.unsafeOffer(undefined), () => undefined)
    }
    subscriber.on("ready", onSubscriberReady)
    yield* Effect.addFinalizer(() => Effect.sync(() => subscriber.off("ready", onSubscriberReady)))
    const reconnected = yield* redis.reconnected
    yield* Queue.take(reconnected).pipe(
      Effect.flatMap(() => Queue.offer(sync, undefined)),
      Effect.forever,
      Effect.interruptible,
      Effect.forkScoped
    )
    yield* Queue.take(sync).pipe(
      Effect.timeout(syncInterval),
      Effect.ignore,
      Effect.zipRight(resync),
      Effect.forever,
      Effect.interruptible,
      Effect.forkScoped
    )

    // ----- the store
    const store: BreakerStore.BreakerStore = {
      load: (breaker) =>
        Effect.gen(function*() {
          const e = entry(breaker)
          const stored = yield* read(breaker)
          if (Option.isNone(stored) || stored.value === undefined) return Option.none()
          const [version, snapshot] = stored.value
          State.onLoad(e, version)
          if (snapshot.state === "HalfOpen") {
            // the fleet is probing: stay open meanwhile, until its verdict or the lease's end
            const now = yield* Clock.currentTimeMillis
            const open = {
              ...snapshot,
              state: "Open" as const,
              since: now,
              openUntil: now + probeLease,
              leaseUntil: now + probeLease,
              origin: STORE_ORIGIN
            }
            State.holding(e, version, false, now, now + probeLease)
            return Option.some(open)
          }
          if (snapshot.state === "Open") yield* Effect.forkIn(claim(breaker, version, snapshot), scope)
          return Option.some(snapshot)
        }),
      publish: (snapshot) => write(snapshot),
      subscribe: (breaker) =>
        Effect.gen(function*() {
          const e = entry(breaker)
          const q = yield* Effect.acquireRelease(
            Queue.unbounded<BreakerStore.Snapshot>(),
            (q) => Effect.zipRight(Effect.sync(() => e.queues.delete(q)), Queue.shutdown(q))
          )
          e.queues.add(q)
          return q
        })
    }
    return store
  })

/**
 * Provides the Redis store to the breakers made with it (needs a `RedisClient`).
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@bulwark/core"
 * import { RedisBreakerStore, RedisClient } from "@bulwark/redis"
 * import { Layer } from "effect"
 *
 * const Breakers = CircuitBreaker.layer({ name: "payments" }).pipe(
 *   Layer.provide(RedisBreakerStore.layer({ fleetProbes: 1 })),
 *   Layer.provide(RedisClient.layer({ url: "redis://redis:6379" }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<BreakerStore.BreakerStore, never, RedisClient> =>
  Layer.scoped(BreakerStore.BreakerStore, make(options))
