import { Bulkhead, CircuitBreaker, Policy, Retry } from "@bulwark/core"
import {
  bulkhead as cockatielBulkhead,
  circuitBreaker as cockatielBreaker,
  ConsecutiveBreaker,
  ConstantBackoff,
  handleAll,
  retry as cockatielRetry,
  wrap
} from "cockatiel"
import { Effect, Scope } from "effect"
import { scale, type Suite } from "../harness.js"

/**
 * 10,000 calls in flight at once through one policy (breaker + bulkhead of 100 + retry), against
 * the same calls without a policy. The work is one turn of the event loop: a promise resolved by
 * `setImmediate` (and the same callback resumes the Effect), so both sides wait on the same
 * macrotask, there is no 1 ms timer clamp (`setTimeout(0)`, hence `Effect.sleep(0)`, waits ≥ 1 ms
 * and would drown the policy's cost), and nothing in the work itself depends on the runtime.
 */
const calls = 10_000

const work = Effect.async<number>((resume) => {
  setImmediate(() => resume(Effect.succeed(1)))
})
const workAsync = () => new Promise<number>((resolve) => setImmediate(() => resolve(1)))

const now = () => performance.now() * 1e6

const scope = Effect.runSync(Scope.make())
// room for every call: 100 run, the rest wait
const bulkhead = Effect.runSync(Bulkhead.make({ name: "bench-concurrent", maxConcurrent: 100, maxQueued: calls }))
const breaker = Effect.runSync(Scope.extend(CircuitBreaker.make({ name: "bench-concurrent" }), scope))
const policy = Policy.make({
  bulkhead: bulkhead.protect,
  breaker: breaker.protect,
  retry: Retry.policy({ maxRetries: 3 })
})
const cockatiel = wrap(
  cockatielRetry(handleAll, { maxAttempts: 3, backoff: new ConstantBackoff(100) }),
  cockatielBreaker(handleAll, { halfOpenAfter: 60_000, breaker: new ConsecutiveBreaker(5) }),
  cockatielBulkhead(100, calls)
)

/** `n` fibers, all started at once, each timing its own call. */
const fibers = <E>(call: Effect.Effect<number, E>) => (n: number): Promise<ReadonlyArray<number>> => {
  const latencies = new Float64Array(n)
  const timed = (i: number) =>
    Effect.suspend(() => {
      const start = now()
      return Effect.map(call, () => {
        latencies[i] = now() - start
      })
    })
  return Effect.runPromise(
    Effect.forEach(Array.from({ length: n }, (_, i) => i), timed, {
      concurrency: "unbounded",
      discard: true
    }) as Effect.Effect<void>
  ).then(() => Array.from(latencies))
}

/** `n` promises, all started at once, each timing its own call. */
const promises = (call: () => Promise<number>) => async (n: number): Promise<ReadonlyArray<number>> => {
  const latencies = new Float64Array(n)
  await Promise.all(Array.from({ length: n }, async (_, i) => {
    const start = now()
    await call()
    latencies[i] = now() - start
  }))
  return Array.from(latencies)
}

export const suites: ReadonlyArray<Suite> = [
  {
    name: `concurrent: ${scale(calls).toLocaleString("en")} calls at once through breaker + bulkhead(100) + retry`,
    baseline: "fibers: no policy",
    iterations: calls,
    cases: [
      { name: "fibers: no policy", run: fibers(work) },
      { name: "fibers: Bulwark Policy.make(retry, breaker, bulkhead)", run: fibers(policy(work)) },
      {
        name: "fibers: Effect.tryPromise(() => cockatiel wrap(retry, breaker, bulkhead).execute(fn))",
        run: fibers(Effect.tryPromise(() => cockatiel.execute(workAsync)))
      },
      { name: "promises: no policy", run: promises(workAsync) },
      {
        name: "promises: cockatiel wrap(retry, breaker, bulkhead).execute(fn)",
        run: promises(() => cockatiel.execute(workAsync))
      }
    ]
  }
]
