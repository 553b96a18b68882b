/**
 * The exact answers of the health server (status codes, headers, bodies), its option checks, its
 * Config keys and its logs, over a real HTTP server on a free port.
 */
import { Bulkhead, Health } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Config, ConfigProvider, Duration, Effect, Exit, HashMap, Layer, Logger, Option, Scope } from "effect"
import * as HealthServer from "../src/HealthServer.js"
import * as Status from "../src/Status.js"
import { expectProblem, firstEvent, get } from "./fetched.js"

const ServerLive = (options: HealthServer.Options = {}) =>
  HealthServer.layer({ port: 0, ...options }).pipe(
    Layer.provideMerge(Status.layer({ service: "billing" })),
    Layer.provideMerge(Health.layer())
  )

const server = Effect.map(HealthServer.HealthServer, (s) => s.url)

const isoTimestamp = expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)

/** The defect a Layer dies with while it is built, if any. */
const buildDefect = (options: HealthServer.Options) =>
  Effect.scoped(Layer.build(HealthServer.layer(options))).pipe(
    Effect.exit,
    Effect.map((exit) => Exit.isFailure(exit) ? Cause.dieOption(exit.cause) : Option.none())
  )

interface Logged {
  readonly level: string
  readonly message: string
  readonly annotations: Record<string, unknown>
  readonly cause: Cause.Cause<unknown>
}

const capturingLogger = (into: Array<Logged>) =>
  Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ annotations, cause, logLevel, message }) => {
      into.push({
        level: logLevel.label,
        message: Array.isArray(message) ? message.join(" ") : String(message),
        annotations: Object.fromEntries(HashMap.toEntries(annotations)),
        cause
      })
    })
  )

/** A bulkhead whose state dies, so that `/status` fails. */
const trackBrokenBulkhead = (message: string) =>
  Effect.gen(function*() {
    const status = yield* Status.Status
    const broken: Bulkhead.Bulkhead = {
      ...(yield* Bulkhead.make({ name: "broken" })),
      state: Effect.die(new Error(message))
    }
    yield* status.trackBulkhead(broken)
  })

describe("HealthServer answers", () => {
  it.live("/healthz and /readyz answer 200 with the report's status and time while everything is up", () =>
    Effect.gen(function*() {
      const url = yield* server
      const health = yield* Health.Health
      yield* health.register("database", Effect.succeed({ status: "up" as const }), { kind: "readiness" })
      const live = yield* get(`${url}/healthz`)
      expect(live.status).toBe(200)
      expect(live.headers.get("content-type")).toBe("application/json")
      expect(live.headers.get("cache-control")).toBe("no-store")
      expect(JSON.parse(live.body)).toEqual({ status: "up", live: true, checkedAt: isoTimestamp })
      const ready = yield* get(`${url}/readyz`)
      expect(ready.status).toBe(200)
      expect(ready.headers.get("cache-control")).toBe("no-store")
      expect(JSON.parse(ready.body)).toEqual({ status: "up", ready: true, checkedAt: isoTimestamp })
    }).pipe(Effect.scoped, Effect.provide(ServerLive())))

  it.live("/healthz and /readyz list exactly the components that fail each probe, with their details", () =>
    Effect.gen(function*() {
      const url = yield* server
      const health = yield* Health.Health
      const check = (status: Health.Status, details?: Record<string, unknown>) =>
        Effect.succeed(details === undefined ? { status } : { status, details })
      yield* health.register("db", check("down", { error: "refused" }), { kind: "readiness" })
      yield* health.register("cache", check("degraded"), { kind: "readiness" })
      yield* health.register("disk", check("up"), { kind: "readiness" })
      yield* health.register("loop", check("degraded", { lagMillis: 250 }), { kind: "liveness" })
      yield* health.register("worker", check("down", { error: "stuck" }), { kind: "liveness" })
      yield* health.register("heartbeat", check("up"), { kind: "liveness" })

      const live = yield* get(`${url}/healthz`)
      expectProblem(live, {
        type: "urn:bulwark:health:not-live",
        title: "The process is not live",
        status: 503,
        checkedAt: isoTimestamp,
        reasons: [{ name: "worker", kind: "liveness", status: "down", details: { error: "stuck" } }]
      })

      const ready = yield* get(`${url}/readyz`)
      expectProblem(ready, {
        type: "urn:bulwark:health:not-ready",
        title: "The process is not ready",
        status: 503,
        checkedAt: isoTimestamp,
        live: false,
        reasons: [
          { name: "db", kind: "readiness", status: "down", details: { error: "refused" } },
          { name: "cache", kind: "readiness", status: "degraded" },
          { name: "worker", kind: "liveness", status: "down", details: { error: "stuck" } }
        ]
      })
    }).pipe(Effect.scoped, Effect.provide(ServerLive())))

  it.live("unknown paths are 404 with a detail listing the endpoints; other methods 405 allowing GET", () =>
    Effect.gen(function*() {
      const url = yield* server
      const missing = yield* get(`${url}/nope?x=1`)
      expectProblem(missing, {
        type: "urn:bulwark:http:not-found",
        title: "Not Found",
        status: 404,
        detail: "No endpoint at /nope; try one of /, /healthz, /readyz, /metrics, /status, /events"
      })
      const deleted = yield* get(`${url}/status`, { method: "DELETE" })
      expect(deleted.headers.get("allow")).toBe("GET")
      expectProblem(deleted, {
        type: "urn:bulwark:http:method-not-allowed",
        title: "Method Not Allowed",
        status: 405,
        detail: "DELETE is not allowed; every endpoint answers GET only"
      })
    }).pipe(Effect.provide(ServerLive())))

  it.live("without the dashboard, / and /events are 404 and the detail lists only the other endpoints", () =>
    Effect.gen(function*() {
      const url = yield* server
      for (const path of ["/", "/events"]) {
        const res = yield* get(`${url}${path}`)
        expect(res.status).toBe(404)
        expect(JSON.parse(res.body)).toEqual({
          type: "urn:bulwark:http:not-found",
          title: "Not Found",
          status: 404,
          detail: `No endpoint at ${path}; try one of /healthz, /readyz, /metrics, /status`
        })
      }
      expect((yield* get(`${url}/status`)).status).toBe(200)
    }).pipe(Effect.provide(ServerLive({ dashboard: false }))))

  it.live("the dashboard, the event stream and the metrics are never cached; the page loads nothing from elsewhere", () =>
    Effect.gen(function*() {
      const url = yield* server
      const page = yield* get(`${url}/`)
      expect(page.status).toBe(200)
      expect(page.headers.get("cache-control")).toBe("no-store")
      expect(page.headers.get("content-security-policy")).toBe(
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src data:"
      )
      const events = yield* firstEvent(`${url}/events`)
      expect(events.status).toBe(200)
      expect(events.headers.get("content-type")).toBe("text/event-stream")
      expect(events.headers.get("cache-control")).toBe("no-store")
      expect(events.headers.get("x-accel-buffering")).toBe("no")
      expect(events.text).toMatch(/^event: status\ndata: \{"service":"billing",[^\n]*\}\n\n/)
      const metrics = yield* get(`${url}/metrics`)
      expect(metrics.status).toBe(200)
      expect(metrics.headers.get("cache-control")).toBe("no-store")
      const status = yield* get(`${url}/status`)
      expect(status.headers.get("cache-control")).toBe("no-store")
    }).pipe(Effect.provide(ServerLive())))

  it.live("a failing handler answers a 500 problem that is never cached, and logs the path with the cause", () => {
    const logs: Array<Logged> = []
    return Effect.gen(function*() {
      yield* trackBrokenBulkhead("secret connection string")
      const url = yield* server
      const res = yield* get(`${url}/status`)
      expectProblem(res, {
        type: "urn:bulwark:failure:system:DEFECT",
        title: "Internal Server Error",
        status: 500,
        code: "DEFECT",
        category: "system",
        severity: "critical",
        retryable: false,
        timestamp: isoTimestamp
      })
      const failed = logs.filter((l) => l.level === "ERROR")
      expect(failed.map((l) => l.message)).toEqual(["HealthServer: /status failed"])
      expect((Cause.squash(failed[0]!.cause) as Error).message).toBe("secret connection string")
    }).pipe(Effect.scoped, Effect.provide(ServerLive()), Effect.provide(capturingLogger(logs)))
  })

  it.live("logs the address it listens on, annotated with the server and its url", () => {
    const logs: Array<Logged> = []
    return Effect.gen(function*() {
      const s = yield* HealthServer.HealthServer
      expect(s.url).toBe(`http://127.0.0.1:${s.port}`)
      const listening = logs.filter((l) => l.message.startsWith("HealthServer listening"))
      expect(listening).toEqual([{
        level: "INFO",
        message: `HealthServer listening on ${s.url}`,
        annotations: { "bulwark.server": "health", "bulwark.url": s.url },
        cause: Cause.empty
      }])
    }).pipe(Effect.provide(ServerLive()), Effect.provide(capturingLogger(logs)))
  })

  it.live("an IPv6 host is bracketed in the url", () =>
    Effect.gen(function*() {
      const s = yield* HealthServer.HealthServer
      expect(s.hostname).toBe("::1")
      expect(s.url).toBe(`http://[::1]:${s.port}`)
      expect((yield* get(`${s.url}/healthz`)).status).toBe(200)
    }).pipe(Effect.provide(ServerLive({ host: "::1" }))))

  it.live("closing the Layer ends an open event stream instead of waiting for it", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(ServerLive(), scope)
      const { url } = yield* Effect.provide(HealthServer.HealthServer, context)
      const response = yield* Effect.promise(() => fetch(`${url}/events`))
      const reader = response.body!.getReader()
      const first = yield* Effect.promise(() => reader.read())
      expect(first.done).toBe(false)
      // the stream never ends by itself: closing must cut its connection, or this never returns
      yield* Scope.close(scope, Exit.void)
      // the client sees the stream end, or break off, after at most what was in flight
      yield* Effect.promise(async () => {
        for (;;) {
          const next = await reader.read().catch(() => ({ done: true as const }))
          if (next.done) return
        }
      })
      const refused = yield* Effect.promise(() => fetch(`${url}/healthz`).then(() => false, () => true))
      expect(refused).toBe(true)
    }))

  it.live("/healthz and /readyz answer 200 up without a Health service; layerConfig reads its options", () =>
    Effect.gen(function*() {
      const s = yield* HealthServer.HealthServer
      expect(s.hostname).toBe("127.0.0.1")
      expect(JSON.parse((yield* get(`${s.url}/healthz`)).body)).toEqual({ status: "up", live: true })
      expect(JSON.parse((yield* get(`${s.url}/readyz`)).body)).toEqual({ status: "up", ready: true })
      // DASHBOARD=false from Config
      expect((yield* get(`${s.url}/`)).status).toBe(404)
    }).pipe(Effect.provide(
      HealthServer.layerConfig().pipe(
        Layer.provide(
          Layer.setConfigProvider(
            ConfigProvider.fromMap(new Map([["PORT", "0"], ["DASHBOARD", "false"]]), { pathDelim: "_" })
          )
        )
      )
    )))
})

describe("HealthServer options", () => {
  it.effect("a bad literal option is a defect with a message naming the field and the value", () =>
    Effect.gen(function*() {
      const message = (options: HealthServer.Options) =>
        Effect.map(buildDefect(options), Option.map((d) => [(d as Error).constructor.name, (d as Error).message]))
      expect(yield* message({ host: "" })).toEqual(
        Option.some(["TypeError", "HealthServer: host must not be empty"])
      )
      for (const port of [1.5, -1, 65536]) {
        expect(yield* message({ port })).toEqual(
          Option.some(["RangeError", `HealthServer: port must be an integer in [0, 65535], got ${port}`])
        )
      }
      for (const streamInterval of [0, -5, "0 millis"] as const) {
        expect(yield* message({ port: 0, streamInterval })).toEqual(
          Option.some([
            "RangeError",
            `HealthServer: streamInterval must be a duration > 0, got ${String(streamInterval)}`
          ])
        )
      }
    }))

  it.live("port 65535 and a 1 millisecond stream interval are accepted", () =>
    Effect.gen(function*() {
      // 65535 may be taken on this machine: only a defect (a rejected option) fails this test
      expect(yield* buildDefect({ port: 65535 })).toEqual(Option.none())
      expect(yield* buildDefect({ port: 0, streamInterval: "1 millis" })).toEqual(Option.none())
    }))

  it.effect("Config reads HOST, PORT, DASHBOARD, STREAM_INTERVAL and EXPOSE_ERRORS, with the defaults", () =>
    Effect.gen(function*() {
      const read = (map: Record<string, string>) =>
        Effect.withConfigProvider(
          Effect.map(HealthServer.config, (o) => ({ ...o, streamInterval: Duration.toMillis(o.streamInterval!) })),
          ConfigProvider.fromMap(new Map(Object.entries(map)), { pathDelim: "_" })
        )
      expect(yield* read({})).toEqual({
        host: "127.0.0.1",
        port: 9464,
        dashboard: true,
        streamInterval: 1000,
        exposeErrors: false
      })
      expect(
        yield* read({
          HOST: "::",
          PORT: "65535",
          DASHBOARD: "false",
          STREAM_INTERVAL: "1 millis",
          EXPOSE_ERRORS: "true"
        })
      ).toEqual({ host: "::", port: 65535, dashboard: false, streamInterval: 1, exposeErrors: true })
      expect((yield* read({ PORT: "0" })).port).toBe(0)
    }))

  it.effect("a bad Config value fails naming the key and the rule", () =>
    Effect.gen(function*() {
      const failure = (map: Record<string, string>) =>
        Effect.withConfigProvider(
          Config.nested(HealthServer.config, "HEALTH"),
          ConfigProvider.fromMap(new Map(Object.entries(map)), { pathDelim: "_" })
        ).pipe(Effect.flip, Effect.map(String))
      for (const port of ["-1", "65536"]) {
        expect(yield* failure({ HEALTH_PORT: port })).toContain(
          "Invalid data at HEALTH.PORT: \"must be an integer in [0, 65535]\""
        )
      }
      expect(yield* failure({ HEALTH_STREAM_INTERVAL: "0 millis" })).toContain(
        "Invalid data at HEALTH.STREAM_INTERVAL: \"must be a duration > 0\""
      )
    }))

  it("is the service tagged @bulwark/node/HealthServer", () => {
    expect(HealthServer.HealthServer.key).toBe("@bulwark/node/HealthServer")
  })
})
