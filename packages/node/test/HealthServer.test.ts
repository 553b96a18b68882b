import { Bulkhead, CircuitBreaker, FiberSupervisor, Health, RetryBudget } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Config, ConfigProvider, Effect, Exit, Layer, Metric, MetricBoundaries, Schema } from "effect"
import parsePrometheus from "parse-prometheus-text-format"
import * as HealthServer from "../src/HealthServer.js"
import * as Status from "../src/Status.js"
import { firstEvent, get } from "./fetched.js"

const ServerLive = (options: HealthServer.Options = {}) =>
  HealthServer.layer({ port: 0, ...options }).pipe(
    Layer.provideMerge(Status.layer({ service: "billing" })),
    Layer.provideMerge(Health.layer())
  )

const server = Effect.map(HealthServer.HealthServer, (s) => s.url)

describe("HealthServer", () => {
  it.live("binds 127.0.0.1 by default, on a free port when given 0", () =>
    Effect.gen(function*() {
      const s = yield* HealthServer.HealthServer
      expect(s.hostname).toBe("127.0.0.1")
      expect(s.port).toBeGreaterThan(0)
      const res = yield* get(`${s.url}/healthz`)
      expect(res.status).toBe(200)
      expect(JSON.parse(res.body)).toMatchObject({ live: true })
    }).pipe(Effect.provide(ServerLive())))

  it.live("answers unknown paths with 404 and other methods with 405, as problem details", () =>
    Effect.gen(function*() {
      const url = yield* server
      const missing = yield* get(`${url}/nope`)
      expect(missing.status).toBe(404)
      expect(missing.contentType).toBe("application/problem+json")
      expect(JSON.parse(missing.body)).toMatchObject({
        status: 404,
        title: "Not Found",
        type: "urn:bulwark:http:not-found"
      })
      const post = yield* get(`${url}/healthz`, { method: "POST" })
      expect(post.status).toBe(405)
      expect(post.headers.get("allow")).toBe("GET")
      expect(post.contentType).toBe("application/problem+json")
      expect(JSON.parse(post.body)).toMatchObject({ status: 405 })
    }).pipe(Effect.provide(ServerLive())))

  it.live("answers 500 without the internal message when a handler dies", () =>
    Effect.gen(function*() {
      const status = yield* Status.Status
      const broken: Bulkhead.Bulkhead = {
        ...(yield* Bulkhead.make({ name: "broken" })),
        state: Effect.die(new Error("secret connection string postgres://admin:hunter2@db"))
      }
      yield* status.trackBulkhead(broken)
      const res = yield* get(`${yield* server}/status`)
      expect(res.status).toBe(500)
      expect(res.contentType).toBe("application/problem+json")
      expect(res.body).not.toContain("hunter2")
      expect(res.body).not.toContain("at ")
      expect(JSON.parse(res.body)).toMatchObject({ status: 500, title: "Internal Server Error" })
    }).pipe(Effect.scoped, Effect.provide(ServerLive())))

  it.live("answers 500 with the failure's message when exposeErrors is set", () =>
    Effect.gen(function*() {
      const status = yield* Status.Status
      const broken: Bulkhead.Bulkhead = {
        ...(yield* Bulkhead.make({ name: "broken" })),
        state: Effect.die(new Error("queue table missing"))
      }
      yield* status.trackBulkhead(broken)
      const res = yield* get(`${yield* server}/status`)
      expect(res.status).toBe(500)
      expect(JSON.parse(res.body)).toMatchObject({ status: 500, title: "queue table missing", category: "system" })
    }).pipe(Effect.scoped, Effect.provide(ServerLive({ exposeErrors: true }))))

  it.live("/readyz is 503 with the reasons while a breaker is open; /healthz stays 200", () =>
    Effect.gen(function*() {
      const url = yield* server
      const breaker = yield* CircuitBreaker.make({ name: "payments" })
      expect((yield* get(`${url}/readyz`)).status).toBe(200)
      yield* breaker.isolate
      const res = yield* get(`${url}/readyz`)
      expect(res.status).toBe(503)
      expect(res.contentType).toBe("application/problem+json")
      const body = JSON.parse(res.body)
      expect(body).toMatchObject({ status: 503, live: true, type: "urn:bulwark:health:not-ready" })
      expect(body.reasons).toEqual([
        expect.objectContaining({ name: "breaker:payments", kind: "readiness", status: "degraded" })
      ])
      expect((yield* get(`${url}/healthz`)).status).toBe(200)
    }).pipe(Effect.scoped, Effect.provide(ServerLive())))

  it.live("/healthz is 503 once a supervisor escalated", () =>
    Effect.gen(function*() {
      const url = yield* server
      const supervisor = yield* FiberSupervisor.make({ name: "jobs" })
      expect((yield* get(`${url}/healthz`)).status).toBe(200)
      yield* supervisor.spawn("importer", Effect.die(new Error("bug")))
      yield* Effect.flip(supervisor.awaitEscalation)
      const res = yield* get(`${url}/healthz`)
      expect(res.status).toBe(503)
      const body = JSON.parse(res.body)
      expect(body.type).toBe("urn:bulwark:health:not-live")
      expect(body.reasons).toEqual([expect.objectContaining({ name: "supervisor:jobs", status: "down" })])
    }).pipe(Effect.scoped, Effect.provide(ServerLive())))

  it.live("/status holds breakers, bulkheads, retry budgets and supervisors in the documented schema", () =>
    Effect.gen(function*() {
      const url = yield* server
      const breaker = yield* CircuitBreaker.make({ name: "ledger", openDuration: "30 seconds" })
      const bulkhead = yield* Bulkhead.make({ name: "pdf", maxConcurrent: 2, maxQueued: 4 })
      const budget = yield* RetryBudget.make({ name: "ledger" })
      const supervisor = yield* FiberSupervisor.make({ name: "jobs" })
      yield* Status.trackBreaker(breaker)
      yield* Status.trackBulkhead(bulkhead)
      yield* Status.trackRetryBudget(budget)
      yield* Status.trackSupervisor(supervisor)
      yield* supervisor.spawn("mailer", Effect.never)
      yield* budget.deposit
      for (let i = 0; i < 5; i++) yield* Effect.exit(breaker.protect(Effect.fail(new Error("down"))))
      const res = yield* get(`${url}/status`)
      expect(res.status).toBe(200)
      expect(res.contentType).toContain("application/json")
      const snapshot = yield* Schema.decodeUnknown(Status.StatusSnapshot)(JSON.parse(res.body))
      expect(snapshot.service).toBe("billing")
      expect(snapshot.breakers).toEqual([expect.objectContaining({ name: "ledger", state: "Open", failures: 5 })])
      const retryAfter = snapshot.breakers[0]!.retryAfterMillis
      expect(retryAfter).toBeGreaterThan(25_000)
      expect(retryAfter).toBeLessThanOrEqual(30_000)
      expect(snapshot.breakers[0]!.transitions.map((t) => `${t.from}->${t.to}`)).toEqual(["Closed->Open"])
      expect(snapshot.bulkheads).toEqual([expect.objectContaining({ name: "pdf", maxConcurrent: 2, maxQueued: 4 })])
      expect(snapshot.retryBudgets).toEqual([expect.objectContaining({ name: "ledger", calls: 1 })])
      expect(snapshot.supervisors).toEqual([
        expect.objectContaining({ supervisor: "jobs", children: [expect.objectContaining({ name: "mailer" })] })
      ])
      expect(snapshot.health?.ready).toBe(false)
    }).pipe(Effect.scoped, Effect.provide(ServerLive())))

  it.live("/metrics is Prometheus text: names, labels, monotonic counters, histogram buckets", () =>
    Effect.gen(function*() {
      const url = yield* server
      const breaker = yield* CircuitBreaker.make({ name: "scrape-test" })
      // labelled like every Bulwark histogram (the parser fails on an unlabelled histogram whose
      // _count line comes before its buckets, an order the format allows)
      const latency = Metric.histogram("bulwark_test_latency_seconds", MetricBoundaries.fromIterable([0.1, 0.5, 1]))
        .pipe(Metric.tagged("dependency", "ledger"))
      const scrape = Effect.map(get(`${url}/metrics`), (res) => {
        expect(res.status).toBe(200)
        // the text exposition format's own type, which scrapers read the version from
        expect(res.contentType).toBe("text/plain; version=0.0.4; charset=utf-8")
        return parsePrometheus(res.body)
      })
      const calls = (families: ReturnType<typeof parsePrometheus>) => {
        const family = families.find((f) => f.name === "bulwark_breaker_calls_total")
        expect(family?.type).toBe("COUNTER")
        const sample = family!.metrics.find((m) =>
          m.labels?.breaker === "scrape-test" && m.labels.outcome === "success"
        )
        expect(sample).toBeDefined()
        return Number(sample!.value)
      }
      yield* breaker.protect(Effect.void)
      const first = calls(yield* scrape)
      yield* breaker.protect(Effect.void)
      yield* breaker.protect(Effect.void)
      yield* Metric.update(latency, 0.3)
      yield* Metric.update(latency, 0.7)
      yield* Metric.update(latency, 5)
      const families = yield* scrape
      expect(calls(families)).toBe(first + 2)
      const histogram = families.find((f) => f.name === "bulwark_test_latency_seconds")
      expect(histogram?.type).toBe("HISTOGRAM")
      // cumulative buckets; +Inf holds every observation
      expect(histogram!.metrics).toHaveLength(1)
      expect(histogram!.metrics[0]!.buckets).toEqual({ "0.1": "0", "0.5": "1", "1": "2", "+Inf": "3" })
      // the parser drops a labelled histogram's _count and _sum: read those two lines as written
      const text = (yield* get(`${url}/metrics`)).body
      expect(text).toContain("bulwark_test_latency_seconds_count{dependency=\"ledger\"} 3")
      expect(text).toMatch(/bulwark_test_latency_seconds_sum\{dependency="ledger"\} 6(\.0+1?)?\n/)
      const state = families.find((f) => f.name === "bulwark_breaker_state")
      expect(state?.type).toBe("GAUGE")
      // the service, as OpenTelemetry's resource: one target_info sample naming it
      const target = families.find((f) => f.name === "target_info")
      expect(target?.metrics.map((m) => [m.labels?.service_name, m.value])).toEqual([["billing", "1"]])
    }).pipe(Effect.scoped, Effect.provide(ServerLive())))

  it.live("/events streams the status as Server-Sent Events", () =>
    Effect.gen(function*() {
      const url = yield* server
      const events = yield* firstEvent(`${url}/events`)
      expect(events.headers.get("content-type")).toContain("text/event-stream")
      const first = events.text
      expect(first.startsWith("event: status\ndata: ")).toBe(true)
      const data = JSON.parse(first.slice("event: status\ndata: ".length, first.indexOf("\n\n")))
      expect(data.service).toBe("billing")
    }).pipe(Effect.provide(ServerLive())))

  it.live("serves the dashboard page at /", () =>
    Effect.gen(function*() {
      const res = yield* get(`${yield* server}/`)
      expect(res.status).toBe(200)
      expect(res.contentType).toContain("text/html")
      expect(res.body).toContain("new EventSource(\"events\")")
      // self-contained: nothing loaded from elsewhere
      expect(res.body).not.toMatch(/<(script|link)[^>]+(src|href)="http/)
    }).pipe(Effect.provide(ServerLive())))

  it.effect("reads its options from Config and names a bad key", () =>
    Effect.gen(function*() {
      const read = (map: Record<string, string>) =>
        Effect.withConfigProvider(
          Config.nested(HealthServer.config, "HEALTH"),
          ConfigProvider.fromMap(new Map(Object.entries(map)), { pathDelim: "_" })
        )
      const options = yield* read({ HEALTH_PORT: "8080", HEALTH_HOST: "0.0.0.0" })
      expect(options).toMatchObject({ port: 8080, host: "0.0.0.0", dashboard: true })
      const bad = yield* Effect.exit(read({ HEALTH_PORT: "70000" }))
      expect(Exit.isFailure(bad)).toBe(true)
      expect(String(Exit.isFailure(bad) ? bad.cause : "")).toMatch(/Invalid data at HEALTH.PORT/)
    }))

  it.effect("Status reads its options from Config and names a bad key", () =>
    Effect.gen(function*() {
      const provider = (map: Record<string, string>) =>
        Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(map)), { pathDelim: "_" }))
      const status = yield* Effect.provide(
        Status.Status,
        Status.layerConfig().pipe(Layer.provide(provider({ SERVICE: "ledger" })))
      )
      expect(status.service).toBe("ledger")
      const bad = yield* Effect.exit(
        Effect.provide(Status.Status, Status.layerConfig().pipe(Layer.provide(provider({ TRANSITIONS_KEPT: "0" }))))
      )
      expect(String(Exit.isFailure(bad) && bad.cause)).toContain("TRANSITIONS_KEPT")
    }))

  it("rejects bad literal options with the field named", () => {
    expect(() => Layer.build(HealthServer.layer({ port: 70000 })).pipe(Effect.scoped, Effect.runSync)).toThrow(/port/)
    expect(() => Effect.runSync(Status.make({ transitionsKept: 0 }))).toThrow(/transitionsKept/)
  })
})
