import { Bulkhead, CircuitBreaker, Failure, Policy, Retry } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Data, Effect, Exit, Option, Tracer } from "effect"

class Unavailable extends Data.TaggedError("Unavailable")<{}> {}
class BadRequest extends Data.TaggedError("BadRequest")<{}> {}

interface Recorded {
  readonly name: string
  readonly parent: string | undefined
  readonly attributes: Map<string, unknown>
  ended: boolean
}

/** A tracer that keeps every span it starts, with its parent's name and its attributes. */
const recordingTracer = () => {
  const spans: Array<Recorded> = []
  let next = 0
  const tracer = Tracer.make({
    span: (name, parent, context, links, startTime, kind) => {
      const attributes = new Map<string, unknown>()
      const recorded: Recorded = {
        name,
        parent: Option.isSome(parent) && parent.value._tag === "Span" ? parent.value.name : undefined,
        attributes,
        ended: false
      }
      spans.push(recorded)
      let status: Tracer.SpanStatus = { _tag: "Started", startTime }
      const span: Tracer.Span = {
        _tag: "Span",
        name,
        spanId: `span-${next++}`,
        traceId: "trace",
        parent,
        context,
        get status() {
          return status
        },
        attributes,
        links,
        sampled: true,
        kind,
        end: (endTime, exit) => {
          status = { _tag: "Ended", startTime, endTime, exit }
          recorded.ended = true
        },
        attribute: (key, value) => {
          attributes.set(key, value)
        },
        event: () => {},
        addLinks: () => {}
      }
      return span
    },
    context: (f) => f()
  })
  return { spans, tracer }
}

const classifier = Failure.layerClassifier({
  tables: [Failure.table<Unavailable | BadRequest>({ Unavailable: "connection", BadRequest: "validation" })]
})

describe("Policy.make spans", () => {
  it.scoped("runs each stage in a span bulwark.<stage>, nested in the documented order", () =>
    Effect.gen(function*() {
      const { spans, tracer } = recordingTracer()
      const breaker = yield* CircuitBreaker.make({ name: "payments" })
      const bulkhead = yield* Bulkhead.make({ name: "payments", maxConcurrent: 2 })
      const policy = Policy.make({
        name: "payments",
        spans: true,
        timeout: "1 second",
        bulkhead: bulkhead.protect,
        breaker: breaker.protect,
        retry: Retry.policy({ maxRetries: 2 }),
        totalTimeout: "10 seconds",
        fallback: Effect.succeed("later")
      })
      const result = yield* Effect.succeed("paid").pipe(policy, Effect.withTracer(tracer))
      expect(result).toBe("paid")
      const chain = spans.map((s) => [s.name, s.parent])
      expect(chain).toEqual([
        ["bulwark.fallback", undefined],
        ["bulwark.totalTimeout", "bulwark.fallback"],
        ["bulwark.retry", "bulwark.totalTimeout"],
        ["bulwark.breaker", "bulwark.retry"],
        ["bulwark.bulkhead", "bulwark.breaker"],
        ["bulwark.timeout", "bulwark.bulkhead"]
      ])
      expect(spans.every((s) => s.ended)).toBe(true)
      expect(spans.every((s) => s.attributes.get("bulwark.policy") === "payments")).toBe(true)
      expect(spans.map((s) => s.attributes.get("bulwark.stage"))).toEqual(Policy.order)
      // a call that succeeds records no classification
      expect(spans.some((s) => s.attributes.has("bulwark.category"))).toBe(false)
    }).pipe(Effect.provide(classifier)))

  it.scoped("a failing stage records the failure's classification on its span", () =>
    Effect.gen(function*() {
      const { spans, tracer } = recordingTracer()
      const policy = Policy.make({ name: "orders", spans: true, retry: Retry.policy({ maxRetries: 0 }) })
      const error = yield* Effect.fail(new BadRequest()).pipe(policy, Effect.withTracer(tracer), Effect.flip)
      expect(error._tag).toBe("BadRequest")
      const retrySpan = spans.find((s) => s.name === "bulwark.retry")!
      expect(Object.fromEntries(retrySpan.attributes)).toMatchObject({
        "bulwark.stage": "retry",
        "bulwark.category": "validation",
        "bulwark.code": "BAD_REQUEST",
        "bulwark.retryable": false,
        "bulwark.defect": false
      })
    }).pipe(Effect.provide(classifier)))

  it.scoped("without spans: true no span is started", () =>
    Effect.gen(function*() {
      const { spans, tracer } = recordingTracer()
      const policy = Policy.make({ name: "orders", timeout: "1 second", retry: Retry.policy({ maxRetries: 1 }) })
      yield* Effect.succeed(1).pipe(policy, Effect.withTracer(tracer))
      expect(spans).toEqual([])
    }))

  it.scoped("an interrupted stage is marked bulwark.interrupted; a policy without a name sets no bulwark.policy", () =>
    Effect.gen(function*() {
      const { spans, tracer } = recordingTracer()
      const policy = Policy.make({ spans: true, timeout: "1 second" })
      const exit = yield* Effect.exit(Effect.interrupt.pipe(policy, Effect.withTracer(tracer)))
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect(spans.map((s) => s.name)).toEqual(["bulwark.timeout"])
      const attributes = spans[0]!.attributes
      expect(attributes.get("bulwark.interrupted")).toBe(true)
      expect(attributes.get("bulwark.stage")).toBe("timeout")
      expect(attributes.has("bulwark.policy")).toBe(false)
      expect(attributes.has("bulwark.category")).toBe(false)
    }))
})
