import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import * as S from "../src/internal/adaptiveLimitState.js"

const bounds = { minLimit: 2, maxLimit: 100, initialLimit: 20 }
const aimd: S.AimdConfig = { _tag: "aimd", ...bounds, backoffRatio: 0.5, increase: 1, slowLatency: 500 }
const gradient: S.GradientConfig = {
  _tag: "gradient",
  ...bounds,
  tolerance: 1,
  smoothing: 1,
  shortWindow: 1,
  longWindow: 600,
  queueSize: () => 2
}

const sample = (latency: number, startedAt: number, inflight: number, dropped = false): S.Sample => ({
  latency,
  startedAt,
  inflight,
  dropped
})

describe("adaptive limit algorithms", () => {
  it("AIMD adds once per round trip while the limit is in use", () => {
    let state = S.initial(aimd)
    state = S.aimd(aimd, state, sample(100, 0, 20), 100)
    expect(state.limit).toBe(21)
    // a call that started before that change belongs to the same round: no second increase
    state = S.aimd(aimd, state, sample(100, 50, 20), 150)
    expect(state.limit).toBe(21)
    state = S.aimd(aimd, state, sample(100, 100, 20), 200)
    expect(state.limit).toBe(22)
    // a limit nobody uses proves nothing: 5 in flight of 22
    state = S.aimd(aimd, state, sample(100, 250, 5), 350)
    expect(state.limit).toBe(22)
  })

  it("AIMD cuts once per round trip on a drop or a call slower than slowLatency", () => {
    let state = S.initial(aimd)
    state = S.aimd(aimd, state, sample(100, 0, 20, true), 100)
    expect(state.limit).toBe(10)
    // the rest of the burst started before the cut: it does not cut again
    for (let i = 0; i < 10; i++) state = S.aimd(aimd, state, sample(100, 50, 20, true), 110)
    expect(state.limit).toBe(10)
    state = S.aimd(aimd, state, sample(600, 100, 10), 700)
    expect(state.limit).toBe(5)
    state = S.aimd(aimd, state, sample(100, 700, 5, true), 800)
    state = S.aimd(aimd, state, sample(100, 800, 5, true), 900)
    expect(state.limit).toBe(bounds.minLimit)
  })

  it("gradient grows by the queue allowance while latency is flat, and falls with the latency ratio", () => {
    let state = S.initial(gradient)
    state = S.gradient(gradient, state, sample(100, 0, 20), 100)
    expect(state.limit).toBe(22)
    expect(state).toMatchObject({ shortLatency: 100, longLatency: 100 })
    // latency doubles: limit × 0.5 + 2
    state = S.gradient(gradient, state, sample(200, 100, 22), 300)
    expect(state.shortLatency).toBe(200)
    expect(state.limit).toBeCloseTo(22 * (state.longLatency / 200) + 2, 6)
    expect(state.limit).toBeLessThan(14)
    // a timeout scales by the floor, whatever the latency says
    const before = state.limit
    state = S.gradient(gradient, state, sample(100, 300, 12, true), 400)
    expect(state.limit).toBeCloseTo(before * 0.5 + 2, 6)
  })

  it("gradient treats calls too fast to measure (0 ms) as flat latency", () => {
    let state = S.initial(gradient)
    state = S.gradient(gradient, state, sample(0, 0, 20), 0)
    expect(state.limit).toBe(22)
  })

  it("gradient ignores application-limited samples", () => {
    let state = S.initial(gradient)
    state = S.gradient(gradient, state, sample(100, 0, 3), 100)
    expect(state.limit).toBe(20)
    expect(state.samples).toBe(1)
  })

  it("the state starts at initialLimit with no latency, admits the whole part of the limit, allows sqrt(limit) by default", () => {
    expect(S.initial(aimd)).toEqual({
      limit: 20,
      shortLatency: 0,
      longLatency: 0,
      samples: 0,
      changedAt: Number.NEGATIVE_INFINITY
    })
    expect(S.admitLimit({ ...S.initial(aimd), limit: 7.9 })).toBe(7)
    expect(S.defaultQueueSize(16)).toBe(4)
  })

  it("gradient: exact limits and averages after a known sequence of samples", () => {
    // both windows of 3: each average moves half way to its new value
    const config: S.GradientConfig = { ...gradient, smoothing: 0.5, shortWindow: 3, longWindow: 3 }
    let state = S.initial(config)
    // 10 in flight of 20 is in use (10 × 2 is not below 20): flat latency, limit × 1 + 2, half smoothed
    state = S.gradient(config, state, sample(100, 0, 10), 100)
    expect(state).toEqual({ limit: 21, shortLatency: 100, longLatency: 100, samples: 1, changedAt: 100 })
    // started before the change: the short-term average takes it in, nothing else moves
    state = S.gradient(config, state, sample(300, 50, 10), 150)
    expect(state).toEqual({ limit: 21, shortLatency: 200, longLatency: 100, samples: 2, changedAt: 100 })
    // started at the change: a new round; short 150, long 125, limit 21 × 0.5 + (21 × 125/150 + 2) × 0.5
    state = S.gradient(config, state, sample(100, 100, 11), 250)
    expect(state).toMatchObject({ shortLatency: 150, longLatency: 125, samples: 3, changedAt: 250 })
    expect(state.limit).toBeCloseTo(20.25, 10)
    // a drop, even from an application-limited call: 20.25 × 0.5 + (20.25 × 0.5 + 2) × 0.5
    state = S.gradient(config, state, sample(100, 250, 1, true), 300)
    expect(state).toEqual({ limit: 16.1875, shortLatency: 125, longLatency: 125, samples: 4, changedAt: 300 })
    // application-limited (8 × 2 below 16.1875) and not dropped: the averages move, the limit does not
    state = S.gradient(config, state, sample(125, 300, 8), 400)
    expect(state).toEqual({ limit: 16.1875, shortLatency: 125, longLatency: 125, samples: 5, changedAt: 300 })
  })

  it("gradient: the tolerance lets the short-term latency rise that many times the long-term before the limit falls", () => {
    const config: S.GradientConfig = { ...gradient, tolerance: 2 }
    let state = S.initial(config)
    state = S.gradient(config, state, sample(100, 0, 20), 100)
    expect(state.limit).toBe(22)
    // latency doubles: 2 × long / short is still 1, the limit grows by the allowance again
    state = S.gradient(config, state, sample(200, 100, 22), 300)
    expect(state.limit).toBe(24)
  })

  it("gradient: a long-term latency more than twice the short-term one catches up faster (× 0.95), and never scales the limit above 1", () => {
    const config: S.GradientConfig = { ...gradient, smoothing: 0.5, longWindow: 3 }
    let state = S.gradient(config, S.initial(config), sample(400, 0, 20), 0)
    expect(state).toMatchObject({ limit: 21, shortLatency: 400, longLatency: 400 })
    // long: 400 + (100 - 400) / 2 = 250 > 2 × 100, so 250 × 0.95; the ratio 2.375 counts as 1
    state = S.gradient(config, state, sample(100, 0, 20), 100)
    expect(state).toMatchObject({ limit: 22, shortLatency: 100, longLatency: 237.5 })
    // exactly twice is not more than twice: 300 + (100 - 300) / 2 = 200 stays
    state = S.gradient(config, S.gradient(config, S.initial(config), sample(300, 0, 20), 0), sample(100, 0, 20), 100)
    expect(state.longLatency).toBe(200)
  })

  it("AIMD: exact limits and averages after a known sequence of samples", () => {
    const config: S.AimdConfig = {
      _tag: "aimd",
      minLimit: 2,
      maxLimit: 30,
      initialLimit: 10,
      backoffRatio: 0.75,
      increase: 3,
      slowLatency: 500
    }
    let state = S.initial(config)
    // 5 in flight of 10 is in use (5 × 2 is not below 10): + 3
    state = S.aimd(config, state, sample(100, 0, 5), 100)
    expect(state).toEqual({ limit: 13, shortLatency: 100, longLatency: 100, samples: 1, changedAt: 100 })
    // exactly slowLatency is slow: × 0.75; short over 10 samples, long over 600 round trips
    state = S.aimd(config, state, sample(500, 100, 7), 600)
    expect(state).toMatchObject({ limit: 9.75, samples: 2, changedAt: 600 })
    expect(state.shortLatency).toBeCloseTo(100 + 400 * (2 / 11), 10)
    expect(state.longLatency).toBeCloseTo(100 + 400 * (2 / 11) * (2 / 601), 10)
    // a drop from the same round does not cut again
    state = S.aimd(config, state, sample(100, 550, 3, true), 650)
    expect(state).toMatchObject({ limit: 9.75, samples: 3, changedAt: 600 })
    expect(S.update(config, state, sample(100, 600, 5, true), 700).limit).toBeCloseTo(9.75 * 0.75, 10)
  })

  it("both algorithms keep the limit within [minLimit, maxLimit] whatever the samples", () =>
    fc.assert(
      fc.property(
        fc.constantFrom<S.LimitConfig>(aimd, gradient),
        fc.array(
          fc.record({
            latency: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 10_000 })),
            inflight: fc.integer({ min: 1, max: 200 }),
            dropped: fc.boolean(),
            gap: fc.integer({ min: 0, max: 1000 })
          }),
          { maxLength: 200 }
        ),
        (config, samples) => {
          let state = S.initial(config)
          let now = 0
          for (const s of samples) {
            now += s.gap
            state = S.update(config, state, sample(s.latency, now - s.latency, s.inflight, s.dropped), now)
            if (!(state.limit >= config.minLimit && state.limit <= config.maxLimit)) return false
            if (!Number.isFinite(state.shortLatency) || !Number.isFinite(state.longLatency)) return false
          }
          return true
        }
      )
    ))
})
