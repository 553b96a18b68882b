import { Health } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Cause, ConfigProvider, Duration, Effect, Exit, Fiber, Layer, Logger, LogLevel, Queue, Scope } from "effect"
import { Redis } from "ioredis"
import * as os from "node:os"
import * as path from "node:path"
import * as RedisClient from "../src/RedisClient.js"
import { eventually, hasRedisServer, startRedisServer } from "./redisServer.js"

/** What is written to `console.error` until the scope closes (ioredis reports unhandled errors there). */
const consoleErrors = Effect.acquireRelease(
  Effect.sync(() => {
    const errors: Array<string> = []
    const original = console.error
    console.error = (...args: Array<unknown>) => {
      errors.push(args.map(String).join(" "))
    }
    return { errors, original }
  }),
  ({ original }) =>
    Effect.sync(() => {
      console.error = original
    })
).pipe(Effect.map(({ errors }) => errors))

const missingSocket = (name: string) => path.join(os.tmpdir(), `bulwark-no-redis-${process.pid}-${name}.sock`)

/** The defect message `make` dies with, if it dies. */
const defectOf = (options: RedisClient.Options) =>
  Effect.gen(function*() {
    const exit = yield* Effect.exit(Effect.scoped(RedisClient.make(options)))
    if (Exit.isSuccess(exit)) return undefined
    const defect = Cause.dieOption(exit.cause)
    return defect._tag === "Some" ? (defect.value as Error).message : undefined
  })

interface Logged {
  readonly level: string
  readonly message: string
  readonly annotations: Record<string, unknown>
}

const capture = (into: Array<Logged>) =>
  Logger.add(Logger.make(({ annotations, logLevel, message }) => {
    const text = Array.isArray(message) ? message.join(" ") : String(message)
    into.push({ level: logLevel.label, message: text, annotations: Object.fromEntries(annotations) })
  }))

describe("RedisClient", () => {
  it("the service is keyed @bulwark/redis/RedisClient", () => {
    expect(RedisClient.RedisClient.key).toBe("@bulwark/redis/RedisClient")
  })

  it("the reconnect delay starts at 50 ms, doubles each attempt and stops at 2 s", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 50].map(RedisClient.reconnectDelay)).toEqual([
      50,
      100,
      200,
      400,
      800,
      1600,
      2000,
      2000,
      2000,
      2000,
      2000
    ])
  })

  it.scopedLive("giving two of url, connection and client is a defect naming the three options", () =>
    Effect.gen(function*() {
      const message = "RedisClient: give at most one of `url`, `connection` and `client`"
      const client = new Redis({ lazyConnect: true })
      expect(yield* defectOf({ url: "redis://127.0.0.1:1", connection: { port: 1 } })).toBe(message)
      expect(yield* defectOf({ url: "redis://127.0.0.1:1", client })).toBe(message)
      expect(yield* defectOf({ connection: { port: 1 }, client })).toBe(message)
      expect(client.status).toBe("wait")
    }))

  it.scopedLive("an infinite connect timeout is a defect; a zero one is accepted", () =>
    Effect.gen(function*() {
      const socket = missingSocket("timeout")
      expect(yield* defectOf({ connection: { path: socket }, connectTimeout: Duration.infinity })).toBe(
        "RedisClient: `connectTimeout` must be a finite, non-negative duration"
      )
      expect(yield* defectOf({ connection: { path: socket }, connectTimeout: 0 })).toBeUndefined()
    }))

  it.scopedLive("a negative (in any written form), NaN or unreadable connect timeout is a defect naming the option", () =>
    Effect.gen(function*() {
      const connection = { path: missingSocket("negative") }
      const inputs: ReadonlyArray<unknown> = [-1, -0.5, Number.NaN, "-5 seconds", -5n, [-5, 0], "soon"]
      for (const connectTimeout of inputs) {
        expect(yield* defectOf({ connection, connectTimeout: connectTimeout as Duration.DurationInput })).toBe(
          "RedisClient: `connectTimeout` must be a finite, non-negative duration"
        )
      }
    }))

  it.scopedLive("the target is unix:<path> for a socket, host:port otherwise, and names it in the fail-fast error", () =>
    Effect.gen(function*() {
      const socket = missingSocket("target")
      const unix = yield* RedisClient.make({ connection: { path: socket }, connectTimeout: 0 })
      expect(unix.target).toBe(`unix:${socket}`)
      const tcp = yield* RedisClient.make({ connection: { host: "127.0.0.1", port: 1 }, connectTimeout: 0 })
      expect(tcp.target).toBe("127.0.0.1:1")
      const fromUrl = yield* RedisClient.make({ url: "redis://127.0.0.1:2", connectTimeout: 0 })
      expect(fromUrl.target).toBe("127.0.0.1:2")
      const defaults = yield* RedisClient.make({ connection: {}, connectTimeout: 0 })
      expect(defaults.target).toBe("localhost:6379")
      const error = yield* Effect.flip(
        RedisClient.make({ connection: { host: "127.0.0.1", port: 1 }, failFast: true, connectTimeout: "50 millis" })
      )
      expect(error.message).toBe("Cannot connect to Redis at 127.0.0.1:1: not ready within 50 ms")
    }))

  it.scopedLive("a wait for a given client that times out leaves none of its listeners on the client", () =>
    Effect.gen(function*() {
      const given = new Redis({ path: missingSocket("listeners"), lazyConnect: true })
      const events = ["ready", "close", "error", "end"]
      const before = events.map((e) => given.listenerCount(e))
      const error = yield* Effect.flip(
        Effect.scoped(RedisClient.make({ client: given, failFast: true, connectTimeout: 0 }))
      )
      expect(error.reason).toBe("not ready within 0 ms")
      const service = yield* Effect.scoped(RedisClient.make({ client: given, connectTimeout: 0 }))
      expect(yield* service.status).toBe("degraded")
      expect(events.map((e) => given.listenerCount(e))).toEqual(before)
      expect(given.status).toBe("wait")
    }))

  it.scopedLive("commands fail at once while disconnected instead of waiting in a queue", () =>
    Effect.gen(function*() {
      const client = yield* RedisClient.make({ connection: { path: missingSocket("queue") }, connectTimeout: 0 })
      const error = yield* Effect.flip(Effect.tryPromise(() => client.client.get("k")))
      expect(String(error.cause)).toContain("enableOfflineQueue options is false")
    }))

  describe.skipIf(!hasRedisServer())("with a redis-server", () => {
    it.scopedLive("a client given already connected is used at once, left open with the scope and its listeners removed", () =>
      Effect.gen(function*() {
        const server = yield* startRedisServer
        const given = new Redis({ path: server.socket })
        yield* Effect.addFinalizer(() => Effect.sync(() => given.disconnect()))
        expect(yield* eventually(Effect.sync(() => given.status === "ready"))).toBe(true)
        const before = ["ready", "close", "error"].map((e) => given.listenerCount(e))
        const scope = yield* Scope.make()
        const service = yield* RedisClient.make({ client: given, failFast: true, connectTimeout: 0 }).pipe(
          Scope.extend(scope)
        )
        expect(yield* service.status).toBe("up")
        expect(service.client).toBe(given)
        yield* Scope.close(scope, Exit.void)
        expect(["ready", "close", "error"].map((e) => given.listenerCount(e))).toEqual(before)
        expect(given.status).toBe("ready")
        expect(yield* Effect.promise(() => given.ping())).toBe("PONG")
      }))

    it.scopedLive("a client given not yet connected is not connected by the layer, and waiting for it can be interrupted", () =>
      Effect.gen(function*() {
        const server = yield* startRedisServer
        const given = new Redis({ path: server.socket, lazyConnect: true })
        yield* Effect.addFinalizer(() => Effect.sync(() => given.disconnect()))
        const fiber = yield* Effect.fork(Effect.scoped(RedisClient.make({ client: given, connectTimeout: "1 minute" })))
        yield* Effect.sleep("100 millis")
        expect(given.status).toBe("wait")
        yield* Fiber.interrupt(fiber)
        expect(given.listenerCount("ready")).toBe(0)
      }))

    it.scopedLive("a client it made is disconnected with the scope", () =>
      Effect.gen(function*() {
        const server = yield* startRedisServer
        const scope = yield* Scope.make()
        const service = yield* RedisClient.make({ connection: { path: server.socket } }).pipe(Scope.extend(scope))
        expect(yield* service.status).toBe("up")
        expect(service.client.status).toBe("ready")
        yield* Scope.close(scope, Exit.void)
        expect(yield* eventually(Effect.sync(() => service.client.status === "end"))).toBe(true)
      }))

    it.scopedLive("a given client closed by its owner is reported degraded", () =>
      Effect.gen(function*() {
        const server = yield* startRedisServer
        const given = new Redis({ path: server.socket })
        expect(yield* eventually(Effect.sync(() => given.status === "ready"))).toBe(true)
        const service = yield* RedisClient.make({ client: given })
        given.disconnect()
        expect(yield* eventually(Effect.map(service.status, (s) => s === "degraded"))).toBe(true)
      }))

    it.scopedLive("one warning per outage and one info when Redis is back, annotated with the target; subscribers hear of the return", () =>
      Effect.gen(function*() {
        const logs: Array<Logged> = []
        const errors = yield* consoleErrors
        const server = yield* startRedisServer
        const target = `unix:${server.socket}`
        const warning = {
          level: "WARN",
          message:
            `Redis at ${target} is unreachable: shared breakers, budgets and rate limits run on local state; reconnecting with backoff`,
          annotations: { "bulwark.redis": target }
        }
        const back = {
          level: "INFO",
          message: `Redis at ${target} is back: re-synchronising shared state`,
          annotations: {}
        }
        const service = yield* RedisClient.make({ connection: { path: server.socket } }).pipe(
          Effect.provide(capture(logs)),
          Logger.withMinimumLogLevel(LogLevel.Info)
        )
        const reconnected = yield* service.reconnected
        expect(logs).toEqual([])
        for (let outage = 1; outage <= 2; outage++) {
          yield* server.kill
          expect(yield* eventually(Effect.map(service.status, (s) => s === "degraded"))).toBe(true)
          yield* Effect.sleep("300 millis")
          yield* server.restart
          expect(yield* eventually(Effect.map(service.status, (s) => s === "up"))).toBe(true)
          yield* Queue.take(reconnected)
          expect(logs.length).toBe(2 * outage)
        }
        expect(logs).toEqual([warning, back, warning, back])
        expect(yield* Queue.size(reconnected)).toBe(0)
        expect(errors).toEqual([])
      }))

    it.scopedLive("a duplicate connects by itself, does not resubscribe after a reconnect and closes with its scope", () =>
      Effect.gen(function*() {
        const errors = yield* consoleErrors
        const server = yield* startRedisServer
        const service = yield* RedisClient.make({ connection: { path: server.socket } })
        const scope = yield* Scope.make()
        const d = yield* service.duplicate.pipe(Scope.extend(scope))
        expect(yield* eventually(Effect.sync(() => d.status === "ready"))).toBe(true)
        yield* Effect.promise(() => d.subscribe("news"))
        yield* server.kill
        yield* Effect.sleep("200 millis")
        yield* server.restart
        expect(yield* eventually(Effect.sync(() => d.status === "ready"))).toBe(true)
        // not in subscriber mode any more: an ordinary command works
        expect(yield* Effect.promise(() => d.set("k", "v"))).toBe("OK")
        expect(errors).toEqual([])
        yield* Scope.close(scope, Exit.void)
        expect(yield* eventually(Effect.sync(() => d.status === "end"))).toBe(true)
      }))

    it.scopedLive("registers a readiness check named redis by default with the target and connection state", () =>
      Effect.gen(function*() {
        const server = yield* startRedisServer
        const health = yield* Health.make()
        yield* RedisClient.make({ connection: { path: server.socket } }).pipe(
          Effect.provideService(Health.Health, health)
        )
        const report = yield* health.report
        expect(report.components).toEqual([{
          name: "redis",
          kind: "readiness",
          status: "up",
          details: { target: `unix:${server.socket}`, connection: "ready" }
        }])
      }))
  })

  describe("layerConfig", () => {
    const build = (entries: ReadonlyArray<readonly [string, string]>) =>
      Layer.build(RedisClient.layerConfig()).pipe(
        Effect.map((ctx) => ctx.unsafeMap.get(RedisClient.RedisClient.key) as RedisClient.Service),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map(entries)))
      )

    it.scopedLive("rejects a REDIS_URL that does not start with redis:// or rediss://", () =>
      Effect.gen(function*() {
        for (const url of ["http://x", "xredis://127.0.0.1:1", "http://x/redis://y"]) {
          const error = yield* Effect.flip(build([["REDIS_URL", url]]))
          expect(String(error)).toContain("REDIS_URL")
          expect(String(error)).toContain("must be a redis:// or rediss:// URL")
        }
      }))

    it.scopedLive("takes a redis:// REDIS_URL and does not fail fast by default", () =>
      Effect.gen(function*() {
        const service = yield* build([["REDIS_URL", "redis://127.0.0.1:1"]])
        expect(service.target).toBe("127.0.0.1:1")
        expect(yield* service.status).toBe("degraded")
      }))

    it.scopedLive("fails fast when REDIS_FAIL_FAST is true", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(build([["REDIS_URL", "redis://127.0.0.1:1"], ["REDIS_FAIL_FAST", "true"]]))
        expect(String(error)).toContain("Cannot connect to Redis at 127.0.0.1:1")
      }))
  })
})
