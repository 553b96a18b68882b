/**
 * What a breaker sends to its store and takes from it: imports are published and store
 * deliveries are not sent back, closing publishes only what the store has not had, a snapshot
 * that changes nothing is no transition, and an open-duration schedule that ends keeps its last
 * delay when a snapshot moves it past its end.
 */
import { BreakerStore, CircuitBreaker } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import {
  Chunk,
  Data,
  Deferred,
  Duration,
  Effect,
  Fiber,
  Logger,
  LogLevel,
  Option,
  Queue,
  Schedule,
  Stream,
  TestClock
} from "effect"

class Refused extends Data.TaggedError("Refused")<{}> {}
const refused = Effect.fail(new Refused())
const ok = Effect.succeed("ok")

const settle = Effect.forEach(Array.from({ length: 20 }), () => Effect.yieldNow(), { discard: true })

const retryAfter = (breaker: CircuitBreaker.CircuitBreaker) =>
  Effect.flatMap(Effect.flip(breaker.protect(ok)), (e) =>
    e instanceof CircuitBreaker.CircuitOpenError
      ? Effect.succeed(Duration.toMillis(e.retryAfter))
      : Effect.dieMessage(`not a rejection: ${String(e)}`))

/** A store that records what it is given and delivers what the test offers. */
const recordingStore = Effect.gen(function*() {
  const inbox = yield* Queue.unbounded<BreakerStore.Snapshot>()
  const published: Array<BreakerStore.Snapshot> = []
  const store: BreakerStore.BreakerStore = {
    load: () => Effect.succeed(Option.none()),
    publish: (snapshot) => Effect.sync(() => void published.push(snapshot)),
    subscribe: () => Effect.succeed(inbox)
  }
  return { inbox, published, store }
})

const snapshotOf = (
  state: BreakerStore.BreakerState,
  since: number,
  openUntil: number | null,
  opens: number
): BreakerStore.Snapshot => ({ version: 1, breaker: "shared", state, since, openUntil, opens, origin: "elsewhere" })

describe("CircuitBreaker sharing its state", () => {
  it.scoped("an imported state is published to the store; a state taken from the store is not sent back", () =>
    Effect.gen(function*() {
      const { inbox, published, store } = yield* recordingStore
      const breaker = yield* CircuitBreaker.make({ name: "shared", policy: CircuitBreaker.consecutive(1) }).pipe(
        Effect.provideService(BreakerStore.BreakerStore, store)
      )
      yield* breaker.importState(snapshotOf("Isolated", 0, null, 0))
      yield* settle
      expect(published.map((s) => s.state)).toEqual(["Isolated"])
      yield* Queue.offer(inbox, { ...snapshotOf("Closed", 0, null, 0), revision: 1 })
      yield* settle
      expect(yield* breaker.state).toBe("Closed")
      expect(published.map((s) => s.state)).toEqual(["Isolated"])
      // nor is the state loaded when the breaker is made
      const loading: BreakerStore.BreakerStore = {
        ...store,
        load: () => Effect.succeed(Option.some(snapshotOf("Isolated", 0, null, 0)))
      }
      const loaded = yield* CircuitBreaker.make({ name: "shared" }).pipe(
        Effect.provideService(BreakerStore.BreakerStore, loading)
      )
      yield* settle
      expect(yield* loaded.state).toBe("Isolated")
      expect(published.map((s) => s.state)).toEqual(["Isolated"])
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("an import of the state the breaker is in already changes nothing", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "same-state", policy: CircuitBreaker.consecutive(3) })
      const seen = yield* breaker.changes.pipe(Stream.take(1), Stream.runCollect, Effect.fork)
      yield* settle
      yield* Effect.exit(breaker.protect(refused))
      yield* breaker.importState({ ...snapshotOf("Closed", 0, null, 0), breaker: "same-state" })
      expect(yield* breaker.metrics).toMatchObject({ state: "Closed", consecutiveFailures: 1 })
      yield* breaker.isolate
      expect(Chunk.toArray(yield* Fiber.join(seen)).map((t) => [t.from, t.to])).toEqual([["Closed", "Isolated"]])
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("a state without an open taken from the store does not step the open-duration schedule", () =>
    Effect.gen(function*() {
      const { inbox, store } = yield* recordingStore
      let steps = 0
      const breaker = yield* CircuitBreaker.make({
        name: "shared",
        policy: CircuitBreaker.consecutive(1),
        openDuration: Schedule.spaced("1 second").pipe(Schedule.tapOutput(() => Effect.sync(() => steps++)))
      }).pipe(Effect.provideService(BreakerStore.BreakerStore, store))
      yield* Effect.exit(breaker.protect(refused))
      yield* settle
      const before = steps
      yield* Queue.offer(inbox, { ...snapshotOf("Closed", 0, null, 0), revision: 1 })
      yield* settle
      expect(yield* breaker.state).toBe("Closed")
      expect(steps).toBe(before)
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.effect("closing publishes only a snapshot the store has not had", () =>
    Effect.gen(function*() {
      const quiet = yield* recordingStore
      yield* CircuitBreaker.make({ name: "shared" }).pipe(
        Effect.provideService(BreakerStore.BreakerStore, quiet.store),
        Effect.zipRight(settle),
        Effect.scoped
      )
      expect(quiet.published).toEqual([])
      const busy = yield* recordingStore
      yield* CircuitBreaker.make({ name: "shared", policy: CircuitBreaker.consecutive(1) }).pipe(
        Effect.tap((breaker) => Effect.exit(breaker.protect(refused))),
        Effect.zipRight(settle),
        Effect.provideService(BreakerStore.BreakerStore, busy.store),
        Effect.scoped
      )
      expect(busy.published.map((s) => s.state)).toEqual(["Open"])
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.effect("closing waits for the last publish when no earlier one is still on its way", () =>
    Effect.gen(function*() {
      const recording = yield* recordingStore
      // a subscription that has ended: closing goes straight to the publisher
      const store: BreakerStore.BreakerStore = {
        ...recording.store,
        subscribe: () => Effect.tap(Queue.unbounded<BreakerStore.Snapshot>(), Queue.shutdown)
      }
      const published = recording.published
      yield* CircuitBreaker.make({ name: "shared", policy: CircuitBreaker.consecutive(1) }).pipe(
        Effect.tap((breaker) => Effect.exit(breaker.protect(refused))),
        // the open is published and answered; the close after it is still waiting to be sent
        Effect.tap(() => settle),
        Effect.tap((breaker) => breaker.reset),
        Effect.provideService(BreakerStore.BreakerStore, store),
        Effect.scoped
      )
      expect(published.map((s) => s.state)).toEqual(["Open", "Closed"])
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.effect("closing does not wait for the last publish while an earlier one is still on its way", () =>
    Effect.gen(function*() {
      const published: Array<BreakerStore.BreakerState> = []
      // every publish takes a second to be answered
      const slow: BreakerStore.BreakerStore = {
        load: () => Effect.succeed(Option.none()),
        publish: (snapshot) =>
          Effect.zipRight(Effect.sleep("1 second"), Effect.sync(() => void published.push(snapshot.state))),
        subscribe: () => Queue.unbounded<BreakerStore.Snapshot>()
      }
      const closing = yield* CircuitBreaker.make({ name: "shared", policy: CircuitBreaker.consecutive(1) }).pipe(
        Effect.tap((breaker) => Effect.exit(breaker.protect(refused))),
        // the open is on its way to the store; the close is offered behind it
        Effect.tap(() => settle),
        Effect.tap((breaker) => breaker.reset),
        Effect.provideService(BreakerStore.BreakerStore, slow),
        Effect.scoped,
        Effect.forkDaemon
      )
      for (let i = 0; i < 3; i++) yield* settle
      expect(Option.isSome(yield* Fiber.poll(closing))).toBe(true)
      // the close was sent without waiting for its answer
      yield* TestClock.adjust("1 second")
      yield* settle
      expect(published).toEqual(["Closed"])
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("from the store: the open the breaker is in already is a no-op; a half-open or a re-open of the same count is taken", () =>
    Effect.gen(function*() {
      const { inbox, store } = yield* recordingStore
      const breaker = yield* CircuitBreaker.make({
        name: "shared",
        policy: CircuitBreaker.consecutive(1),
        openDuration: "10 seconds"
      }).pipe(Effect.provideService(BreakerStore.BreakerStore, store))
      yield* TestClock.adjust("1 second")
      yield* Effect.exit(breaker.protect(refused))
      yield* settle
      yield* TestClock.adjust("5 seconds")
      // the same open (same since), told with a later end: nothing changes
      yield* Queue.offer(inbox, snapshotOf("Open", 1_000, 30_000, 1))
      yield* settle
      expect(yield* retryAfter(breaker)).toBe(5_000)
      // another process went half-open on the same open
      yield* Queue.offer(inbox, snapshotOf("HalfOpen", 6_000, null, 1))
      yield* settle
      expect(yield* breaker.state).toBe("HalfOpen")
      // and opened again, with the same count
      yield* Queue.offer(inbox, snapshotOf("Open", 6_000, 8_000, 1))
      yield* settle
      expect(yield* retryAfter(breaker)).toBe(2_000)
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("an import takes an open of the same since and count, and ignores a lease", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "shared",
        policy: CircuitBreaker.consecutive(1),
        openDuration: "10 seconds"
      })
      yield* TestClock.adjust("1 second")
      yield* Effect.exit(breaker.protect(refused))
      const own = yield* breaker.exportState
      yield* breaker.importState({ ...own, openUntil: 3_000 })
      expect(yield* retryAfter(breaker)).toBe(2_000)
      // a lease is the store's word, not an import's: the open lasts at most the breaker's own duration
      yield* breaker.importState({ ...own, openUntil: 100_000, leaseUntil: 100_000 })
      expect(yield* retryAfter(breaker)).toBe(10_000)
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("store revisions: the newest delivery waits for the breaker's own publish, and a stale one is dropped", () =>
    Effect.gen(function*() {
      /** A store whose publish waits for `gate` and then reports `written`. */
      const held = (written: number) =>
        Effect.gen(function*() {
          const gate = yield* Deferred.make<void>()
          const inbox = yield* Queue.unbounded<BreakerStore.Snapshot>()
          const store: BreakerStore.BreakerStore = {
            load: () => Effect.succeed(Option.none()),
            publish: () => Effect.as(Deferred.await(gate), written),
            subscribe: () => Effect.succeed(inbox)
          }
          const breaker = yield* CircuitBreaker.make({ name: "shared", policy: CircuitBreaker.consecutive(1) }).pipe(
            Effect.provideService(BreakerStore.BreakerStore, store)
          )
          yield* Effect.exit(breaker.protect(refused))
          yield* settle
          return { breaker, gate, inbox }
        })
      // newest first, then an older one: the newest is the one taken once the publish lands
      const a = yield* held(6)
      yield* Queue.offer(a.inbox, { ...snapshotOf("Closed", 0, null, 0), revision: 8 })
      yield* Queue.offer(a.inbox, { ...snapshotOf("Isolated", 0, null, 0), revision: 7 })
      yield* settle
      yield* Deferred.succeed(a.gate, undefined)
      yield* settle
      expect(yield* a.breaker.state).toBe("Closed")
      // a store that counts from 0: revision 1 comes after the publish that took 0
      const b = yield* held(0)
      yield* Queue.offer(b.inbox, { ...snapshotOf("Closed", 0, null, 0), revision: 1 })
      yield* settle
      yield* Deferred.succeed(b.gate, undefined)
      yield* settle
      expect(yield* b.breaker.state).toBe("Closed")
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("a store whose publish reports no revision: a delivery older than one taken is still dropped", () =>
    Effect.gen(function*() {
      const { inbox, store } = yield* recordingStore
      const breaker = yield* CircuitBreaker.make({ name: "shared", policy: CircuitBreaker.consecutive(1) }).pipe(
        Effect.provideService(BreakerStore.BreakerStore, store)
      )
      yield* Queue.offer(inbox, { ...snapshotOf("Isolated", 0, null, 0), revision: 5 })
      yield* settle
      yield* breaker.release
      yield* settle
      yield* Queue.offer(inbox, { ...snapshotOf("Disabled", 0, null, 0), revision: 3 })
      yield* settle
      expect(yield* breaker.state).toBe("Closed")
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("a snapshot past the end of a finite open-duration schedule keeps its last delay", () =>
    Effect.gen(function*() {
      const options: CircuitBreaker.Options = {
        name: "finite",
        policy: CircuitBreaker.consecutive(1),
        openDuration: Schedule.fromDelays(Duration.seconds(1), Duration.seconds(2)),
        halfOpenProbes: 1,
        successThreshold: 1
      }
      for (const opens of [2, 5]) {
        const breaker = yield* CircuitBreaker.make(options)
        yield* breaker.importState({ ...snapshotOf("Open", 0, null, opens), breaker: "finite" })
        expect(yield* retryAfter(breaker)).toBe(2000)
        yield* TestClock.adjust("2 seconds")
        yield* Effect.exit(breaker.protect(refused))
        expect({ opens, retryAfter: yield* retryAfter(breaker) }).toEqual({ opens, retryAfter: 2000 })
      }
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))
})
