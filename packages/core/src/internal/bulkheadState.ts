/**
 * The admission and queue rules of `Bulkhead`, as plain functions over one mutable record: no
 * `Effect`, no clock, no metrics, so a model test can drive them directly and a reader sees the
 * rules in one screen. `Bulkhead` wires them to fibers (waking a waiter, bounding a wait,
 * giving a slot back whatever interrupts the call), metrics and errors.
 *
 * - A call is admitted at once while fewer than `maxConcurrent` calls run.
 * - Otherwise it waits in its priority class while fewer than `maxQueued` calls wait, and is
 *   rejected (`queue_full`) beyond that.
 * - A freed slot goes to the first waiter of the highest waiting class (FIFO within a class);
 *   the slot passes straight to it, so `active` does not change.
 * - A waiter that gives up leaves the queue, or passes on the slot it was already handed.
 *
 * @internal
 */
import * as WaitQueue from "./waitQueue.js"

/** The limits of one bulkhead (checked by `Bulkhead`). */
export interface Limits {
  readonly maxConcurrent: number
  readonly maxQueued: number
  readonly priorities: number
}

/** The state of one bulkhead: what runs, what waits, what was admitted and rejected. */
export interface State {
  readonly maxConcurrent: number
  readonly maxQueued: number
  readonly queue: WaitQueue.Queue
  /** Calls holding a slot (a waiter handed a slot holds it). */
  active: number
  /** Calls waiting in the queue. */
  queued: number
  /** Calls given a slot, at once or after waiting. */
  admitted: number
  rejectedQueueFull: number
  rejectedWaitTimeout: number
}

/** An empty bulkhead. */
export const make = (limits: Limits): State => ({
  maxConcurrent: limits.maxConcurrent,
  maxQueued: limits.maxQueued,
  queue: WaitQueue.makeQueue(limits.priorities),
  active: 0,
  queued: 0,
  admitted: 0,
  rejectedQueueFull: 0,
  rejectedWaitTimeout: 0
})

/** Takes a free slot if there is one (the uncontended path): `true` when the call may run now. */
export const tryAcquire = (state: State): boolean => {
  if (state.active < state.maxConcurrent) {
    state.active++
    state.admitted++
    return true
  }
  return false
}

/**
 * Queues a call that found no free slot, in its class; `undefined` when the queue is full (the
 * call is rejected with `queue_full`, and counted).
 */
export const enqueue = (state: State, priority: number): WaitQueue.Waiter | undefined => {
  if (state.queued >= state.maxQueued) {
    state.rejectedQueueFull++
    return undefined
  }
  const waiter = WaitQueue.makeWaiter(priority)
  WaitQueue.push(state.queue, waiter)
  state.queued++
  return waiter
}

/**
 * Frees a slot: hands it to the first waiter of the highest class and returns that waiter (to
 * be woken), or gives it back and returns `undefined`. Its cost does not depend on the number
 * of classes.
 */
export const release = (state: State): WaitQueue.Waiter | undefined => {
  if (state.queued === 0) {
    state.active--
    return undefined
  }
  const waiter = WaitQueue.shift(state.queue)!
  state.queued--
  waiter.granted = true
  state.admitted++
  return waiter
}

/**
 * A waiter gives up (interrupted or timed out): it leaves the queue, or passes on the slot it
 * was handed; returns the waiter the slot passed to, if any (to be woken). Idempotent: only the
 * first call for a waiter changes anything.
 */
export const abandon = (state: State, waiter: WaitQueue.Waiter): WaitQueue.Waiter | undefined => {
  if (waiter.abandoned) return undefined
  waiter.abandoned = true
  if (waiter.granted) return release(state)
  WaitQueue.unlink(state.queue, waiter)
  state.queued--
  return undefined
}

/** Counts a call that waited too long (`wait_timeout`). */
export const rejectWaitTimeout = (state: State): void => {
  state.rejectedWaitTimeout++
}

/** The waiters per priority class, lowest class first. */
export const queuedByPriority = (state: State): Array<number> => state.queue.lanes.map((lane) => lane.size)
