/**
 * The evaluation of the adaptive limit against fixed bulkheads, on a simulated dependency.
 *
 * The dependency is a processor-sharing queue driven by `Clock`: a call that starts while `n`
 * calls are in flight takes `base × max(1, n / capacity)`, so latency is flat up to the
 * capacity (the knee) and grows linearly beyond it, while throughput stays at
 * `capacity / base`. Its capacity falls from 40 to 15 half way through the run. Callers arrive
 * at 50 per second (more than either capacity) and give up after 1.5 s (a timeout the
 * simulation enforces on its tick, so the run costs one `TestClock` step per tick).
 *
 * Goodput is the calls that succeeded (all within the 1.5 s objective) per second of the run.
 * The numbers printed here are the ones docs/adaptive-limits.md reports.
 */
import { AdaptiveLimit, Bulkhead, Timeout } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Clock, Duration, Effect, TestClock } from "effect"

const tickMillis = 100
const baseMillis = 1000
const timeoutMillis = 1500
const arrivalsPerTick = 5
const phaseMillis = 45_000
const capacityAt = (now: number) => (now < phaseMillis ? 40 : 15)

interface Dependency {
  readonly call: Effect.Effect<void, Timeout.TimeoutError>
  /** Finishes the calls due at `now`: those done, and those past the caller's timeout. */
  readonly tick: (now: number) => void
}

const makeDependency = (): Dependency => {
  let inflight = 0
  const pending = new Set<{
    readonly startedAt: number
    readonly finishAt: number
    readonly resume: (effect: Effect.Effect<void, Timeout.TimeoutError>) => void
  }>()
  const timedOut = Effect.fail(new Timeout.TimeoutError({ duration: Duration.millis(timeoutMillis) }))
  return {
    call: Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.async<void, Timeout.TimeoutError>((resume) => {
        inflight++
        const entry = { startedAt: now, finishAt: now + baseMillis * Math.max(1, inflight / capacityAt(now)), resume }
        pending.add(entry)
        return Effect.sync(() => {
          if (pending.delete(entry)) inflight--
        })
      })),
    tick: (now) => {
      for (const entry of pending) {
        const late = now - entry.startedAt >= timeoutMillis && entry.finishAt > entry.startedAt + timeoutMillis
        if (late || entry.finishAt <= now) {
          pending.delete(entry)
          inflight--
          entry.resume(late ? timedOut : Effect.void)
        }
      }
    }
  }
}

type Policy = <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | Bulkhead.BulkheadRejectedError, R>

interface Contender {
  readonly label: string
  readonly protect: Policy
  readonly limit: Effect.Effect<number>
}

interface Result {
  readonly label: string
  readonly goodput: number
  readonly p50: number
  readonly p99: number
  readonly rejected: number
  readonly timedOut: number
  /** The limit once a second. */
  readonly limits: ReadonlyArray<number>
}

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!

/** Runs every contender against its own copy of the dependency, in one simulated timeline. */
const simulate = (contenders: ReadonlyArray<Contender>) =>
  Effect.gen(function*() {
    const runs = contenders.map((contender) => ({
      contender,
      dependency: makeDependency(),
      latencies: [] as Array<number>,
      rejected: 0,
      timedOut: 0,
      limits: [] as Array<number>
    }))
    const totalMillis = 2 * phaseMillis
    for (let now = 0; now < totalMillis; now += tickMillis) {
      if (now > 0) yield* TestClock.adjust(Duration.millis(tickMillis))
      for (const run of runs) {
        run.dependency.tick(now)
        if (now % 1000 === 0) run.limits.push(yield* run.contender.limit)
        for (let i = 0; i < arrivalsPerTick; i++) {
          yield* run.contender.protect(run.dependency.call).pipe(
            Effect.zipRight(Clock.currentTimeMillis),
            Effect.match({
              onSuccess: (end) => run.latencies.push(end - now),
              onFailure: (error) => error._tag === "BulkheadRejectedError" ? run.rejected++ : run.timedOut++
            }),
            Effect.fork
          )
        }
      }
    }
    return runs.map((run): Result => {
      const sorted = run.latencies.sort((a, b) => a - b)
      return {
        label: run.contender.label,
        goodput: run.latencies.length / (totalMillis / 1000),
        p50: percentile(sorted, 0.5),
        p99: percentile(sorted, 0.99),
        rejected: run.rejected,
        timedOut: run.timedOut,
        limits: run.limits
      }
    })
  })

const mean = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0) / xs.length

describe("AdaptiveLimit evaluation", () => {
  it.scoped(
    "settles near the knee, follows a fall in capacity, and beats every fixed bulkhead on goodput",
    () =>
      Effect.gen(function*() {
        const fixedSizes = [10, 20, 30, 40, 80]
        const fixed = yield* Effect.forEach(fixedSizes, (size) =>
          Effect.map(
            Bulkhead.make({ name: `fixed-${size}`, maxConcurrent: size }),
            (bulkhead): Contender => ({
              label: `fixed ${size}`,
              protect: bulkhead.protect,
              limit: Effect.succeed(size)
            })
          ))
        const adaptive = (label: string, algorithm: AdaptiveLimit.Algorithm) =>
          Effect.map(
            AdaptiveLimit.make({ name: label, algorithm, initialLimit: 20 }),
            (limiter): Contender => ({
              label,
              protect: limiter.protect,
              limit: Effect.map(limiter.state, (s) => s.limit)
            })
          )
        const gradient = yield* adaptive("gradient", AdaptiveLimit.gradient())
        const aimd = yield* adaptive("aimd", AdaptiveLimit.aimd())
        const aimdSlow = yield* adaptive("aimd (slow ≥ 1.25 s)", AdaptiveLimit.aimd({ slowLatency: "1250 millis" }))
        const results = yield* simulate([gradient, aimd, aimdSlow, ...fixed])

        const table = results.map((r) =>
          `| ${r.label} | ${r.goodput.toFixed(1)} | ${r.p50} | ${r.p99} | ${r.rejected} | ${r.timedOut} |`
        )
        console.log(
          [
            "| contender | goodput (calls/s) | p50 (ms) | p99 (ms) | rejected | timed out |",
            "|---|---|---|---|---|---|",
            ...table
          ].join("\n")
        )
        const [g] = results
        console.log(`gradient limit, once every 5 s: ${g!.limits.filter((_, i) => i % 5 === 0).join(", ")}`)

        // settles near the knee (40), then near the new knee (15) after the fall
        const phase1 = mean(g!.limits.slice(30, 45))
        const phase2 = mean(g!.limits.slice(75, 90))
        expect(phase1).toBeGreaterThanOrEqual(0.8 * 40)
        expect(phase1).toBeLessThanOrEqual(1.5 * 40)
        expect(phase2).toBeGreaterThanOrEqual(0.8 * 15)
        expect(phase2).toBeLessThanOrEqual(1.5 * 15)
        // beats every fixed size on goodput, with every success inside the objective
        for (const r of results.slice(3)) expect(g!.goodput).toBeGreaterThan(r.goodput)
        expect(g!.p99).toBeLessThanOrEqual(timeoutMillis)
      }),
    60_000
  )
})
