/**
 * The Redis connection the @bulwark/redis stores share: an ioredis client made from connection
 * options, a URL or an existing client, closed with its Layer. A client that cannot reach Redis
 * does not stop the process unless asked to (`failFast`): the stores run on local state, the
 * client reports itself degraded to `Health`, logs one warning per outage and reconnects with
 * backoff; the stores re-synchronise when it is back.
 *
 * @since 0.1.0
 */
import { Health } from "@bulwark/core"
import * as InternalDuration from "@bulwark/core/internal/duration"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import type { RedisOptions } from "ioredis"

/**
 * Redis could not be reached when the Layer started with `failFast: true`.
 *
 * @since 0.1.0
 * @category errors
 */
export class RedisConnectionError extends Schema.TaggedError<RedisConnectionError>()("RedisConnectionError", {
  /** Where the client tried to connect (host:port, socket path or URL without credentials). */
  target: Schema.String,
  /** What went wrong. */
  reason: Schema.String
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Cannot connect to Redis at ${this.target}: ${this.reason}`
  }
}

/**
 * Whether the connection is usable right now.
 *
 * @since 0.1.0
 * @category models
 */
export type Status = "up" | "degraded"

/**
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** The command connection. Commands fail at once while disconnected (no offline queue). */
  readonly client: Redis
  /** Where it connects, without credentials, for messages. */
  readonly target: string
  /** The connection's status now. */
  readonly status: Effect.Effect<Status>
  /**
   * A fresh connection with the same options (for pub/sub), closed with the scope. It does not
   * subscribe again by itself after a reconnect (ioredis would, with a promise nobody handles: a
   * connection closed meanwhile rejects it unhandled); its user subscribes on each `ready`.
   */
  readonly duplicate: Effect.Effect<Redis, never, Scope.Scope>
  /**
   * Tells the subscriber each time the connection comes back after an outage, so that a store
   * can re-synchronise. The subscription ends with the scope.
   */
  readonly reconnected: Effect.Effect<Queue.Dequeue<void>, never, Scope.Scope>
}

/**
 * The Redis client service.
 *
 * @since 0.1.0
 * @category tags
 */
export class RedisClient extends Context.Tag("@bulwark/redis/RedisClient")<RedisClient, Service>() {}

/**
 * Options of the client. Give at most one of `url`, `connection` and `client`; none connects to
 * `localhost:6379`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** A Redis URL (`redis://user:pass@host:6379/0`, `rediss://…`). */
  readonly url?: string | undefined
  /** ioredis connection options (host, port, path, password, tls…). */
  readonly connection?: RedisOptions | undefined
  /** An existing client: used as is and not closed with the Layer. */
  readonly client?: Redis | undefined
  /**
   * Fail the Layer with `RedisConnectionError` when Redis cannot be reached within
   * `connectTimeout`. Default: false (start on local state, report degraded, keep trying).
   */
  readonly failFast?: boolean | undefined
  /**
   * How long the Layer waits for the first connection: a finite duration >= 0 (a negative one, in
   * any written form, is a defect naming the option). Default: 2 seconds.
   */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /** The name of the readiness check registered with `Health` when provided. Default: `"redis"`. */
  readonly healthName?: string | undefined
}

/**
 * The reconnect backoff: 50 ms doubling to a 2 s cap. ioredis calls it with the attempt number.
 *
 * @since 0.1.0
 * @category constructors
 */
export const reconnectDelay = (attempt: number): number => Math.min(2000, 50 * 2 ** Math.min(attempt, 10))

const describeTarget = (client: Redis): string => {
  const o = client.options
  return o.path ? `unix:${o.path}` : `${o.host ?? "localhost"}:${o.port ?? 6379}`
}

const ours: Partial<RedisOptions> = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  retryStrategy: reconnectDelay,
  lazyConnect: true
}

/**
 * Makes the client. The connection closes with the scope (unless it was given).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Service, RedisConnectionError, Scope.Scope> =>
  Effect.gen(function*() {
    const given = [options.url, options.connection, options.client].filter((x) => x !== undefined).length
    if (given > 1) throw new Error("RedisClient: give at most one of `url`, `connection` and `client`")
    // the raw option, not `Duration.decode`'s: a negative one in any written form is NaN, not 0
    const connectTimeout = InternalDuration.toMillis(options.connectTimeout ?? "2 seconds")
    if (!Number.isFinite(connectTimeout)) {
      throw new Error("RedisClient: `connectTimeout` must be a finite, non-negative duration")
    }
    const owned = options.client === undefined
    const client = yield* Effect.acquireRelease(
      Effect.sync(() =>
        options.client ??
          (options.url !== undefined
            ? new Redis(options.url, ours)
            : new Redis({ ...options.connection, ...ours }))
      ),
      (c) => owned ? Effect.sync(() => c.disconnect()) : Effect.void
    )
    const target = describeTarget(client)
    let status: Status = client.status === "ready" ? "up" : "degraded"
    const events = yield* Queue.unbounded<Status>()
    const hub = yield* PubSub.unbounded<void>()
    const onReady = () => events.unsafeOffer("up")
    const onDown = () => events.unsafeOffer("degraded")
    // ioredis emits "error" for every failed reconnect: listening keeps it from being thrown
    const onError = () => events.unsafeOffer("degraded")
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        client.on("ready", onReady)
        client.on("close", onDown)
        client.on("error", onError)
      }),
      () =>
        Effect.sync(() => {
          client.off("ready", onReady)
          client.off("close", onDown)
          client.off("error", onError)
        })
    )
    let warned = false
    yield* Queue.take(events).pipe(
      Effect.flatMap((next) => {
        const was = status
        status = next
        if (next === "degraded" && !warned) {
          warned = true
          return Effect.logWarning(
            `Redis at ${target} is unreachable: shared breakers, budgets and rate limits run on local state; reconnecting with backoff`
          ).pipe(Effect.annotateLogs({ "bulwark.redis": target }))
        }
        if (next === "up" && was === "degraded") {
          const back = warned
          warned = false
          return Effect.zipRight(
            back ? Effect.logInfo(`Redis at ${target} is back: re-synchronising shared state`) : Effect.void,
            PubSub.publish(hub, undefined)
          )
        }
        return Effect.void
      }),
      Effect.forever,
      Effect.interruptible,
      Effect.forkScoped
    )
    if (owned) client.connect().catch(() => undefined)
    // the wait's timer and listener go however it ends: ready, timed out or interrupted
    const connected = client.status === "ready" || (yield* Effect.acquireUseRelease(
      Effect.flatMap(Deferred.make<boolean>(), (done) =>
        Effect.sync(() => {
          const ready = () => Deferred.unsafeDone(done, Exit.succeed(true))
          const timer = setTimeout(() => Deferred.unsafeDone(done, Exit.succeed(false)), connectTimeout)
          client.once("ready", ready)
          return { done, ready, timer }
        })),
      ({ done }) => Deferred.await(done),
      ({ ready, timer }) =>
        Effect.sync(() => {
          clearTimeout(timer)
          client.off("ready", ready)
        })
    ))
    if (!connected && options.failFast === true) {
      return yield* new RedisConnectionError({ target, reason: `not ready within ${connectTimeout} ms` })
    }
    if (!connected) events.unsafeOffer("degraded")
    else status = "up"
    const service: Service = {
      client,
      target,
      status: Effect.sync(() => status),
      duplicate: Effect.acquireRelease(
        Effect.sync(() => {
          const d = client.duplicate({
            enableOfflineQueue: true,
            maxRetriesPerRequest: null,
            lazyConnect: false,
            autoResubscribe: false
          })
          d.on("error", () => undefined)
          return d
        }),
        (d) => Effect.sync(() => d.disconnect())
      ),
      reconnected: PubSub.subscribe(hub)
    }
    yield* Health.registerIfPresent(
      options.healthName ?? "redis",
      Effect.sync(() => ({
        status: status === "up" ? "up" as const : "degraded" as const,
        details: { target, connection: client.status }
      })),
      { kind: "readiness" }
    )
    return service
  })

/**
 * Provides the client.
 *
 * @example
 * ```ts
 * import { RedisClient } from "@bulwark/redis"
 *
 * const Redis = RedisClient.layer({ url: "redis://redis:6379", failFast: true })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<RedisClient, RedisConnectionError> =>
  Layer.scoped(RedisClient, make(options))

/**
 * Provides the client from configuration: `REDIS_URL` (default `redis://localhost:6379`) and
 * `REDIS_FAIL_FAST` (default false), under the given prefix if any.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config<{ readonly url: string; readonly failFast: boolean }> = Config.all({
    url: Config.string("REDIS_URL").pipe(
      Config.validate({
        message: "must be a redis:// or rediss:// URL",
        validation: (url) => /^rediss?:\/\//.test(url)
      }),
      Config.withDefault("redis://localhost:6379")
    ),
    failFast: Config.boolean("REDIS_FAIL_FAST").pipe(Config.withDefault(false))
  })
): Layer.Layer<RedisClient, RedisConnectionError | ConfigError.ConfigError> =>
  Layer.scoped(
    RedisClient,
    Effect.flatMap(config, (c) => make({ url: c.url, failFast: c.failFast }))
  )
