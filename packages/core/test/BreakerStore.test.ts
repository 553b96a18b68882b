/**
 * The in-memory breaker store on its own (the breakers that use it are tested in
 * CircuitBreaker*.test.ts): what `load`, `publish` and `subscribe` promise, and the snapshot's
 * Schema and JSON form.
 */
import { BreakerStore } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Option, Queue, Schema } from "effect"

const snapshotOf = (breaker: string, state: BreakerStore.BreakerState, origin = "a"): BreakerStore.Snapshot => ({
  version: 1,
  breaker,
  state,
  since: 1_000,
  openUntil: state === "Open" ? 61_000 : null,
  opens: state === "Open" ? 1 : 0,
  origin
})

const settle = Effect.forEach(Array.from({ length: 10 }), () => Effect.yieldNow(), { discard: true })

describe("BreakerStore.makeMemory", () => {
  it.effect("publish numbers its snapshots 1, 2, 3 across breakers; load gives a breaker's last one with its number", () =>
    Effect.gen(function*() {
      const store = yield* BreakerStore.makeMemory
      expect(Option.isNone(yield* store.load("payments"))).toBe(true)
      const revisions = [
        yield* store.publish(snapshotOf("payments", "Open")),
        yield* store.publish(snapshotOf("search", "Open")),
        yield* store.publish(snapshotOf("payments", "Closed"))
      ]
      expect(revisions).toEqual([1, 2, 3])
      expect(yield* store.load("payments")).toEqual(Option.some({ ...snapshotOf("payments", "Closed"), revision: 3 }))
      expect(yield* store.load("search")).toEqual(Option.some({ ...snapshotOf("search", "Open"), revision: 2 }))
      expect(Option.isNone(yield* store.load("inventory"))).toBe(true)
    }))

  it.scoped("a subscriber gets its own breaker's snapshots, numbered, and none of another breaker's", () =>
    Effect.gen(function*() {
      const store = yield* BreakerStore.makeMemory
      const payments = yield* store.subscribe("payments")
      yield* store.publish(snapshotOf("search", "Open"))
      yield* settle
      yield* store.publish(snapshotOf("payments", "Open"))
      yield* settle
      yield* store.publish(snapshotOf("search", "Closed"))
      yield* settle
      yield* store.publish(snapshotOf("payments", "HalfOpen"))
      yield* settle
      const received = Chunk.toReadonlyArray(yield* Queue.takeAll(payments))
      expect(received).toEqual([
        { ...snapshotOf("payments", "Open"), revision: 2 },
        { ...snapshotOf("payments", "HalfOpen"), revision: 4 }
      ])
    }))

  it.scoped("of snapshots published at once, a subscriber gets only the last: one replaced meanwhile is not passed on", () =>
    Effect.gen(function*() {
      const store = yield* BreakerStore.makeMemory
      const payments = yield* store.subscribe("payments")
      // two processes' breakers publish before the subscriber runs: both end on the later one
      yield* store.publish(snapshotOf("payments", "Open", "a"))
      yield* store.publish(snapshotOf("payments", "Closed", "b"))
      yield* settle
      const received = Chunk.toReadonlyArray(yield* Queue.takeAll(payments))
      expect(received).toEqual([{ ...snapshotOf("payments", "Closed", "b"), revision: 2 }])
    }))

  it.effect("the service's tag is @bulwark/core/BreakerStore, and layerMemory provides a working store", () =>
    Effect.gen(function*() {
      expect(BreakerStore.BreakerStore.key).toBe("@bulwark/core/BreakerStore")
      const store = yield* BreakerStore.BreakerStore
      expect(yield* store.publish(snapshotOf("payments", "Open"))).toBe(1)
      expect(Option.map(yield* store.load("payments"), (s) => s.state)).toEqual(Option.some("Open"))
    }).pipe(Effect.provide(BreakerStore.layerMemory)))
})

describe("BreakerStore.Snapshot", () => {
  it.effect("every breaker state goes through JSON and back", () =>
    Effect.gen(function*() {
      const states = ["Closed", "Open", "HalfOpen", "Isolated", "Disabled"] as const
      for (const state of states) {
        const json = JSON.parse(JSON.stringify(BreakerStore.encodeSnapshot(snapshotOf("svc", state))))
        expect(yield* BreakerStore.decodeSnapshot(json)).toEqual(snapshotOf("svc", state))
      }
      expect(Schema.is(BreakerStore.BreakerState)("")).toBe(false)
    }))

  it.effect("a snapshot that does not decode says it is not a BreakerSnapshot, and which field is wrong", () =>
    Effect.gen(function*() {
      const json = BreakerStore.encodeSnapshot(snapshotOf("svc", "Open"))
      const error = yield* Effect.flip(BreakerStore.decodeSnapshot({ ...json, state: "Ajar" }))
      expect(error.message.split("\n")[0]).toBe("BreakerSnapshot")
      expect(error.message).toMatch(/\["state"\]/)
      expect(error.message).toMatch(/actual "Ajar"/)
    }))
})
