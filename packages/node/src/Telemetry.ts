/**
 * Bulwark's metrics, spans and logs through OpenTelemetry (`@effect/opentelemetry`), for services
 * that run a collector instead of (or besides) scraping `/metrics`.
 *
 * {@link layer} wires the OpenTelemetry SDK to Effect: every Effect metric (Bulwark's included) is
 * read by the metric readers you give, every span goes to your span processors, every log to your
 * log record processors. {@link stage} wraps one stage of a policy in a span and, when the stage
 * fails, records the failure's classification on it as attributes (`bulwark.category`,
 * `bulwark.code`, `bulwark.severity`, `bulwark.strategy`, `bulwark.retryable`).
 *
 * @since 0.1.0
 */
import { Policy } from "@bulwark/core"
import * as InternalDuration from "@bulwark/core/internal/duration"
import * as OtelLogger from "@effect/opentelemetry/Logger"
import * as OtelMetrics from "@effect/opentelemetry/Metrics"
import * as OtelResource from "@effect/opentelemetry/Resource"
import * as OtelTracer from "@effect/opentelemetry/Tracer"
import type { Attributes } from "@opentelemetry/api"
import type { LogRecordProcessor } from "@opentelemetry/sdk-logs"
import type { MetricReader } from "@opentelemetry/sdk-metrics"
import { BasicTracerProvider, type SpanProcessor } from "@opentelemetry/sdk-trace-base"
import * as Arr from "effect/Array"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** `service.name` of the resource. */
  readonly serviceName: string
  /** `service.version` of the resource. Default: none. */
  readonly serviceVersion?: string | undefined
  /** More resource attributes (`deployment.environment` …). Default: none. */
  readonly attributes?: Attributes | undefined
  /** Where spans go (a `BatchSpanProcessor` around an OTLP exporter, say). Default: none (no tracing). */
  readonly spanProcessors?: ReadonlyArray<SpanProcessor> | undefined
  /** What reads the metrics (a `PeriodicExportingMetricReader` …). Default: none. */
  readonly metricReaders?: ReadonlyArray<MetricReader> | undefined
  /** Where logs go, besides Effect's own logger. Default: none. */
  readonly logRecordProcessors?: ReadonlyArray<LogRecordProcessor> | undefined
  /** How long flushing may take when the Layer closes. A duration > 0. Default: 3 seconds. */
  readonly shutdownTimeout?: Duration.DurationInput | undefined
}

const tracerProvider = (processors: ReadonlyArray<SpanProcessor>, shutdownTimeout: Duration.Duration) =>
  Layer.scoped(
    OtelTracer.OtelTracerProvider,
    Effect.flatMap(OtelResource.Resource, (resource) =>
      Effect.acquireRelease(
        Effect.sync(() => new BasicTracerProvider({ resource, spanProcessors: [...processors] })),
        (provider) =>
          Effect.promise(() => provider.forceFlush().then(() => provider.shutdown())).pipe(
            // a finalizer runs uninterruptibly: without this the timeout could not stop the wait
            Effect.interruptible,
            Effect.timeoutOption(shutdownTimeout),
            Effect.ignore
          )
      ))
  )

/**
 * Exports metrics, spans and logs through the OpenTelemetry SDK for the lifetime of the Layer;
 * everything is flushed when it closes.
 *
 * @example
 * ```ts
 * import { Telemetry } from "@bulwark/node"
 * import { BatchSpanProcessor, ConsoleSpanExporter } from "@opentelemetry/sdk-trace-base"
 *
 * // swap the console exporter for @opentelemetry/exporter-trace-otlp-http's in production
 * const TelemetryLive = Telemetry.layer({
 *   serviceName: "billing",
 *   spanProcessors: [new BatchSpanProcessor(new ConsoleSpanExporter())]
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<never> => {
  if (options.serviceName.length === 0) throw new TypeError("Telemetry: serviceName must not be empty")
  const timeoutMillis = InternalDuration.toMillis(options.shutdownTimeout ?? "3 seconds")
  if (!(timeoutMillis > 0)) {
    throw new RangeError(`Telemetry: shutdownTimeout must be a duration > 0, got ${String(options.shutdownTimeout)}`)
  }
  const shutdownTimeout = Duration.millis(timeoutMillis)
  const spans = options.spanProcessors ?? []
  const readers = options.metricReaders ?? []
  const logs = options.logRecordProcessors ?? []
  const tracing = Arr.isNonEmptyReadonlyArray(spans)
    ? Layer.discard(OtelTracer.layer).pipe(Layer.provide(tracerProvider(spans, shutdownTimeout)))
    : Layer.empty
  const metrics = Arr.isNonEmptyReadonlyArray(readers)
    ? OtelMetrics.layer(() => readers, { shutdownTimeout })
    : Layer.empty
  const logging = Arr.isNonEmptyReadonlyArray(logs)
    ? OtelLogger.layerLoggerAdd.pipe(Layer.provide(OtelLogger.layerLoggerProvider(logs, { shutdownTimeout })))
    : Layer.empty
  return Layer.mergeAll(tracing, metrics, logging).pipe(
    Layer.provide(OtelResource.layer({
      serviceName: options.serviceName,
      ...(options.serviceVersion !== undefined ? { serviceVersion: options.serviceVersion } : {}),
      ...(options.attributes !== undefined ? { attributes: options.attributes } : {})
    }))
  )
}

/**
 * The resource options read from `Config`: `SERVICE_NAME` (required), `SERVICE_VERSION` and
 * `SHUTDOWN_TIMEOUT`; a bad or missing value fails with a `ConfigError` naming the key.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Pick<Options, "serviceName" | "serviceVersion" | "shutdownTimeout">> = Config
  .all({
    serviceName: Config.nonEmptyString("SERVICE_NAME"),
    serviceVersion: Config.option(Config.nonEmptyString("SERVICE_VERSION")),
    shutdownTimeout: Config.duration("SHUTDOWN_TIMEOUT").pipe(
      Config.validate({ message: "must be a duration > 0", validation: (d) => Duration.toMillis(d) > 0 }),
      Config.withDefault(Duration.seconds(3))
    )
  }).pipe(Config.map(({ serviceName, serviceVersion, shutdownTimeout }) => ({
    serviceName,
    shutdownTimeout,
    ...(Option.isSome(serviceVersion) ? { serviceVersion: serviceVersion.value } : {})
  })))

/**
 * {@link layer} with its resource read from `Config` (see {@link config}); the processors and
 * readers are objects, given in code.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  exporters: Pick<Options, "spanProcessors" | "metricReaders" | "logRecordProcessors" | "attributes">,
  options: Config.Config<Pick<Options, "serviceName" | "serviceVersion" | "shutdownTimeout">> = config
): Layer.Layer<never, ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(options, (read) => layer({ ...exporters, ...read })))

// -----------------------------------------------------------------------------
// spans
// -----------------------------------------------------------------------------

/**
 * The span attributes of a classification (the core's `Policy.spanAttributes`).
 *
 * @since 0.1.0
 * @category spans
 */
export const classificationAttributes = Policy.spanAttributes

/**
 * Runs one stage of a policy (a timeout, a retry, a breaker …) in a span named `bulwark.<name>`
 * (the core's `Policy.span`; `Policy.make({ spans: true })` does it for every stage it builds).
 * A failure or defect is classified with the `Classifier` in the context and recorded on the span
 * as attributes; an interruption is marked `bulwark.interrupted` and is not an error.
 *
 * @example
 * ```ts
 * import { Telemetry } from "@bulwark/node"
 * import { CircuitBreaker, Retry, Timeout } from "@bulwark/core"
 * import { Effect } from "effect"
 *
 * const charge: Effect.Effect<string, Error> = Effect.succeed("charged")
 *
 * const protectedCharge = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make({ name: "payments" })
 *   return yield* charge.pipe(
 *     Timeout.timeout("2 seconds"),
 *     Telemetry.stage("timeout"),
 *     breaker.protect,
 *     Telemetry.stage("breaker")
 *   )
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category spans
 */
export const stage =
  (name: string, attributes: Record<string, unknown> = {}) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => Policy.span(name, attributes)(self)
