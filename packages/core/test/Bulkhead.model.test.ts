import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import * as S from "../src/internal/bulkheadState.js"
import type * as WaitQueue from "../src/internal/waitQueue.js"

const limits = { maxConcurrent: 2, maxQueued: 2, priorities: 3 }

describe("bulkhead admission and queue rules", () => {
  it("admits up to maxConcurrent at once, queues up to maxQueued, rejects the rest and counts it", () => {
    const state = S.make(limits)
    expect([S.tryAcquire(state), S.tryAcquire(state), S.tryAcquire(state)]).toEqual([true, true, false])
    const first = S.enqueue(state, 0)
    const second = S.enqueue(state, 0)
    expect(first).toBeDefined()
    expect(second).toBeDefined()
    expect(S.enqueue(state, 2)).toBeUndefined()
    expect(state).toMatchObject({ active: 2, queued: 2, admitted: 2, rejectedQueueFull: 1 })
  })

  it("a freed slot passes to the first waiter of the highest class, and active does not change", () => {
    const state = S.make({ ...limits, maxConcurrent: 1, maxQueued: 4 })
    S.tryAcquire(state)
    const low = S.enqueue(state, 0)!
    const highA = S.enqueue(state, 2)!
    const highB = S.enqueue(state, 2)!
    const mid = S.enqueue(state, 1)!
    expect([S.release(state), S.release(state), S.release(state), S.release(state)]).toEqual([highA, highB, mid, low])
    expect([highA.granted, low.granted]).toEqual([true, true])
    expect(state).toMatchObject({ active: 1, queued: 0, admitted: 5 })
    expect(S.release(state)).toBeUndefined()
    expect(state.active).toBe(0)
  })

  it("a waiter that gives up leaves the queue, or passes on the slot it was handed; only once", () => {
    const state = S.make({ ...limits, maxConcurrent: 1, maxQueued: 3 })
    S.tryAcquire(state)
    const a = S.enqueue(state, 0)!
    const b = S.enqueue(state, 0)!
    expect(S.abandon(state, a)).toBeUndefined()
    expect(S.abandon(state, a)).toBeUndefined()
    expect(state).toMatchObject({ active: 1, queued: 1 })
    expect(S.release(state)).toBe(b)
    // b was handed the slot and gives up before running: nobody waits, the slot is given back
    expect(S.abandon(state, b)).toBeUndefined()
    expect(S.abandon(state, b)).toBeUndefined()
    expect(state).toMatchObject({ active: 0, queued: 0 })
  })

  it("a waiter that gives up from the middle or the back of its class leaves the others in order, and later arrivals join the back", () => {
    const state = S.make({ ...limits, maxConcurrent: 1, maxQueued: 5 })
    S.tryAcquire(state)
    const [a, b, c, d] = [1, 1, 1, 1].map((priority) => S.enqueue(state, priority)!)
    S.abandon(state, b!)
    S.abandon(state, d!)
    const e = S.enqueue(state, 1)!
    expect(S.queuedByPriority(state)).toEqual([0, 3, 0])
    expect([S.release(state), S.release(state), S.release(state), S.release(state)]).toEqual([a, c, e, undefined])
    expect(state).toMatchObject({ active: 0, queued: 0, admitted: 4 })
  })

  type Step =
    | { readonly _tag: "arrive"; readonly priority: number }
    | { readonly _tag: "finish"; readonly pick: number }
    | { readonly _tag: "giveUp"; readonly pick: number }

  const step: fc.Arbitrary<Step> = fc.oneof(
    fc.record({ _tag: fc.constant("arrive" as const), priority: fc.nat({ max: 2 }) }),
    fc.record({ _tag: fc.constant("finish" as const), pick: fc.nat() }),
    fc.record({ _tag: fc.constant("giveUp" as const), pick: fc.nat() })
  )

  it.prop(
    "against a model: never more than maxConcurrent running or maxQueued waiting, the highest class first, FIFO within a class, nothing lost",
    {
      maxConcurrent: fc.integer({ min: 1, max: 4 }),
      maxQueued: fc.integer({ min: 0, max: 5 }),
      steps: fc.array(step, { maxLength: 80 })
    },
    ({ maxConcurrent, maxQueued, steps }) => {
      const state = S.make({ maxConcurrent, maxQueued, priorities: 3 })
      // the model: calls holding a slot, and waiters in arrival order
      let running = 0
      let waiting: Array<{ readonly priority: number; readonly seq: number; readonly waiter: WaitQueue.Waiter }> = []
      let seq = 0
      let admitted = 0
      let rejected = 0
      const grant = (next: WaitQueue.Waiter | undefined) => {
        if (waiting.length === 0) {
          expect(next).toBeUndefined()
          running--
          return
        }
        // the model's choice: the highest class, the oldest within it
        const best = waiting.reduce((
          a,
          b
        ) => (b.priority > a.priority || (b.priority === a.priority && b.seq < a.seq) ? b : a))
        expect(next).toBe(best.waiter)
        expect(next!.granted).toBe(true)
        waiting = waiting.filter((w) => w !== best)
        admitted++
      }
      for (const s of steps) {
        if (s._tag === "arrive") {
          if (S.tryAcquire(state)) {
            expect(running).toBeLessThan(maxConcurrent)
            running++
            admitted++
          } else {
            expect(running).toBe(maxConcurrent)
            const waiter = S.enqueue(state, s.priority)
            if (waiter === undefined) {
              expect(waiting.length).toBe(maxQueued)
              rejected++
            } else {
              waiting.push({ priority: s.priority, seq: seq++, waiter })
            }
          }
        } else if (s._tag === "finish") {
          if (running > 0) grant(S.release(state))
        } else if (waiting.length > 0) {
          const gone = waiting[s.pick % waiting.length]!
          waiting = waiting.filter((w) => w !== gone)
          expect(S.abandon(state, gone.waiter)).toBeUndefined()
          expect(S.abandon(state, gone.waiter)).toBeUndefined()
        }
        expect(state.active).toBe(running)
        expect(state.queued).toBe(waiting.length)
        expect(S.queuedByPriority(state)).toEqual(
          [0, 1, 2].map((p) => waiting.filter((w) => w.priority === p).length)
        )
        expect(state.active).toBeLessThanOrEqual(maxConcurrent)
        expect(state.queued).toBeLessThanOrEqual(maxQueued)
        // a slot is never idle while someone waits
        if (state.queued > 0) expect(state.active).toBe(maxConcurrent)
        expect(state.admitted).toBe(admitted)
        expect(state.rejectedQueueFull).toBe(rejected)
      }
    },
    { fastCheck: { numRuns: 300 } }
  )
})
