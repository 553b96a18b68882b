import { Failure } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Data, Duration, Effect, FiberId, Logger, Option, Schema, TestClock } from "effect"
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

  describe("exact verdicts and messages", () => {
    const categoriesText =
      "initialization, connection, communication, timeout, resource, health_check, session, external, system, validation, security, user_code"

    it("the literals of every model, in order", () => {
      expect(Failure.Category.literals.join(", ")).toBe(categoriesText)
      expect(Failure.Severity.literals).toEqual(["critical", "major", "minor", "warning"])
      expect(Failure.Strategy.literals).toEqual([
        "immediate_retry",
        "backoff_retry",
        "circuit_break",
        "failover",
        "abandon"
      ])
      expect(Failure.BackoffKind.literals).toEqual(["exponential", "linear", "none"])
      expect(Failure.RuleKey).toBe(Symbol.for("@bulwark/core/Failure/Rule"))
      expect(Failure.Classifier.key).toBe("@bulwark/core/Failure/Classifier")
    })

    it("a rule may name every severity, strategy and backoff, and gets it without a warning", () => {
      for (const severity of ["critical", "major", "minor", "warning"] as const) {
        const c = Failure.fromRule({ category: "connection", severity })
        expect([c.severity, c.warnings]).toEqual([severity, undefined])
      }
      for (const strategy of ["immediate_retry", "backoff_retry", "circuit_break", "failover", "abandon"] as const) {
        const c = Failure.fromRule({ category: "connection", strategy })
        expect([c.strategy, c.warnings]).toEqual([strategy, undefined])
      }
      for (const backoff of ["exponential", "linear", "none"] as const) {
        const c = Failure.fromRule({ category: "connection", backoff })
        expect([c.backoff, c.warnings]).toEqual([backoff, undefined])
      }
    })

    it("on its first attempt a failure is retryable exactly when its row retries", () => {
      const retryable = {
        initialization: false,
        connection: true,
        communication: true,
        timeout: true,
        resource: false,
        health_check: true,
        session: true,
        external: true,
        system: false,
        validation: false,
        security: false,
        user_code: false
      } as const
      for (const category of Failure.Category.literals) {
        const c = Failure.makeClassifier({ tables: [Failure.table<Refused>({ Refused: category })] })
        expect([category, c.classify(new Refused(), { attempt: 1 }).retryable]).toEqual([category, retryable[category]])
      }
    })

    it("a rule's own retryable, maxRetries and tripsBreaker win over the row", () => {
      expect(Failure.fromRule({ category: "connection", retryable: false })).toMatchObject({
        strategy: "backoff_retry",
        retryable: false
      })
      expect(Failure.fromRule({ category: "resource", retryable: true })).toMatchObject({
        strategy: "circuit_break",
        retryable: true
      })
      const none = Failure.fromRule({ category: "connection", maxRetries: 0 })
      expect([none.maxRetries, none.retryable, none.warnings]).toEqual([0, false, undefined])
      const unbounded = Failure.fromRule({ category: "connection", maxRetries: Infinity })
      expect([unbounded.maxRetries, unbounded.retryable, unbounded.warnings]).toEqual([Infinity, true, undefined])
      expect(Failure.fromRule({ category: "connection", tripsBreaker: false }).tripsBreaker).toBe(false)
      expect(Failure.fromRule({ category: "validation", tripsBreaker: true }).tripsBreaker).toBe(true)
    })

    it("codes: the rule's, else the tag in upper snake case, else the category's", () => {
      expect(Failure.fromRule({ category: "connection" }).code).toBe("CONNECTION_ERROR")
      expect(Failure.fromRule({ category: "health_check" }).code).toBe("HEALTH_CHECK_ERROR")
      expect(Failure.fromRule({ category: "connection", code: "E_OWN" }, { tag: "Refused" }).code).toBe("E_OWN")
      const codes = {
        Refused: "REFUSED",
        RateLimited: "RATE_LIMITED",
        http2Server: "HTTP2_SERVER",
        "bad-input": "BAD_INPUT",
        "bad--input": "BAD_INPUT",
        "-bad-": "BAD",
        "__private": "PRIVATE",
        "x--": "X",
        "--": "UNKNOWN_ERROR"
      }
      for (const [tag, code] of Object.entries(codes)) {
        expect([tag, Failure.fromRule({ category: "connection" }, { tag }).code]).toEqual([tag, code])
      }
    })

    it("escalation: only a critical failure is abandoned past attempt 2", () => {
      expect(Failure.fromRule({ category: "connection" }, { context: { attempt: 3 } })).toMatchObject({
        severity: "major",
        strategy: "backoff_retry",
        retryable: true
      })
      expect(Failure.escalateStrategy("failover", "major", { attempt: 9 })).toBe("failover")
      expect(Failure.escalateStrategy("failover", "critical", { attempt: 2 })).toBe("failover")
      expect(Failure.escalateStrategy("failover", "critical", { attempt: 3 })).toBe("abandon")
      expect(Failure.escalateStrategy("failover", "critical", undefined)).toBe("failover")
      expect(Failure.escalateSeverity("major", undefined)).toBe("major")
    })

    it("Failure.table: the exact errors for an unknown category, written as a name or in a rule object", () => {
      expect(() => Failure.table<Refused>({ Refused: "network" as Failure.Category })).toThrow(
        new TypeError(
          `Failure.table: the rule for "Refused" names the unknown category "network" (expected one of ${categoriesText})`
        )
      )
      expect(() => Failure.table<Refused>({ Refused: { category: "network" as Failure.Category } })).toThrow(
        new TypeError(`Failure.table: the rule for "Refused" has the unknown category "network"`)
      )
      expect(table._tag).toBe("Table")
      expect(table.tags).toEqual(["Refused", "RateLimited", "BadInput"])
      // a value without a tag is no entry, even in a table with a key "undefined"
      const odd = Failure.table<{ readonly _tag: "undefined" }>({ undefined: "connection" })
      expect(odd.rule(new Error("no tag") as unknown as { readonly _tag: "undefined" })).toBeUndefined()
      expect(odd.rule({ _tag: "undefined" })).toEqual({ category: "connection" })
    })

    it("isSelfClassifying: an object that carries a rule object under RuleKey", () => {
      expect(Failure.isSelfClassifying({ [Failure.RuleKey]: { category: "connection" } })).toBe(true)
      expect(Failure.isSelfClassifying({ [Failure.RuleKey]: "connection" })).toBe(false)
      expect(Failure.isSelfClassifying({})).toBe(false)
      expect(Failure.isSelfClassifying("connection")).toBe(false)
    })

    it("the warnings of an unusable rule, word for word", () => {
      const expected = (rule: Failure.RuleObject, tag: string | undefined) => Failure.fromRule(rule, { tag }).warnings
      expect(expected({ category: "connection", severity: "loud" as Failure.Severity }, "Refused")).toEqual([
        `The rule for "Refused" has the unknown severity loud; the matrix's is used`
      ])
      expect(expected({ category: "connection", strategy: "wait" as Failure.Strategy }, undefined)).toEqual([
        `The rule for a failure has the unknown strategy wait; the matrix's is used`
      ])
      const fractional = Failure.fromRule({ category: "connection", maxRetries: 0.5 }, { tag: "Refused" })
      expect(fractional.maxRetries).toBe(5)
      expect(fractional.warnings).toEqual([
        `The rule for "Refused" has maxRetries 0.5, not a whole number >= 0; the matrix's is used`
      ])
      expect(expected({ category: "network" as Failure.Category }, "Odd")).toEqual([
        `The rule for "Odd" names the unknown category network (expected one of ${categoriesText}); it is classified as unclassified`
      ])
      expect(expected({ category: "connection", retryAfter: "soon" as Duration.DurationInput }, undefined)).toEqual([
        `The retry-after hint soon of a failure is not a duration >= 0; it is ignored`
      ])
      expect(() => Failure.fromRule({ category: "connection" }, { maxRetryAfter: Infinity })).toThrow(
        new RangeError(`Failure.fromRule: maxRetryAfter must be a finite duration >= 0, got Infinity`)
      )
      // 0 is a valid cap: every hint becomes 0
      expect(Failure.fromRule({ category: "connection", retryAfter: "5 seconds" }, { maxRetryAfter: 0 }).retryAfter)
        .toEqual(Option.some(Duration.zero))
      expect(Duration.toMillis(Failure.makeClassifier({ maxRetryAfter: 0 }).maxRetryAfter)).toBe(0)
    })

    it("makeClassifier: the exact errors for a bad matrix or unclassified rule", () => {
      const { session: _, ...withoutSession } = Failure.defaultMatrix
      expect(() => Failure.makeClassifier({ matrix: withoutSession as Failure.DecisionMatrix })).toThrow(
        new TypeError(`Failure.makeClassifier: matrix has no row for category "session"`)
      )
      for (const maxRetries of [-1, 1.5]) {
        const matrix = { ...Failure.defaultMatrix, timeout: { ...Failure.defaultMatrix.timeout, maxRetries } }
        expect(() => Failure.makeClassifier({ matrix })).toThrow(
          new TypeError(
            `Failure.makeClassifier: matrix.timeout.maxRetries must be a whole number >= 0, got ${maxRetries}`
          )
        )
      }
      expect(() => Failure.makeClassifier({ unclassified: "network" as Failure.Category })).toThrow(
        new TypeError(`Failure.makeClassifier: unclassified names the unknown category network`)
      )
    })

    it("a custom matrix drives table rules, the unclassified default and defects", () => {
      const matrix: Failure.DecisionMatrix = {
        ...Failure.defaultMatrix,
        connection: { ...Failure.defaultMatrix.connection, maxRetries: 0 },
        system: {
          severity: "minor",
          strategy: "immediate_retry",
          maxRetries: 7,
          backoff: "linear",
          tripsBreaker: false
        }
      }
      const c = Failure.makeClassifier({ matrix })
      expect(c.matrix).toBe(matrix)
      const refused = Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })
      expect(c.classify(refused)).toMatchObject({ category: "connection", maxRetries: 0, retryable: false })
      // the unclassified rule writes severity, strategy, retries and backoff; the rest is the matrix's system row
      expect(c.classify(new Refused())).toMatchObject({
        category: "system",
        severity: "major",
        strategy: "backoff_retry",
        maxRetries: 3,
        backoff: "exponential",
        tripsBreaker: false
      })
      expect(c.classifyDefect(new Error("bug"))).toMatchObject({ backoff: "linear", tripsBreaker: false, defect: true })
      // a row for a name that is no category is never used
      const extra = { ...Failure.defaultMatrix, network: Failure.defaultMatrix.connection } as Failure.DecisionMatrix
      class Odd extends Data.TaggedError("Odd")<{}> {}
      const odd = Failure.makeClassifier({
        matrix: extra,
        tables: [Failure.table<Odd>({ Odd: () => ({ category: "network" as Failure.Category }) })]
      }).classify(new Odd())
      expect([odd.category, odd.warnings?.length]).toEqual(["system", 1])
    })

    it("a custom unclassified rule replaces an unknown category too", () => {
      class Odd extends Data.TaggedError("Odd")<{}> {}
      const c = Failure.makeClassifier({
        unclassified: "validation",
        tables: [Failure.table<Odd>({ Odd: () => ({ category: "network" as Failure.Category }) })]
      })
      expect(c.classify(new Odd())).toMatchObject({
        category: "validation",
        severity: "warning",
        strategy: "abandon",
        tripsBreaker: false,
        code: "ODD"
      })
      expect(c.classify(new Refused())).toMatchObject({
        category: "validation",
        code: "REFUSED",
        unclassified: "Refused"
      })
    })

    it("tables are tried in order, then the built-in rules; warnings from both are kept in order", () => {
      const limited = Failure.table<RateLimited>({ RateLimited: "resource" })
      const refused = Failure.table<Refused>({ Refused: "session" })
      const c = Failure.makeClassifier({ tables: [limited, refused] })
      expect(c.classify(new Refused()).category).toBe("session")
      expect(c.classify(new Cause.TimeoutException()).category).toBe("timeout")
      class Boom extends Data.TaggedError("Boom")<{}> {}
      const throwing = Failure.table<Boom>({
        Boom: () => {
          throw new Error("rule bug")
        }
      })
      const loud = Failure.table<Boom>({ Boom: { category: "connection", severity: "loud" as Failure.Severity } })
      expect(Failure.makeClassifier({ tables: [throwing, loud] }).classify(new Boom()).warnings).toEqual([
        `The rule for "Boom" threw (rule bug); the next rule is tried`,
        `The rule for "Boom" has the unknown severity loud; the matrix's is used`
      ])
      // a table is asked only about a value with a name
      const everything: Failure.Table<unknown> = { _tag: "Table", tags: [], rule: () => ({ category: "connection" }) }
      const byName = Failure.makeClassifier({ tables: [everything] })
      expect(byName.classify(new Error("plain")).unclassified).toBe("an Error without a _tag")
      expect(byName.classify({ _tag: "Named" }).category).toBe("connection")
    })

    it("a rule that is not a rule: a table refuses null, a null from a rule function is a warning", () => {
      class Boom extends Data.TaggedError("Boom")<{}> {}
      expect(() => Failure.table<Boom>({ Boom: null as unknown as Failure.Category })).toThrow(
        new TypeError(`Failure.table: the rule for "Boom" is null (expected a category, a rule object or a function)`)
      )
      expect(() => Failure.table<Boom>({ Boom: 7 as unknown as Failure.Category })).toThrow(
        new TypeError(`Failure.table: the rule for "Boom" is 7 (expected a category, a rule object or a function)`)
      )
      const giveNull = Failure.table<Boom>({ Boom: () => null as unknown as Failure.Category })
      const session = Failure.table<Boom>({ Boom: "session" })
      const next = Failure.makeClassifier({ tables: [giveNull, session] }).classify(new Boom())
      expect(next.category).toBe("session")
      expect(next.warnings).toEqual([`The rule for "Boom" gave null, which is not a rule; the next rule is tried`])
      const alone = Failure.makeClassifier({ tables: [giveNull] }).classify(new Boom())
      expect(alone.unclassified).toBe("Boom")
      expect(alone.warnings).toEqual([`The rule for "Boom" gave null, which is not a rule; the next rule is tried`])
      const base = Failure.makeClassifier({ tables: [session] })
      const stage = Failure.refine<Boom>(base, () => null as unknown as Failure.Category)
      const refined = stage.classify(new Boom())
      expect(refined.category).toBe("session")
      expect(refined.warnings).toEqual([
        `The stage's rule for "Boom" gave null, which is not a rule; the classifier in the context is used`
      ])
    })

    it("a rule function that gives nothing defers without a warning; one that gives a number is not a rule", () => {
      class Boom extends Data.TaggedError("Boom")<{}> {}
      const session = Failure.table<Boom>({ Boom: "session" })
      // a table without the tag, and a function that gives undefined, both defer silently
      const other = Failure.table<{ readonly _tag: "Other" }>({ Other: "connection" })
      const nothing = Failure.table<Boom>({ Boom: () => undefined as unknown as Failure.Category })
      const deferred = Failure.makeClassifier({ tables: [other as Failure.Table<unknown>, nothing, session] })
        .classify(new Boom())
      expect(deferred.category).toBe("session")
      expect(deferred.warnings).toBeUndefined()
      const giveNumber = Failure.table<Boom>({ Boom: () => 42 as unknown as Failure.Category })
      const next = Failure.makeClassifier({ tables: [giveNumber, session] }).classify(new Boom())
      expect(next.category).toBe("session")
      expect(next.warnings).toEqual([`The rule for "Boom" gave 42, which is not a rule; the next rule is tried`])
      const base = Failure.makeClassifier({ tables: [session] })
      const refined = Failure.refine<Boom>(base, () => 42 as unknown as Failure.Category).classify(new Boom())
      expect(refined.category).toBe("session")
      expect(refined.warnings).toEqual([
        `The stage's rule for "Boom" gave 42, which is not a rule; the classifier in the context is used`
      ])
      // a failure with no name is "a failure" in the warning
      const untagged = Failure.refine<unknown>(base, () => null as unknown as Failure.Category).classify("odd")
      expect(untagged.unclassified).toBe("a string")
      expect(untagged.warnings).toEqual([
        `The stage's rule for a failure gave null, which is not a rule; the classifier in the context is used`
      ])
    })

    it("a table names an Error without a _tag by its own name", () => {
      class QuotaError extends Error {
        override name = "QuotaError"
      }
      const quota = Failure.table({ QuotaError: "resource" } as Failure.TableRules<{ readonly _tag: "QuotaError" }>)
      const c = Failure.makeClassifier({ tables: [quota as Failure.Table<unknown>] }).classify(new QuotaError("over"))
      expect(c.category).toBe("resource")
      expect(c.unclassified).toBeUndefined()
      // a plain Error is named by nothing: no table is asked about "Error"
      const plain = Failure.table({ Error: "resource" } as Failure.TableRules<{ readonly _tag: "Error" }>)
      expect(
        Failure.makeClassifier({ tables: [plain as Failure.Table<unknown>] }).classify(new Error("x")).unclassified
      ).toBe("an Error without a _tag")
    })

    it("what an unclassified failure is called", () => {
      class QuotaError extends Error {
        override name = "QuotaError"
      }
      const c = Failure.defaultClassifier
      expect(c.classify(new QuotaError("over"))).toMatchObject({ unclassified: "QuotaError", code: "QUOTA_ERROR" })
      const named = [null, new Error("boom"), {}, { name: "Widget" }, 5].map((value) => {
        const d = c.classify(value)
        return [d.unclassified, d.code]
      })
      expect(named).toEqual([
        ["null", "UNKNOWN_ERROR"],
        ["an Error without a _tag", "UNKNOWN_ERROR"],
        ["an object without a _tag", "UNKNOWN_ERROR"],
        ["an object without a _tag", "UNKNOWN_ERROR"],
        ["a number", "UNKNOWN_ERROR"]
      ])
    })

    it("the unclassified warning, word for word", () => {
      const c = Failure.makeClassifier({})
      expect(Failure.warningsFor(c, c.classify(new Refused()))).toEqual([
        `The failure "Refused" is not classified: no classify table given to this stage and no table of the ` +
        `Failure.Classifier in the caller's context names it, so it is treated as system / major, retried at most 3 ` +
        `times, code REFUSED. Classify it in a Failure.table and provide Failure.layerClassifier({ tables }) around the ` +
        `program that makes the call (a classifier provided only to another Layer is not seen by the call). ` +
        `This is logged once per tag.`
      ])
      const strict = Failure.makeClassifier({ unclassified: "system" })
      expect(Failure.warningsFor(strict, strict.classify("text"))[0]).toMatch(
        /^The failure a string is not classified: .*, so it is treated as system \/ critical, not retried, code UNKNOWN_ERROR\. /
      )
      const subjectOf = (value: unknown) =>
        Failure.warningsFor(strict, strict.classify(value))[0].split(" is not classified")[0]
      const subjects = [null, { _tag: "Quota exceeded" }, { _tag: "nullReference" }].map(subjectOf)
      expect(subjects).toEqual([
        "The failure null",
        `The failure "Quota exceeded"`,
        `The failure "nullReference"`
      ])
      // a tag that reads like a description is still a tag: quoted, and warned apart from the value
      const fresh = Failure.makeClassifier({})
      const tagged = [{ _tag: "null" }, { _tag: "a string" }, { _tag: "an Error without a _tag" }]
      expect([...tagged, null, "text", new Error("x")].map((value) => {
        const c = fresh.classify(value)
        return [c.unclassified, c.untagged, Failure.warningsFor(fresh, c)[0]?.split(" is not classified")[0]]
      })).toEqual([
        ["null", undefined, `The failure "null"`],
        ["a string", undefined, `The failure "a string"`],
        ["an Error without a _tag", undefined, `The failure "an Error without a _tag"`],
        ["null", true, "The failure null"],
        ["a string", true, "The failure a string"],
        ["an Error without a _tag", true, "The failure an Error without a _tag"]
      ])
      // a classified failure: its own warnings, or none
      const loud = Failure.fromRule({ category: "connection", severity: "loud" as Failure.Severity }, { tag: "X" })
      expect(Failure.warningsFor(strict, loud)).toEqual(loud.warnings)
      expect(Failure.warningsFor(strict, Failure.fromRule({ category: "connection" }))).toEqual([])
    })

    it.effect("logWarnings: each warning at warning level, annotated with the code (and the unclassified name)", () =>
      Effect.gen(function*() {
        const lines: Array<{ level: string; message: unknown; annotations: Array<readonly [string, unknown]> }> = []
        const logger = Logger.make(({ annotations, logLevel, message }) => {
          lines.push({
            level: logLevel.label,
            message: Array.isArray(message) ? message[0] : message,
            // an annotation present with an undefined value counts too
            annotations: [...annotations].sort(([a], [b]) => a.localeCompare(b))
          })
        })
        const c = Failure.makeClassifier({})
        const log = (classification: Failure.Classification) =>
          Failure.logWarnings(c, classification).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
        // it succeeds with nothing: the logs are its only output
        expect(yield* log(c.classify(new Refused()))).toBeUndefined()
        const loud = Failure.fromRule({ category: "connection", severity: "loud" as Failure.Severity }, { tag: "X" })
        expect(yield* log(loud)).toBeUndefined()
        expect(yield* log(Failure.fromRule({ category: "connection" }))).toBeUndefined()
        expect(lines).toEqual([
          {
            level: "WARN",
            message: expect.stringMatching(/^The failure "Refused" is not classified/),
            annotations: [["bulwark.failure.code", "REFUSED"], ["bulwark.failure.unclassified", "Refused"]]
          },
          { level: "WARN", message: loud.warnings?.[0], annotations: [["bulwark.failure.code", "X"]] }
        ])
      }))

    it("refine: the stage's table or function, completed with the base's matrix and unclassified rule", () => {
      const matrix: Failure.DecisionMatrix = {
        ...Failure.defaultMatrix,
        session: { ...Failure.defaultMatrix.session, maxRetries: 9 }
      }
      const base = Failure.makeClassifier({ matrix, unclassified: "validation" })
      const byTable = Failure.refine(base, Failure.table<Refused>({ Refused: "session" }))
      expect(byTable.classify(new Refused(), { attempt: 4 })).toMatchObject({
        category: "session",
        code: "REFUSED",
        severity: "major",
        strategy: "immediate_retry",
        maxRetries: 9
      })
      const byFunction = Failure.refine<ApiError>(
        base,
        (e) => e._tag === "Refused" ? "network" as Failure.Category : "session"
      )
      expect(byFunction.classify(new BadInput({ field: "x" })).maxRetries).toBe(9)
      expect(byFunction.classify(new Refused())).toMatchObject({ category: "validation", code: "REFUSED" })
      const throwing = Failure.refine(base, () => {
        throw new Error("stage bug")
      })
      expect(throwing.classify(new Refused()).warnings).toEqual([
        `The stage's rule for "Refused" threw (stage bug); the classifier in the context is used`
      ])
      expect(throwing.classify("plain").warnings).toEqual([
        `The stage's rule for a failure threw (stage bug); the classifier in the context is used`
      ])
    })

    it.effect("classify passes the context on; toExecutionError of an interruption", () =>
      Effect.gen(function*() {
        const late = yield* Failure.classify(new Refused(), { attempt: 4 }).pipe(
          Effect.provide(Failure.layerClassifier({ tables: [table] }))
        )
        expect([late.severity, late.strategy]).toEqual(["critical", "abandon"])
        const interrupted = yield* Failure.toExecutionError(Cause.interrupt(FiberId.none))
        expect(interrupted).toMatchObject({ message: "Interrupted", code: "DEFECT", type: "system", retryable: false })
        expect(Object.keys(interrupted).sort()).toEqual([
          "code",
          "message",
          "retryable",
          "severity",
          "strategy",
          "timestamp",
          "type"
        ])
        const problem = Failure.toProblemDetails(interrupted)
        expect(Object.keys(problem).sort()).toEqual([
          "category",
          "code",
          "retryable",
          "severity",
          "status",
          "timestamp",
          "title",
          "type"
        ])
        expect(problem.status).toBe(500)
      }))

    it.effect("decoding errors name the schema", () =>
      Effect.gen(function*() {
        const execution = yield* Effect.flip(Failure.decodeExecutionError({}))
        expect(execution.message.split("\n")[0]).toBe("ExecutionError")
        const problem = yield* Effect.flip(Schema.decodeUnknown(Failure.ProblemDetails)({}))
        expect(problem.message.split("\n")[0]).toBe("ProblemDetails")
      }))

    it("logLevel for every severity", () => {
      expect(Failure.Severity.literals.map(Failure.logLevel)).toEqual(["Fatal", "Error", "Warning", "Info"])
    })
  })
})
