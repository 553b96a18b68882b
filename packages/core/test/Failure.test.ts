import { Failure } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Data, Duration, Effect, FiberId, Option, Schema, TestClock } from "effect"

class Refused extends Data.TaggedError("Refused")<{}> {}
class RateLimited extends Data.TaggedError("RateLimited")<{ readonly retryAfterMs: number }> {}
class BadInput extends Data.TaggedError("BadInput")<{ readonly field: string }> {}
type ApiError = Refused | RateLimited | BadInput

const table = Failure.table<ApiError>({
  Refused: "connection",
  RateLimited: (e) => ({ category: "resource", strategy: "backoff_retry", maxRetries: 3, retryAfter: e.retryAfterMs }),
  BadInput: { category: "validation", code: "BAD_INPUT" }
})

describe("Failure", () => {
  it("the default matrix is seed 001's decision matrix, row for row", () => {
    const seed001 = [
      ["initialization", "critical", "circuit_break", 3, "exponential"],
      ["connection", "major", "backoff_retry", 5, "exponential"],
      ["communication", "major", "immediate_retry", 3, "linear"],
      ["timeout", "major", "backoff_retry", 2, "exponential"],
      ["resource", "critical", "circuit_break", 1, "none"],
      ["health_check", "minor", "backoff_retry", 3, "linear"],
      ["session", "minor", "immediate_retry", 2, "none"],
      ["external", "major", "failover", 1, "none"],
      ["system", "critical", "abandon", 0, "none"]
    ] as const
    for (const [category, severity, strategy, maxRetries, backoff] of seed001) {
      const row = Failure.defaultMatrix[category]
      expect([category, row.severity, row.strategy, row.maxRetries, row.backoff]).toEqual([
        category,
        severity,
        strategy,
        maxRetries,
        backoff
      ])
    }
    for (const category of ["validation", "security", "user_code"] as const) {
      expect(Failure.defaultMatrix[category].strategy).toBe("abandon")
      expect(Failure.defaultMatrix[category].maxRetries).toBe(0)
    }
    expect(Object.keys(Failure.defaultMatrix).sort()).toEqual([...Failure.Category.literals].sort())
  })

  it("a table classifies each tag of the union", () => {
    const classifier = Failure.makeClassifier({ tables: [table] })
    const refused = classifier.classify(new Refused())
    expect(refused).toMatchObject({
      category: "connection",
      severity: "major",
      strategy: "backoff_retry",
      retryable: true,
      maxRetries: 5,
      code: "REFUSED",
      tripsBreaker: true,
      defect: false
    })
    const limited = classifier.classify(new RateLimited({ retryAfterMs: 1500 }))
    expect(limited.retryAfter).toEqual(Option.some(Duration.millis(1500)))
    expect(limited.retryable).toBe(true)
    const bad = classifier.classify(new BadInput({ field: "email" }))
    expect(bad).toMatchObject({ category: "validation", code: "BAD_INPUT", retryable: false, tripsBreaker: false })
  })

  it("leaving a tag out of a table is a compile error", () => {
    // @ts-expect-error BadInput has no rule
    const incomplete = () => Failure.table<ApiError>({ Refused: "connection", RateLimited: "resource" })
    expect(incomplete).not.toThrow()
  })

  it("a rule naming an unknown category is rejected with the tag and the category", () => {
    expect(() => Failure.table<Refused>({ Refused: "network" as Failure.Category })).toThrow(
      /rule for "Refused" names the unknown category "network"/
    )
  })

  it("severity escalates past attempt 3 and for failures that affect every worker", () => {
    const c = Failure.makeClassifier({ tables: [table] })
    expect(c.classify(new Refused(), { attempt: 3 }).severity).toBe("major")
    expect(c.classify(new Refused(), { attempt: 4 }).severity).toBe("critical")
    expect(Failure.escalateSeverity("minor", { attempt: 4 })).toBe("major")
    expect(Failure.escalateSeverity("warning", { attempt: 9 })).toBe("warning")
    expect(Failure.escalateSeverity("minor", { attempt: 1, affectsAllWorkers: true })).toBe("critical")
  })

  it("a critical failure past attempt 2 is abandoned", () => {
    const classifier = Failure.makeClassifier({ tables: [table] })
    const early = classifier.classify(new Refused(), { attempt: 2, affectsAllWorkers: true })
    expect(early).toMatchObject({ severity: "critical", strategy: "backoff_retry", retryable: true })
    const late = classifier.classify(new Refused(), { attempt: 3, affectsAllWorkers: true })
    expect(late).toMatchObject({ severity: "critical", strategy: "abandon", retryable: false })
    expect(classifier.classify(new Refused(), { attempt: 4 }).strategy).toBe("abandon")
  })

  it("a typed failure no rule names gets the bounded unclassified default; defects are system / critical", () => {
    const c = Failure.defaultClassifier
    expect(c.classify(new Refused())).toMatchObject({
      category: "system",
      severity: "major",
      strategy: "backoff_retry",
      retryable: true,
      maxRetries: 3,
      backoff: "exponential",
      code: "UNCLASSIFIED_REFUSED",
      unclassified: "Refused"
    })
    expect(c.classify(new Error("boom"))).toMatchObject({ code: "UNCLASSIFIED_ERROR", retryable: true })
    expect(c.classify("weird")).toMatchObject({ category: "system", unclassified: "a string" })
    // escalation still applies: attempt 4 is critical (4 attempts in all either way)
    expect(c.classify(new Refused(), { attempt: 4 }).severity).toBe("critical")
    // the old behaviour, on request
    const strict = Failure.makeClassifier({ unclassified: "system" })
    expect(strict.classify(new Refused())).toMatchObject({
      category: "system",
      severity: "critical",
      strategy: "abandon",
      retryable: false,
      code: "UNCLASSIFIED_REFUSED"
    })
    expect(c.classifyDefect(new TypeError("x"))).toMatchObject({
      category: "system",
      severity: "critical",
      code: "DEFECT",
      defect: true,
      retryable: false
    })
  })

  it("Node system errors and Effect's own errors have built-in rules", () => {
    const c = Failure.defaultClassifier
    const refused = Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })
    expect(c.classify(refused)).toMatchObject({ category: "connection", code: "ECONNREFUSED", retryable: true })
    expect(c.classify(new Cause.TimeoutException())).toMatchObject({ category: "timeout", retryable: true })
  })

  it.effect("classifyCause: failure, defect, and interruption (not a failure)", () =>
    Effect.gen(function*() {
      const failed = yield* Failure.classifyCause(Cause.fail(new Refused())).pipe(
        Effect.provide(Failure.layerClassifier({ tables: [table] }))
      )
      expect(Option.map(failed, (c) => c.category)).toEqual(Option.some("connection"))
      const died = yield* Failure.classifyCause(Cause.die(new Error("bug")))
      expect(Option.map(died, (c) => c.defect)).toEqual(Option.some(true))
      const interrupted = yield* Failure.classifyCause(Cause.interrupt(FiberId.none))
      expect(Option.isNone(interrupted)).toBe(true)
    }))

  it.effect("the Classifier service replaces the default through a Layer", () =>
    Effect.gen(function*() {
      const before = yield* Failure.classify(new Refused())
      expect(before.category).toBe("system")
      const after = yield* Failure.classify(new Refused()).pipe(
        Effect.provide(Failure.layerClassifier({ tables: [table] }))
      )
      expect(after.category).toBe("connection")
    }))

  describe("ExecutionError", () => {
    it.effect("round-trips through its JSON shape", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(Date.UTC(2026, 0, 2, 3, 4, 5, 678))
        const error = yield* Failure.toExecutionError(new RateLimited({ retryAfterMs: 200 }), {
          taskId: "task-7",
          correlationId: "req-42",
          details: "upstream said 429"
        }).pipe(Effect.provide(Failure.layerClassifier({ tables: [table] })))
        const json = Failure.encodeExecutionError(error)
        expect(json).toEqual({
          type: "resource",
          code: "RATE_LIMITED",
          message: "RateLimited { retryAfterMs: 200 }",
          details: "upstream said 429",
          retryable: true,
          severity: "critical",
          strategy: "backoff_retry",
          task_id: "task-7",
          correlation_id: "req-42",
          timestamp: "2026-01-02T03:04:05.678Z"
        })
        const text = JSON.stringify(json)
        const decoded = yield* Failure.decodeExecutionError(JSON.parse(text))
        expect(decoded).toEqual(error)
      }))

    it.effect("a defect cause becomes a system / critical DEFECT with the defect's message", () =>
      Effect.gen(function*() {
        const error = yield* Failure.toExecutionError(Cause.die(new TypeError("undefined is not a function")))
        expect(error).toMatchObject({
          type: "system",
          code: "DEFECT",
          severity: "critical",
          retryable: false,
          message: "undefined is not a function"
        })
      }))

    it.effect("decoding bad input fails with an error that names the field", () =>
      Effect.gen(function*() {
        const bad = { type: "network", code: "X", message: "m", retryable: true, severity: "major" }
        const error = yield* Effect.flip(Failure.decodeExecutionError(bad))
        expect(error._tag).toBe("ParseError")
        expect(error.message).toMatch(/\["type"\]/)
      }))

    it.effect("converts to RFC 9457 problem details", () =>
      Effect.gen(function*() {
        const error = yield* Failure.toExecutionError(new BadInput({ field: "email" }), {
          taskId: "t1",
          correlationId: "c1",
          details: "email is required"
        }).pipe(Effect.provide(Failure.layerClassifier({ tables: [table] })))
        const problem = Failure.toProblemDetails(error)
        expect(problem).toEqual({
          type: "urn:bulwark:failure:validation:BAD_INPUT",
          title: "BadInput { field: \"email\" }",
          status: 400,
          detail: "email is required",
          instance: "urn:bulwark:task:t1",
          code: "BAD_INPUT",
          category: "validation",
          severity: "warning",
          retryable: false,
          correlation_id: "c1",
          timestamp: "1970-01-01T00:00:00.000Z"
        })
        const valid = yield* Schema.decodeUnknown(Failure.ProblemDetails)(problem)
        expect(valid.status).toBe(400)
        expect(Failure.toProblemDetails(error, { status: 422, instance: "/orders/1" })).toMatchObject({
          status: 422,
          instance: "/orders/1"
        })
      }))
  })
})
