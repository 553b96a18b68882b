/**
 * The wait queue of the bulkheads: one FIFO list per priority class, with O(1) removal of a
 * waiter that gives up, and a bitmap of the classes that have waiters so that taking the next
 * waiter costs the same whatever the number of classes. Shared by `Bulkhead` and `AdaptiveLimit`.
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

export const makeWaiter = (priority: number): Waiter => ({
  priority,
  resume: undefined,
  granted: false,
  abandoned: false,
  prev: undefined,
  next: undefined
})

/**
 * The classes that have waiters, as a two-level bitmap (one bit per class, one summary bit per
 * word of 32 classes): marking, clearing and finding the highest waiting class take the same few
 * steps whatever the number of classes (up to 32 × 32 = 1,024).
 */
interface Waiting {
  readonly words: Uint32Array
  summary: number
}

/** One lane per priority class and the bitmap of the lanes that are not empty. */
export interface Queue {
  readonly lanes: ReadonlyArray<Lane>
  readonly waiting: Waiting
}

export const makeQueue = (priorities: number): Queue => ({
  lanes: Array.from({ length: priorities }, () => ({ head: undefined, tail: undefined, size: 0 })),
  waiting: { words: new Uint32Array(Math.ceil(priorities / 32)), summary: 0 }
})

/** Puts a waiter at the back of its class. */
export const push = (queue: Queue, waiter: Waiter): void => {
  const lane = queue.lanes[waiter.priority]!
  waiter.prev = lane.tail
  if (lane.tail === undefined) lane.head = waiter
  else lane.tail.next = waiter
  lane.tail = waiter
  lane.size++
  const word = waiter.priority >>> 5
  queue.waiting.words[word] = queue.waiting.words[word]! | (1 << (waiter.priority & 31))
  queue.waiting.summary |= 1 << word
}

/** Takes a waiter out of its class, wherever it stands. */
export const unlink = (queue: Queue, waiter: Waiter): void => {
  const lane = queue.lanes[waiter.priority]!
  if (waiter.prev === undefined) lane.head = waiter.next
  else waiter.prev.next = waiter.next
  if (waiter.next === undefined) lane.tail = waiter.prev
  else waiter.next.prev = waiter.prev
  waiter.prev = undefined
  waiter.next = undefined
  lane.size--
  if (lane.size === 0) {
    const word = waiter.priority >>> 5
    queue.waiting.words[word] = queue.waiting.words[word]! & ~(1 << (waiter.priority & 31))
    if (queue.waiting.words[word] === 0) queue.waiting.summary &= ~(1 << word)
  }
}

/**
 * Takes the first waiter of the highest class out of the queue, if any. Its cost does not
 * depend on the number of classes.
 */
export const shift = (queue: Queue): Waiter | undefined => {
  const { summary, words } = queue.waiting
  if (summary === 0) return undefined
  const word = 31 - Math.clz32(summary)
  const waiter = queue.lanes[(word << 5) + 31 - Math.clz32(words[word]!)]!.head!
  unlink(queue, waiter)
  return waiter
}

export const grantResume: Effect.Effect<void> = Effect.void

/** Waits until the waiter is granted a slot; on interruption the waiter gives up through `abandon`. */
export const await_ = (waiter: Waiter, abandon: (waiter: Waiter) => void): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (waiter.granted) return resume(grantResume)
    waiter.resume = resume
    return Effect.sync(() => abandon(waiter))
  })
