/**
 * The endpoints an orchestrator, a scraper and a person read, on `@effect/platform`'s HTTP server:
 *
 * | path | answers |
 * |---|---|
 * | `/healthz` | liveness: 200, or 503 once a liveness check is down (a supervisor escalated) |
 * | `/readyz` | readiness from `Health`: 200, or 503 with the components that are not up |
 * | `/metrics` | every Effect metric in the Prometheus text format |
 * | `/status` | JSON: breakers, bulkheads, retry budgets, supervisors (see `Status`) |
 * | `/events` | the `/status` JSON as Server-Sent Events |
 * | `/` | a live dashboard (one self-contained HTML page following `/events`) |
 *
 * Errors are RFC 9457 problem details (`application/problem+json`); no stack trace or internal
 * message leaves the process unless `exposeErrors` is set. Unknown paths answer 404, methods other
 * than GET 405. It listens on 127.0.0.1 unless told otherwise.
 *
 * @since 0.1.0
 */
import { Failure, Health } from "@bulwark/core"
import * as InternalDuration from "@bulwark/core/internal/duration"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import type * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Http from "node:http"
import { dashboardHtml } from "./internal/dashboard.js"
import * as Prometheus from "./internal/prometheus.js"
import * as Status from "./Status.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The interface to listen on. Default: `"127.0.0.1"`; `"0.0.0.0"` (or `"::"`) listens on all of them. */
  readonly host?: string | undefined
  /** The port; 0 picks a free one (the bound address is logged). An integer in [0, 65535]. Default: 9464. */
  readonly port?: number | undefined
  /** Whether `/` serves the dashboard and `/events` the live stream. Default: `true`. */
  readonly dashboard?: boolean | undefined
  /** How often `/events` pushes the status when nothing happened. A duration > 0. Default: 1 second. */
  readonly streamInterval?: Duration.DurationInput | undefined
  /** Whether a 500 answer carries the failure's message. Default: `false` (never leak internals). */
  readonly exposeErrors?: boolean | undefined
}

/**
 * The running server.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  readonly hostname: string
  readonly port: number
  /** `http://host:port`, for logs and tests. */
  readonly url: string
}

/**
 * @since 0.1.0
 * @category tags
 */
export class HealthServer extends Context.Tag("@bulwark/node/HealthServer")<HealthServer, Service>() {}

interface Resolved {
  readonly host: string
  readonly port: number
  readonly dashboard: boolean
  readonly streamInterval: Duration.Duration
  readonly exposeErrors: boolean
}

const resolve = (options: Options): Resolved => {
  const host = options.host ?? "127.0.0.1"
  if (host.length === 0) throw new TypeError("HealthServer: host must not be empty")
  const port = options.port ?? 9464
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`HealthServer: port must be an integer in [0, 65535], got ${port}`)
  }
  const intervalMillis = InternalDuration.toMillis(options.streamInterval ?? "1 second")
  if (!(intervalMillis > 0)) {
    throw new RangeError(`HealthServer: streamInterval must be a duration > 0, got ${String(options.streamInterval)}`)
  }
  return {
    host,
    port,
    dashboard: options.dashboard ?? true,
    streamInterval: Duration.millis(intervalMillis),
    exposeErrors: options.exposeErrors ?? false
  }
}

// -----------------------------------------------------------------------------
// responses
// -----------------------------------------------------------------------------

const problemContentType = "application/problem+json"

const problem = (
  status: number,
  title: string,
  type: string,
  extra: Record<string, unknown> = {},
  headers: Record<string, string> = {}
): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.unsafeJson({ type, title, status, ...extra }, {
    status,
    contentType: problemContentType,
    headers: { "cache-control": "no-store", ...headers }
  })

const json = (body: unknown, status = 200): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.unsafeJson(body, { status, headers: { "cache-control": "no-store" } })

/** The components of a report that make it fail a probe, with their details (the reasons). */
const reasons = (report: Health.HealthReport, failing: (c: Health.ComponentReport) => boolean) =>
  report.components.filter(failing).map((c) => ({
    name: c.name,
    kind: c.kind,
    status: c.status,
    ...(c.details !== undefined ? { details: c.details } : {})
  }))

const encoder = new TextEncoder()

// -----------------------------------------------------------------------------
// the app
// -----------------------------------------------------------------------------

const endpoints = ["/", "/healthz", "/readyz", "/metrics", "/status", "/events"] as const

const makeApp = (
  options: Resolved,
  health: Option.Option<Health.Service>,
  status: Status.Service,
  metrics: Effect.Effect<string>
) => {
  const report = Option.isSome(health) ? Option.some(health.value.report) : Option.none()

  const healthz = Option.match(report, {
    onNone: () => Effect.succeed(json({ status: "up", live: true })),
    onSome: (report) =>
      Effect.map(report, (r) =>
        r.live
          ? json({ status: r.status, live: true, checkedAt: r.checkedAt.toISOString() })
          : problem(503, "The process is not live", "urn:bulwark:health:not-live", {
            checkedAt: r.checkedAt.toISOString(),
            reasons: reasons(r, (c) => c.kind === "liveness" && c.status === "down")
          }))
  })

  const readyz = Option.match(report, {
    onNone: () => Effect.succeed(json({ status: "up", ready: true })),
    onSome: (report) =>
      Effect.map(report, (r) =>
        r.ready
          ? json({ status: r.status, ready: true, checkedAt: r.checkedAt.toISOString() })
          : problem(503, "The process is not ready", "urn:bulwark:health:not-ready", {
            checkedAt: r.checkedAt.toISOString(),
            live: r.live,
            reasons: reasons(r, (c) => c.status !== "up" && (c.kind === "readiness" || c.status === "down"))
          }))
  })

  const statusJson = Effect.map(status.snapshot, Status.encodeSnapshot)

  const events = Stream.merge(
    Stream.tick(options.streamInterval),
    status.changes,
    { haltStrategy: "either" }
  ).pipe(
    Stream.mapEffect(() => statusJson),
    Stream.map((body) => encoder.encode(`event: status\ndata: ${JSON.stringify(body)}\n\n`))
  )

  const route = (path: string): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
    switch (path) {
      case "/healthz":
        return healthz
      case "/readyz":
        return readyz
      case "/metrics":
        return Effect.map(metrics, (text) =>
          HttpServerResponse.text(text, {
            contentType: Prometheus.contentType,
            headers: { "cache-control": "no-store" }
          }))
      case "/status":
        return Effect.map(statusJson, (body) => json(body))
      case "/":
        return options.dashboard
          ? Effect.succeed(
            HttpServerResponse.html(dashboardHtml).pipe(
              HttpServerResponse.setHeaders({
                "cache-control": "no-store",
                // everything is inline; nothing is loaded from elsewhere
                "content-security-policy":
                  "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src data:"
              })
            )
          )
          : Effect.succeed(notFound(path))
      case "/events":
        return Effect.succeed(
          options.dashboard
            ? HttpServerResponse.stream(events, {
              contentType: "text/event-stream",
              headers: { "cache-control": "no-store", "x-accel-buffering": "no" }
            })
            : notFound(path)
        )
      default:
        return Effect.succeed(notFound(path))
    }
  }

  const notFound = (path: string) =>
    problem(404, "Not Found", "urn:bulwark:http:not-found", {
      detail: `No endpoint at ${path}; try one of ${
        endpoints.filter((e) => options.dashboard || (e !== "/" && e !== "/events")).join(", ")
      }`
    })

  const internalError = (cause: unknown) =>
    Effect.map(Failure.toExecutionError(cause), (error) =>
      HttpServerResponse.unsafeJson(
        {
          ...Failure.toProblemDetails(error, { status: 500 }),
          title: options.exposeErrors ? error.message : "Internal Server Error",
          ...(options.exposeErrors ? {} : { detail: undefined })
        },
        { status: 500, contentType: problemContentType, headers: { "cache-control": "no-store" } }
      ))

  return Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const path = new URL(request.url, "http://localhost").pathname
    if (request.method !== "GET") {
      return problem(405, "Method Not Allowed", "urn:bulwark:http:method-not-allowed", {
        detail: `${request.method} is not allowed; every endpoint answers GET only`
      }, { allow: "GET" })
    }
    return yield* route(path).pipe(
      Effect.catchAllCause((cause) =>
        Effect.zipRight(
          Effect.logError(`HealthServer: ${path} failed`, cause),
          internalError(cause)
        )
      )
    )
  })
}

// -----------------------------------------------------------------------------
// layers
// -----------------------------------------------------------------------------

/**
 * Serves the endpoints for the lifetime of the Layer. `Health` and `Status` are read from the
 * context when provided (without `Health`, `/healthz` and `/readyz` always answer 200; without
 * `Status`, `/status` lists no component). Open event streams are closed when the Layer's scope
 * closes, so they never hold a shutdown up.
 *
 * @example
 * ```ts
 * import { HealthServer, Status } from "@bulwark/node"
 * import { Health } from "@bulwark/core"
 * import { Effect, Layer } from "effect"
 *
 * const Observability = HealthServer.layer({ port: 9464 }).pipe(
 *   Layer.provideMerge(Status.layer({ service: "billing" })),
 *   Layer.provideMerge(Health.layer())
 * )
 *
 * // serves the endpoints until the program ends; start it with `Main.run(service)`
 * const service = Effect.never.pipe(Effect.provide(Observability))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<HealthServer, HttpServerError.ServeError> =>
  Layer.scoped(
    HealthServer,
    Effect.gen(function*() {
      const resolved = resolve(options)
      const health = yield* Effect.serviceOption(Health.Health)
      const status = yield* Effect.flatMap(
        Effect.serviceOption(Status.Status),
        Option.match({ onNone: () => Status.make(), onSome: Effect.succeed })
      )
      const metrics = yield* Prometheus.makeExposition(status.service)
      let nodeServer: Http.Server | undefined
      const server = yield* NodeHttpServer.make(() => {
        nodeServer = Http.createServer()
        return nodeServer
      }, { host: resolved.host, port: resolved.port })
      // runs before the server's own close: event streams never end by themselves
      yield* Effect.addFinalizer(() => Effect.sync(() => nodeServer?.closeAllConnections()))
      yield* server.serve(makeApp(resolved, health, status, metrics))
      const address = server.address
      const hostname = address._tag === "TcpAddress" ? address.hostname : address.path
      const port = address._tag === "TcpAddress" ? address.port : 0
      const url = address._tag === "TcpAddress"
        ? `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`
        : `unix:${hostname}`
      yield* Effect.logInfo(`HealthServer listening on ${url}`).pipe(
        Effect.annotateLogs({ "bulwark.server": "health", "bulwark.url": url })
      )
      return { hostname, port, url }
    })
  )

/**
 * The options read from `Config`: `HOST`, `PORT`, `DASHBOARD`, `STREAM_INTERVAL` and
 * `EXPOSE_ERRORS`, each optional with the defaults of {@link Options}. Nest it
 * (`Config.nested("HEALTH")`) to read `HEALTH_PORT` … A bad value fails with a `ConfigError`
 * naming the key.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Options> = Config.all({
  host: Config.nonEmptyString("HOST").pipe(Config.withDefault("127.0.0.1")),
  port: Config.integer("PORT").pipe(
    Config.validate({ message: "must be an integer in [0, 65535]", validation: (n) => n >= 0 && n <= 65535 }),
    Config.withDefault(9464)
  ),
  dashboard: Config.boolean("DASHBOARD").pipe(Config.withDefault(true)),
  streamInterval: Config.duration("STREAM_INTERVAL").pipe(
    Config.validate({ message: "must be a duration > 0", validation: (d) => Duration.toMillis(d) > 0 }),
    Config.withDefault(Duration.seconds(1))
  ),
  exposeErrors: Config.boolean("EXPOSE_ERRORS").pipe(Config.withDefault(false))
})

/**
 * {@link layer} with its options read from `Config` (see {@link config}).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config<Options> = config
): Layer.Layer<HealthServer, HttpServerError.ServeError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(options, layer))
