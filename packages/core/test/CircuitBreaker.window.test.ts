/**
 * The outcome windows behind `CircuitBreaker.countWindow` and `CircuitBreaker.timeWindow`: what
 * they count as outcomes leave them.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Window from "../src/internal/window.js"

const counts = (window: Window.OutcomeWindow) => ({
  total: window.total(),
  failures: window.failures(),
  slow: window.slow()
})

describe("CircuitBreaker outcome windows", () => {
  it("a count window keeps the last `size` outcomes: failures and slow calls that leave it stop counting", () => {
    const window = Window.countWindow(2)
    window.record(0, true, true)
    window.record(0, true, false)
    expect(counts(window)).toEqual({ total: 2, failures: 2, slow: 1 })
    window.record(0, false, false)
    expect(counts(window)).toEqual({ total: 2, failures: 1, slow: 0 })
    window.record(0, false, false)
    expect(counts(window)).toEqual({ total: 2, failures: 0, slow: 0 })
    window.record(0, true, true)
    expect(counts(window)).toEqual({ total: 2, failures: 1, slow: 1 })
  })

  it("a time window forgets the outcomes of a bucket once it falls out of the span", () => {
    // 1 second in 4 buckets of 250 ms
    const window = Window.timeWindow(1000, 4)
    window.record(0, true, true)
    window.record(250, false, false)
    window.record(500, true, true)
    expect(counts(window)).toEqual({ total: 3, failures: 2, slow: 2 })
    window.advance(1000)
    expect(counts(window)).toEqual({ total: 2, failures: 1, slow: 1 })
    window.advance(1250)
    expect(counts(window)).toEqual({ total: 1, failures: 1, slow: 1 })
    window.advance(1500)
    expect(counts(window)).toEqual({ total: 0, failures: 0, slow: 0 })
  })

  it("a wall clock stepped back does not move a time window back: what it records then counts in the newest bucket", () => {
    const window = Window.timeWindow(1000, 4)
    window.record(900, true, false)
    window.record(100, false, true)
    expect(counts(window)).toEqual({ total: 2, failures: 1, slow: 1 })
    // the newest bucket (750–1000) is the one that holds both: it leaves at 1750, not before
    window.advance(1000)
    expect(counts(window)).toEqual({ total: 2, failures: 1, slow: 1 })
    window.advance(1749)
    expect(counts(window)).toEqual({ total: 2, failures: 1, slow: 1 })
    window.advance(1750)
    expect(counts(window)).toEqual({ total: 0, failures: 0, slow: 0 })
  })
})
