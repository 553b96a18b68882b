/**
 * Sliding windows of call outcomes with O(1) work per call and memory fixed at construction.
 *
 * @internal
 */

/** An outcome window: counts calls, failures and slow calls over its span. */
export interface OutcomeWindow {
  /** Records one outcome at `now` (milliseconds). */
  readonly record: (now: number, failure: boolean, slow: boolean) => void
  /** Drops the buckets that fell out of the span at `now`; then `total`, `failures`, `slow` are current. */
  readonly advance: (now: number) => void
  /** Forgets everything. */
  readonly clear: () => void
  readonly total: () => number
  readonly failures: () => number
  readonly slow: () => number
}

const FAILURE = 1
const SLOW = 2

/** The last `size` outcomes, in a ring buffer of one byte per slot. */
export const countWindow = (size: number): OutcomeWindow => {
  const ring = new Uint8Array(size)
  let next = 0
  let filled = 0
  let failures = 0
  let slow = 0
  return {
    record: (_now, failure, isSlow) => {
      if (filled === size) {
        const old = ring[next]!
        if ((old & FAILURE) !== 0) failures--
        if ((old & SLOW) !== 0) slow--
      } else {
        filled++
      }
      const bits = (failure ? FAILURE : 0) | (isSlow ? SLOW : 0)
      ring[next] = bits
      if (failure) failures++
      if (isSlow) slow++
      next = next + 1 === size ? 0 : next + 1
    },
    advance: () => {},
    clear: () => {
      ring.fill(0)
      next = 0
      filled = 0
      failures = 0
      slow = 0
    },
    total: () => filled,
    failures: () => failures,
    slow: () => slow
  }
}

/**
 * The outcomes of the last `span` milliseconds, kept in `buckets` buckets of `span / buckets`
 * milliseconds each. A call at time `t` falls in bucket `floor(t / width)`; the window holds the
 * current bucket and the `buckets - 1` before it.
 */
export const timeWindow = (span: number, buckets: number): OutcomeWindow => {
  const width = span / buckets
  const totals = new Float64Array(buckets)
  const fails = new Float64Array(buckets)
  const slows = new Float64Array(buckets)
  let epoch = -Infinity // the bucket number of the newest bucket
  let total = 0
  let failures = 0
  let slow = 0
  const clearSlot = (slot: number) => {
    total -= totals[slot]!
    failures -= fails[slot]!
    slow -= slows[slot]!
    totals[slot] = 0
    fails[slot] = 0
    slows[slot] = 0
  }
  const clear = () => {
    totals.fill(0)
    fails.fill(0)
    slows.fill(0)
    total = 0
    failures = 0
    slow = 0
  }
  const advance = (now: number) => {
    const current = Math.floor(now / width)
    if (current <= epoch) return
    if (current - epoch >= buckets) {
      clear()
    } else {
      for (let e = epoch + 1; e <= current; e++) clearSlot(e % buckets)
    }
    epoch = current
  }
  return {
    record: (now, failure, isSlow) => {
      advance(now)
      const slot = epoch % buckets
      totals[slot] = totals[slot]! + 1
      total++
      if (failure) {
        fails[slot] = fails[slot]! + 1
        failures++
      }
      if (isSlow) {
        slows[slot] = slows[slot]! + 1
        slow++
      }
    },
    advance,
    clear: () => {
      clear()
      epoch = -Infinity
    },
    total: () => total,
    failures: () => failures,
    slow: () => slow
  }
}
