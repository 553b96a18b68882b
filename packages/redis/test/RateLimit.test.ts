import { Deadline, Failure } from "@bulwark/core"
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
