/**
 * The shared store's per-breaker rules, one case at a time: what a message, a write's reply, a
 * resync read, a load and a hold do to one process's entry, with the exact delivery, write
 * outcome or hand-back each one gives the shell.
 */
import type { BreakerStore } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import * as S from "../src/internal/breakerStoreState.js"
import { OTHER, OWN, snap, STORE } from "./breakerSnapshots.js"

type Snapshot = BreakerStore.Snapshot

const written = (version: number): S.Reply => ({ _tag: "Written", version })
const conflict = (current: number): S.Reply => ({ _tag: "Conflict", current })
const unreachable: S.Reply = { _tag: "Unreachable" }
const nothingBack: S.Next = { _tag: "Done", handBack: undefined }
const foreignDelivery = (snapshot: Snapshot): S.Delivery => ({
  _tag: "Deliver",
  snapshot,
  foreign: true,
  claim: snapshot.state === "Open"
})

describe("RedisBreakerStore rules", () => {
  describe("messages", () => {
    it("a message this store wrote goes to the local breakers as its own: not received, no probe claim", () => {
      const e = S.make()
      const own = snap("Open", 1, OWN)
      expect(S.onMessage(e, 1, own, true)).toEqual({ _tag: "Deliver", snapshot: own, foreign: false, claim: false })
      expect(e.version).toBe(1)
      expect(S.onMessage(e, 1, own, true)).toEqual({ _tag: "Ignore" })
    })

    it("a foreign open is received with a probe claim; a foreign close or isolation without one", () => {
      const e = S.make()
      const open = snap("Open", 1, OTHER)
      const closed = snap("Closed", 2, OTHER)
      const isolated = snap("Isolated", 3, OTHER)
      expect(S.onMessage(e, 1, open, false)).toEqual({ _tag: "Deliver", snapshot: open, foreign: true, claim: true })
      expect(S.onMessage(e, 2, closed, false)).toEqual({
        _tag: "Deliver",
        snapshot: closed,
        foreign: true,
        claim: false
      })
      expect(S.onMessage(e, 3, isolated, false)).toEqual({
        _tag: "Deliver",
        snapshot: isolated,
        foreign: true,
        claim: false
      })
      expect(e.version).toBe(3)
    })

    it("a foreign half-open is not delivered, but its version counts as seen", () => {
      const e = S.make()
      expect(S.onMessage(e, 4, snap("HalfOpen", 1, OTHER), false)).toEqual({ _tag: "Ignore" })
      expect(e.version).toBe(4)
      expect(S.onMessage(e, 4, snap("Open", 2, OTHER), false)).toEqual({ _tag: "Ignore" })
    })
  })

  describe("writes", () => {
    it("a write raced by nothing hands nothing back, and the next write expects the version it landed at", () => {
      const e = S.make()
      const own = snap("Open", 1, OWN)
      const w = S.beginWrite(e, own)
      expect(w).toEqual({ snapshot: own, expected: 0, rebased: false, foreignBefore: 0 })
      expect(S.onReply(e, w, written(1), STORE)).toEqual(nothingBack)
      expect(e.version).toBe(1)
      expect(S.beginWrite(e, snap("Closed", 2, OWN)).expected).toBe(1)
    })

    it("a write after a foreign snapshot reached the breakers hands its outcome back as the store's; the write after it, with nothing foreign since, does not", () => {
      const e = S.make()
      S.onMessage(e, 1, snap("Open", 1, OTHER), false)
      const own = snap("Closed", 2, OWN)
      const w = S.beginWrite(e, own)
      expect(w).toEqual({ snapshot: own, expected: 1, rebased: false, foreignBefore: 1 })
      const next = S.onReply(e, w, written(2), STORE)
      expect(next).toEqual({ _tag: "Done", handBack: { snapshot: { ...own, origin: STORE }, version: 2 } })
      expect(S.handBackNow(e, (next as { handBack: S.HandBack }).handBack)).toBe(true)
      const w2 = S.beginWrite(e, snap("Open", 3, OWN))
      expect(w2).toEqual({ snapshot: snap("Open", 3, OWN), expected: 2, rebased: false, foreignBefore: 1 })
      expect(S.onReply(e, w2, written(3), STORE)).toEqual(nothingBack)
    })

    it("a hand-back is dropped when a newer foreign snapshot reached the breakers before it was due", () => {
      const e = S.make()
      S.onMessage(e, 1, snap("Open", 1, OTHER), false)
      const own = snap("Closed", 2, OWN)
      const next = S.onReply(e, S.beginWrite(e, own), written(2), STORE)
      expect(next).toEqual({ _tag: "Done", handBack: { snapshot: { ...own, origin: STORE }, version: 2 } })
      // another process's open at 3 arrives within the hand-back's delay: it is newer
      S.onMessage(e, 3, snap("Open", 3, OTHER), false)
      expect(S.handBackNow(e, (next as { handBack: S.HandBack }).handBack)).toBe(false)
    })

    it("a write that conflicts is retried on top of the current version and hands its outcome back", () => {
      const e = S.make()
      const own = snap("Open", 1, OWN)
      const w = S.beginWrite(e, own)
      expect(S.onReply(e, w, conflict(1), STORE)).toEqual({ _tag: "Retry" })
      expect(w).toEqual({ snapshot: own, expected: 1, rebased: true, foreignBefore: 0 })
      expect(S.onReply(e, w, written(2), STORE)).toEqual({
        _tag: "Done",
        handBack: { snapshot: { ...own, origin: STORE }, version: 2 }
      })
      expect(e.version).toBe(2)
    })

    it("a newer transition of the breaker takes over a hand-back still due: the hand-back is dropped and the new write hands its own outcome back", () => {
      const e = S.make()
      const w = S.beginWrite(e, snap("Open", 1, OWN))
      // a foreign close lands at 2 and its message arrives before the reply of the write that landed at 1
      const foreign = snap("Closed", 2, OTHER)
      expect(S.onMessage(e, 2, foreign, false)).toEqual(foreignDelivery(foreign))
      const next = S.onReply(e, w, written(1), STORE)
      const back = { snapshot: foreign, version: 2 }
      expect(next).toEqual({ _tag: "Done", handBack: back })
      expect(e.version).toBe(2)
      const own = snap("Isolated", 3, OWN)
      const w2 = S.beginWrite(e, own)
      expect(w2).toEqual({ snapshot: own, expected: 2, rebased: true, foreignBefore: 2 })
      expect(S.handBackNow(e, back)).toBe(false)
      expect(S.onReply(e, w2, written(3), STORE)).toEqual({
        _tag: "Done",
        handBack: { snapshot: { ...own, origin: STORE }, version: 3 }
      })
    })

    it("a foreign snapshot that arrived during a write that then went unanswered is handed back, unless the write was rebased on it", () => {
      const foreign = snap("Open", 2, OTHER)
      // not rebased: the breakers ignored the foreign open while their write was on its way
      const e1 = S.make()
      const w1 = S.beginWrite(e1, snap("Closed", 1, OWN))
      S.onMessage(e1, 1, foreign, false)
      expect(S.onReply(e1, w1, unreachable, STORE)).toEqual({
        _tag: "Done",
        handBack: { snapshot: foreign, version: 1 }
      })
      // rebased on it: the pending transition goes on top of it, so it is not handed back
      const e2 = S.make()
      const own = snap("Closed", 1, OWN)
      const w2 = S.beginWrite(e2, own)
      S.onMessage(e2, 1, foreign, false)
      expect(S.onReply(e2, w2, conflict(1), STORE)).toEqual({ _tag: "Retry" })
      expect(S.onReply(e2, w2, unreachable, STORE)).toEqual(nothingBack)
      expect(e2.pending).toEqual(own)
      // the same when the retry is only a quorum vote: nothing written, nothing pending
      const e3 = S.make()
      const w3 = S.beginWrite(e3, own)
      S.onMessage(e3, 1, foreign, false)
      expect(S.onReply(e3, w3, conflict(1), STORE)).toEqual({ _tag: "Retry" })
      expect(S.onReply(e3, w3, { _tag: "Vote" }, STORE)).toEqual(nothingBack)
      expect(e3.pending).toBeUndefined()
    })

    it("when the stored key is gone (expired or lost), a write re-based on version 0 hands back no foreign snapshot the breakers took before it", () => {
      const e = S.make()
      S.onMessage(e, 5, snap("Open", 1, OTHER), false)
      const w = S.beginWrite(e, snap("Closed", 2, OWN))
      expect(S.onReply(e, w, conflict(0), STORE)).toEqual({ _tag: "Retry" })
      expect(S.onReply(e, w, unreachable, STORE)).toEqual(nothingBack)
    })

    it("when the stored key is gone, a write that lands at the version of the foreign snapshot the breakers took before it hands nothing back", () => {
      const e = S.make()
      S.onMessage(e, 1, snap("Open", 1, OTHER), false)
      const w = S.beginWrite(e, snap("Closed", 2, OWN))
      expect(S.onReply(e, w, conflict(0), STORE)).toEqual({ _tag: "Retry" })
      expect(S.onReply(e, w, written(1), STORE)).toEqual(nothingBack)
      expect(e.version).toBe(1)
    })
  })

  describe("resyncs", () => {
    it("a resync catches up with a stored transition newer than what this process saw, and takes its version", () => {
      const e = S.make()
      const open = snap("Open", 1, OTHER)
      expect(S.onResync(e, [1, open])).toEqual({ _tag: "CatchUp", delivery: foreignDelivery(open) })
      expect(e.version).toBe(1)
      const closed = snap("Closed", 2, OTHER)
      expect(S.onResync(e, [3, closed])).toEqual({ _tag: "CatchUp", delivery: foreignDelivery(closed) })
      expect(e.version).toBe(3)
    })

    it("a resync with nothing pending does nothing when the stored version was already seen or written here", () => {
      const e = S.make()
      const open = snap("Open", 1, OTHER)
      S.onMessage(e, 1, open, false)
      expect(S.onResync(e, [1, open])).toEqual({ _tag: "Nothing" })
      const own = snap("Closed", 2, OWN)
      S.onReply(e, S.beginWrite(e, own), written(2), STORE)
      expect(S.onResync(e, [2, own])).toEqual({ _tag: "Nothing" })
      expect(e.version).toBe(2)
    })

    it("a resync that finds no key (expired, or Redis lost its data) forgets the versions seen: the next write at version 1 is taken", () => {
      const e = S.make()
      S.onMessage(e, 1, snap("Open", 1, OTHER), false)
      S.onMessage(e, 2, snap("Closed", 2, OTHER), false)
      expect(S.onResync(e, undefined)).toEqual({ _tag: "Nothing" })
      expect(e).toMatchObject({ version: 0, foreignVersion: 0, foreignSnapshot: undefined, decisive: 0 })
      // another process opens after the key expired: its write lands at version 1 again
      const open = snap("Open", 3, OTHER)
      expect(S.onMessage(e, 1, open, false)).toEqual(foreignDelivery(open))
      expect(e.version).toBe(1)
      // this process's own next write hands its outcome back over the open it took
      const closed = snap("Closed", 4, OWN)
      expect(S.onReply(e, S.beginWrite(e, closed), written(2), STORE)).toEqual({
        _tag: "Done",
        handBack: { snapshot: { ...closed, origin: STORE }, version: 2 }
      })
    })

    it("a resync that finds the fleet's probers half-open takes the version and leaves the breakers as they are", () => {
      const e = S.make()
      expect(S.onResync(e, [1, snap("HalfOpen", 1, OTHER)])).toEqual({ _tag: "Nothing" })
      expect(e.version).toBe(1)
      expect(S.onMessage(e, 1, snap("Open", 2, OTHER), false)).toEqual({ _tag: "Ignore" })
    })

    it("a pending transition newer than the stored one is written on top of the stored version", () => {
      const e = S.make()
      const own = snap("Open", 5, OWN)
      S.onReply(e, S.beginWrite(e, own), unreachable, STORE)
      expect(e.pending).toEqual(own)
      expect(S.onResync(e, [3, snap("Closed", 1, OTHER)])).toEqual({ _tag: "Write", snapshot: own })
      expect(e.version).toBe(3)
      expect(S.beginWrite(e, own).expected).toBe(3)
    })

    it("a pending transition no newer than the stored one (same instant included) is dropped, and the stored one caught up with", () => {
      const e = S.make()
      S.onReply(e, S.beginWrite(e, snap("Closed", 5, OWN)), unreachable, STORE)
      const open = snap("Open", 5, OTHER)
      expect(S.onResync(e, [1, open])).toEqual({ _tag: "CatchUp", delivery: foreignDelivery(open) })
      expect(e.pending).toBeUndefined()
      expect(e.version).toBe(1)
    })

    it("a pending transition that lost to a stored one already seen here hands that one to the breakers, unless it is the probers' half-open", () => {
      // the breakers ignored the foreign open while their write was on its way; the write was rebased
      // on it and never landed
      const e1 = S.make()
      const open = snap("Open", 6, OTHER)
      const w1 = S.beginWrite(e1, snap("Closed", 5, OWN))
      S.onMessage(e1, 1, open, false)
      S.onReply(e1, w1, conflict(1), STORE)
      S.onReply(e1, w1, unreachable, STORE)
      expect(S.onResync(e1, [1, open])).toEqual({ _tag: "CatchUp", delivery: foreignDelivery(open) })
      expect(e1.pending).toBeUndefined()
      // the probers half-opened meanwhile: this process stays as it is
      const e2 = S.make()
      const halfOpen = snap("HalfOpen", 6, OTHER)
      const w2 = S.beginWrite(e2, snap("Closed", 5, OWN))
      expect(S.onMessage(e2, 1, halfOpen, false)).toEqual({ _tag: "Ignore" })
      expect(S.onReply(e2, w2, unreachable, STORE)).toEqual(nothingBack)
      expect(S.onResync(e2, [1, halfOpen])).toEqual({ _tag: "Nothing" })
      expect(e2.pending).toBeUndefined()
    })
  })

  describe("loads and holds", () => {
    it("a breaker made now starts from the stored version: messages up to it are ignored and a hold of the stored open goes on", () => {
      const e = S.make()
      S.onLoad(e, 3)
      expect(e.version).toBe(3)
      expect(S.onMessage(e, 3, snap("Closed", 1, OTHER), false)).toEqual({ _tag: "Ignore" })
      expect(S.holding(e, 3, false, 0, 10)).toBe(true)
      S.onLoad(e, 2)
      expect(e.version).toBe(3)
      expect(S.holding(e, 3, false, 0, 10)).toBe(true)
    })

    it("a hold of the stored open counts as a foreign snapshot taken: the next write hands its outcome back", () => {
      const e = S.make()
      S.onLoad(e, 1)
      expect(S.holding(e, 1, false, 0, 10)).toBe(true)
      const own = snap("Closed", 2, OWN)
      const w = S.beginWrite(e, own)
      expect(w.rebased).toBe(false)
      expect(S.onReply(e, w, written(2), STORE)).toEqual({
        _tag: "Done",
        handBack: { snapshot: { ...own, origin: STORE }, version: 2 }
      })
    })

    it("a hold goes on until its end, not at or past it, and not once released", () => {
      const e = S.make()
      S.onMessage(e, 1, snap("Open", 1, OTHER), false)
      expect(S.holding(e, 1, false, 100, 101)).toBe(true)
      expect(S.holding(e, 1, false, 101, 101)).toBe(false)
      expect(S.holding(e, 1, false, 102, 101)).toBe(false)
      expect(S.holding(e, 1, true, 100, 101)).toBe(false)
    })

    it("a hold ends once a decisive transition followed the open: a write of this process or a newer foreign transition, not the probers' half-open", () => {
      const e = S.make()
      S.onMessage(e, 1, snap("Open", 1, OTHER), false)
      S.onMessage(e, 2, snap("HalfOpen", 2, OTHER), false)
      expect(S.holding(e, 1, false, 0, 10)).toBe(true)
      const e2 = S.make()
      S.onMessage(e2, 1, snap("Open", 1, OTHER), false)
      S.onReply(e2, S.beginWrite(e2, snap("Closed", 2, OWN)), written(2), STORE)
      expect(S.holding(e2, 1, false, 0, 10)).toBe(false)
      const e3 = S.make()
      S.onMessage(e3, 1, snap("Open", 1, OTHER), false)
      S.onMessage(e3, 2, snap("Open", 2, OTHER), false)
      expect(S.holding(e3, 1, false, 0, 10)).toBe(false)
      expect(S.holding(e3, 2, false, 0, 10)).toBe(true)
    })
  })
})
