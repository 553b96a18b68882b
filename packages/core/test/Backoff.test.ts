import { Backoff } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import {
  Duration,
  Effect,
  FastCheck as fc,
  Fiber,
  Random,
  Ref,
  Schedule,
  ScheduleDecision,
  ScheduleInterval,
  TestClock
} from "effect"

const millis = (ds: ReadonlyArray<Duration.Duration>) => ds.map(Duration.toMillis)
const delaysOf = <Out>(schedule: Schedule.Schedule<Out, unknown>, n: number, seed: number = 1) =>
  Backoff.delays(schedule, n).pipe(Effect.map(millis), Effect.withRandom(Random.make(seed)))

const base = fc.integer({ min: 1, max: 2_000 })
const factor = fc.double({ min: 1, max: 4, noNaN: true })
const count = fc.integer({ min: 1, max: 25 })
const seed = fc.integer()
const close = (a: number, b: number) => Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b))

/**
 * A property whose samples run synchronously. The schedules under test read no clock
 * (`Backoff.delays` steps them from time 0 itself) and get their Random explicitly, so a sample
 * needs none of the test services that `it.effect.prop` builds afresh for every one of its 100
 * samples (a layer that costs far more than the schedule it checks).
 */
const prop = <Arbs extends Record<string, fc.Arbitrary<any>>>(
  name: string,
  arbitraries: Arbs,
  self: (properties: { [K in keyof Arbs]: Arbs[K] extends fc.Arbitrary<infer T> ? T : never }) => Effect.Effect<void>
) => it.prop(name, arbitraries, (properties) => Effect.runSync(self(properties as Parameters<typeof self>[0])))

describe("Backoff", () => {
  describe("exact sequences before the cap", () => {
    prop(
      "exponential: base × factor^(n-1)",
      { base, factor, n: count },
      ({ base, factor, n }) =>
        Effect.gen(function*() {
          const got = yield* delaysOf(Backoff.exponential({ base, factor }), n)
          expect(got.length).toBe(n)
          got.forEach((d, i) => expect(close(d, base * Math.pow(factor, i))).toBe(true))
        })
    )

    prop("linear: base × n", { base, n: count }, ({ base, n }) =>
      Effect.gen(function*() {
        const got = yield* delaysOf(Backoff.linear({ base }), n)
        expect(got).toEqual(Array.from({ length: n }, (_, i) => base * (i + 1)))
      }))

    prop("fibonacci: base × fib(n)", { base, n: count }, ({ base, n }) =>
      Effect.gen(function*() {
        const got = yield* delaysOf(Backoff.fibonacci({ base }), n)
        const fib = [1, 1]
        while (fib.length < n) fib.push(fib[fib.length - 1]! + fib[fib.length - 2]!)
        expect(got).toEqual(fib.slice(0, n).map((f) => base * f))
      }))

    prop(
      "fromDelays: the table, then its last delay again",
      { table: fc.array(fc.integer({ min: 0, max: 60_000 }), { minLength: 1, maxLength: 8 }), n: count },
      ({ n, table }) =>
        Effect.gen(function*() {
          const got = yield* delaysOf(Backoff.fromDelays(table), n)
          expect(got).toEqual(Array.from({ length: n }, (_, i) => table[Math.min(i, table.length - 1)]))
        })
    )

    it.effect("the matrix's delay tables are constants", () =>
      Effect.gen(function*() {
        expect(millis(Backoff.immediateRetryDelays)).toEqual([0, 100, 200])
        expect(millis(Backoff.backoffRetryDelays)).toEqual([1000, 2000, 4000, 8000, 16000])
        expect(millis(Backoff.exponentialDelays)).toEqual([1000, 3000, 9000, 27000])
        expect(yield* delaysOf(Backoff.fromDelays(Backoff.backoffRetryDelays), 7)).toEqual([
          1000,
          2000,
          4000,
          8000,
          16000,
          16000,
          16000
        ])
      }))
  })

  describe("caps", () => {
    const families = (b: number, f: number, cap: number): ReadonlyArray<Backoff.Backoff> => [
      Backoff.exponential({ base: b, factor: f }),
      Backoff.linear({ base: b }),
      Backoff.fibonacci({ base: b }),
      Backoff.decorrelatedJitter({ base: b, cap: Math.max(b, cap) * 4 }),
      Backoff.fullJitter({ base: b, factor: f, cap: Math.max(b, cap) * 4 }),
      Backoff.equalJitter({ base: b, factor: f, cap: Math.max(b, cap) * 4 })
    ]

    prop(
      "no delay exceeds maxDelay, for every family",
      { base, factor, cap: fc.integer({ min: 0, max: 10_000 }), n: count, seed },
      ({ base, cap, factor, n, seed }) =>
        Effect.gen(function*() {
          for (const family of families(base, factor, cap)) {
            const got = yield* delaysOf(Backoff.limit(family, { maxDelay: cap }), n, seed)
            expect(got.length).toBe(n)
            for (const d of got) expect(d).toBeLessThanOrEqual(cap)
          }
        })
    )

    prop(
      "the built-in cap option holds too",
      { base, factor, cap: fc.integer({ min: 1, max: 10_000 }), n: count },
      ({ base, cap, factor, n }) =>
        Effect.gen(function*() {
          for (
            const s of [
              Backoff.exponential({ base, factor, cap }),
              Backoff.linear({ base, cap }),
              Backoff.fibonacci({ base, cap })
            ]
          ) {
            for (const d of yield* delaysOf(s, n)) expect(d).toBeLessThanOrEqual(cap)
          }
        })
    )

    prop(
      "the number of recurrences never exceeds maxRetries",
      { base, factor, maxRetries: fc.integer({ min: 0, max: 20 }), extra: fc.integer({ min: 0, max: 20 }), seed },
      ({ base, extra, factor, maxRetries, seed }) =>
        Effect.gen(function*() {
          for (const family of families(base, factor, base)) {
            const got = yield* delaysOf(Backoff.limit(family, { maxRetries }), maxRetries + extra, seed)
            expect(got.length).toBe(maxRetries)
          }
        })
    )

    prop(
      "no retry starts after maxElapsed",
      { base, factor, maxElapsed: fc.integer({ min: 0, max: 120_000 }), seed },
      ({ base, factor, maxElapsed, seed }) =>
        Effect.gen(function*() {
          for (const family of families(base, factor, base)) {
            const got = yield* delaysOf(Backoff.limit(family, { maxElapsed }), 500, seed)
            expect(got.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(maxElapsed)
          }
          // and it stops only when the next retry would start too late
          const expected: Array<number> = []
          for (let total = 0, i = 1; total + base * i <= maxElapsed; i++) {
            total += base * i
            expected.push(base * i)
          }
          expect(yield* delaysOf(Backoff.limit(Backoff.linear({ base }), { maxElapsed }), 500)).toEqual(expected)
        })
    )

    it.effect("a retry that starts exactly at maxElapsed still runs", () =>
      Effect.gen(function*() {
        const linear = Backoff.linear({ base: "100 millis" })
        expect(yield* delaysOf(Backoff.limit(linear, { maxElapsed: "300 millis" }), 10)).toEqual([100, 200])
        expect(yield* delaysOf(Backoff.limit(linear, { maxElapsed: "299 millis" }), 10)).toEqual([100])
        expect(yield* delaysOf(Backoff.limit(linear, { maxElapsed: "0 millis" }), 10)).toEqual([])
      }))
  })

  describe("jitter", () => {
    const cap = fc.integer({ min: 1, max: 100_000 })

    prop(
      "decorrelated jitter stays in [base, min(cap, 3 × previous)]",
      { base, cap, n: count, seed },
      ({ base, cap, n, seed }) =>
        Effect.gen(function*() {
          const c = Math.max(base, cap)
          const got = yield* delaysOf(Backoff.decorrelatedJitter({ base, cap: c }), n, seed)
          let previous = base
          for (const d of got) {
            expect(d).toBeGreaterThanOrEqual(base)
            expect(d).toBeLessThanOrEqual(Math.min(c, 3 * previous) + 1e-9)
            previous = d
          }
        })
    )

    prop(
      "full jitter stays in [0, min(cap, base × factor^(n-1))]",
      { base, factor, cap, n: count, seed },
      ({ base, cap, factor, n, seed }) =>
        Effect.gen(function*() {
          const c = Math.max(base, cap)
          const got = yield* delaysOf(Backoff.fullJitter({ base, factor, cap: c }), n, seed)
          got.forEach((d, i) => {
            expect(d).toBeGreaterThanOrEqual(0)
            expect(d).toBeLessThanOrEqual(Math.min(c, base * Math.pow(factor, i)) + 1e-9)
          })
        })
    )

    prop(
      "equal jitter stays in [ceiling / 2, ceiling]",
      { base, factor, cap, n: count, seed },
      ({ base, cap, factor, n, seed }) =>
        Effect.gen(function*() {
          const c = Math.max(base, cap)
          const got = yield* delaysOf(Backoff.equalJitter({ base, factor, cap: c }), n, seed)
          got.forEach((d, i) => {
            const ceiling = Math.min(c, base * Math.pow(factor, i))
            expect(d).toBeGreaterThanOrEqual(ceiling / 2 - 1e-9)
            expect(d).toBeLessThanOrEqual(ceiling + 1e-9)
          })
        })
    )

    prop(
      "the same seed gives the same sequence",
      { base, seed, n: count },
      ({ base, n, seed }) =>
        Effect.gen(function*() {
          for (
            const make of [
              () => Backoff.decorrelatedJitter({ base, cap: base * 50 }),
              () => Backoff.fullJitter({ base, cap: base * 50 }),
              () => Backoff.equalJitter({ base, cap: base * 50 })
            ]
          ) {
            const a = yield* delaysOf(make(), n, seed)
            const b = yield* delaysOf(make(), n, seed)
            expect(a).toEqual(b)
          }
        })
    )

    it.effect("different seeds give different jitter, for every jitter family", () =>
      Effect.gen(function*() {
        for (
          const make of [
            () => Backoff.decorrelatedJitter({ base: 1000, cap: 60_000 }),
            () => Backoff.fullJitter({ base: 1000, cap: 60_000 }),
            () => Backoff.equalJitter({ base: 1000, cap: 60_000 })
          ]
        ) {
          const a = yield* delaysOf(make(), 10, 1)
          const b = yield* delaysOf(make(), 10, 2)
          expect(a).toHaveLength(10)
          expect(a).not.toEqual(b)
        }
      }))

    const withRandomAt = (r: number) => Effect.withRandom(Random.fixed([r]))
    const fixedDelays = <Out>(schedule: Schedule.Schedule<Out, unknown>, n: number, r: number) =>
      Backoff.delays(schedule, n).pipe(Effect.map(millis), withRandomAt(r))

    prop(
      "under a fixed Random draw r, every jitter family gives exactly its formula",
      { base, factor, cap, n: count, r: fc.double({ min: 0, max: 1, noNaN: true }) },
      ({ base, cap, factor, n, r }) =>
        Effect.gen(function*() {
          const c = Math.max(base, cap)
          const ceiling = (i: number) => Math.min(c, base * Math.pow(factor, i))
          const full = yield* fixedDelays(Backoff.fullJitter({ base, factor, cap: c }), n, r)
          const equal = yield* fixedDelays(Backoff.equalJitter({ base, factor, cap: c }), n, r)
          const decorrelated = yield* fixedDelays(Backoff.decorrelatedJitter({ base, cap: c }), n, r)
          expect(full).toHaveLength(n)
          expect(equal).toHaveLength(n)
          expect(decorrelated).toHaveLength(n)
          let previous = base
          for (let i = 0; i < n; i++) {
            expect(close(full[i]!, r * ceiling(i))).toBe(true)
            expect(close(equal[i]!, ceiling(i) / 2 + r * ceiling(i) / 2)).toBe(true)
            const expected = base + r * (Math.min(c, 3 * previous) - base)
            expect(close(decorrelated[i]!, expected)).toBe(true)
            previous = decorrelated[i]!
          }
        })
    )

    it.effect("decorrelated jitter grows from the previous delay: Random at 1 gives base × 3^n", () =>
      Effect.gen(function*() {
        expect(yield* fixedDelays(Backoff.decorrelatedJitter({ base: 100, cap: 1_000_000 }), 3, 1)).toEqual([
          300,
          900,
          2700
        ])
        // at 0 it stays at the base; the cap still bounds the growth
        expect(yield* fixedDelays(Backoff.decorrelatedJitter({ base: 100, cap: 1_000_000 }), 3, 0)).toEqual([
          100,
          100,
          100
        ])
        expect(yield* fixedDelays(Backoff.decorrelatedJitter({ base: 100, cap: 1000 }), 4, 1)).toEqual([
          300,
          900,
          1000,
          1000
        ])
      }))

    it.effect("equal jitter spans exactly [ceiling / 2, ceiling]: Random at 0 and at 1 give the two ends", () =>
      Effect.gen(function*() {
        expect(yield* fixedDelays(Backoff.equalJitter({ base: 100, cap: 10_000 }), 2, 0)).toEqual([50, 100])
        expect(yield* fixedDelays(Backoff.equalJitter({ base: 100, cap: 10_000 }), 2, 1)).toEqual([100, 200])
        expect(yield* fixedDelays(Backoff.equalJitter({ base: 100, cap: 10_000 }), 2, 0.5)).toEqual([75, 150])
      }))

    it.effect("full jitter spans exactly [0, ceiling]: Random at 0, 1 and 0.5", () =>
      Effect.gen(function*() {
        expect(yield* fixedDelays(Backoff.fullJitter({ base: 100, cap: 10_000 }), 3, 0)).toEqual([0, 0, 0])
        expect(yield* fixedDelays(Backoff.fullJitter({ base: 100, cap: 10_000 }), 3, 1)).toEqual([100, 200, 400])
        expect(yield* fixedDelays(Backoff.fullJitter({ base: 100, cap: 300, factor: 3 }), 3, 0.5)).toEqual([
          50,
          150,
          150
        ])
      }))
  })

  describe("as a Schedule", () => {
    it.effect("Effect.retry sleeps exactly the backoff's delays on the Clock", () =>
      Effect.gen(function*() {
        const times = yield* Ref.make<Array<number>>([])
        const failing = Effect.flatMap(TestClock.currentTimeMillis, (now) => Ref.update(times, (ts) => [...ts, now]))
          .pipe(Effect.zipRight(Effect.fail("nope")))
        const fiber = yield* Effect.fork(
          Effect.retry(failing, Backoff.exponential({ base: "100 millis" }).pipe(Backoff.limit({ maxRetries: 4 })))
        )
        yield* TestClock.adjust("10 seconds")
        const exit = yield* Fiber.await(fiber)
        expect(exit._tag).toBe("Failure")
        expect(yield* Ref.get(times)).toEqual([0, 100, 300, 700, 1500])
      }))

    it.effect("composes with Effect's own Schedule combinators", () =>
      Effect.gen(function*() {
        const got = yield* delaysOf(Backoff.linear({ base: 10 }).pipe(Schedule.intersect(Schedule.recurs(2))), 5)
        expect(got).toEqual([10, 20])
      }))
  })

  describe("bad options", () => {
    it("name the field and the rule", () => {
      expect(() => Backoff.exponential({ base: 0 })).toThrow(/Backoff.exponential: base must be a finite duration > 0/)
      expect(() => Backoff.exponential({ base: 10, factor: 0.5 })).toThrow(
        /factor must be a finite number >= 1, got 0.5/
      )
      expect(() => Backoff.decorrelatedJitter({ base: 100, cap: 10 })).toThrow(/cap \(10ms\) must be >= base \(100ms\)/)
      expect(() => Backoff.fromDelays([])).toThrow(/delays must not be empty/)
      expect(() => Backoff.fromDelays([10, -1])).toThrow(/delays\[1\] must be a finite duration >= 0, got -1/)
      // negative in every written form, not clamped to 0
      expect(() => Backoff.fromDelays(["-1 seconds"])).toThrow(
        /Backoff.fromDelays: delays\[0\] must be a finite duration >= 0, got -1 seconds/
      )
      expect(() => Backoff.fromDelays([-5n])).toThrow(/delays\[0\] must be a finite duration >= 0, got -5/)
      expect(() => Backoff.fromDelays([[-5, 0]])).toThrow(/delays\[0\] must be a finite duration >= 0/)
      expect(() => Backoff.exponential({ base: "-100 millis" })).toThrow(/Backoff.exponential: base must be/)
      expect(() => Backoff.linear({ base: Number.NaN })).toThrow(/Backoff.linear: base must be a finite duration > 0/)
      expect(() => Backoff.limit(Backoff.linear({ base: 1 }), { maxRetries: 1.5 })).toThrow(
        /maxRetries must be a whole number >= 0, got 1.5/
      )
    })
  })
})

describe("Backoff: custom delays, decisions and every constructor's own errors", () => {
  it.effect("custom: the delay of each retry number (from 1), as a duration or as an Effect", () =>
    Effect.gen(function*() {
      expect(yield* delaysOf(Backoff.custom((n) => `${n * 10} millis`), 4)).toEqual([10, 20, 30, 40])
      expect(yield* delaysOf(Backoff.custom((n) => n * 100), 3)).toEqual([100, 200, 300])
      expect(yield* delaysOf(Backoff.custom((n) => Effect.succeed(Duration.seconds(n))), 3)).toEqual([1000, 2000, 3000])
      // an Effect may draw from Random
      const drawn = Backoff.custom(() => Effect.map(Random.nextIntBetween(100, 200), Duration.millis))
      const got = yield* delaysOf(drawn, 5, 7)
      expect(got).toHaveLength(5)
      for (const d of got) expect(d >= 100 && d < 200).toBe(true)
    }))

  it.effect("maxElapsed counts from the first failure, not from the clock's zero", () =>
    Effect.gen(function*() {
      yield* TestClock.adjust("1 hour")
      const times = yield* Ref.make<Array<number>>([])
      const failing = Effect.flatMap(TestClock.currentTimeMillis, (now) => Ref.update(times, (ts) => [...ts, now]))
        .pipe(Effect.zipRight(Effect.fail("nope")))
      const limited = Backoff.limit(Backoff.linear({ base: "100 millis" }), { maxElapsed: "300 millis" })
      const fiber = yield* Effect.fork(Effect.retry(failing, limited))
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.await(fiber)
      expect((yield* Ref.get(times)).map((t) => t - 3_600_000)).toEqual([0, 100, 300])
    }))

  it("decisionDelayMillis: the wait a decision asks for from now, 0 when done or already due", () => {
    const after = (at: number) => ScheduleDecision.continueWith(ScheduleInterval.after(at))
    expect(Backoff.decisionDelayMillis(1_000, after(1_250))).toBe(250)
    expect(Backoff.decisionDelayMillis(1_000, after(1_000))).toBe(0)
    expect(Backoff.decisionDelayMillis(1_000, after(400))).toBe(0)
    expect(Backoff.decisionDelayMillis(1_000, ScheduleDecision.done)).toBe(0)
  })

  it("a cap equal to the base is allowed: the jitter families then keep to that one delay", () => {
    const run = (schedule: Backoff.Backoff) => Effect.runSync(fixedAt(schedule, 3, 1))
    expect(run(Backoff.decorrelatedJitter({ base: 100, cap: 100 }))).toEqual([100, 100, 100])
    expect(run(Backoff.fullJitter({ base: 100, cap: 100 }))).toEqual([100, 100, 100])
    expect(run(Backoff.equalJitter({ base: 100, cap: 100 }))).toEqual([100, 100, 100])
  })

  it("each constructor names itself and the field in its error; factors and caps must be finite", () => {
    expect(() => Backoff.linear({ base: 10, cap: 0 })).toThrow(
      /^Backoff.linear: cap must be a finite duration > 0, got 0$/
    )
    expect(() => Backoff.exponential({ base: 10, cap: "-1 seconds" })).toThrow(
      /^Backoff.exponential: cap must be a finite duration > 0, got -1 seconds$/
    )
    expect(() => Backoff.fibonacci({ base: 0 })).toThrow(
      /^Backoff.fibonacci: base must be a finite duration > 0, got 0$/
    )
    expect(() => Backoff.fibonacci({ base: 10, cap: 0 })).toThrow(/^Backoff.fibonacci: cap must be/)
    expect(() => Backoff.decorrelatedJitter({ base: 0, cap: 10 })).toThrow(/^Backoff.decorrelatedJitter: base must be/)
    expect(() => Backoff.fullJitter({ base: 100, cap: 10 })).toThrow(
      /^Backoff.fullJitter: cap \(10ms\) must be >= base \(100ms\)$/
    )
    expect(() => Backoff.equalJitter({ base: 10, cap: 0 })).toThrow(
      /^Backoff.equalJitter: cap must be a finite duration > 0, got 0$/
    )
    expect(() => Backoff.fullJitter({ base: 10, cap: Duration.infinity })).toThrow(/^Backoff.fullJitter: cap must be/)
    for (const factor of [Number.POSITIVE_INFINITY, Number.NaN]) {
      expect(() => Backoff.exponential({ base: 10, factor })).toThrow(
        new RegExp(`^Backoff.exponential: factor must be a finite number >= 1, got ${factor}$`)
      )
      expect(() => Backoff.equalJitter({ base: 10, cap: 100, factor })).toThrow(/^Backoff.equalJitter: factor must be/)
    }
    expect(() => Backoff.limit(Backoff.linear({ base: 1 }), { maxDelay: -1 })).toThrow(
      /^Backoff.limit: maxDelay must be a finite duration >= 0, got -1$/
    )
    expect(() => Backoff.limit(Backoff.linear({ base: 1 }), { maxElapsed: "-1 seconds" })).toThrow(
      /^Backoff.limit: maxElapsed must be a finite duration >= 0, got -1 seconds$/
    )
    expect(() => Backoff.limit(Backoff.linear({ base: 1 }), { maxRetries: -1 })).toThrow(
      /^Backoff.limit: maxRetries must be a whole number >= 0, got -1$/
    )
  })
})

const fixedAt = <Out>(schedule: Schedule.Schedule<Out, unknown>, n: number, r: number) =>
  Backoff.delays(schedule, n).pipe(Effect.map(millis), Effect.withRandom(Random.fixed([r])))
