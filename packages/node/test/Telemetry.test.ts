import { CircuitBreaker, Failure } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { InMemoryLogRecordExporter, SimpleLogRecordProcessor } from "@opentelemetry/sdk-logs"
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MetricReader,
  PeriodicExportingMetricReader
} from "@opentelemetry/sdk-metrics"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { ConfigProvider, Data, Duration, Effect, Exit, Fiber, Layer, TestClock } from "effect"
import * as Telemetry from "../src/Telemetry.js"

class CardDeclined extends Data.TaggedError("CardDeclined")<{ readonly message: string }> {}

const classifier = Failure.layerClassifier({
  tables: [Failure.table<CardDeclined>({ CardDeclined: { category: "validation", code: "CARD_DECLINED" } })]
})

describe("Telemetry", () => {
  it.live("exports spans with the classification, Bulwark's metrics and logs to the SDK's exporters", () =>
    Effect.gen(function*() {
      const spans = new InMemorySpanExporter()
      const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
      const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 3_600_000 })
      const logs = new InMemoryLogRecordExporter()
      const TelemetryLive = Telemetry.layer({
        serviceName: "billing",
        serviceVersion: "1.2.3",
        attributes: { "deployment.environment": "test" },
        spanProcessors: [new SimpleSpanProcessor(spans)],
        metricReaders: [reader],
        logRecordProcessors: [new SimpleLogRecordProcessor({ exporter: logs })]
      })

      yield* Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "telemetry-test" })
        yield* breaker.protect(Effect.void).pipe(Telemetry.stage("breaker", { dependency: "cards" }))
        yield* Effect.exit(
          new CardDeclined({ message: "declined" }).pipe(breaker.protect, Telemetry.stage("breaker"))
        )
        const never = yield* Effect.fork(Effect.never.pipe(Telemetry.stage("timeout")))
        yield* Effect.yieldNow()
        yield* Fiber.interrupt(never)
        yield* Effect.logWarning("charge declined").pipe(Effect.annotateLogs("dependency", "cards"))
        yield* Effect.promise(() => reader.forceFlush())

        // read before the Layer closes: shutting the SDK down empties the in-memory exporters
        const finished = spans.getFinishedSpans()
        const [ok, failed, interrupted] = finished
        expect(finished.map((s) => s.name)).toEqual(["bulwark.breaker", "bulwark.breaker", "bulwark.timeout"])
        expect(ok!.attributes).toMatchObject({ "bulwark.stage": "breaker", dependency: "cards" })
        expect(ok!.attributes["bulwark.category"]).toBeUndefined()
        expect(failed!.attributes).toMatchObject({
          "bulwark.category": "validation",
          "bulwark.code": "CARD_DECLINED",
          "bulwark.retryable": false
        })
        expect(failed!.status.code).toBe(2) // ERROR
        expect(interrupted!.attributes).toMatchObject({ "bulwark.interrupted": true })
        expect(interrupted!.status.code).not.toBe(2)
        expect(ok!.resource.attributes["service.name"]).toBe("billing")
        expect(ok!.resource.attributes["service.version"]).toBe("1.2.3")
        expect(ok!.resource.attributes["deployment.environment"]).toBe("test")

        const exported = metricExporter.getMetrics().flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics))
        const calls = exported.find((m) => m.descriptor.name === "bulwark_breaker_calls_total")
        expect(calls).toBeDefined()
        const outcomes = Object.fromEntries(
          calls!.dataPoints
            .filter((p) => p.attributes.breaker === "telemetry-test")
            .map((p) => [p.attributes.outcome, p.value])
        )
        // a validation error counts as neither success nor failure
        expect(outcomes).toEqual({ success: 1, ignored: 1 })

        const records = logs.getFinishedLogRecords()
        const warning = records.find((r) => r.body === "charge declined")
        expect(warning?.severityText).toBe("WARN")
        expect(warning?.attributes).toMatchObject({ dependency: "cards" })
      }).pipe(Effect.scoped, Effect.provide(Layer.merge(TelemetryLive, classifier)))
    }))

  const never = () => new Promise<void>(() => {})
  class HangingReader extends MetricReader {
    protected onForceFlush = never
    protected onShutdown = never
  }
  const hangingExporters: ReadonlyArray<[string, Partial<Telemetry.Options>]> = [
    ["a span processor", {
      spanProcessors: [{ forceFlush: never, shutdown: never, onStart: () => {}, onEnd: () => {} }]
    }],
    ["a log processor", { logRecordProcessors: [{ forceFlush: never, shutdown: never, onEmit: () => {} }] }],
    ["a metric reader", { metricReaders: [new HangingReader()] }]
  ]
  it.effect.each(hangingExporters)(
    "%s whose flush never settles holds the Layer's close for shutdownTimeout, no longer",
    ([, exporters]) =>
      Effect.gen(function*() {
        const closing = yield* Effect.void.pipe(
          Effect.provide(Telemetry.layer({ serviceName: "hangs", shutdownTimeout: "2 seconds", ...exporters })),
          Effect.fork
        )
        yield* TestClock.adjust("1999 millis")
        expect(closing.unsafePoll()).toBeNull()
        yield* TestClock.adjust("1 millis")
        // the close ends on the test clock, not on the SDK's own 30-second flush timer
        for (let i = 0; i < 20 && closing.unsafePoll() === null; i++) yield* Effect.yieldNow()
        expect(closing.unsafePoll()).toEqual(Exit.void)
      })
  )

  it.effect("reads the resource from Config and names a missing key", () =>
    Effect.gen(function*() {
      const read = (map: Record<string, string>) =>
        Effect.exit(Effect.withConfigProvider(
          Telemetry.config,
          ConfigProvider.fromMap(new Map(Object.entries(map)), { pathDelim: "_" })
        ))
      const good = yield* read({ SERVICE_NAME: "billing", SERVICE_VERSION: "2.0.0" })
      expect(Exit.isSuccess(good) && good.value).toMatchObject({ serviceName: "billing", serviceVersion: "2.0.0" })
      const missing = yield* read({})
      expect(String(Exit.isFailure(missing) && missing.cause)).toContain("SERVICE_NAME")
      const bad = yield* read({ SERVICE_NAME: "billing", SHUTDOWN_TIMEOUT: "later" })
      expect(String(Exit.isFailure(bad) && bad.cause)).toContain("SHUTDOWN_TIMEOUT")
      const timed = yield* read({ SERVICE_NAME: "billing", SHUTDOWN_TIMEOUT: "5 seconds" })
      expect(Exit.isSuccess(timed) && Duration.toMillis(timed.value.shutdownTimeout!)).toBe(5_000)
      for (const zero of ["0 seconds", "-1 seconds"]) {
        const rejected = yield* read({ SERVICE_NAME: "billing", SHUTDOWN_TIMEOUT: zero })
        const message = String(Exit.isFailure(rejected) && rejected.cause)
        expect(message).toContain("SHUTDOWN_TIMEOUT")
        expect(message).toContain("must be a duration > 0")
      }
    }))

  it.live("layerConfig builds the Layer from Config, and fails with the missing key named", () =>
    Effect.gen(function*() {
      const spans = new InMemorySpanExporter()
      const provider = (map: Record<string, string>) =>
        Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(map)), { pathDelim: "_" }))
      const live = Telemetry.layerConfig({ spanProcessors: [new SimpleSpanProcessor(spans)] })
      yield* Effect.gen(function*() {
        yield* Effect.void.pipe(Telemetry.stage("retry"))
        const [span] = spans.getFinishedSpans()
        expect(span?.name).toBe("bulwark.retry")
        expect(span?.resource.attributes).toMatchObject({ "service.name": "ledger", "service.version": "4.5.6" })
      }).pipe(
        Effect.scoped,
        Effect.provide(live.pipe(Layer.provide(provider({ SERVICE_NAME: "ledger", SERVICE_VERSION: "4.5.6" }))))
      )
      const missing = yield* Effect.void.pipe(Effect.provide(live.pipe(Layer.provide(provider({})))), Effect.exit)
      expect(String(Exit.isFailure(missing) && missing.cause)).toContain("SERVICE_NAME")
    }))

  it.effect("closing the Layer flushes each span processor, then shuts it down", () =>
    Effect.gen(function*() {
      const calls: Array<string> = []
      const processor = {
        forceFlush: () => {
          calls.push("flush")
          return Promise.resolve()
        },
        shutdown: () => {
          calls.push("shutdown")
          return Promise.resolve()
        },
        onStart: () => {},
        onEnd: () => {}
      }
      yield* Effect.void.pipe(Effect.provide(Telemetry.layer({ serviceName: "closes", spanProcessors: [processor] })))
      expect(calls).toEqual(["flush", "shutdown"])
    }))

  it("rejects bad literal options with the field named", () => {
    expect(() => Telemetry.layer({ serviceName: "" })).toThrow(/serviceName/)
    expect(() => Telemetry.layer({ serviceName: "x", shutdownTimeout: "-1 seconds" })).toThrow(/shutdownTimeout/)
    expect(() => Telemetry.layer({ serviceName: "x", shutdownTimeout: 0 })).toThrow(
      /shutdownTimeout must be a duration > 0/
    )
  })
})
