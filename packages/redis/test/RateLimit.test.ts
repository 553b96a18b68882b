import { Failure } from "@bulwark/core"
import { RateLimit, RedisClient } from "@bulwark/redis"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Layer, Option, TestClock } from "effect"
import { hasRedisServer, startRedisServer } from "./redisServer.js"

describe("RateLimit (memory)", () => {
  it.effect("fail: the call past the limit fails with a classified RateLimitedError carrying retry-after", () =>
    Effect.gen(function*() {
      const limit = yield* RateLimit.make({ name: "api", limit: 2, window: "1 second" })
      expect(yield* limit.protect(Effect.succeed(1))).toBe(1)
      expect(yield* limit.protect(Effect.succeed(2))).toBe(2)
      const error = yield* Effect.flip(limit.protect(Effect.succeed(3)))
      expect(error._tag).toBe("RateLimitedError")
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

  it.effect("bad literal options are defects naming the field", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(RateLimit.make({ limit: 0, window: "1 second" }))
      expect(Exit.isFailure(exit) && String(exit.cause)).toContain("limit")
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
      expect(yield* a.protect(Effect.succeed("through"))).toBe("through")
    }))
})
