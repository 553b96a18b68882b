import { Chaos } from "@bulwark/core"
import { describe, expect, expectTypeOf, it } from "@effect/vitest"
import {
  Cause,
  Context,
  Data,
  Duration,
  Effect,
  Exit,
  FastCheck as fc,
  Fiber,
  Layer,
  Option,
  Random,
  Schedule,
  TestClock
} from "effect"

class Unavailable extends Data.TaggedError("Unavailable")<{}> {}
class Declined extends Data.TaggedError("Declined")<{}> {}

const outcome = <A, E>(exit: Exit.Exit<A, E>): string =>
  Exit.isSuccess(exit) ? "ok" : Cause.isDie(exit.cause) ? "defect" : Cause.isFailure(exit.cause) ? "failure" : "other"

/** Runs `n` calls through an injector and lists what happened to each. */
const outcomes = (injector: Chaos.Injector<Unavailable>, n: number) =>
  Effect.gen(function*() {
    const result: Array<string> = []
    for (let i = 0; i < n; i++) result.push(outcome(yield* Effect.exit(Effect.succeed(i).pipe(injector))))
    return result
  })

describe("Chaos", () => {
  it.effect("the same seed gives the same faults; another seed gives others", () =>
    Effect.gen(function*() {
      const options = { failureRate: 0.3, defectRate: 0.1, failure: () => new Unavailable() }
      const a = yield* outcomes(Chaos.inject({ ...options, seed: 42 }), 200)
      const b = yield* outcomes(Chaos.inject({ ...options, seed: 42 }), 200)
      const c = yield* outcomes(Chaos.inject({ ...options, seed: 43 }), 200)
      expect(a).toEqual(b)
      expect(a).not.toEqual(c)
      const failures = a.filter((o) => o === "failure").length
      const defects = a.filter((o) => o === "defect").length
      expect(failures).toBeGreaterThan(35)
      expect(failures).toBeLessThan(85)
      expect(defects).toBeGreaterThan(5)
      expect(defects).toBeLessThan(40)
      expect(a.filter((o) => o === "other")).toEqual([])
    }))

  it.effect("without a seed it draws from the context's Random, so Effect.withRandom reproduces a run", () =>
    Effect.gen(function*() {
      const injector = Chaos.inject({ failureRate: 0.5, failure: () => new Unavailable() })
      const a = yield* outcomes(injector, 50).pipe(Effect.withRandom(Random.make("run-1")))
      const b = yield* outcomes(injector, 50).pipe(Effect.withRandom(Random.make("run-1")))
      expect(a).toEqual(b)
      expect(new Set(a)).toEqual(new Set(["ok", "failure"]))
    }))

  it.effect("injects typed failures, defects and hangs", () =>
    Effect.gen(function*() {
      const failing = Chaos.inject({ seed: 1, failureRate: 1, failure: () => new Unavailable() })
      expect(yield* Effect.exit(Effect.succeed(1).pipe(failing))).toEqual(Exit.fail(new Unavailable()))
      const dying = Chaos.inject({ seed: 1, defectRate: 1, defect: () => "injected bug" })
      expect(yield* Effect.exit(Effect.succeed(1).pipe(dying))).toEqual(Exit.die("injected bug"))
      const hanging = Chaos.inject({ seed: 1, hangRate: 1 })
      const fiber = yield* Effect.fork(Effect.succeed(1).pipe(hanging))
      yield* TestClock.adjust("1 day")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      expect(Exit.isInterrupted(yield* Fiber.interrupt(fiber))).toBe(true)
    }))

  it.effect("adds a fixed latency before the call, on the clock", () =>
    Effect.gen(function*() {
      const slow = Chaos.inject({ latency: "300 millis" })
      const fiber = yield* Effect.fork(Effect.succeed("done").pipe(slow))
      yield* TestClock.adjust("299 millis")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(fiber)).toBe("done")
    }))

  it.effect.prop(
    "a latency range stays within its bounds",
    { seed: fc.integer(), min: fc.integer({ min: 0, max: 100 }), span: fc.integer({ min: 0, max: 100 }) },
    ({ min, seed, span }) =>
      Effect.gen(function*() {
        const injector = Chaos.inject({
          seed,
          latency: { min: Duration.millis(min), max: Duration.millis(min + span) }
        })
        for (let i = 0; i < 20; i++) {
          const { latency } = yield* injector.decide
          expect(Duration.toMillis(latency)).toBeGreaterThanOrEqual(min)
          expect(Duration.toMillis(latency)).toBeLessThanOrEqual(min + span)
        }
      })
  )

  it.effect("an outage scripted with a Schedule: Schedule.recurs(3) fails the first three calls", () =>
    Effect.gen(function*() {
      const injector = Chaos.inject({ outage: Schedule.recurs(3), failure: () => new Unavailable() })
      expect(yield* outcomes(injector, 6)).toEqual(["failure", "failure", "failure", "ok", "ok", "ok"])
    }))

  it.effect("an outage scripted with a Schedule: calls fail for 10 seconds after the first", () =>
    Effect.gen(function*() {
      const injector = Chaos.inject({
        outage: Schedule.forever.pipe(Schedule.upTo("10 seconds")),
        failure: () => new Unavailable()
      })
      expect(yield* outcomes(injector, 1)).toEqual(["failure"])
      yield* TestClock.adjust("9 seconds")
      expect(yield* outcomes(injector, 1)).toEqual(["failure"])
      yield* TestClock.adjust("1 second")
      expect(yield* outcomes(injector, 2)).toEqual(["ok", "ok"])
    }))

  class Payments extends Context.Tag("test/Payments")<Payments, {
    readonly charge: (amount: number) => Effect.Effect<string, Unavailable | Declined>
    readonly refund: Effect.Effect<string, Unavailable>
    readonly currency: string
  }>() {}

  const PaymentsLive = Layer.succeed(Payments, {
    charge: (amount) => Effect.succeed(`charged ${amount}`),
    refund: Effect.succeed("refunded"),
    currency: "EUR"
  })

  it.effect("layer injects faults into every Effect-valued member of a service", () =>
    Effect.gen(function*() {
      const payments = yield* Payments
      expect(payments.currency).toBe("EUR")
      expect(yield* Effect.exit(payments.charge(5))).toEqual(Exit.fail(new Unavailable()))
      expect(yield* Effect.exit(payments.refund)).toEqual(Exit.fail(new Unavailable()))
      expect(yield* payments.charge(7)).toBe("charged 7")
    }).pipe(Effect.provide(Chaos.layer(Payments, PaymentsLive, {
      outage: Schedule.recurs(2),
      failure: () => new Unavailable()
    }))))

  it.effect("service wraps the methods of a class instance too", () =>
    Effect.gen(function*() {
      class Ledger {
        constructor(readonly currency: string) {}
        balance(account: string): Effect.Effect<string, Unavailable> {
          return Effect.succeed(`${account}: 10 ${this.currency}`)
        }
      }
      const flaky = Chaos.service(new Ledger("EUR"), { outage: Schedule.recurs(1), failure: () => new Unavailable() })
      expect(flaky.currency).toBe("EUR")
      expect(yield* Effect.exit(flaky.balance("a"))).toEqual(Exit.fail(new Unavailable()))
      expect(yield* flaky.balance("a")).toBe("a: 10 EUR")
    }))

  it("injected failures into a service must be errors every member can raise", () => {
    // Type-level test: vitest does not check types; `tsc -b` does (tsconfig.test.json includes test/,
    // and `pnpm test` runs `pnpm typecheck` first), so a wrong type here fails `pnpm test`.
    type Service = Context.Tag.Service<Payments>
    expectTypeOf<Chaos.CommonError<Service>>().toEqualTypeOf<Unavailable>()
    // @ts-expect-error refund cannot fail with Declined
    Chaos.layer(Payments, PaymentsLive, { failureRate: 0.1, failure: () => new Declined() })
  })

  it("options that break a rule are rejected with the field named", () => {
    expect(() => Chaos.inject({ failureRate: 1.5, failure: () => 1 })).toThrow(
      /failureRate must be a number in \[0, 1\], got 1.5/
    )
    expect(() => Chaos.inject({ hangRate: "0.5" as unknown as number })).toThrow(
      /hangRate must be a number in \[0, 1\], got "0.5"|hangRate must be a number in \[0, 1\], got 0.5/
    )
    expect(() => Chaos.inject({ failureRate: 0.5, failure: 5 as unknown as () => number })).toThrow(
      /failure must be a function, got 5/
    )
    expect(() => Chaos.inject({ failureRate: 0.6, hangRate: 0.6, failure: () => 1 })).toThrow(/must not exceed 1/)
    expect(() => Chaos.inject({ failureRate: 0.1 })).toThrow(/failure must be given/)
    expect(() => Chaos.inject({ latency: { min: "2 seconds", max: "1 second" } })).toThrow(/latency.max/)
    expect(() => Chaos.inject({ latency: -10 })).toThrow(/Chaos: latency must be a finite duration >= 0, got -10/)
    for (const latency of ["-5 millis", -5n, [-5, 0], Infinity, "forever"] as const) {
      expect(() => Chaos.inject({ latency: latency as Duration.DurationInput })).toThrow(
        /Chaos: latency must be a finite duration >= 0/
      )
      expect(() => Chaos.inject({ latency: { min: 0, max: latency as Duration.DurationInput } })).toThrow(
        /Chaos: latency.max must be a finite duration >= 0/
      )
    }
  })

  describe("one draw of Random decides a call's fault", () => {
    /** The faults `decide` gives for the draws `values`, one call per value. */
    const faults = (injector: Chaos.Injector<unknown>, values: [number, ...Array<number>]) =>
      Effect.forEach(values, () => Effect.map(injector.decide, (d) => d.fault)).pipe(
        Effect.withRandom(Random.fixed(values))
      )

    it.effect("[0, hangRate) hangs, then defectRate dies, then failureRate fails, the rest runs the call", () =>
      Effect.gen(function*() {
        const injector = Chaos.inject({
          hangRate: 0.25,
          defectRate: 0.25,
          failureRate: 0.25,
          failure: () => new Unavailable()
        })
        expect(yield* faults(injector, [0, 0.2499, 0.25, 0.4999, 0.5, 0.7499, 0.75, 0.9999])).toEqual([
          "hang",
          "hang",
          "defect",
          "defect",
          "failure",
          "failure",
          "none",
          "none"
        ])
      }))

    it.effect("with two of the three rates set, each still gets its share of the draw", () =>
      Effect.gen(function*() {
        const hangOrFail = Chaos.inject({ hangRate: 0.25, failureRate: 0.25, failure: () => new Unavailable() })
        expect(yield* faults(hangOrFail, [0.1, 0.3, 0.6])).toEqual(["hang", "failure", "none"])
        const hangOrDie = Chaos.inject({ hangRate: 0.25, defectRate: 0.25 })
        expect(yield* faults(hangOrDie, [0.1, 0.3, 0.6])).toEqual(["hang", "defect", "none"])
      }))

    it.effect("a latencyRate delays that share of the calls: a draw below it gets the latency", () =>
      Effect.gen(function*() {
        const injector = Chaos.inject({ latency: "100 millis", latencyRate: 0.5 })
        const latencies = yield* Effect.forEach(
          [0, 0.4999, 0.5, 0.9999],
          () => Effect.map(injector.decide, (d) => Duration.toMillis(d.latency))
        ).pipe(
          Effect.withRandom(Random.fixed([0, 0.4999, 0.5, 0.9999]))
        )
        expect(latencies).toEqual([100, 100, 0, 0])
      }))

    it.effect("a latency range is drawn uniformly: min + draw × (max − min)", () =>
      Effect.gen(function*() {
        const injector = Chaos.inject({ latency: { min: "100 millis", max: "300 millis" } })
        // per call: one draw for whether (always, at latencyRate 1), one for how long
        const latencies = yield* Effect.forEach([1, 2, 3], () =>
          Effect.map(injector.decide, (d) => Duration.toMillis(d.latency))).pipe(
            Effect.withRandom(Random.fixed([0, 0, 0, 0.25, 0, 0.5]))
          )
        expect(latencies).toEqual([100, 150, 200])
      }))
  })

  it.effect("a defect without its own builder is an Error saying it was injected", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Effect.succeed(1).pipe(Chaos.inject({ seed: 1, defectRate: 1 })))
      expect(exit).toEqual(Exit.die(new Error("Chaos: injected defect")))
    }))

  it("rates at the edges of [0, 1] and latency bounds that meet are accepted; the rest is rejected with its field", () => {
    for (const field of ["failureRate", "defectRate", "hangRate", "latencyRate"] as const) {
      expect(() => Chaos.inject({ [field]: -0.1, failure: () => 1 })).toThrow(
        `Chaos: ${field} must be a number in [0, 1], got -0.1`
      )
      expect(() => Chaos.inject({ [field]: 0, failure: () => 1 })).not.toThrow()
      expect(() => Chaos.inject({ [field]: 1, failure: () => 1 })).not.toThrow()
    }
    // 0.34 + 0.56 + 0.1 is 1.0000000000000002 in floating point: still 1
    expect(() => Chaos.inject({ hangRate: 0.34, defectRate: 0.56, failureRate: 0.1, failure: () => 1 })).not.toThrow()
    expect(() => Chaos.inject({ latency: { min: "1 second", max: "1 second" } })).not.toThrow()
    expect(() => Chaos.inject({ outage: Schedule.recurs(1) })).toThrow(
      "Chaos: failure must be given when failureRate > 0 or an outage is set"
    )
    expect(() => Chaos.inject({ latency: null as unknown as Duration.DurationInput })).toThrow(
      "Chaos: latency must be a finite duration >= 0, got null"
    )
    expect(() => Chaos.inject({ defect: "bug" as unknown as () => unknown })).toThrow(
      "Chaos: defect must be a function, got bug"
    )
  })

  it("the rates may sum to 1 + 1e-12; a larger sum is rejected with the sum, and latency.min is named", () => {
    expect(() => Chaos.inject({ hangRate: 1, defectRate: 1e-12 })).not.toThrow()
    expect(() => Chaos.inject({ hangRate: 0.5, defectRate: 0.25, failureRate: 0.5, failure: () => 1 })).toThrow(
      "Chaos: hangRate + defectRate + failureRate must not exceed 1, got 1.25"
    )
    expect(() => Chaos.inject({ latency: { min: -5, max: 0 } })).toThrow(
      "Chaos: latency.min must be a finite duration >= 0, got -5"
    )
  })

  it.effect("service keeps the members of the service and its class, and nothing from Object.prototype", () =>
    Effect.gen(function*() {
      class Ledger {
        constructor(readonly currency: string) {}
        balance(account: string): Effect.Effect<string, Unavailable> {
          return Effect.succeed(`${account}: 10 ${this.currency}`)
        }
        label(account: string): string {
          return `${account} (${this.currency})`
        }
      }
      const flaky = Chaos.service(new Ledger("EUR"), { outage: Schedule.recurs(1), failure: () => new Unavailable() })
      expect(Object.keys(flaky).sort()).toEqual(["balance", "currency", "label"])
      // a member that returns no effect is passed through, with `this` still the service
      expect(flaky.label("a")).toBe("a (EUR)")
      expect(yield* Effect.exit(flaky.balance("a"))).toEqual(Exit.fail(new Unavailable()))
    }))

  it.effect("once the outage schedule is done the outage is over for good: the schedule is not stepped again", () =>
    Effect.gen(function*() {
      // a schedule that would continue again if it were asked once more after it stopped
      const answers = [true, false, true, true]
      const injector = Chaos.inject({
        outage: Schedule.recurWhile(() => answers.shift() ?? true),
        failure: () => new Unavailable()
      })
      expect(yield* outcomes(injector, 4)).toEqual(["failure", "ok", "ok", "ok"])
      expect(answers).toEqual([true, true])
    }))

  it("without latency an injector adds no wait: a call it lets through runs synchronously", () => {
    const injector = Chaos.inject({ seed: 1, failureRate: 0.5, failure: () => new Unavailable() })
    const results = Array.from({ length: 20 }, () => Effect.runSync(Effect.either(Effect.succeed("ok").pipe(injector))))
    expect(new Set(results.map((r) => r._tag))).toEqual(new Set(["Left", "Right"]))
  })

  it.effect("a fixed latency may be given as a Duration or as [seconds, nanos]", () =>
    Effect.gen(function*() {
      for (const latency of [Duration.millis(300), [0, 300_000_000] as const]) {
        const { latency: drawn } = yield* Chaos.inject({ latency }).decide
        expect(Duration.toMillis(drawn)).toBe(300)
      }
    }))
})
