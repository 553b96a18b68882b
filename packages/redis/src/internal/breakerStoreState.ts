/**
 * The shared breaker store's rules for one breaker, free of Effect: what to do with a message at
 * a version, with the reply to a write, with a resync read, and whether a hand-back or a hold is
 * still due. The shell (`RedisBreakerStore.ts`) runs the Redis calls, fibers and metrics around
 * them and does what they return.
 *
 * @internal
 */
import type { BreakerStore } from "@bulwark/core"

type Snapshot = BreakerStore.Snapshot

/** What this process knows of one breaker. */
export interface Entry {
  /** The highest version this process has seen or written. */
  version: number
  /** A transition that could not be written (Redis was down), to write when it is back. */
  pending: Snapshot | undefined
  /** Whether another process's snapshot reached the local breakers since this one last wrote. */
  foreign: boolean
  /** The highest version of another process's snapshot handed to the local breakers, and that snapshot. */
  foreignVersion: number
  foreignSnapshot: Snapshot | undefined
  /** The version of the last transition other than the fleet's probers half-opening. */
  decisive: number
  /**
   * A snapshot about to be handed back to the local breakers; dropped when they publish a newer
   * transition first, which inherits it.
   */
  redeliver: Snapshot | undefined
}

/** A fresh entry. */
export const make = (): Entry => ({
  version: 0,
  pending: undefined,
  foreign: false,
  foreignVersion: 0,
  foreignSnapshot: undefined,
  decisive: 0,
  redeliver: undefined
})

/** What to do with a snapshot from Redis: nothing, or hand it to the local breakers. */
export type Delivery =
  | { readonly _tag: "Ignore" }
  | {
    readonly _tag: "Deliver"
    readonly snapshot: Snapshot
    /** From another process (counted as received). */
    readonly foreign: boolean
    /** An open from another process: claim a probe slot for it. */
    readonly claim: boolean
  }

const ignore: Delivery = { _tag: "Ignore" }

/** Records a snapshot of another process at `version` as handed to the local breakers. */
const takeForeign = (e: Entry, version: number, snapshot: Snapshot): Delivery => {
  e.decisive = version
  e.foreign = true
  e.foreignVersion = version
  e.foreignSnapshot = snapshot
  return { _tag: "Deliver", snapshot, foreign: true, claim: snapshot.state === "Open" }
}

/**
 * A message at `version`; `own` when this store wrote it (back before its reply: the other local
 * breakers take it, the writer ignores its own origin). A foreign half-open is the fleet's
 * probers at work: this process stays open.
 */
export const onMessage = (e: Entry, version: number, snapshot: Snapshot, own: boolean): Delivery => {
  if (version <= e.version) return ignore
  e.version = version
  if (own) {
    e.decisive = version
    return { _tag: "Deliver", snapshot, foreign: false, claim: false }
  }
  if (snapshot.state === "HalfOpen") return ignore
  return takeForeign(e, version, snapshot)
}

/** A write in progress. */
export interface Write {
  readonly snapshot: Snapshot
  /** The version the next attempt expects. */
  expected: number
  /** Whether it went (or must be told as if it went) on top of writes it raced. */
  rebased: boolean
  /** `foreignVersion` when it started. */
  readonly foreignBefore: number
}

/** Starts writing `snapshot`: a hand-back still waiting means the breaker moved on before it, so this write takes it over. */
export const beginWrite = (e: Entry, snapshot: Snapshot): Write => {
  const w: Write = {
    snapshot,
    expected: e.version,
    rebased: e.redeliver !== undefined,
    foreignBefore: e.foreignVersion
  }
  e.redeliver = undefined
  return w
}

/** The reply of one attempt. */
export type Reply =
  | { readonly _tag: "Unreachable" }
  | { readonly _tag: "Conflict"; readonly current: number }
  | { readonly _tag: "Written"; readonly version: number }
  | { readonly _tag: "Vote" }
  | { readonly _tag: "Local" }

/** A snapshot to hand to the local breakers a moment later, at `version`. */
export interface HandBack {
  readonly snapshot: Snapshot
  readonly version: number
}

/** What follows a reply: another attempt, or the end of the write with perhaps a hand-back. */
export type Next =
  | { readonly _tag: "Retry" }
  | { readonly _tag: "Done"; readonly handBack: HandBack | undefined }

const done = (handBack: HandBack | undefined): Next => ({ _tag: "Done", handBack })

/**
 * The local breakers ignore what arrives while their own transition is on its way (it is older
 * than that transition, which goes on top of it). A snapshot from elsewhere newer than the write's
 * outcome (`base`), that arrived during it, is handed to them again.
 */
const foreignAfter = (e: Entry, w: Write, base: number): HandBack | undefined =>
  e.foreignVersion > w.foreignBefore && e.foreignVersion > base && e.foreignSnapshot !== undefined
    ? { snapshot: e.foreignSnapshot, version: e.foreignVersion }
    : undefined

/** Marks `back` as the hand-back due. */
const due = (e: Entry, back: HandBack | undefined): Next => {
  if (back !== undefined) e.redeliver = back.snapshot
  return done(back)
}

/** Takes the reply to an attempt of `w`. `origin` is the store's, put on a hand-back of the write. */
export const onReply = (e: Entry, w: Write, reply: Reply, origin: string): Next => {
  switch (reply._tag) {
    case "Unreachable":
      // Redis is away: keep the latest transition for when it is back
      e.pending = w.snapshot
      return due(e, foreignAfter(e, w, w.expected))
    case "Conflict":
      // another process wrote first: go on top of it (its message brings it here too)
      w.expected = reply.current
      w.rebased = true
      return { _tag: "Retry" }
    case "Written": {
      const n = reply.version
      e.pending = undefined
      e.version = Math.max(e.version, n)
      e.decisive = Math.max(e.decisive, n)
      // the local breakers may have applied the writes this one raced: tell them the outcome
      const back = (w.rebased || e.foreign) && n > e.foreignVersion
        ? { snapshot: { ...w.snapshot, origin }, version: n }
        : foreignAfter(e, w, n)
      e.foreign = false
      return due(e, back)
    }
    case "Vote":
    case "Local":
      // nothing written: what came after it stands
      e.pending = undefined
      return due(e, foreignAfter(e, w, w.expected))
  }
}

/** The write gave up after too many conflicts: kept for the next resync. */
export const giveUp = (e: Entry, w: Write): Next => {
  e.pending = w.snapshot
  return due(e, foreignAfter(e, w, w.expected))
}

/** Whether the hand-back `back` is still to be delivered now (and no longer due after). */
export const handBackNow = (e: Entry, back: HandBack): boolean => {
  if (e.redeliver !== back.snapshot) return false
  e.redeliver = undefined
  // a newer transition from elsewhere reached the breakers meanwhile
  return e.foreignVersion <= back.version
}

/** What a resync does: nothing, write the pending transition, or catch up with the stored one. */
export type Resync =
  | { readonly _tag: "Nothing" }
  | { readonly _tag: "Write"; readonly snapshot: Snapshot }
  | { readonly _tag: "CatchUp"; readonly delivery: Delivery }

/** Takes a resync read: the stored version and snapshot, or `undefined` when there is no key. */
export const onResync = (e: Entry, stored: readonly [number, Snapshot] | undefined): Resync => {
  const pending = e.pending
  if (stored !== undefined) {
    const [version, snapshot] = stored
    if (pending !== undefined && pending.since > snapshot.since) {
      e.version = Math.max(e.version, version)
      return { _tag: "Write", snapshot: pending }
    }
    e.pending = undefined
    if (version <= e.version) {
      // a transition of this process that was never written lost to the stored one: the local
      // breakers still hold it (they ignored what arrived while it was on its way), so they take
      // the stored one now (the fleet's probers half-opening excepted)
      return pending === undefined || snapshot.state === "HalfOpen"
        ? { _tag: "Nothing" }
        : { _tag: "CatchUp", delivery: takeForeign(e, version, snapshot) }
    }
    e.version = version
    // the fleet's probers half-opening: this process stays as it is
    if (snapshot.state === "HalfOpen") return { _tag: "Nothing" }
    return { _tag: "CatchUp", delivery: takeForeign(e, version, snapshot) }
  }
  // no key: it expired, or Redis lost its data. Versions start again from 1, so what this process
  // saw before no longer orders what comes next
  e.version = 0
  e.foreignVersion = 0
  e.foreignSnapshot = undefined
  e.decisive = 0
  if (pending === undefined) return { _tag: "Nothing" }
  return { _tag: "Write", snapshot: pending }
}

/** A breaker made now starts from the stored version. */
export const onLoad = (e: Entry, version: number): void => {
  e.version = Math.max(e.version, version)
  e.decisive = Math.max(e.decisive, version)
}

/**
 * Whether a hold of the open at `version` goes on at `now`: not once released, past `until`, or
 * after a decisive transition followed the open. When it does, the breakers count as having
 * taken a foreign snapshot.
 */
export const holding = (e: Entry, version: number, released: boolean, now: number, until: number): boolean => {
  if (e.decisive !== version || released || now >= until) return false
  e.foreign = true
  return true
}
