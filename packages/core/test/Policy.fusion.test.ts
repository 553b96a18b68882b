import { Bulkhead, CircuitBreaker, Fallback, Policy, Retry, RetryBudget } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Data, Deferred, Effect, Exit, Fiber, Option, Schedule } from "effect"
import { stepsOf } from "./steps.js"

class Down extends Data.TaggedError("Down")<{}> {}

const make = (options: { readonly maxRetries?: number; readonly budget?: RetryBudget.RetryBudget } = {}) =>
  Effect.gen(function*() {
    const breaker = yield* CircuitBreaker.make({ name: "payments", policy: CircuitBreaker.consecutive(3) })
    const bulkhead = yield* Bulkhead.make({ name: "payments", maxConcurrent: 2 })
    const policy = Policy.make({
      bulkhead: bulkhead.protect,
      breaker: breaker.protect,
      retry: Retry.policy({
        maxRetries: options.maxRetries ?? 2,
        schedule: Schedule.spaced("0 millis"),
        ...(options.budget !== undefined ? { budget: options.budget } : {})
      }),
      fallback: Effect.succeed("fallback")
    })
    return { breaker, bulkhead, policy }
  })

describe("Policy with a breaker and a bulkhead admitted in one step", () => {
  it.scoped("a call through a closed breaker and a free slot takes fewer run-loop steps than the bulkhead alone", () =>
    Effect.gen(function*() {
      const { bulkhead, policy } = yield* make()
      const alone = yield* stepsOf(bulkhead.protect(Effect.succeed(1)))
      const whole = yield* stepsOf(Effect.succeed(1).pipe(policy))
      // fallback, retry and breaker add no step of their own to a success, and the admission is
      // one flag change where `Effect.uninterruptibleMask` takes two steps (if this runtime did not
      // run that flag change as expected, the policy would fall back to the mask: as many steps)
      expect({ alone, whole }).toEqual({ alone, whole: alone - 1 })
      expect(yield* Effect.succeed(1).pipe(policy)).toBe(1)
    }))

  it.scoped("the work runs with the caller's interruptibility, and the admission itself uninterruptibly", () =>
    Effect.gen(function*() {
      const { policy } = yield* make()
      const work = Effect.checkInterruptible((interruptible) => Effect.succeed(interruptible))
      expect(yield* work.pipe(policy)).toBe(true)
      expect(yield* Effect.uninterruptible(work.pipe(policy))).toBe(false)
      // the same effect, run by both kinds of caller in turn
      const guarded = work.pipe(policy)
      expect([yield* guarded, yield* Effect.uninterruptible(guarded), yield* guarded]).toEqual([true, false, true])
    }))

  it.scoped("a failed attempt is counted by the breaker once, retried through it, and its slot given back", () =>
    Effect.gen(function*() {
      const { breaker, bulkhead, policy } = yield* make()
      let attempts = 0
      const flaky = Effect.suspend(() => ++attempts < 3 ? Effect.fail(new Down()) : Effect.succeed("charged"))
      expect(yield* flaky.pipe(policy)).toBe("charged")
      const m = yield* breaker.metrics
      expect({ attempts, calls: m.calls, failures: m.failures, successes: m.successes }).toEqual({
        attempts: 3,
        calls: 3,
        failures: 2,
        successes: 1
      })
      expect((yield* bulkhead.state).active).toBe(0)
    }))

  it.scoped("every attempt failing ends in the fallback; the breaker opens and later calls fall back at once", () =>
    Effect.gen(function*() {
      const { breaker, bulkhead, policy } = yield* make()
      let attempts = 0
      const down = Effect.suspend(() => {
        attempts++
        return Effect.fail(new Down())
      })
      expect(yield* down.pipe(policy)).toBe("fallback")
      expect(attempts).toBe(3)
      expect(yield* breaker.state).toBe("Open")
      expect(yield* down.pipe(policy)).toBe("fallback")
      expect(attempts).toBe(3)
      const m = yield* breaker.metrics
      expect({ failures: m.failures, rejections: m.rejections }).toEqual({ failures: 3, rejections: 1 })
      expect((yield* bulkhead.state).active).toBe(0)
    }))

  it.scoped("a retry budget records each call once", () =>
    Effect.gen(function*() {
      const budget = yield* RetryBudget.make({ name: "payments" })
      const { policy } = yield* make({ budget })
      for (let i = 0; i < 5; i++) yield* Effect.succeed(i).pipe(policy)
      let attempts = 0
      yield* Effect.suspend(() => ++attempts < 2 ? Effect.fail(new Down()) : Effect.succeed(0)).pipe(policy)
      const snapshot = yield* budget.snapshot
      expect({ calls: snapshot.calls, retries: snapshot.retries }).toEqual({ calls: 6, retries: 1 })
    }))

  it.scoped("a busy bulkhead or an open breaker takes the ordinary path, with the same answers", () =>
    Effect.gen(function*() {
      const { breaker, bulkhead, policy } = yield* make()
      const gate = yield* Deferred.make<void>()
      const held = yield* Effect.fork(
        Effect.all([Deferred.await(gate).pipe(policy), Deferred.await(gate).pipe(policy)], {
          concurrency: "unbounded"
        })
      )
      for (let i = 0; i < 5; i++) yield* Effect.yieldNow()
      expect((yield* bulkhead.state).active).toBe(2)
      // no slot and no queue: the bulkhead rejects, which neither trips the breaker nor is retried
      expect(yield* Effect.succeed("x").pipe(policy)).toBe("fallback")
      expect((yield* breaker.metrics).failures).toBe(0)
      yield* Deferred.succeed(gate, void 0)
      yield* Fiber.join(held)
      yield* breaker.isolate
      expect(yield* Effect.succeed("x").pipe(policy)).toBe("fallback")
      expect((yield* bulkhead.state).active).toBe(0)
    }))

  it.scoped("a caller interrupted at any step, before or during its work, gives its slot back and counts as nothing", () =>
    Effect.gen(function*() {
      // the caller yields every `budget` operations and is interrupted at its first yield:
      // scanning the budget moves that point across every step of the admission
      const points = new Set<string>()
      for (let budget = 10; budget < 60; budget++) {
        const { breaker, bulkhead, policy } = yield* make()
        const gate = yield* Deferred.make<void>()
        let started = false
        const caller = yield* Effect.fork(
          Effect.sync(() => started = true).pipe(
            Effect.zipRight(Deferred.await(gate)),
            policy,
            Effect.withMaxOpsBeforeYield(budget)
          )
        )
        yield* Effect.yieldNow()
        points.add(`${(yield* bulkhead.state).active}:${started}`)
        const exit = yield* Fiber.interrupt(caller)
        expect(Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)).toBe(true)
        const m = yield* breaker.metrics
        expect({ budget, active: (yield* bulkhead.state).active, failures: m.failures, successes: m.successes })
          .toEqual({ budget, active: 0, failures: 0, successes: 0 })
        expect(yield* Effect.succeed(budget).pipe(policy)).toBe(budget)
      }
      expect([...points].sort()).toEqual(["0:false", "1:false", "1:true"])
    }))

  it.scoped("without a retry, a failure is counted once and a failing fallback runs once, with or without a total timeout", () =>
    Effect.gen(function*() {
      for (const totalTimeout of [undefined, "1 minute"] as const) {
        const name = `fusion-no-retry-${totalTimeout ?? "none"}`
        const breaker = yield* CircuitBreaker.make({ name, policy: CircuitBreaker.consecutive(5) })
        const bulkhead = yield* Bulkhead.make({ name, maxConcurrent: 2 })
        let fallbacks = 0
        const fallback = Effect.suspend(() => {
          fallbacks++
          return Effect.fail(new Down())
        })
        const policy = totalTimeout === undefined
          ? Policy.make({ bulkhead: bulkhead.protect, breaker: breaker.protect, fallback })
          : Policy.make({ bulkhead: bulkhead.protect, breaker: breaker.protect, totalTimeout, fallback })
        const down = new Down()
        const error = yield* Effect.flip(Effect.fail(down).pipe(policy))
        expect(error).toBeInstanceOf(Fallback.FallbackFailedError)
        expect(error instanceof Fallback.FallbackFailedError && error.primaryError).toEqual(Option.some(down))
        expect({ fallbacks, failures: (yield* breaker.metrics).failures, active: (yield* bulkhead.state).active })
          .toEqual({ fallbacks: 1, failures: 1, active: 0 })
      }
    }))

  it.scoped("an effect run again after the breaker changed state is counted in the new state", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "fusion-generations", policy: CircuitBreaker.consecutive(2) })
      const bulkhead = yield* Bulkhead.make({ name: "fusion-generations", maxConcurrent: 2 })
      const failing = Effect.fail(new Down()).pipe(
        Policy.make({ bulkhead: bulkhead.protect, breaker: breaker.protect })
      )
      yield* Effect.exit(failing)
      yield* breaker.isolate
      yield* breaker.release
      expect(yield* breaker.state).toBe("Closed")
      // counted afresh: one failure leaves it closed, the second opens it
      yield* Effect.exit(failing)
      expect(yield* breaker.state).toBe("Closed")
      yield* Effect.exit(failing)
      expect(yield* breaker.state).toBe("Open")
    }))
})
