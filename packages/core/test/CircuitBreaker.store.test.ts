/**
 * How a breaker takes what its store sends while its own transitions are on their way: a store
 * whose publish the test holds open and whose subscription the test feeds, so that every
 * interleaving is chosen, not raced.
 */
import { BreakerStore, CircuitBreaker } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import {
  Clock,
  Data,
  Deferred,
  Duration,
  Effect,
  Logger,
  LogLevel,
  Option,
  Queue,
  Ref,
  Stream,
  TestClock
} from "effect"

class Refused extends Data.TaggedError("Refused")<{}> {}
const refused = Effect.fail(new Refused())
const ok = Effect.succeed("ok")

const retryAfter = (breaker: CircuitBreaker.CircuitBreaker) =>
  Effect.flatMap(Effect.flip(breaker.protect(ok)), (e) =>
    e instanceof CircuitBreaker.CircuitOpenError
      ? Effect.succeed(Duration.toMillis(e.retryAfter))
      : Effect.dieMessage(`not a rejection: ${String(e)}`))

const settle = Effect.forEach(Array.from({ length: 20 }), () => Effect.yieldNow(), { discard: true })

/** A store whose publishes wait for `gate`, and whose subscription is `inbox`. */
const heldStore = Effect.gen(function*() {
  const gate = yield* Deferred.make<void>()
  const inbox = yield* Queue.unbounded<BreakerStore.Snapshot>()
  const published = yield* Ref.make<ReadonlyArray<BreakerStore.Snapshot>>([])
  const store: BreakerStore.BreakerStore = {
    load: () => Effect.succeed(Option.none()),
    publish: (snapshot) => Effect.zipRight(Ref.update(published, (all) => [...all, snapshot]), Deferred.await(gate)),
    subscribe: () => Effect.succeed(inbox)
  }
  return { gate, inbox, published, store }
})

const snapshotOf = (
  state: BreakerStore.BreakerState,
  since: number,
  openUntil: number | null,
  opens: number
): BreakerStore.Snapshot => ({ version: 1, breaker: "svc", state, since, openUntil, opens, origin: "@bulwark/redis" })

describe("CircuitBreaker with a store", () => {
  it.scoped("a store snapshot arriving while the breaker's own transition is unpublished does not move it back", () =>
    Effect.gen(function*() {
      const { gate, inbox, published, store } = yield* heldStore
      const breaker = yield* CircuitBreaker.make({
        name: "svc",
        policy: CircuitBreaker.consecutive(1),
        openDuration: "10 seconds"
      }).pipe(Effect.provideService(BreakerStore.BreakerStore, store))
      const start = yield* Clock.currentTimeMillis
      yield* TestClock.adjust("1 second")
      yield* Effect.exit(breaker.protect(refused))
      yield* settle
      // the open is being published (held); the store hands back an older write meanwhile
      expect((yield* Ref.get(published)).map((s) => s.state)).toEqual(["Open"])
      yield* Queue.offer(inbox, snapshotOf("Closed", start, null, 0))
      yield* settle
      expect(yield* breaker.state).toBe("Open")
      // once published, the hand-back of the open itself changes nothing
      yield* Deferred.succeed(gate, undefined)
      yield* settle
      const seen: Array<CircuitBreaker.Transition> = []
      yield* Effect.forkScoped(Stream.runForEach(breaker.changes, (t) => Effect.sync(() => seen.push(t))))
      yield* settle
      const own = (yield* Ref.get(published))[0]
      yield* Queue.offer(inbox, { ...own, origin: "@bulwark/redis" })
      yield* settle
      expect(yield* breaker.state).toBe("Open")
      expect(seen).toEqual([])
      expect(yield* retryAfter(breaker)).toBe(10_000)
      // and a newer snapshot is taken as before
      yield* Queue.offer(inbox, snapshotOf("Closed", yield* Clock.currentTimeMillis, null, 0))
      yield* settle
      expect(yield* breaker.state).toBe("Closed")
      expect(seen.map((t) => t.to)).toEqual(["Closed"])
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("an open snapshot reaching an open breaker of the same count extends it without a transition", () =>
    Effect.gen(function*() {
      const { gate, inbox, store } = yield* heldStore
      yield* Deferred.succeed(gate, undefined)
      const breaker = yield* CircuitBreaker.make({
        name: "svc",
        policy: CircuitBreaker.consecutive(1),
        openDuration: "200 millis"
      }).pipe(Effect.provideService(BreakerStore.BreakerStore, store))
      const seen: Array<CircuitBreaker.Transition> = []
      yield* Effect.forkScoped(Stream.runForEach(breaker.changes, (t) => Effect.sync(() => seen.push(t))))
      yield* settle
      const t0 = yield* Clock.currentTimeMillis
      // another process opened for 5 s: this breaker stays open at most its own 200 ms
      yield* Queue.offer(inbox, snapshotOf("Open", t0, t0 + 5000, 1))
      yield* settle
      expect(yield* retryAfter(breaker)).toBe(200)
      for (let i = 1; i <= 10; i++) {
        yield* TestClock.adjust("150 millis")
        const now = yield* Clock.currentTimeMillis
        yield* Queue.offer(inbox, snapshotOf("Open", now, t0 + 5000, 1))
        yield* settle
        expect(yield* retryAfter(breaker)).toBe(200)
      }
      expect(seen.map((t) => t.to)).toEqual(["Open"])
      // an earlier end does not shorten it
      const now = yield* Clock.currentTimeMillis
      yield* Queue.offer(inbox, snapshotOf("Open", now, now + 50, 1))
      yield* settle
      expect(yield* retryAfter(breaker)).toBe(200)
      // a later open (a higher count) is a transition again
      yield* Queue.offer(inbox, snapshotOf("Open", now, now + 100, 2))
      yield* settle
      expect(yield* retryAfter(breaker)).toBe(100)
      expect(seen.map((t) => t.to)).toEqual(["Open", "Open"])
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("two breakers on the in-memory store that change state at once end on the store's last snapshot", () =>
    Effect.gen(function*() {
      const store = yield* BreakerStore.makeMemory
      const make = CircuitBreaker.make({ name: "svc", policy: CircuitBreaker.consecutive(1), openDuration: "1 minute" })
        .pipe(Effect.provideService(BreakerStore.BreakerStore, store))
      const a = yield* make
      const b = yield* make
      yield* TestClock.adjust("1 second")
      yield* Effect.exit(a.protect(refused))
      yield* b.isolate
      yield* settle
      const last = yield* store.load("svc")
      expect(Option.map(last, (s) => s.state)).toEqual(Option.some("Isolated"))
      expect(yield* a.state).toBe("Isolated")
      expect(yield* b.state).toBe("Isolated")
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))
})
