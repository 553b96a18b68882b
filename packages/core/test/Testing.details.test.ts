import { Testing } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Effect, FastCheck as fc } from "effect"

const success = (latency = 0): Testing.Outcome => ({ _tag: "Success", latency })
const failure = (latency = 0): Testing.Outcome => ({ _tag: "Failure", category: "connection", latency })
const hang: Testing.Outcome = { _tag: "Hang" }

const has = (script: Testing.Script, tag: Testing.Outcome["_tag"]) =>
  script.calls.some((c) => c.outcomes.some((o) => o._tag === tag))
const outcomes = (script: Testing.Script) => script.calls.flatMap((c) => c.outcomes)
const noEmptyCall = (script: Testing.Script) => script.calls.every((c) => c.outcomes.length > 0)

/** The script of the counterexample `policyLaws` reports for `script`, broken whenever `broken` holds. */
const shrunk = (script: Testing.Script, broken: (script: Testing.Script) => boolean) =>
  Effect.map(
    Effect.flip(Testing.policyLaws({ policy: (self) => self }, {
      scripts: fc.constant(script),
      invariants: [Testing.invariant("scripted", (t) => broken(t.script) ? "broken" : undefined)],
      runs: 1
    })),
    (error) => {
      const lines = error.message.split("\n")
      return lines.slice(lines.indexOf("script:") + 1, lines.indexOf("attempts:"))
    }
  )

describe("Testing.policyLaws: the shrunk counterexample takes as many passes as it needs", () => {
  it.effect("a call that may go only once a call after it has gone", () =>
    Effect.gen(function*() {
      // the hang may go only once the success has gone, and the success is tried last
      const script: Testing.Script = {
        calls: [{ at: 0, outcomes: [success()] }, { at: 1, outcomes: [failure()] }, { at: 2, outcomes: [hang] }],
        seed: 1
      }
      const broken = (s: Testing.Script) =>
        noEmptyCall(s) && has(s, "Failure") && (!has(s, "Success") || has(s, "Hang"))
      expect(yield* shrunk(script, broken)).toEqual([
        "  call 0 at 1ms: fail connection, then succeeds",
        "  Random seed 1"
      ])
    }))

  it.effect("a call that may go only once one of its outcomes has gone", () =>
    Effect.gen(function*() {
      const script: Testing.Script = {
        calls: [{ at: 0, outcomes: [failure(), hang] }, { at: 1, outcomes: [success()] }],
        seed: 1
      }
      // a single call may not hang
      const broken = (s: Testing.Script) =>
        noEmptyCall(s) && has(s, "Failure") && (!has(s, "Hang") || s.calls.length === 2)
      expect(yield* shrunk(script, broken)).toEqual([
        "  call 0 at 0ms: fail connection, then succeeds",
        "  Random seed 1"
      ])
    }))

  it.effect("a call that may go only once the latencies are zero", () =>
    Effect.gen(function*() {
      const script: Testing.Script = {
        calls: [{ at: 0, outcomes: [failure(5)] }, { at: 1, outcomes: [success(5)] }],
        seed: 1
      }
      // two calls with one outcome each, or a single failure without latency
      const broken = (s: Testing.Script) =>
        has(s, "Failure") && (s.calls.length === 2
          ? outcomes(s).length === 2
          : outcomes(s).every((o) => o._tag !== "Hang" && o.latency === 0))
      expect(yield* shrunk(script, broken)).toEqual([
        "  call 0 at 0ms: fail connection, then succeeds",
        "  Random seed 1"
      ])
    }))
})

describe("Testing.Arbitrary: what the draws are made of", () => {
  // a double drawn without \`noNaN\` is NaN about once in 600 draws: this seed draws one within 1,000 options
  it("a backoff factor is never NaN", () => {
    const factors = fc.sample(Testing.Arbitrary.backoffOptions, { numRuns: 1000, seed: 1 }).flatMap((o) =>
      "factor" in o && o.factor !== undefined ? [o.factor] : []
    )
    expect(factors.length).toBeGreaterThan(300)
    expect(factors.filter((f) => !(f >= 1 && f <= 4))).toEqual([])
  })

  it("chaos rates are whole weights of at most 100 each, over their sum", () => {
    const options = fc.sample(Testing.Arbitrary.chaosOptions(() => "x"), { numRuns: 200, seed: 1 })
    // four weights of at most 100: the rates are multiples of 1 / total for a total of at most 400
    const whole = (o: (typeof options)[number]) =>
      Array.from({ length: 400 }, (_, i) => i + 1).some((total) =>
        [o.failureRate ?? 0, o.defectRate ?? 0, o.hangRate ?? 0].every((rate) =>
          Math.abs(rate * total - Math.round(rate * total)) < 1e-9 && Math.round(rate * total) <= 100
        )
      )
    expect(options.filter((o) => !whole(o))).toEqual([])
  })
})
