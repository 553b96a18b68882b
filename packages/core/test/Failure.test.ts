import { Failure } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Data, Duration, Effect, FiberId, Option, Schema, TestClock } from "effect"
import { prototypeKeys } from "./oddValues.js"

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
  it("the default matrix is the worker-pool decision matrix, row for row", () => {
    const expectedRows = [
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
    for (const [category, severity, strategy, maxRetries, backoff] of expectedRows) {
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

  it("every row of the default matrix, with its severity and whether it trips a breaker", () => {
    const rows = [
      ["initialization", "critical", "circuit_break", 3, "exponential", true],
      ["connection", "major", "backoff_retry", 5, "exponential", true],
      ["communication", "major", "immediate_retry", 3, "linear", true],
      ["timeout", "major", "backoff_retry", 2, "exponential", true],
      ["resource", "critical", "circuit_break", 1, "none", true],
      ["health_check", "minor", "backoff_retry", 3, "linear", true],
      ["session", "minor", "immediate_retry", 2, "none", true],
      ["external", "major", "failover", 1, "none", true],
      ["system", "critical", "abandon", 0, "none", true],
      ["validation", "warning", "abandon", 0, "none", false],
      ["security", "critical", "abandon", 0, "none", true],
      ["user_code", "minor", "abandon", 0, "none", true]
    ] as const
    expect(rows.map(([category]) => category).sort()).toEqual([...Failure.Category.literals].sort())
    for (const [category, severity, strategy, maxRetries, backoff, tripsBreaker] of rows) {
      expect({ category, ...Failure.defaultMatrix[category] }).toEqual({
        category,
        severity,
        strategy,
        maxRetries,
        backoff,
        tripsBreaker
      })
      // and a failure in that category, classified on its first attempt, carries the row
      const c = Failure.makeClassifier({ tables: [Failure.table<Refused>({ Refused: category })] })
      expect(c.classify(new Refused(), { attempt: 1 })).toMatchObject({
        category,
        severity,
        strategy,
        maxRetries,
        backoff,
        tripsBreaker
      })
    }
  })

  it("an abandoned failure is never retryable, whatever its rule says", () => {
    const c = Failure.makeClassifier({
      tables: [
        Failure.table<Refused | RateLimited | BadInput>({
          Refused: { category: "connection", retryable: true },
          RateLimited: { category: "connection", strategy: "abandon", retryable: true },
          BadInput: { category: "security", retryable: true }
        })
      ]
    })
    // escalated to abandon (critical past attempt 2)
    expect(c.classify(new Refused(), { attempt: 3, affectsAllWorkers: true })).toMatchObject({
      strategy: "abandon",
      retryable: false
    })
    expect(c.classify(new Refused(), { attempt: 1 })).toMatchObject({ strategy: "backoff_retry", retryable: true })
    // abandoned by the rule, and by the matrix row
    expect(c.classify(new RateLimited({ retryAfterMs: 1 }))).toMatchObject({ strategy: "abandon", retryable: false })
    expect(c.classify(new BadInput({ field: "x" }))).toMatchObject({ strategy: "abandon", retryable: false })
    for (const category of ["system", "validation", "security", "user_code"] as const) {
      const byRow = Failure.makeClassifier({ tables: [Failure.table<Refused>({ Refused: category })] })
      expect(byRow.classify(new Refused())).toMatchObject({ strategy: "abandon", retryable: false })
    }
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
    // The proof is the @ts-expect-error below: `tsc -b` (run first by `pnpm test`, tsconfig.test.json
    // includes test/) fails on an unused @ts-expect-error, so if the incomplete table ever compiled,
    // `pnpm test` would fail. At run time the incomplete table classifies what it names, and the tag
    // it leaves out falls to the classifier's unclassified default.
    // @ts-expect-error BadInput has no rule
    const incomplete = Failure.table<ApiError>({ Refused: "connection", RateLimited: "resource" })
    const c = Failure.makeClassifier({ tables: [incomplete] })
    expect(c.classify(new Refused()).category).toBe("connection")
    expect(c.classify(new BadInput({ field: "email" }))).toMatchObject({
      category: Failure.defaultClassifier.classify(new BadInput({ field: "email" })).category,
      code: "BAD_INPUT"
    })
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
      code: "REFUSED",
      unclassified: "Refused"
    })
    expect(c.classify(new Error("boom"))).toMatchObject({ code: "UNKNOWN_ERROR", retryable: true })
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
      code: "REFUSED"
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

  describe("hostile values and unusable rules", () => {
    it("a code or _tag that is a key of Object.prototype classifies normally", () => {
      for (const key of prototypeKeys) {
        for (const value of [{ _tag: key }, { code: key }, { _tag: key, code: key }]) {
          const c = Failure.defaultClassifier.classify(value)
          expect(c).toMatchObject({ category: "system", severity: "major", retryable: true })
          expect(c.warnings).toBeUndefined()
        }
        // and through a table that does not name it
        expect(Failure.makeClassifier({ tables: [table] }).classify({ _tag: key }).unclassified).toBe(key)
      }
    })

    it("a rule with an unknown category (from a function or a self-classifying error) is unclassified, with a warning naming it", () => {
      class Odd extends Data.TaggedError("Odd")<{}> {}
      const bad = Failure.table<Odd>({ Odd: () => ({ category: "network" as Failure.Category }) })
      const c = Failure.makeClassifier({ tables: [bad] }).classify(new Odd())
      expect(c).toMatchObject({ category: "system", severity: "major", retryable: true, code: "ODD" })
      expect(c.warnings).toEqual([expect.stringMatching(/rule for "Odd" names the unknown category network/)])
      for (const category of ["toString", "__proto__", "bogus"]) {
        const self = { [Failure.RuleKey]: { category } }
        const d = Failure.defaultClassifier.classify(self)
        expect(d.category).toBe("system")
        expect(d.warnings?.[0]).toContain(`unknown category ${category}`)
      }
      // unknown severity, strategy, backoff and maxRetries fall back to the row, with warnings
      const e = Failure.fromRule({
        category: "connection",
        severity: "loud" as Failure.Severity,
        maxRetries: -2,
        backoff: "toString" as Failure.BackoffKind
      })
      expect(e).toMatchObject({ severity: "major", maxRetries: 5, backoff: "exponential" })
      expect(e.warnings).toHaveLength(3)
    })

    it("a rule function that throws falls through to the next rule, with a warning", () => {
      class Boom extends Data.TaggedError("Boom")<{}> {}
      const throwing = Failure.table<Boom>({
        Boom: () => {
          throw new Error("rule bug")
        }
      })
      const c = Failure.makeClassifier({ tables: [throwing] }).classify(new Boom())
      expect(c.unclassified).toBe("Boom")
      expect(c.warnings).toEqual([expect.stringMatching(/rule for "Boom" threw \(rule bug\)/)])
    })

    it("retry-after hints: capped at maxRetryAfter (default 1 hour), invalid ones absent with a warning", () => {
      expect(Failure.fromRule({ category: "connection", retryAfter: Infinity }).retryAfter).toEqual(
        Option.some(Duration.hours(1))
      )
      expect(Failure.fromRule({ category: "connection", retryAfter: "2 days" }, { maxRetryAfter: "1 minute" }))
        .toMatchObject({ retryAfter: Option.some(Duration.minutes(1)) })
      for (const hint of ["soon", Number.NaN, -1, "-5 seconds"]) {
        const c = Failure.fromRule({ category: "connection", retryAfter: hint as Duration.DurationInput }, {
          tag: "Limited"
        })
        expect(c.retryAfter).toEqual(Option.none())
        expect(c.warnings).toEqual([expect.stringMatching(/retry-after hint .* of "Limited" is not a duration >= 0/)])
      }
      expect(() => Failure.makeClassifier({ maxRetryAfter: Infinity })).toThrow(
        /Failure.makeClassifier: maxRetryAfter must be a finite duration >= 0, got Infinity/
      )
      expect(() => Failure.makeClassifier({ maxRetryAfter: "-1 seconds" })).toThrow(/maxRetryAfter/)
    })

    it("a maxRetries written in a rule wins over strategy escalation; the severity still rises", () => {
      const c = Failure.makeClassifier({ tables: [table] })
      // RateLimited: resource (critical), backoff_retry, maxRetries 3 written
      expect(c.classify(new RateLimited({ retryAfterMs: 1 }), { attempt: 4 })).toMatchObject({
        severity: "critical",
        strategy: "backoff_retry",
        retryable: true,
        maxRetries: 3
      })
      // Refused: the matrix's 5, not written: abandoned at attempt 4
      expect(c.classify(new Refused(), { attempt: 4 })).toMatchObject({ strategy: "abandon", retryable: false })
    })

    it("refine: the stage's table first, then the base; a function may return undefined to defer", () => {
      const base = Failure.makeClassifier({ tables: [table] })
      const stage = Failure.refine<ApiError>(base, (e) => e._tag === "Refused" ? "session" : undefined)
      expect(stage.classify(new Refused()).category).toBe("session")
      expect(stage.classify(new BadInput({ field: "x" })).category).toBe("validation")
      expect(Failure.refine(base, undefined)).toBe(base)
      const again = (e: ApiError) => e._tag === "Refused" ? "session" as const : undefined
      expect(Failure.refine<ApiError>(base, again)).toBe(Failure.refine<ApiError>(base, again))
    })

    it("warningsFor: once per unclassified tag and classifier, shared with its refinements", () => {
      const base = Failure.makeClassifier({})
      const refined = Failure.refine(base, Failure.table<RateLimited>({ RateLimited: "resource" }))
      const first = Failure.warningsFor(refined, refined.classify(new Refused()))
      expect(first).toEqual([expect.stringMatching(/The failure "Refused" is not classified/)])
      expect(Failure.warningsFor(base, base.classify(new Refused()))).toEqual([])
      expect(Failure.warningsFor(base, base.classify(new BadInput({ field: "x" })))).toHaveLength(1)
      // another classifier warns again
      const other = Failure.makeClassifier({})
      expect(Failure.warningsFor(other, other.classify(new Refused()))).toHaveLength(1)
    })

    it.effect("toExecutionError: a tagged error without a message says its tag and fields", () =>
      Effect.gen(function*() {
        class BadRequest extends Data.TaggedError("BadRequest")<{ readonly reason: string; readonly status: number }> {}
        const error = yield* Failure.toExecutionError(new BadRequest({ reason: "empty", status: 400 }))
        expect(error.message).toBe(`BadRequest { reason: "empty", status: 400 }`)
        const json = Failure.encodeExecutionError(yield* Failure.toExecutionError(Object.create(null)))
        expect(json.message).toBe("an object that cannot be described")
      }))
  })
})
