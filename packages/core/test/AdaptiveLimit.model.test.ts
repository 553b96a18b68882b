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
