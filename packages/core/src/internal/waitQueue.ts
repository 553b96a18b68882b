/**
 * The wait queue of the bulkheads: one FIFO list per priority class, with O(1) removal of a
 * waiter that gives up. Shared by `Bulkhead` and `AdaptiveLimit`.
 *
 * @internal
 */
import * as Effect from "effect/Effect"

/** A caller waiting for a slot. */
export interface Waiter {
  readonly priority: number
  /** Set once the waiting fiber has registered; called with the slot. */
  resume: ((effect: Effect.Effect<void>) => void) | undefined
  /** The slot has been handed to this waiter. */
  granted: boolean
  /** The waiter gave up: it left the queue or passed its slot on (once only). */
  abandoned: boolean
  prev: Waiter | undefined
  next: Waiter | undefined
}

/** The waiters of one priority class, oldest first. */
export interface Lane {
  head: Waiter | undefined
  tail: Waiter | undefined
  size: number
}

export const makeLanes = (priorities: number): Array<Lane> =>
  Array.from({ length: priorities }, () => ({ head: undefined, tail: undefined, size: 0 }))

export const makeWaiter = (priority: number): Waiter => ({
  priority,
  resume: undefined,
  granted: false,
  abandoned: false,
  prev: undefined,
  next: undefined
})

export const push = (lane: Lane, waiter: Waiter): void => {
  waiter.prev = lane.tail
  if (lane.tail === undefined) lane.head = waiter
  else lane.tail.next = waiter
  lane.tail = waiter
  lane.size++
}

export const unlink = (lane: Lane, waiter: Waiter): void => {
  if (waiter.prev === undefined) lane.head = waiter.next
  else waiter.prev.next = waiter.next
  if (waiter.next === undefined) lane.tail = waiter.prev
  else waiter.next.prev = waiter.prev
  waiter.prev = undefined
  waiter.next = undefined
  lane.size--
}

/** Takes the first waiter of the highest class out of the queue, if any. */
export const shift = (lanes: ReadonlyArray<Lane>): Waiter | undefined => {
  for (let p = lanes.length - 1; p >= 0; p--) {
    const lane = lanes[p]!
    const waiter = lane.head
    if (waiter !== undefined) {
      unlink(lane, waiter)
      return waiter
    }
  }
  return undefined
}

export const grantResume: Effect.Effect<void> = Effect.void

/** Waits until the waiter is granted a slot; on interruption the waiter gives up through `abandon`. */
export const await_ = (waiter: Waiter, abandon: (waiter: Waiter) => void): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (waiter.granted) return resume(grantResume)
    waiter.resume = resume
    return Effect.sync(() => abandon(waiter))
  })
