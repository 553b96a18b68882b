/**
 * Every Effect metric of the process in the Prometheus text format: the metric registry is read
 * through `@effect/opentelemetry`'s metric producer (the Effect team's mapping of counters,
 * gauges, histograms, summaries and frequencies) and written by `@opentelemetry/exporter-prometheus`'s
 * serializer (OpenTelemetry's exposition writer), so no exposition code of ours is involved.
 */
import * as Metrics from "@effect/opentelemetry/Metrics"
import * as Resource from "@effect/opentelemetry/Resource"
import { PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import * as Effect from "effect/Effect"

export const contentType = "text/plain; version=0.0.4; charset=utf-8"

export const makeExposition = (serviceName: string): Effect.Effect<Effect.Effect<string>> =>
  Effect.map(Effect.provide(Metrics.makeProducer, Resource.layer({ serviceName })), (producer) => {
    // no prefix, no timestamps, the resource as target_info, no otel_scope_* labels
    const serializer = new PrometheusSerializer(undefined, false, undefined, false, true)
    return Effect.map(
      Effect.promise(() => producer.collect()),
      (result) => serializer.serialize(result.resourceMetrics)
    )
  })
