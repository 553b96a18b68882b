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

/** A breaker "svc" that one failure opens, on a held store whose gate is already open. */
const breakerOnStore = (openDuration: Duration.DurationInput) =>
  Effect.gen(function*() {
    const { gate, inbox, store } = yield* heldStore
    yield* Deferred.succeed(gate, undefined)
    const breaker = yield* CircuitBreaker.make({ name: "svc", policy: CircuitBreaker.consecutive(1), openDuration })
      .pipe(Effect.provideService(BreakerStore.BreakerStore, store))
    return { breaker, inbox }
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
      const { breaker, inbox } = yield* breakerOnStore("200 millis")
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

  it.scoped("an open of the same count with an earlier end and no lease does not shorten the open", () =>
    Effect.gen(function*() {
      const { breaker, inbox } = yield* breakerOnStore("200 millis")
      yield* settle
      const t0 = yield* Clock.currentTimeMillis
      yield* Queue.offer(inbox, snapshotOf("Open", t0, t0 + 5000, 1))
      yield* settle
      yield* TestClock.adjust("100 millis")
      yield* Queue.offer(inbox, snapshotOf("Open", t0 + 100, t0 + 150, 1))
      yield* settle
      // a millisecond later: a rejection of its own, not the one made at the open
      yield* TestClock.adjust("1 millis")
      expect(yield* retryAfter(breaker)).toBe(99)
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

  it.scoped("a delivery that the breaker's own publish overtook is not taken after it (store revisions)", () =>
    Effect.gen(function*() {
      // a store that orders its deliveries: the test chooses each revision
      const inbox = yield* Queue.unbounded<BreakerStore.Snapshot>()
      const revisions: Array<number> = [6]
      const store: BreakerStore.BreakerStore = {
        load: () => Effect.succeed(Option.none()),
        publish: () => Effect.sync(() => revisions.shift()),
        subscribe: () => Effect.succeed(inbox)
      }
      const breaker = yield* CircuitBreaker.make({
        name: "svc",
        policy: CircuitBreaker.consecutive(1),
        openDuration: "10 seconds"
      }).pipe(Effect.provideService(BreakerStore.BreakerStore, store))
      const start = yield* Clock.currentTimeMillis
      yield* TestClock.adjust("1 second")
      // the store delivered an older snapshot at revision 5; before the breaker's inbox took it,
      // the breaker opened and its publish completed at revision 6
      yield* Effect.exit(breaker.protect(refused))
      yield* settle
      expect(revisions).toEqual([])
      yield* Queue.offer(inbox, { ...snapshotOf("Closed", start, null, 0), revision: 5 })
      yield* settle
      expect(yield* breaker.state).toBe("Open")
      expect(yield* retryAfter(breaker)).toBe(10_000)
      // what the store ordered after the publish is taken
      const now = yield* Clock.currentTimeMillis
      yield* Queue.offer(inbox, { ...snapshotOf("Closed", now, null, 0), revision: 7 })
      yield* settle
      expect(yield* breaker.state).toBe("Closed")
      // and nothing at or below the highest revision taken, even when it reaches the breaker later
      yield* Queue.offer(inbox, { ...snapshotOf("Isolated", now, null, 0), revision: 7 })
      yield* settle
      expect(yield* breaker.state).toBe("Closed")
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("a snapshot ordered after the breaker's own publish, arriving while it is on its way, is taken once it lands", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const inbox = yield* Queue.unbounded<BreakerStore.Snapshot>()
      const store: BreakerStore.BreakerStore = {
        load: () => Effect.succeed(Option.none()),
        publish: () => Effect.as(Deferred.await(gate), 6),
        subscribe: () => Effect.succeed(inbox)
      }
      const breaker = yield* CircuitBreaker.make({
        name: "svc",
        policy: CircuitBreaker.consecutive(1),
        openDuration: "10 seconds"
      }).pipe(Effect.provideService(BreakerStore.BreakerStore, store))
      yield* TestClock.adjust("1 second")
      yield* Effect.exit(breaker.protect(refused))
      yield* settle
      // while the open is on its way: one delivery the store will order before it, one after
      const now = yield* Clock.currentTimeMillis
      yield* Queue.offer(inbox, { ...snapshotOf("Isolated", now, null, 0), revision: 4 })
      yield* Queue.offer(inbox, { ...snapshotOf("Closed", now, null, 0), revision: 8 })
      yield* settle
      expect(yield* breaker.state).toBe("Open")
      yield* Deferred.succeed(gate, undefined)
      yield* settle
      expect(yield* breaker.state).toBe("Closed")
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("two breakers on the in-memory store: a delivery overtaken by the receiver's own publish is not taken", () =>
    Effect.gen(function*() {
      const memory = yield* BreakerStore.makeMemory
      // b's deliveries pass through the test's hands, so that one can reach b late
      const toB = yield* Queue.unbounded<BreakerStore.Snapshot>()
      const make = CircuitBreaker.make({ name: "svc", policy: CircuitBreaker.consecutive(1), openDuration: "1 minute" })
      const a = yield* make.pipe(Effect.provideService(BreakerStore.BreakerStore, memory))
      const fromMemory = yield* memory.subscribe("svc")
      const b = yield* make.pipe(
        Effect.provideService(BreakerStore.BreakerStore, { ...memory, subscribe: () => Effect.succeed(toB) })
      )
      yield* TestClock.adjust("1 second")
      // a opens; the store delivers it to b, and b's inbox has not taken it yet
      yield* Effect.exit(a.protect(refused))
      yield* settle
      const aOpen = yield* Queue.take(fromMemory)
      expect(aOpen.state).toBe("Open")
      // b isolates, and its publish lands on top of a's open
      yield* b.isolate
      yield* settle
      expect(Option.map(yield* memory.load("svc"), (s) => s.state)).toEqual(Option.some("Isolated"))
      // now b's inbox takes a's open: older than b's own publish
      yield* Queue.offer(toB, aOpen)
      yield* settle
      expect(yield* b.state).toBe("Isolated")
      expect(yield* a.state).toBe("Isolated")
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("an open held by a lease stays open until the lease's end, past the breaker's own open duration", () =>
    Effect.gen(function*() {
      const { breaker, inbox } = yield* breakerOnStore("30 millis")
      const seen: Array<CircuitBreaker.Transition> = []
      yield* Effect.forkScoped(Stream.runForEach(breaker.changes, (t) => Effect.sync(() => seen.push(t))))
      yield* settle
      // not at time 0: the lease's end is a time, the open lasts until then from now
      yield* TestClock.adjust("1 second")
      const t0 = yield* Clock.currentTimeMillis
      // another process opened for 5 s; this one is held while the fleet's prober works
      const open = snapshotOf("Open", t0, t0 + 5000, 1)
      yield* Queue.offer(inbox, open)
      yield* Queue.offer(inbox, { ...open, openUntil: t0 + 6000, leaseUntil: t0 + 6000 })
      yield* settle
      expect(yield* retryAfter(breaker)).toBe(6000)
      yield* TestClock.adjust("5990 millis")
      expect(yield* breaker.state).toBe("Open")
      yield* TestClock.adjust("10 millis")
      expect(yield* breaker.state).toBe("HalfOpen")
      yield* settle
      expect(seen.map((t) => t.to)).toEqual(["Open", "HalfOpen"])
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("a released lease leaves the breaker its own open duration", () =>
    Effect.gen(function*() {
      const { breaker, inbox } = yield* breakerOnStore("30 millis")
      yield* settle
      // not at time 0: a first open from the store that carries a lease lasts until its end
      yield* TestClock.adjust("1 second")
      const t0 = yield* Clock.currentTimeMillis
      const open = snapshotOf("Open", t0, t0 + 5000, 1)
      yield* Queue.offer(inbox, { ...open, openUntil: t0 + 6000, leaseUntil: t0 + 6000 })
      yield* settle
      expect(yield* retryAfter(breaker)).toBe(6000)
      // this process won a probe slot after all: it probes at its own time
      yield* TestClock.adjust("1 millis")
      yield* Queue.offer(inbox, { ...open, leaseUntil: t0 + 1 })
      yield* settle
      expect(yield* retryAfter(breaker)).toBe(30)
      yield* TestClock.adjust("30 millis")
      expect(yield* breaker.state).toBe("HalfOpen")
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))
})
