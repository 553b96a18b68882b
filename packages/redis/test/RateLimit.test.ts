import { Deadline, Failure } from "@bulwark/core"
import { RateLimit, RedisClient } from "@bulwark/redis"
import * as RateLimiter from "@effect/experimental/RateLimiter"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Context, Duration, Effect, Exit, Fiber, Layer, Logger, Option, TestClock } from "effect"
import { hasRedisServer, startRedisServer } from "./redisServer.js"

/** The memory limiter, with every `consume` recorded (its `onExceeded`) and an optional step run after it. */
const watched = (after: (
  options: Parameters<RateLimiter.RateLimiter["consume"]>[0],
  exit: Exit.Exit<RateLimiter.ConsumeResult, RateLimiter.RateLimiterError>,
  limiter: RateLimiter.RateLimiter
) => Effect.Effect<void> = () => Effect.void) => {
  const asked: Array<string | undefined> = []
  const layer = Layer.effect(
    RateLimiter.RateLimiter,
    Effect.map(RateLimiter.RateLimiter, (limiter) =>
      RateLimiter.RateLimiter.of({
        ...limiter,
        consume: (options) => {
          asked.push(options.onExceeded)
          return limiter.consume(options).pipe(Effect.onExit((exit) => after(options, exit, limiter)))
        }
      }))
  ).pipe(Layer.provide(RateLimit.layerMemory))
  return { asked, layer }
}

/** `@effect/experimental`'s limiter on a store whose every command fails. */
const brokenStore = Layer.effect(RateLimiter.RateLimiter, RateLimiter.make).pipe(
  Layer.provide(Layer.succeed(
    RateLimiter.RateLimiterStore,
    RateLimiter.RateLimiterStore.of({
      fixedWindow: () => Effect.fail(new RateLimiter.RateLimitStoreError({ message: "store down" })),
      tokenBucket: () => Effect.fail(new RateLimiter.RateLimitStoreError({ message: "store down" }))
    })
  ))
)

const defectMessage = (options: RateLimit.Options) =>
  Effect.map(
    Effect.exit(RateLimit.make(options)),
    (exit) => Exit.isFailure(exit) ? (Cause.squash(exit.cause) as Error).message : "made"
  )

describe("RateLimit (memory)", () => {
  it("RateLimitedError names the limit and the wait; it is classified RATE_LIMITED, retryable, no breaker trip", () => {
    const error = new RateLimit.RateLimitedError({ limiter: "api", limit: 2, retryAfterMillis: 1500 })
    expect(error.message).toBe(`Rate limit "api" (2 calls per window) is reached; try again in 1s 500ms`)
    const c = Effect.runSync(Failure.classify(error))
    expect(c).toMatchObject({
      category: "resource",
      code: "RATE_LIMITED",
      strategy: "backoff_retry",
      retryable: true,
      tripsBreaker: false
    })
    expect(Option.map(c.retryAfter, Duration.toMillis)).toEqual(Option.some(1500))
  })

  it.effect("a limit's name defaults to \"default\", and each name is its own limit in the store", () =>
    Effect.gen(function*() {
      const unnamed = yield* RateLimit.make({ limit: 1, window: "1 second" })
      expect(unnamed.name).toBe("default")
      yield* unnamed.protect(Effect.void)
      const refused = yield* Effect.flip(unnamed.protect(Effect.void))
      expect(refused).toMatchObject({ _tag: "RateLimitedError", limiter: "default", limit: 1 })
      // other names have their own windows; the same name is the same limit
      const a = yield* RateLimit.make({ name: "a", limit: 1, window: "1 second" })
      const b = yield* RateLimit.make({ name: "b", limit: 1, window: "1 second" })
      expect(yield* a.protect(Effect.succeed("a"))).toBe("a")
      expect(yield* b.protect(Effect.succeed("b"))).toBe("b")
      const aAgain = yield* RateLimit.make({ name: "a", limit: 1, window: "1 second" })
      expect(yield* Effect.flip(aAgain.protect(Effect.void))).toMatchObject({ limiter: "a" })
    }).pipe(Effect.provide(RateLimit.layerMemory)))

  it.effect("token-bucket: the limit refills one call per window / limit", () =>
    Effect.gen(function*() {
      const limit = yield* RateLimit.make({ name: "tb", limit: 2, window: "1 second", algorithm: "token-bucket" })
      yield* limit.protect(Effect.void)
      yield* limit.protect(Effect.void)
      const refused = yield* Effect.flip(limit.protect(Effect.void))
      expect(refused).toMatchObject({ _tag: "RateLimitedError", retryAfterMillis: 500 })
      yield* TestClock.adjust("500 millis")
      expect(yield* limit.protect(Effect.succeed("refilled"))).toBe("refilled")
    }).pipe(Effect.provide(RateLimit.layerMemory)))

  it.effect("fail: the call past the limit fails with a classified RateLimitedError carrying retry-after", () =>
    Effect.gen(function*() {
      const limit = yield* RateLimit.make({ name: "api", limit: 2, window: "1 second" })
      expect(yield* limit.protect(Effect.succeed(1))).toBe(1)
      expect(yield* limit.protect(Effect.succeed(2))).toBe(2)
      const error = yield* Effect.flip(limit.protect(Effect.succeed(3)))
      expect(error._tag).toBe("RateLimitedError")
      if (error._tag !== "RateLimitedError") return
      expect(error.retryAfterMillis).toBeGreaterThan(0)
      expect(error.retryAfterMillis).toBeLessThanOrEqual(1000)
      const c = yield* Failure.classify(error)
      expect(c.category).toBe("resource")
      expect(c.tripsBreaker).toBe(false)
      expect(Option.map(c.retryAfter, Duration.toMillis)).toEqual(Option.some(error.retryAfterMillis))
      yield* TestClock.adjust("1 second")
      expect(yield* limit.protect(Effect.succeed(4))).toBe(4)
    }).pipe(Effect.provide(RateLimit.layerMemory)))

  it.effect("delay: the call past the limit waits for the next window instead of failing", () =>
    Effect.gen(function*() {
      const limit = yield* RateLimit.make({ name: "api", limit: 1, window: "1 second", onExceeded: "delay" })
      yield* limit.protect(Effect.void)
      const fiber = yield* Effect.fork(limit.protect(Effect.succeed("late")))
      yield* Effect.yieldNow()
      const early = yield* Fiber.poll(fiber)
      expect(early).toEqual(Option.none())
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBe("late")
    }).pipe(Effect.provide(RateLimit.layerMemory)))

  it.effect("delay under a deadline: a slot that comes after the deadline fails at once and is not reserved", () =>
    Effect.gen(function*() {
      const limit = yield* RateLimit.make({ name: "api", limit: 1, window: "1 second", onExceeded: "delay" })
      yield* limit.protect(Effect.void)
      // the next slot is 1 s away, the caller has 300 ms: it fails now, without waiting
      const fiber = yield* Effect.fork(limit.protect(Effect.succeed("late")).pipe(Deadline.within("300 millis")))
      yield* Effect.yieldNow()
      const early = yield* Fiber.poll(fiber)
      expect(Option.isSome(early)).toBe(true)
      const error = yield* Effect.flip(Fiber.join(fiber))
      expect(error._tag).toBe("DeadlineExceededError")
      if (error._tag !== "DeadlineExceededError") return
      expect(error.stage).toBe("rate limit")
      expect(error.remainingMillis).toBe(300)
      expect(error.neededMillis).toBe(1000)
      // nothing was reserved for it: the next window's slot goes to the next caller, at once
      yield* TestClock.adjust("1 second")
      const next = yield* Effect.fork(limit.protect(Effect.succeed("next")))
      yield* Effect.yieldNow()
      expect(yield* Fiber.poll(next)).toEqual(Option.some(Exit.succeed("next")))
    }).pipe(Effect.provide(RateLimit.layerMemory)))

  it.effect("delay under a deadline that leaves time enough: the call waits for its slot", () =>
    Effect.gen(function*() {
      const limit = yield* RateLimit.make({ name: "api", limit: 1, window: "1 second", onExceeded: "delay" })
      yield* limit.protect(Effect.void)
      const fiber = yield* Effect.fork(limit.protect(Effect.succeed("in time")).pipe(Deadline.within("2 seconds")))
      yield* Effect.yieldNow()
      expect(yield* Fiber.poll(fiber)).toEqual(Option.none())
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBe("in time")
    }).pipe(Effect.provide(RateLimit.layerMemory)))

  it.effect("delay under a deadline already passed: fails at once without asking the store", () =>
    Effect.gen(function*() {
      const limit = yield* RateLimit.make({ name: "api", limit: 5, window: "1 second", onExceeded: "delay" })
      const now = yield* Effect.clockWith((c) => c.currentTimeMillis)
      const error = yield* Effect.flip(limit.protect(Effect.succeed(1)).pipe(Deadline.at(now)))
      expect(error._tag).toBe("DeadlineExceededError")
      expect(error).toMatchObject({ stage: "rate limit", remainingMillis: 0 })
    }).pipe(Effect.provide(RateLimit.layerMemory)))

  it.effect("delay under a deadline: a slot exactly at the deadline is reserved and waited for", () =>
    Effect.gen(function*() {
      const limit = yield* RateLimit.make({ name: "api", limit: 1, window: "1 second", onExceeded: "delay" })
      yield* limit.protect(Effect.void)
      const fiber = yield* Effect.fork(limit.protect(Effect.succeed("at the edge")).pipe(Deadline.within("1 second")))
      yield* Effect.yieldNow()
      expect(yield* Fiber.poll(fiber)).toEqual(Option.none())
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBe("at the edge")
    }).pipe(Effect.provide(RateLimit.layerMemory)))

  it.effect("delay under a deadline: a slot others reserve meanwhile pushes it past the deadline, and it fails at once", () => {
    // another caller reserves the next slot right after this caller's first (non-reserving) ask
    let raced = false
    const { asked, layer } = watched((options, exit, limiter) => {
      if (raced || options.onExceeded !== "fail" || Exit.isSuccess(exit)) return Effect.void
      raced = true
      return Effect.ignore(limiter.consume({ ...options, onExceeded: "delay" }))
    })
    return Effect.gen(function*() {
      const limit = yield* RateLimit.make({ name: "api", limit: 1, window: "1 second", onExceeded: "delay" })
      yield* limit.protect(Effect.void)
      const fiber = yield* Effect.fork(limit.protect(Effect.succeed("late")).pipe(Deadline.within("1500 millis")))
      yield* Effect.yieldNow()
      const early = yield* Fiber.poll(fiber)
      expect(Option.isSome(early)).toBe(true)
      const error = yield* Effect.flip(Fiber.join(fiber))
      expect(error).toMatchObject({
        _tag: "DeadlineExceededError",
        stage: "rate limit",
        remainingMillis: 1500,
        neededMillis: 2000
      })
      // the first call, then this one's ask, then its reservation
      expect(asked).toEqual(["delay", "fail", "delay"])
    }).pipe(Effect.provide(layer))
  })

  it.effect("delay without a deadline asks the store once per call", () => {
    const { asked, layer } = watched()
    return Effect.gen(function*() {
      const limit = yield* RateLimit.make({ name: "api", limit: 1, window: "1 second", onExceeded: "delay" })
      yield* limit.protect(Effect.void)
      expect(asked).toEqual(["delay"])
      const fiber = yield* Effect.fork(limit.protect(Effect.succeed("next")))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBe("next")
      expect(asked).toEqual(["delay", "delay"])
    }).pipe(Effect.provide(layer))
  })

  it.effect("a store that fails lets every call through, in each mode, and warns once", () =>
    Effect.gen(function*() {
      const warnings: Array<unknown> = []
      const capture = Logger.replace(
        Logger.defaultLogger,
        Logger.make(({ logLevel, message }) => {
          if (logLevel._tag === "Warning") warnings.push(message)
        })
      )
      yield* Effect.gen(function*() {
        for (const onExceeded of ["fail", "delay"] as const) {
          warnings.length = 0
          const limit = yield* RateLimit.make({ name: onExceeded, limit: 1, window: "1 second", onExceeded })
          for (let i = 0; i < 3; i++) expect(yield* limit.protect(Effect.succeed(i))).toBe(i)
          expect(yield* limit.protect(Effect.succeed("deadline")).pipe(Deadline.within("1 second"))).toBe("deadline")
          expect(warnings).toEqual([[`Rate limit "${onExceeded}": its store failed, calls are not limited meanwhile`]])
        }
      }).pipe(Effect.provide(capture))
    }).pipe(Effect.provide(brokenStore)))

  it.effect("bad literal options are defects naming the field", () =>
    Effect.gen(function*() {
      expect(yield* defectMessage({ limit: 0, window: "1 second" })).toBe(
        `RateLimit "default": \`limit\` must be an integer >= 1, got 0`
      )
      expect(yield* defectMessage({ name: "api", limit: 1.5, window: "1 second" })).toBe(
        `RateLimit "api": \`limit\` must be an integer >= 1, got 1.5`
      )
      const windows: ReadonlyArray<unknown> = [0, "-1 seconds", Duration.infinity, "soon"]
      for (const window of windows as ReadonlyArray<Duration.DurationInput>) {
        expect(yield* defectMessage({ name: "api", limit: 1, window })).toBe(
          `RateLimit "api": \`window\` must be a positive, finite duration`
        )
      }
      expect(
        yield* defectMessage({ name: "api", limit: 1, window: "1 second", algorithm: "sliding" as "token-bucket" })
      ).toBe(`RateLimit "api": \`algorithm\` must be "fixed-window" or "token-bucket"`)
      expect(
        yield* defectMessage({ name: "api", limit: 1, window: "1 second", onExceeded: "queue" as "fail" })
      ).toBe(`RateLimit "api": \`onExceeded\` must be "delay" or "fail"`)
      for (const algorithm of ["fixed-window", "token-bucket"] as const) {
        for (const onExceeded of ["delay", "fail"] as const) {
          expect(yield* defectMessage({ limit: 1, window: "1 second", algorithm, onExceeded })).toBe("made")
        }
      }
    }).pipe(Effect.provide(RateLimit.layerMemory)))
})

describe.skipIf(!hasRedisServer())("RateLimit (Redis)", () => {
  it.scopedLive("processes share one limit; when Redis is down calls go through", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const member = Effect.flatMap(
        Layer.build(
          RateLimit.layerRedis().pipe(Layer.provide(RedisClient.layer({ connection: { path: server.socket } })))
        ),
        (ctx) => RateLimit.make({ name: "shared", limit: 3, window: "1 minute" }).pipe(Effect.provide(ctx))
      )
      const a = yield* member
      const b = yield* member
      const outcomes = yield* Effect.forEach([a, b, a, b, a], (l) => Effect.exit(l.protect(Effect.succeed("ok"))))
      expect(outcomes.filter(Exit.isSuccess).length).toBe(3)
      yield* server.kill
      yield* Effect.sleep("100 millis")
      // the client has said Redis is down: the store is not asked, so it cannot fail (nor make the call wait)
      const warnings: Array<unknown> = []
      const capture = Logger.replace(
        Logger.defaultLogger,
        Logger.make(({ logLevel, message }) => {
          if (logLevel._tag === "Warning") warnings.push(message)
        })
      )
      for (let i = 0; i < 3; i++) {
        expect(yield* a.protect(Effect.succeed("through")).pipe(Effect.provide(capture))).toBe("through")
      }
      expect(warnings).toEqual([])
    }))

  it.scopedLive("keys live under bulwark:ratelimit: unless another prefix is given", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const client = yield* Layer.build(RedisClient.layer({ connection: { path: server.socket } }))
      const redis = Context.get(client, RedisClient.RedisClient)
      const use = (layer: Layer.Layer<RateLimiter.RateLimiter, never, RedisClient.RedisClient>, name: string) =>
        Effect.flatMap(
          Layer.build(layer.pipe(Layer.provide(Layer.succeedContext(client)))),
          (ctx) =>
            RateLimit.make({ name, limit: 5, window: "1 minute" }).pipe(
              Effect.flatMap((limit) => limit.protect(Effect.void)),
              Effect.provide(ctx)
            )
        )
      yield* use(RateLimit.layerRedis(), "orders")
      yield* use(RateLimit.layerRedis({ prefix: "shop:" }), "stock")
      const keys = yield* Effect.promise(() => redis.client.keys("*"))
      expect(keys.sort()).toEqual(["bulwark:ratelimit:bulwark:orders", "shop:bulwark:stock"])
    }))
})
