/**
 * Outbound rate limits as a policy stage, on `@effect/experimental`'s `RateLimiter`: a fixed
 * window or a token bucket, kept in memory for one process (`layerMemory`) or in Redis for a
 * fleet (`layerRedis`). When the limit is reached a call either waits for its turn (`delay`) or
 * fails at once with a `RateLimitedError` that carries when to try again (`fail`); the error is
 * classified (resource, retryable after `retryAfter`, never trips a breaker), so `Retry` waits
 * at least that long.
 *
 * A limiter whose store fails (Redis unreachable) lets the call through: a rate limit protects
 * the dependency, it must not become one.
 *
 * @since 0.1.0
 */
import { Deadline, Failure } from "@bulwark/core"
import * as RateLimiter from "@effect/experimental/RateLimiter"
import * as RateLimiterRedis from "@effect/experimental/RateLimiter/Redis"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as RedisClient from "./RedisClient.js"

/**
 * A call was refused because its rate limit is reached.
 *
 * @since 0.1.0
 * @category errors
 */
export class RateLimitedError extends Schema.TaggedError<RateLimitedError>()("RateLimitedError", {
  /** The limit's name. */
  limiter: Schema.String,
  /** Calls allowed per window. */
  limit: Schema.Number,
  /** When a call may be made again, in milliseconds. */
  retryAfterMillis: Schema.Number
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Rate limit "${this.limiter}" (${this.limit} calls per window) is reached; try again in ${
      Duration.format(Duration.millis(this.retryAfterMillis))
    }`
  }
  /**
   * @since 0.1.0
   */
  get [Failure.RuleKey](): Failure.RuleObject {
    return {
      category: "resource",
      code: "RATE_LIMITED",
      strategy: "backoff_retry",
      retryable: true,
      tripsBreaker: false,
      retryAfter: Duration.millis(this.retryAfterMillis)
    }
  }
}

/**
 * Options of a rate limit.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The limit's name: errors, logs, and the key in the store. Default: `"default"`. */
  readonly name?: string | undefined
  /** Calls allowed per `window` (an integer >= 1). */
  readonly limit: number
  /** The window (fixed window) or the time to refill `limit` tokens (token bucket). */
  readonly window: Duration.DurationInput
  /** `"fixed-window"` or `"token-bucket"`. Default: `"fixed-window"`. */
  readonly algorithm?: "fixed-window" | "token-bucket" | undefined
  /**
   * `"delay"` waits for the next slot; `"fail"` fails with `RateLimitedError`. Default: `"fail"`.
   * Under a `Deadline`, `"delay"` does not wait for (or reserve) a slot that comes after it: the
   * call fails at once with `DeadlineExceededError` (stage `"rate limit"`).
   */
  readonly onExceeded?: "delay" | "fail" | undefined
}

/**
 * A rate limit: `protect` is the policy function.
 *
 * @since 0.1.0
 * @category models
 */
export interface RateLimit {
  readonly name: string
  readonly protect: <A, E, R>(
    self: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | RateLimitedError | Deadline.DeadlineExceededError, R>
}

/**
 * Makes a rate limit on the `RateLimiter` provided (`layerMemory` or `layerRedis`).
 *
 * @example
 * ```ts
 * import { RateLimit } from "@bulwark/redis"
 * import { Effect } from "effect"
 *
 * declare const charge: Effect.Effect<string>
 *
 * const program = Effect.gen(function*() {
 *   const limit = yield* RateLimit.make({ name: "payments", limit: 100, window: "1 second" })
 *   return yield* limit.protect(charge)
 * }).pipe(Effect.provide(RateLimit.layerMemory))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<RateLimit, never, RateLimiter.RateLimiter> =>
  Effect.gen(function*() {
    const name = options.name ?? "default"
    if (!Number.isInteger(options.limit) || options.limit < 1) {
      throw new Error(`RateLimit "${name}": \`limit\` must be an integer >= 1, got ${options.limit}`)
    }
    const window = Duration.decodeUnknown(options.window)
    const windowMillis = Option.isSome(window) ? Duration.toMillis(window.value) : NaN
    if (!(windowMillis > 0) || !Number.isFinite(windowMillis)) {
      throw new Error(`RateLimit "${name}": \`window\` must be a positive, finite duration`)
    }
    const algorithm = options.algorithm ?? "fixed-window"
    if (algorithm !== "fixed-window" && algorithm !== "token-bucket") {
      throw new Error(`RateLimit "${name}": \`algorithm\` must be "fixed-window" or "token-bucket"`)
    }
    const onExceeded = options.onExceeded ?? "fail"
    if (onExceeded !== "delay" && onExceeded !== "fail") {
      throw new Error(`RateLimit "${name}": \`onExceeded\` must be "delay" or "fail"`)
    }
    const limiter = yield* RateLimiter.RateLimiter
    let warned = false
    const key = `bulwark:${name}`
    const windowDuration = Duration.millis(windowMillis)
    const exceeded = (retryAfter: Duration.Duration) =>
      new RateLimitedError({ limiter: name, limit: options.limit, retryAfterMillis: Duration.toMillis(retryAfter) })
    const tooLate = (left: number, needed: number) =>
      new Deadline.DeadlineExceededError({ stage: "rate limit", remainingMillis: left, neededMillis: needed })
    // the store failed: the call goes through, and the first failure says so once
    const storeFailed = Effect.suspend(() => {
      if (warned) return Effect.void
      warned = true
      return Effect.logWarning(`Rate limit "${name}": its store failed, calls are not limited meanwhile`)
    })
    const take = (mode: "delay" | "fail") =>
      limiter.consume({ key, limit: options.limit, window: windowDuration, algorithm, onExceeded: mode })
    const consume: Effect.Effect<void, RateLimitedError | Deadline.DeadlineExceededError> = onExceeded === "fail"
      ? take("fail").pipe(
        Effect.asVoid,
        Effect.catchAll((error) => error.reason === "Exceeded" ? Effect.fail(exceeded(error.retryAfter)) : storeFailed)
      )
      : Effect.flatMap(Deadline.remainingMillis, (left) => {
        // no deadline: wait for the slot the store hands out
        if (left === Number.POSITIVE_INFINITY) {
          return take("delay").pipe(
            Effect.flatMap((result) => Duration.toMillis(result.delay) > 0 ? Effect.sleep(result.delay) : Effect.void),
            Effect.catchAll(() => storeFailed)
          )
        }
        if (left <= 0) return Effect.fail(tooLate(0, 0))
        // a deadline: a slot that comes after it is not reserved (the wait would be for nothing,
        // and the slot would be lost to callers who can use it); ask without reserving first
        return take("fail").pipe(
          Effect.asVoid,
          Effect.catchAll((error) => {
            if (error.reason !== "Exceeded") return storeFailed
            const needed = Duration.toMillis(error.retryAfter)
            if (needed > left) return Effect.fail(tooLate(left, needed))
            return take("delay").pipe(
              Effect.flatMap((result) => {
                const delay = Duration.toMillis(result.delay)
                // others took the slots in between: the reserved one comes too late
                if (delay > left) return Effect.fail(tooLate(left, delay))
                return delay > 0 ? Effect.sleep(result.delay) : Effect.void
              }),
              Effect.catchAll((e) => e._tag === "DeadlineExceededError" ? Effect.fail(e) : storeFailed)
            )
          })
        )
      })
    return {
      name,
      protect: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.zipRight(consume, self)
    }
  })

/**
 * Limits kept in this process's memory.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<RateLimiter.RateLimiter> = RateLimiter.layer.pipe(
  Layer.provide(RateLimiter.layerStoreMemory)
)

/**
 * Limits shared by every process on one Redis, through `@effect/experimental`'s Redis store. It
 * opens its own connection with the `RedisClient`'s options (commands fail at once while Redis is
 * away, and the calls then go through).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerRedis = (
  options: { readonly prefix?: string | undefined } = {}
): Layer.Layer<RateLimiter.RateLimiter, never, RedisClient.RedisClient> =>
  Layer.scoped(
    RateLimiter.RateLimiter,
    Effect.gen(function*() {
      const redis = yield* RedisClient.RedisClient
      const store = yield* RateLimiterRedis.make({
        ...redis.client.options,
        // queued until the first connection; outages are skipped by the status check below
        enableOfflineQueue: true,
        maxRetriesPerRequest: 1,
        lazyConnect: false,
        prefix: options.prefix ?? "bulwark:ratelimit:"
      })
      const limiter = yield* RateLimiter.make.pipe(
        Effect.provideService(RateLimiter.RateLimiterStore, RateLimiter.RateLimiterStore.of(store))
      )
      // while Redis is away (the client has said so once) calls are not limited and do not wait
      return RateLimiter.RateLimiter.of({
        ...limiter,
        consume: (o) =>
          Effect.flatMap(redis.status, (status) =>
            status === "up"
              ? limiter.consume(o)
              : Effect.succeed({ delay: Duration.zero, limit: o.limit, remaining: o.limit, resetAfter: Duration.zero }))
      })
    })
  )
