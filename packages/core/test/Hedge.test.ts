import { Failure, Hedge } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  Clock,
  Data,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Metric,
  MetricState,
  Option,
  TestClock
} from "effect"

class Flaky extends Data.TaggedError("Flaky")<{ readonly attempt: number }> {}
class Invalid extends Data.TaggedError("Invalid")<{}> {}

const classifier = Failure.layerClassifier({
  tables: [Failure.table<Flaky | Invalid>({ Flaky: "connection", Invalid: "validation" })]
})

/** An effect whose n-th run behaves as `attempts[n]`, recording starts and finalizers in `log`. */
const scripted = <E>(log: Array<string>, attempts: ReadonlyArray<(n: number) => Effect.Effect<string, E>>) => {
  let n = 0
  return Effect.suspend(() => {
    const i = n++
    log.push(`start ${i}`)
    return attempts[i]!(i).pipe(Effect.onInterrupt(() => Effect.sync(() => log.push(`interrupted ${i}`))))
  })
}

/** A clock whose sleeps are `sleep`: lets a test decide when (and whether) a delay ends. */
const clockWith = (sleep: (duration: Duration.Duration) => Effect.Effect<void>): Clock.Clock =>
  Object.assign(Object.create(Clock.make()), { sleep })

/** Lets every forked fiber run until it waits. */
const settle = Effect.repeatN(Effect.yieldNow(), 20)

const after = (ms: number, value: string) => () => Effect.sleep(`${ms} millis`).pipe(Effect.as(value))

describe("Hedge", () => {
  it.effect("an attempt that answers before the delay is the only one", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const call = scripted(log, [after(40, "first"), after(0, "second")]).pipe(
        Hedge.hedge({ delay: "50 millis", maxHedges: 2 })
      )
      const fiber = yield* Effect.fork(call)
      yield* TestClock.adjust("40 millis")
      expect(yield* Fiber.join(fiber)).toBe("first")
      yield* TestClock.adjust("1 second")
      expect(log).toEqual(["start 0"])
    }))

  it.effect("after the delay another attempt starts; the first success wins and the loser is interrupted first", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const call = scripted(log, [after(500, "slow"), after(10, "hedge")]).pipe(
        Hedge.hedge({ delay: "50 millis", name: "hedge-win" }),
        Effect.tap(() => Effect.sync(() => log.push("returned")))
      )
      const fiber = yield* Effect.fork(call)
      yield* TestClock.adjust("49 millis")
      expect(log).toEqual(["start 0"])
      yield* TestClock.adjust("1 millis")
      expect(log).toEqual(["start 0", "start 1"])
      yield* TestClock.adjust("10 millis")
      expect(yield* Fiber.join(fiber)).toBe("hedge")
      expect(log).toEqual(["start 0", "start 1", "interrupted 0", "returned"])
      const hedges = yield* Metric.value(Metric.tagged(Hedge.hedgesCounter, "operation", "hedge-win"))
      expect(hedges).toEqual(MetricState.counter(1))
    }))

  it.effect("never starts more than 1 + maxHedges attempts", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const never = () => Effect.never
      const fiber = yield* Effect.fork(
        scripted(log, [never, never, never, never]).pipe(Hedge.hedge({ delay: "10 millis", maxHedges: 2 }))
      )
      yield* TestClock.adjust("1 hour")
      expect(log).toEqual(["start 0", "start 1", "start 2"])
      yield* Fiber.interrupt(fiber)
      expect(log.filter((l) => l.startsWith("interrupted")).sort()).toEqual([
        "interrupted 0",
        "interrupted 1",
        "interrupted 2"
      ])
    }))

  it.effect("a retryable failure with nothing else running starts the next attempt at once", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const call = scripted<Flaky>(log, [
        (n) => Effect.fail(new Flaky({ attempt: n })),
        after(5, "second")
      ]).pipe(Hedge.hedge({ delay: "1 second" }))
      const fiber = yield* Effect.fork(call)
      yield* TestClock.adjust("5 millis")
      expect(yield* Fiber.join(fiber)).toBe("second")
      expect(log).toEqual(["start 0", "start 1"])
    }).pipe(Effect.provide(classifier)))

  it.effect("a non-retryable failure ends the call at once and interrupts the other attempts", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const call = scripted<Invalid>(log, [
        () => Effect.never,
        () => Effect.sleep("5 millis").pipe(Effect.zipRight(Effect.fail(new Invalid())))
      ]).pipe(Hedge.hedge({ delay: "10 millis" }))
      const fiber = yield* Effect.fork(call)
      yield* TestClock.adjust("15 millis")
      expect(yield* Effect.flip(Fiber.join(fiber))).toEqual(new Invalid())
      expect(log).toEqual(["start 0", "start 1", "interrupted 0"])
    }).pipe(Effect.provide(classifier)))

  it.effect("a defect beside a retryable failure ends the call; a later success does not hide it", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const call = scripted<Flaky>(log, [
        (n) => Effect.fail(new Flaky({ attempt: n })).pipe(Effect.ensuring(Effect.die("finalizer bug"))),
        after(5, "second")
      ]).pipe(Hedge.hedge({ delay: "1 second" }))
      const fiber = yield* Effect.fork(call)
      yield* TestClock.adjust("1 second")
      const exit = yield* Fiber.await(fiber)
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      expect(log).toEqual(["start 0"])
      // the attempt's own failure and defect, each once: a defect met before the call is decided is
      // not reported a second time as a loser's
      if (Exit.isFailure(exit)) {
        expect([...Cause.failures(exit.cause)]).toEqual([new Flaky({ attempt: 0 })])
        expect([...Cause.defects(exit.cause)]).toEqual(["finalizer bug"])
      }
    }).pipe(Effect.provide(classifier)))

  it.effect("when every attempt fails, the call fails with all their causes in order", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const fail = (ms: number) => (n: number) =>
        Effect.sleep(`${ms} millis`).pipe(Effect.zipRight(Effect.fail(new Flaky({ attempt: n }))))
      const call = scripted<Flaky>(log, [fail(30), fail(5), fail(5)]).pipe(
        Hedge.hedge({ delay: "10 millis", maxHedges: 2 })
      )
      const fiber = yield* Effect.fork(call)
      yield* TestClock.adjust("1 second")
      const exit = yield* Fiber.await(fiber)
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit)) {
        // attempt 1 (started at 10 ms) fails at 15, attempt 2 (started at 20) at 25, attempt 0 at 30
        expect([...Cause.failures(exit.cause)].map((e) => e.attempt)).toEqual([1, 2, 0])
        expect(log).toEqual(["start 0", "start 1", "start 2"])
        expect(Cause.failureOption(exit.cause)).toEqual(Option.some(new Flaky({ attempt: 1 })))
      }
    }).pipe(Effect.provide(classifier)))

  it("options that break a rule are rejected when the policy is built", () => {
    expect(() => Hedge.hedge({ delay: 0 })).toThrow(/delay must be a duration > 0/)
    expect(() => Hedge.hedge({ delay: "1 second", maxHedges: 0 })).toThrow(
      /maxHedges must be a whole number >= 1, got 0/
    )
  })

  it.effect("a loser whose finalizer dies after another attempt succeeded makes the call die with that defect", () =>
    Effect.gen(function*() {
      const bug = new Error("finalizer bug")
      const call = scripted<never>([], [
        () => Effect.never.pipe(Effect.ensuring(Effect.die(bug))),
        after(10, "hedge")
      ]).pipe(Hedge.hedge({ delay: "50 millis" }))
      const fiber = yield* Effect.fork(call)
      yield* TestClock.adjust("1 second")
      const exit = yield* Fiber.await(fiber)
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      if (Exit.isFailure(exit)) expect([...Cause.defects(exit.cause)]).toEqual([bug])
    }))

  it.effect("a failure whose _tag or code is a key of Object.prototype classifies normally", () =>
    Effect.gen(function*() {
      for (const key of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
        const odd = { _tag: key, code: key }
        // unclassified: retryable, so the hedge starts the next attempt, which succeeds
        const call = scripted<unknown>([], [() => Effect.fail(odd), after(0, "ok")]).pipe(
          Hedge.hedge({ delay: "50 millis" })
        )
        const fiber = yield* Effect.fork(call)
        yield* TestClock.adjust("1 second")
        expect(yield* Fiber.join(fiber)).toBe("ok")
      }
    }))

  it.effect("the classifier is read from the caller's context when an attempt fails", () =>
    Effect.gen(function*() {
      // Invalid is validation in the caller's classifier: the call ends at once, no hedge starts
      const log: Array<string> = []
      const call = scripted(log, [() => Effect.fail(new Invalid()), after(0, "ok")]).pipe(
        Hedge.hedge({ delay: "50 millis" })
      )
      const exit = yield* Effect.exit(call).pipe(Effect.provide(classifier))
      expect(exit).toEqual(Exit.fail(new Invalid()))
      expect(log).toEqual(["start 0"])
    }))

  it.effect("bulwark_hedge_started_total counts the extra attempts only: 0 when the first answers, 2 for two hedges", () =>
    Effect.gen(function*() {
      const counter = Metric.tagged(Hedge.hedgesCounter, "operation", "count-extra")
      const policy = Hedge.hedge({ delay: "10 millis", maxHedges: 2, name: "count-extra" })
      const quick = yield* Effect.fork(scripted([], [after(5, "first")]).pipe(policy))
      yield* TestClock.adjust("5 millis")
      expect(yield* Fiber.join(quick)).toBe("first")
      expect(yield* Metric.value(counter)).toEqual(MetricState.counter(0))
      const slow = yield* Effect.fork(scripted([], [after(100, "a"), after(100, "b"), after(5, "c")]).pipe(policy))
      yield* TestClock.adjust("25 millis")
      expect(yield* Fiber.join(slow)).toBe("c")
      expect(yield* Metric.value(counter)).toEqual(MetricState.counter(2))
    }))

  it.effect("the counter is exported as bulwark_hedge_started_total, a counter that only counts up, with its description", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(
        scripted([], [after(100, "slow"), after(5, "hedge")]).pipe(
          Hedge.hedge({ delay: "10 millis", name: "exported" })
        )
      )
      yield* TestClock.adjust("15 millis")
      expect(yield* Fiber.join(fiber)).toBe("hedge")
      const pair = [...Metric.unsafeSnapshot()].find((p) =>
        p.metricKey.tags.some((t) => t.key === "operation" && t.value === "exported")
      )
      expect(pair?.metricKey.name).toBe("bulwark_hedge_started_total")
      expect(pair?.metricKey.description).toEqual(Option.some("Extra attempts started by hedging"))
      expect(pair?.metricKey.keyType).toMatchObject({ incremental: true })
      expect(pair?.metricState).toEqual(MetricState.counter(1))
    }))

  it.effect("a retryable failure that starts the next attempt at once cancels the pending delay", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      // every delay waits until interrupted, and says so
      const clock = clockWith(() =>
        Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => log.push("delay cancelled"))))
      )
      const failNow = yield* Deferred.make<void>()
      const call = scripted<Flaky>(log, [
        (n) => Deferred.await(failNow).pipe(Effect.zipRight(Effect.fail(new Flaky({ attempt: n })))),
        () => Effect.never
      ]).pipe(Hedge.hedge({ delay: "1 second", maxHedges: 2 }), Effect.withClock(clock))
      const fiber = yield* Effect.fork(call)
      yield* settle
      expect(log).toEqual(["start 0"])
      yield* Deferred.succeed(failNow, undefined)
      yield* settle
      expect(log).toEqual(["start 0", "delay cancelled", "start 1"])
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(classifier)))

  it.effect("an attempt that fails retryably at the very moment the delay passes starts one next attempt, not two", () =>
    Effect.gen(function*() {
      // the first delay ends when `moment` is completed; later ones never end
      const moment = yield* Deferred.make<void>()
      let sleeps = 0
      const clock = clockWith(() => Effect.suspend(() => sleeps++ === 0 ? Deferred.await(moment) : Effect.never))
      const log: Array<string> = []
      const call = scripted<Flaky>(log, [
        (n) => Deferred.await(moment).pipe(Effect.zipRight(Effect.fail(new Flaky({ attempt: n })))),
        () => Effect.never,
        () => Effect.never
      ]).pipe(Hedge.hedge({ delay: "50 millis", maxHedges: 2 }), Effect.withClock(clock))
      const fiber = yield* Effect.fork(call)
      yield* settle
      // the first attempt's failure and the delay's end arrive together
      yield* Deferred.succeed(moment, undefined)
      yield* settle
      expect(log).toEqual(["start 0", "start 1"])
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(classifier)))
})
