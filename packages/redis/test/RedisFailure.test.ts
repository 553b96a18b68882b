import { BreakerStore, CircuitBreaker, Health } from "@bulwark/core"
import { RedisBreakerStore, RedisClient } from "@bulwark/redis"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Logger, LogLevel } from "effect"
import * as os from "node:os"
import * as path from "node:path"
import { eventually, hasRedisServer, startRedisServer } from "./redisServer.js"

/** One "process": a Health registry, a client, a store and a breaker. */
const member = (socket: string) =>
  Effect.gen(function*() {
    const health = yield* Health.make()
    const ctx = yield* Layer.build(
      RedisBreakerStore.layer().pipe(
        Layer.provideMerge(RedisClient.layer({ connection: { path: socket } })),
        Layer.provide(Layer.succeed(Health.Health, health))
      )
    )
    const store = ctx.unsafeMap.get(BreakerStore.BreakerStore.key) as BreakerStore.BreakerStore
    const breaker = yield* CircuitBreaker.make({
      name: "ledger",
      health: false,
      policy: CircuitBreaker.consecutive(2),
      openDuration: "1 minute"
    }).pipe(Effect.provideService(BreakerStore.BreakerStore, store))
    return { health, breaker }
  })

describe.skipIf(!hasRedisServer())("when Redis fails", () => {
  it.scopedLive("no call fails because of the store; one warning; readiness degraded; state converges after a restart", () =>
    Effect.gen(function*() {
      const warnings: Array<string> = []
      const server = yield* startRedisServer
      const run = <A, E, R>(self: Effect.Effect<A, E, R>) =>
        self.pipe(
          Effect.provide(Logger.add(Logger.make(({ logLevel, message }) => {
            if (logLevel._tag === "Warning") warnings.push(String(message))
          }))),
          Logger.withMinimumLogLevel(LogLevel.Warning)
        )
      const a = yield* run(member(server.socket))
      const b = yield* run(member(server.socket))
      expect((yield* a.health.report).status).toBe("up")

      yield* server.kill
      expect(yield* eventually(Effect.map(a.health.report, (r) => r.status === "degraded"))).toBe(true)
      const report = yield* a.health.report
      expect(report.live).toBe(true)
      expect(report.ready).toBe(false)
      // calls go on: successes succeed, failures are the calls' own, the breaker opens locally
      expect(yield* b.breaker.protect(Effect.succeed("ok"))).toBe("ok")
      for (let i = 0; i < 2; i++) expect(yield* Effect.flip(a.breaker.protect(Effect.fail("down")))).toBe("down")
      expect(yield* a.breaker.state).toBe("Open")
      expect(yield* b.breaker.state).toBe("Closed")
      yield* Effect.sleep("300 millis")
      // one warning a process for the outage, however many reconnects failed
      expect(warnings.filter((w) => w.includes("unreachable")).length).toBe(2)

      const restarted = Date.now()
      yield* server.restart
      expect(yield* eventually(Effect.map(b.breaker.state, (s) => s === "Open"))).toBe(true)
      const convergence = Date.now() - restarted
      expect(yield* eventually(Effect.map(a.health.report, (r) => r.status === "up"))).toBe(true)
      console.log(`@bulwark/redis: state converged ${convergence} ms after redis-server restarted`)
    }))

  it.scopedLive("a fail-fast client fails its Layer with RedisConnectionError; by default it starts degraded", () =>
    Effect.gen(function*() {
      const missing = path.join(os.tmpdir(), `bulwark-no-redis-${process.pid}.sock`)
      const error = yield* Effect.flip(
        RedisClient.make({ connection: { path: missing }, failFast: true, connectTimeout: "200 millis" })
      )
      expect(error._tag).toBe("RedisConnectionError")
      expect(error.message).toContain(missing)
      const client = yield* RedisClient.make({ connection: { path: missing }, connectTimeout: "200 millis" })
      expect(yield* client.status).toBe("degraded")
    }))

  it.scopedLive("layerConfig reads REDIS_URL and names it when it is not a Redis URL", () =>
    Effect.gen(function*() {
      const bad = yield* Effect.flip(
        Layer.build(RedisClient.layerConfig()).pipe(
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["REDIS_URL", "http://x"]])))
        )
      )
      expect(String(bad)).toContain("REDIS_URL")
    }))
})
