import {
  Backoff,
  Bulkhead,
  Chaos,
  CircuitBreaker,
  Deadline,
  Failure,
  Fallback,
  Policy,
  Retry,
  RetryBudget,
  Timeout
} from "@bulwark/core"
import { describe, expect, expectTypeOf, it } from "@effect/vitest"
import {
  Cause,
  Clock,
  Data,
  Duration,
  Effect,
  Exit,
  FastCheck as fc,
  Fiber,
  Layer,
  Logger,
  LogLevel,
  Option,
  Schema,
  TestClock
} from "effect"

class Unavailable extends Data.TaggedError("Unavailable")<{}> {}
class Refused extends Data.TaggedError("Refused")<{}> {}

/**
 * A small circuit breaker standing in for `CircuitBreaker`: it opens after `threshold`
 * consecutive failures that trip it (by classification) and rejects calls for `openFor`.
 * Its rejection claims to be retryable with a retry-after hint, so only the Policy's own rule
 * can stop a retry loop on it.
 */
class StandInOpen extends Schema.TaggedError<StandInOpen>()("StandInOpen", { breaker: Schema.String }) {
  get [Failure.RuleKey](): Failure.RuleObject {
    return {
      category: "resource",
      code: "CIRCUIT_OPEN",
      severity: "minor",
      strategy: "backoff_retry",
      retryable: true,
      maxRetries: 9,
      retryAfter: 1000,
      tripsBreaker: false
    }
  }
}

const makeBreaker = (threshold: number, openFor: Duration.DurationInput) => {
  let failures = 0
  let openUntil = -1
  const counted: Array<string> = []
  const rejection = new StandInOpen({ breaker: "stand-in" })
  const protect = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | StandInOpen, R> =>
    Effect.flatMap(Clock.currentTimeMillis, (now): Effect.Effect<A, E | StandInOpen, R> => {
      if (now < openUntil) return Effect.fail(rejection)
      return self.pipe(
        Effect.tap(() => Effect.sync(() => failures = 0)),
        Effect.tapErrorCause((cause) =>
          Effect.flatMap(Failure.classifyCause(cause), (c) =>
            Effect.sync(() => {
              if (Option.isNone(c) || !c.value.tripsBreaker) return
              counted.push(c.value.code)
              if (++failures >= threshold) openUntil = now + Duration.toMillis(openFor)
            }))
        )
      )
    })
  return { protect, counted, isOpen: Effect.map(Clock.currentTimeMillis, (now) => now < openUntil) }
}

const classifier = Failure.layerClassifier({ tables: [Failure.table<Unavailable>({ Unavailable: "connection" })] })
const quiet = Logger.minimumLogLevel(LogLevel.None)
const env = Layer.merge(classifier, quiet)

const every100ms = Retry.policy({ maxRetries: 5, schedule: Backoff.fromDelays(["100 millis"]) })

const settle = Effect.gen(function*() {
  for (let i = 0; i < 5; i++) yield* Effect.yieldNow()
})

describe("Policy", () => {
  it("the error type is exactly the union of what the stages can raise", () => {
    // Type-level test: vitest does not check types; `tsc -b` does (tsconfig.test.json includes test/,
    // and `pnpm test` runs `pnpm typecheck` first), so a wrong type here fails `pnpm test`.
    const breaker = makeBreaker(5, "1 minute")
    const bulkhead = Effect.runSync(Bulkhead.make())
    const budget = RetryBudget.unsafeMake()
    const call = Effect.fail(new Unavailable()) as Effect.Effect<number, Unavailable>

    const full = Policy.make({
      timeout: "1 second",
      bulkhead: bulkhead.protect,
      breaker: breaker.protect,
      retry: Retry.policy({ budget }),
      totalTimeout: "5 seconds",
      fallback: Effect.fail(new Unavailable()) as Effect.Effect<string, Unavailable>
    })
    expectTypeOf(call.pipe(full)).toEqualTypeOf<
      Effect.Effect<
        number | string,
        | Unavailable
        | Timeout.TimeoutError
        | Bulkhead.BulkheadRejectedError
        | StandInOpen
        | RetryBudget.RetryBudgetExhaustedError
        | Deadline.DeadlineExceededError
        | Fallback.FallbackFailedError
      >
    >()

    expectTypeOf(call.pipe(Policy.make({}))).toEqualTypeOf<Effect.Effect<number, Unavailable>>()
    expectTypeOf(call.pipe(Policy.make({ timeout: "1 second" }))).toEqualTypeOf<
      Effect.Effect<number, Unavailable | Timeout.TimeoutError>
    >()
    // a fallback that cannot fail adds no FallbackFailedError; a retry without a budget adds only
    // the deadline's error (no backoff starts past the deadline)
    expectTypeOf(call.pipe(Policy.make({ retry: every100ms, fallback: Effect.succeed(0) }))).toEqualTypeOf<
      Effect.Effect<number, Unavailable | Deadline.DeadlineExceededError>
    >()
    // a per-dependency bulkhead Tag adds itself to the requirements
    class Payments extends Bulkhead.Tag("payments")<Payments>() {}
    expectTypeOf(call.pipe(Policy.make({ bulkhead: Payments.protect }))).toEqualTypeOf<
      Effect.Effect<number, Unavailable | Bulkhead.BulkheadRejectedError, Payments>
    >()
    class PaymentsBreaker extends CircuitBreaker.Tag("payments")<PaymentsBreaker>() {}
    expectTypeOf(call.pipe(Policy.make({ bulkhead: Payments.protect, breaker: PaymentsBreaker.protect })))
      .toEqualTypeOf<
        Effect.Effect<
          number,
          Unavailable | Bulkhead.BulkheadRejectedError | CircuitBreaker.CircuitOpenError,
          Payments | PaymentsBreaker
        >
      >()
  })

  it.effect("an open breaker stops the retry loop at once without spending the budget", () =>
    Effect.gen(function*() {
      const breaker = makeBreaker(1, "1 minute")
      const budget = yield* RetryBudget.make({ name: "stop", minRetriesPerSecond: 100 })
      yield* Effect.exit(Effect.fail(new Unavailable()).pipe(breaker.protect))
      expect(yield* breaker.isOpen).toBe(true)
      let runs = 0
      const policy = Policy.make({ breaker: breaker.protect, retry: Retry.policy({ maxRetries: 5, budget }) })
      // no clock adjustment: the call must end without waiting for any backoff
      const exit = yield* Effect.exit(Effect.sync(() => ++runs).pipe(policy))
      expect(exit).toEqual(Exit.fail(new StandInOpen({ breaker: "stand-in" })))
      expect(runs).toBe(0)
      expect((yield* budget.snapshot).retries).toBe(0)
    }).pipe(Effect.provide(env)))

  it.effect("retries go through the breaker: once it opens, the next retry is rejected and the loop ends", () =>
    Effect.gen(function*() {
      const breaker = makeBreaker(2, "1 minute")
      let runs = 0
      const policy = Policy.make({ breaker: breaker.protect, retry: every100ms })
      const fiber = yield* Effect.fork(
        Effect.suspend(() => {
          runs++
          return Effect.fail(new Unavailable())
        }).pipe(policy)
      )
      yield* TestClock.adjust("1 second")
      expect(yield* Effect.flip(Fiber.join(fiber))).toBeInstanceOf(StandInOpen)
      expect(runs).toBe(2)
    }).pipe(Effect.provide(env)))

  it.effect("timeouts count as breaker failures; bulkhead rejections do not", () =>
    Effect.gen(function*() {
      const breaker = makeBreaker(10, "1 minute")
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1 })
      const policy = Policy.make({ timeout: "1 second", bulkhead: bulkhead.protect, breaker: breaker.protect })
      const hung = yield* Effect.fork(Effect.never.pipe(policy))
      yield* settle
      expect(yield* Effect.flip(Effect.void.pipe(policy))).toBeInstanceOf(Bulkhead.BulkheadRejectedError)
      yield* TestClock.adjust("1 second")
      expect(yield* Effect.flip(Fiber.join(hung))).toBeInstanceOf(Timeout.TimeoutError)
      expect(breaker.counted).toEqual(["TIMEOUT"])
    }).pipe(Effect.provide(env)))

  it.effect("the per-attempt timeout bounds the call, not its wait in the bulkhead's queue", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueued: 1 })
      const policy = Policy.make({ timeout: "1 second", bulkhead: bulkhead.protect })
      const first = yield* Effect.fork(Effect.sleep("900 millis").pipe(Effect.as("first"), policy))
      yield* settle
      const second = yield* Effect.fork(Effect.sleep("900 millis").pipe(Effect.as("second"), policy))
      yield* TestClock.adjust("1800 millis")
      expect(yield* Fiber.join(first)).toBe("first")
      expect(yield* Fiber.join(second)).toBe("second")
    }).pipe(Effect.provide(env)))

  it.effect("totalTimeout bounds the whole retry loop", () =>
    Effect.gen(function*() {
      let runs = 0
      const policy = Policy.make({
        retry: Retry.policy({ maxRetries: 100, escalate: false, schedule: Backoff.fromDelays(["1 second"]) }),
        totalTimeout: "2500 millis",
        name: "bounded"
      })
      const fiber = yield* Effect.fork(
        Effect.suspend(() => {
          runs++
          return Effect.fail(new Unavailable())
        }).pipe(policy)
      )
      // the third failure comes at 2 s with 500 ms left: the 1 s backoff would end past the
      // deadline the total timeout set, so the call fails then, without waiting for 2.5 s
      yield* TestClock.adjust("2000 millis")
      const error = yield* Effect.flip(Fiber.join(fiber))
      expect(error).toBeInstanceOf(Deadline.DeadlineExceededError)
      expect(runs).toBe(3)
    }).pipe(Effect.provide(env)))

  it.effect("the fallback is outermost: it answers when the breaker has rejected the call", () =>
    Effect.gen(function*() {
      const breaker = makeBreaker(1, "1 minute")
      const policy = Policy.make({
        breaker: breaker.protect,
        retry: every100ms,
        fallback: (failed) => Effect.succeed(`fallback after ${failed.classification.code}`)
      })
      const fiber = yield* Effect.fork(Effect.fail(new Unavailable()).pipe(policy))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBe("fallback after CIRCUIT_OPEN")
    }).pipe(Effect.provide(env)))

  it.effect("written with pipe, the same stages in the same order behave the same", () =>
    Effect.gen(function*() {
      const breaker = makeBreaker(2, "1 minute")
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 2 })
      let runs = 0
      const call = Effect.suspend(() => {
        runs++
        return Effect.fail(new Unavailable())
      })
      const piped = call.pipe(
        Timeout.timeout("1 second"),
        bulkhead.protect,
        Policy.retry(every100ms, { breaker: breaker.protect }),
        Timeout.timeout("10 seconds"),
        Fallback.orElse(Effect.succeed("cached"))
      )
      const fiber = yield* Effect.fork(piped)
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBe("cached")
      expect(runs).toBe(2)
      expect(Policy.order).toEqual(["fallback", "totalTimeout", "retry", "breaker", "bulkhead", "timeout"])
    }).pipe(Effect.provide(env)))

  it.scoped("with the real CircuitBreaker: retries stop at its rejection and its type joins the union", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "real",
        policy: CircuitBreaker.consecutive(2),
        openDuration: "1 minute"
      })
      const budget = yield* RetryBudget.make({ name: "real", minRetriesPerSecond: 100 })
      const policy = Policy.make({
        timeout: "1 second",
        breaker: breaker.protect,
        retry: Retry.policy({ maxRetries: 5, budget, schedule: Backoff.fromDelays(["100 millis"]) })
      })
      let runs = 0
      const call = Effect.suspend(() => {
        runs++
        return Effect.fail(new Unavailable())
      }).pipe(policy)
      expectTypeOf(call).toEqualTypeOf<
        Effect.Effect<
          never,
          | Unavailable
          | Timeout.TimeoutError
          | CircuitBreaker.CircuitOpenError
          | RetryBudget.RetryBudgetExhaustedError
          | Deadline.DeadlineExceededError
        >
      >()
      const fiber = yield* Effect.fork(call)
      yield* TestClock.adjust("1 second")
      const error = yield* Effect.flip(Fiber.join(fiber))
      expect(error).toBeInstanceOf(CircuitBreaker.CircuitOpenError)
      expect(runs).toBe(2)
      // two retries were taken (after each failure); the rejection itself cost nothing
      expect((yield* budget.snapshot).retries).toBe(2)
      // once open, a new call ends at once, without running and without touching the budget
      expect(yield* Effect.flip(call)).toBeInstanceOf(CircuitBreaker.CircuitOpenError)
      expect(runs).toBe(2)
      expect((yield* budget.snapshot).retries).toBe(2)
    }).pipe(Effect.provide(env)))

  it.effect.prop(
    "under random chaos no admitted call is lost and every failure is typed",
    {
      seed: fc.integer(),
      failureRate: fc.double({ min: 0, max: 0.6, noNaN: true }),
      hangRate: fc.double({ min: 0, max: 0.2, noNaN: true }),
      maxConcurrent: fc.integer({ min: 1, max: 4 }),
      maxQueued: fc.integer({ min: 0, max: 4 }),
      threshold: fc.integer({ min: 1, max: 5 }),
      arrivals: fc.array(fc.integer({ min: 0, max: 3000 }), { minLength: 1, maxLength: 20 })
    },
    ({ arrivals, failureRate, hangRate, maxConcurrent, maxQueued, seed, threshold }) =>
      Effect.gen(function*() {
        const breaker = makeBreaker(threshold, "2 seconds")
        const bulkhead = yield* Bulkhead.make({ maxConcurrent, maxQueued, maxWait: "3 seconds" })
        const budget = yield* RetryBudget.make({ name: "chaos", ratio: 0.5, minRetriesPerSecond: 1 })
        const chaos = Chaos.inject({
          seed,
          failureRate,
          hangRate,
          failure: () => new Unavailable(),
          latency: { min: "10 millis", max: "500 millis" }
        })
        const policy = Policy.make({
          timeout: "1 second",
          bulkhead: bulkhead.protect,
          breaker: breaker.protect,
          retry: Retry.policy({ maxRetries: 3, budget, schedule: Backoff.fromDelays(["200 millis"]) }),
          totalTimeout: "8 seconds"
        })
        const admitted = new Set<number>()
        const finished = new Set<number>()
        const fibers = []
        for (const [i, at] of arrivals.entries()) {
          const call = Effect.sync(() => admitted.add(i)).pipe(
            Effect.zipRight(Effect.succeed(i).pipe(chaos)),
            Effect.ensuring(Effect.sync(() => finished.add(i)))
          )
          fibers.push(yield* Effect.fork(Effect.sleep(Duration.millis(at)).pipe(Effect.zipRight(call.pipe(policy)))))
        }
        yield* TestClock.adjust("20 seconds")
        for (const fiber of fibers) {
          const exit = Option.getOrThrow(yield* Fiber.poll(fiber))
          if (Exit.isFailure(exit)) {
            const error = Cause.failureOption(exit.cause)
            expect(Option.isSome(error), String(exit.cause)).toBe(true)
            const value = Option.getOrThrow(error)
            expect(
              value instanceof Unavailable || value instanceof Timeout.TimeoutError ||
                value instanceof Bulkhead.BulkheadRejectedError || value instanceof StandInOpen ||
                value instanceof RetryBudget.RetryBudgetExhaustedError
            ).toBe(true)
          }
        }
        // every call that entered the protected effect got to its end (success, failure or timeout)
        expect([...admitted].filter((i) => !finished.has(i))).toEqual([])
        expect(yield* bulkhead.state).toMatchObject({ active: 0, queued: 0 })
      }).pipe(Effect.provide(env)),
    { fastCheck: { numRuns: 40 } }
  )

  it.effect("docs/policy.md's Policy.make example: Unavailable is retried 3 times, then the fallback answers", () =>
    Effect.gen(function*() {
      const PaymentsErrors = Failure.layerClassifier({
        tables: [Failure.table<Unavailable>({ Unavailable: "connection" })]
      })
      const times: Array<number> = []
      const charge: Effect.Effect<string, Unavailable> = Effect.flatMap(
        Clock.currentTimeMillis,
        (now) => Effect.sync(() => times.push(now)).pipe(Effect.zipRight(Effect.fail(new Unavailable())))
      )
      const program = Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: "payments" })
        const bulkhead = yield* Bulkhead.make({
          name: "payments",
          maxConcurrent: 8,
          maxQueued: 32,
          maxWait: "1 second"
        })
        const budget = yield* RetryBudget.make({ name: "payments" })
        const payments = Policy.make({
          name: "payments",
          timeout: "2 seconds",
          bulkhead: bulkhead.protect,
          breaker: breaker.protect,
          retry: Retry.policy({ maxRetries: 3, budget }),
          totalTimeout: "10 seconds",
          fallback: Effect.succeed("queued for later")
        })
        return yield* charge.pipe(payments)
      }).pipe(Effect.scoped, Effect.provide(PaymentsErrors))
      const fiber = yield* Effect.fork(program)
      yield* TestClock.adjust("1 minute")
      expect(yield* Fiber.join(fiber)).toBe("queued for later")
      expect(times).toEqual([0, 1000, 3000, 7000])
    }).pipe(Effect.provide(quiet)))

  it.effect("Policy.make's name reaches the retry's log annotation", () =>
    Effect.gen(function*() {
      const operations: Array<unknown> = []
      const logger = Logger.make(({ annotations }) => {
        for (const [key, value] of annotations) if (key === "bulwark.retry.operation") operations.push(value)
      })
      const payments = Policy.make({ name: "payments", retry: Retry.policy({ maxRetries: 1 }) })
      const fiber = yield* Effect.fork(
        Effect.fail(new Unavailable()).pipe(payments, Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      )
      yield* TestClock.adjust("1 minute")
      yield* Fiber.await(fiber)
      expect(operations.length).toBeGreaterThanOrEqual(2)
      expect(operations.every((o) => o === "payments")).toBe(true)
    }).pipe(Effect.provide(classifier)))

  it.effect("a while predicate never retries the breaker's own rejection", () =>
    Effect.gen(function*() {
      const breaker = makeBreaker(1, "1 minute")
      let entered = 0
      const protect = <A, E, R>(self: Effect.Effect<A, E, R>) =>
        Effect.suspend(() => {
          entered++
          return breaker.protect(self)
        })
      let calls = 0
      const call = Effect.suspend(() => {
        calls++
        return Effect.fail(new Unavailable())
      })
      const guarded = Policy.make({ breaker: protect, retry: Retry.policy({ while: () => true, maxRetries: 5 }) })
      const fiber = yield* Effect.fork(Effect.flip(call.pipe(guarded)))
      yield* TestClock.adjust("1 hour")
      const error = yield* Fiber.join(fiber)
      expect(error).toBeInstanceOf(StandInOpen)
      // the call once, then one retry that the open breaker rejects: the loop stops there
      expect([calls, entered]).toEqual([1, 2])
    }).pipe(Effect.provide(env)))

  it.effect("through retry and breaker a failure keeps catchAll's rule: beside a defect it becomes a defect, alone it stays typed", () =>
    Effect.gen(function*() {
      const breaker = makeBreaker(100, "1 minute")
      const guarded = Policy.make({ breaker: breaker.protect, retry: Retry.policy({ maxRetries: 0 }) })
      const error = new Unavailable()
      // a typed failure beside a defect: the failure is turned into a defect, nothing is retried
      const mixed = yield* Effect.exit(
        Effect.failCause(Cause.sequential(Cause.fail(error), Cause.die("bug"))).pipe(guarded)
      )
      expect(Exit.isFailure(mixed) && [...Cause.defects(mixed.cause)]).toEqual([error, "bug"])
      expect(Exit.isFailure(mixed) && [...Cause.failures(mixed.cause)]).toEqual([])
      // two typed failures: the first one is the error the caller sees
      const other = new Unavailable()
      const both = yield* Effect.exit(
        Effect.failCause(Cause.parallel(Cause.fail(error), Cause.fail(other))).pipe(guarded)
      )
      expect(both).toEqual(Exit.fail(error))
      // interruption passes untouched
      const interrupted = yield* Effect.exit(Effect.interrupt.pipe(guarded))
      expect(Exit.isInterrupted(interrupted)).toBe(true)
    }).pipe(Effect.provide(env)))

  it.effect("with a real Bulkhead inside breaker and retry, the bulkhead's own rejection is the call's failure to the retry, as written with pipe", () =>
    Effect.gen(function*() {
      // a retry whose classify function retries anything: it sees the bulkhead's rejection as a
      // failure of the attempt (not the breaker's own), so it retries it like any other
      const retryAll = Retry.policy({
        maxRetries: 2,
        schedule: Backoff.fromDelays(["10 millis"]),
        classify: () => ({ category: "resource", retryable: true, strategy: "backoff_retry" })
      })
      const run = (
        compose: (
          bulkhead: Bulkhead.Bulkhead
        ) => <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, unknown, R>
      ) =>
        Effect.gen(function*() {
          const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueued: 0 })
          const holder = yield* Effect.fork(bulkhead.protect(Effect.never))
          yield* settle
          const fiber = yield* Effect.fork(Effect.flip(Effect.succeed(1).pipe(compose(bulkhead))))
          yield* TestClock.adjust("1 second")
          const error = yield* Fiber.join(fiber)
          yield* Fiber.interrupt(holder)
          return { error, state: yield* bulkhead.state }
        })
      const made = yield* run((bulkhead) =>
        Policy.make({ bulkhead: bulkhead.protect, breaker: makeBreaker(100, "1 minute").protect, retry: retryAll })
      )
      const piped = yield* run((bulkhead) => (self) =>
        self.pipe(bulkhead.protect, Policy.retry(retryAll, { breaker: makeBreaker(100, "1 minute").protect }))
      )
      expect(made.error).toBeInstanceOf(Bulkhead.BulkheadRejectedError)
      // the first attempt and two retries, each rejected by the full bulkhead
      expect(made.state.rejected.queue_full).toBe(3)
      expect(piped.state.rejected.queue_full).toBe(3)
      expect(made.state).toMatchObject({ active: 0, queued: 0 })
    }).pipe(Effect.provide(env)))

  it.effect("a breaker's rejection stops the retry loop as its own rule says, logged as the breaker's", () =>
    Effect.gen(function*() {
      const logs: Array<string> = []
      const logger = Logger.make(({ message }) => {
        logs.push((Array.isArray(message) ? message : [message]).join(" "))
      })
      const rejectingWith = (error: object) => <A, E, R>(_self: Effect.Effect<A, E, R>) => Effect.fail(error)
      const run = (error: object, maxRetries = 3) =>
        Effect.gen(function*() {
          logs.length = 0
          let runs = 0
          const policy = Policy.make({ breaker: rejectingWith(error), retry: Retry.policy({ maxRetries }) })
          const fiber = yield* Effect.fork(Effect.flip(Effect.sync(() => ++runs).pipe(policy)))
          yield* TestClock.adjust("1 hour")
          expect(yield* Fiber.join(fiber)).toBe(error)
          expect(runs).toBe(0)
          return [...logs]
        }).pipe(
          Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
          Effect.provide(Logger.minimumLogLevel(LogLevel.All))
        )
      // a rejection with no rule of its own: CIRCUIT_OPEN (resource), and nothing to warn about
      class Shut extends Data.TaggedError("Shut")<{}> {}
      expect(yield* run(new Shut())).toEqual([
        "Not retrying: CIRCUIT_OPEN (resource) is not retryable: rejected by the circuit breaker: Shut"
      ])
      // its own category and code are kept
      const shed = { message: "shedding load", [Failure.RuleKey]: { category: "external", code: "SHED" } }
      expect(yield* run(shed)).toEqual([
        "Not retrying: SHED (external) is not retryable: rejected by the circuit breaker: shedding load"
      ])
      // a rule with an unknown category is warned about under the mark's tag
      const odd = { message: "odd", [Failure.RuleKey]: { category: "sideways", code: "ODD" } }
      expect((yield* run(odd, 0))[0]).toContain(
        "The rule for \"@bulwark/core/Policy/BreakerRejected\" names the unknown category sideways"
      )
    }).pipe(Effect.provide(env)))

  it.effect("a call failing with a string or with null is the call's own failure: retried through the breaker", () =>
    Effect.gen(function*() {
      const breaker = makeBreaker(100, "1 minute")
      const policy = Policy.make({
        breaker: breaker.protect,
        retry: Retry.policy({
          maxRetries: 2,
          schedule: Backoff.fromDelays(["10 millis"]),
          classify: () => ({ category: "connection" })
        })
      })
      for (const failure of ["refused", null]) {
        let runs = 0
        const fiber = yield* Effect.fork(Effect.exit(
          Effect.suspend(() => {
            runs++
            return Effect.fail(failure)
          }).pipe(policy)
        ))
        yield* TestClock.adjust("1 second")
        expect(yield* Fiber.join(fiber)).toEqual(Exit.fail(failure))
        expect(runs).toBe(3)
      }
    }).pipe(Effect.provide(env)))

  it.effect("a classify function decides the call's own failures and never sees the breaker's rejection", () =>
    Effect.gen(function*() {
      // a breaker that opens after two failures of any kind
      let entered = 0
      let failures = 0
      const rejection = new StandInOpen({ breaker: "after two" })
      const protect = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | StandInOpen, R> =>
        Effect.suspend((): Effect.Effect<A, E | StandInOpen, R> => {
          entered++
          return failures >= 2 ? Effect.fail(rejection) : Effect.tapError(self, () => Effect.sync(() => failures++))
        })
      let calls = 0
      const call = Effect.suspend(() => {
        calls++
        return Effect.fail(new Refused())
      })
      // the context calls Refused a validation failure (not retried); the function retries anything
      const guarded = Policy.make({
        breaker: protect,
        retry: Retry.policy({
          maxRetries: 5,
          schedule: Backoff.fromDelays(["100 millis"]),
          classify: () => ({ category: "connection" })
        })
      })
      const fiber = yield* Effect.fork(Effect.flip(call.pipe(guarded)))
      yield* TestClock.adjust("1 hour")
      expect(yield* Fiber.join(fiber)).toBeInstanceOf(StandInOpen)
      // two calls open the breaker; the retry it rejects ends the loop
      expect([calls, entered]).toEqual([2, 3])
    }).pipe(
      Effect.provide(Layer.merge(
        Failure.layerClassifier({ tables: [Failure.table<Refused>({ Refused: "validation" })] }),
        quiet
      ))
    ))

  it.effect("Policy.retry without a breaker is the retry policy alone", () =>
    Effect.gen(function*() {
      let runs = 0
      const fiber = yield* Effect.fork(Effect.flip(
        Effect.suspend(() => {
          runs++
          return Effect.fail(new Unavailable())
        }).pipe(Policy.retry(Retry.policy({ maxRetries: 2, schedule: Backoff.fromDelays(["10 millis"]) })))
      ))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBeInstanceOf(Unavailable)
      expect(runs).toBe(3)
    }).pipe(Effect.provide(env)))

  it.effect("Policy.make's name names its timeout; a retry policy with a name of its own keeps it", () =>
    Effect.gen(function*() {
      const timedOut = Policy.make({ name: "policy-name-timeout", timeout: "1 second" })
      const fiber = yield* Effect.fork(Effect.flip(Effect.never.pipe(timedOut)))
      yield* TestClock.adjust("1 second")
      expect((yield* Fiber.join(fiber)).operation).toBe("policy-name-timeout")

      const operations: Array<unknown> = []
      const logger = Logger.make(({ annotations }) => {
        for (const [key, value] of annotations) if (key === "bulwark.retry.operation") operations.push(value)
      })
      const named = Policy.make({ name: "policy-name", retry: Retry.policy({ name: "retry-own-name", maxRetries: 1 }) })
      const retried = yield* Effect.fork(
        Effect.fail(new Unavailable()).pipe(named, Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      )
      yield* TestClock.adjust("1 minute")
      yield* Fiber.await(retried)
      expect(operations.length).toBeGreaterThanOrEqual(2)
      expect(new Set(operations)).toEqual(new Set(["retry-own-name"]))
    }).pipe(Effect.provide(classifier)))
})
