import { Bulkhead, CircuitBreaker, Policy, Retry, Timeout } from "@bulwark/core"
import {
  bulkhead as cockatielBulkhead,
  circuitBreaker as cockatielBreaker,
  ConsecutiveBreaker,
  ConstantBackoff,
  fallback as cockatielFallback,
  handleAll,
  retry as cockatielRetry,
  timeout as cockatielTimeout,
  TimeoutStrategy,
  wrap
} from "cockatiel"
import { Effect, Fiber, Scope } from "effect"
import Opossum from "opossum"
import type { Suite } from "../harness.js"
import { loop, loopAsync, loopTryPromise } from "./retry.js"

const ok = Effect.succeed(1)

const bulkhead = Effect.runSync(Bulkhead.make({ name: "bench", maxConcurrent: 10, maxQueued: 10 }))
const semaphore = Effect.runSync(Effect.makeSemaphore(10))
const cockatielBh = cockatielBulkhead(10, 10)
const cockatielTo = cockatielTimeout(10_000, TimeoutStrategy.Cooperative)
const value = () => 1
// full bulkheads: one slot held forever, no queue
const full = Effect.runSync(Bulkhead.make({ name: "bench-full", maxConcurrent: 1 }))
// a wait that never ends and, unlike Effect.never, keeps no timer that would hold the process open
Effect.runFork(full.protect(Effect.async<never>(() => {})))
const fullCockatiel = cockatielBulkhead(1, 0)
void fullCockatiel.execute(() => new Promise<never>(() => {}))
const promised = () => Promise.resolve(1)
// opossum has no timeout of its own: its breaker times each call out (10 s by default)
const opossumTimeout = new Opossum(promised, { resetTimeout: 60_000 })

// a full stack: fallback, retry, breaker, bulkhead (and per-attempt timeout), nothing failing
const stackBulkhead = Effect.runSync(Bulkhead.make({ name: "bench-stack", maxConcurrent: 10, maxQueued: 10 }))
const stackBreaker = Effect.runSync(
  Scope.extend(CircuitBreaker.make({ name: "bench-stack" }), Effect.runSync(Scope.make()))
)
const policyStack = Policy.make({
  bulkhead: stackBulkhead.protect,
  breaker: stackBreaker.protect,
  retry: Retry.policy({ maxRetries: 3 }),
  fallback: Effect.succeed(0)
})
const policyStackTimeout = Policy.make({
  timeout: "10 seconds",
  bulkhead: stackBulkhead.protect,
  breaker: stackBreaker.protect,
  retry: Retry.policy({ maxRetries: 3 }),
  fallback: Effect.succeed(0)
})
const cockatielStack = wrap(
  cockatielFallback(handleAll, 0),
  cockatielRetry(handleAll, { maxAttempts: 3, backoff: new ConstantBackoff(100) }),
  cockatielBreaker(handleAll, { halfOpenAfter: 60_000, breaker: new ConsecutiveBreaker(5) }),
  cockatielBulkhead(10, 10)
)
const cockatielStackTimeout = wrap(
  cockatielFallback(handleAll, 0),
  cockatielRetry(handleAll, { maxAttempts: 3, backoff: new ConstantBackoff(100) }),
  cockatielBreaker(handleAll, { halfOpenAfter: 60_000, breaker: new ConsecutiveBreaker(5) }),
  cockatielBulkhead(10, 10),
  cockatielTimeout(10_000, TimeoutStrategy.Cooperative)
)

// one run for the bulkhead and the whole Policy against their floor (`Effect.exit`: any wrapper
// that sees the outcome) and cockatiel: `pnpm bench degradation`
const oneBulkhead = Effect.runSync(Bulkhead.make({ name: "bench-one", maxConcurrent: 10, maxQueued: 10 }))
const oneCockatielBh = cockatielBulkhead(10, 10)
const oneStackBulkhead = Effect.runSync(Bulkhead.make({ name: "bench-one-stack", maxConcurrent: 10, maxQueued: 10 }))
const oneStackBreaker = Effect.runSync(
  Scope.extend(CircuitBreaker.make({ name: "bench-one-stack" }), Effect.runSync(Scope.make()))
)
const onePolicy = Policy.make({
  bulkhead: oneStackBulkhead.protect,
  breaker: oneStackBreaker.protect,
  retry: Retry.policy({ maxRetries: 3 }),
  fallback: Effect.succeed(0)
})
const oneCockatielStack = wrap(
  cockatielFallback(handleAll, 0),
  cockatielRetry(handleAll, { maxAttempts: 3, backoff: new ConstantBackoff(100) }),
  cockatielBreaker(handleAll, { halfOpenAfter: 60_000, breaker: new ConsecutiveBreaker(5) }),
  cockatielBulkhead(10, 10)
)

// the cheapest Effect 3 program that takes a slot and gives it back whatever interrupts the call:
// admit inside the mask, run the work with the caller's interruptibility under one handler
const passOutcome = { onSuccess: Effect.succeed, onFailure: Effect.failCause }
const slotFloor = Effect.uninterruptibleMask((restore) => Effect.matchCauseEffect(restore(ok), passOutcome))

export const suites: ReadonlyArray<Suite> = [
  {
    name: "bulkhead: uncontended admit",
    baseline: "bare yield*",
    iterations: 20_000,
    cases: [
      { name: "bare yield*", run: loop(ok) },
      { name: "Bulkhead.protect", run: loop(bulkhead.protect(ok)) },
      { name: "semaphore.withPermits(1)", run: loop(semaphore.withPermits(1)(ok)) },
      { name: "bare await fn()", run: loopAsync(promised) },
      { name: "cockatiel bulkhead.execute", run: loopAsync(() => cockatielBh.execute(value)) },
      {
        name: "Effect.tryPromise(() => cockatiel bulkhead.execute(fn))",
        run: loopTryPromise(() => cockatielBh.execute(value))
      }
    ]
  },
  {
    name: "degradation: bulkhead and Policy, success path",
    baseline: "bare yield*",
    iterations: 20_000,
    cases: [
      { name: "bare yield*", run: loop(ok) },
      { name: "Effect.exit (floor of a wrapper that sees the outcome)", run: loop(Effect.exit(ok)) },
      {
        name: "uninterruptibleMask + matchCauseEffect(restore(work)) (floor of a slot kept through interruption)",
        run: loop(slotFloor)
      },
      { name: "Bulkhead.protect", run: loop(oneBulkhead.protect(ok)) },
      { name: "Policy.make(fallback, retry, breaker, bulkhead)", run: loop(ok.pipe(onePolicy)) },
      { name: "bare await fn()", run: loopAsync(promised) },
      { name: "cockatiel bulkhead.execute", run: loopAsync(() => oneCockatielBh.execute(value)) },
      {
        name: "cockatiel wrap(fallback, retry, breaker, bulkhead)",
        run: loopAsync(() => oneCockatielStack.execute(value))
      }
    ]
  },
  {
    name: "bulkhead: full, rejection",
    baseline: "bare yield*",
    iterations: 20_000,
    cases: [
      { name: "bare yield*", run: loop(ok) },
      { name: "Bulkhead.protect, rejected", run: loop(Effect.either(full.protect(ok))) },
      {
        name: "cockatiel bulkhead.execute, rejected",
        run: loopAsync(() => fullCockatiel.execute(value).catch(() => 0))
      },
      {
        name: "Effect.tryPromise(() => cockatiel bulkhead.execute(fn)), rejected",
        run: loop(Effect.either(Effect.tryPromise(() => fullCockatiel.execute(value))))
      }
    ]
  },
  {
    name: "timeout: success path",
    baseline: "bare yield*",
    iterations: 2_000,
    cases: [
      { name: "bare yield*", run: loop(ok) },
      { name: "Timeout.timeout", run: loop(ok.pipe(Timeout.timeout("10 seconds"))) },
      { name: "Effect.timeout", run: loop(Effect.timeout(ok, "10 seconds")) },
      // the floor of any design that runs the work in a fiber of its own
      { name: "Effect.fork + Fiber.await", run: loop(Effect.flatMap(Effect.fork(ok), Fiber.await)) },
      { name: "cockatiel timeout.execute", run: loopAsync(() => cockatielTo.execute(value)) },
      {
        name: "Effect.tryPromise(() => cockatiel timeout.execute(fn))",
        run: loopTryPromise(() => cockatielTo.execute(value))
      },
      {
        name: "Effect.tryPromise(() => opossum fire()) (breaker with its 10 s timeout)",
        run: loopTryPromise(() => opossumTimeout.fire())
      }
    ]
  },
  {
    name: "policy: full stack, success path",
    baseline: "bare yield*",
    iterations: 2_000,
    cases: [
      { name: "bare yield*", run: loop(ok) },
      { name: "Policy.make(fallback, retry, breaker, bulkhead)", run: loop(ok.pipe(policyStack)) },
      { name: "Policy.make(… + timeout)", run: loop(ok.pipe(policyStackTimeout)) },
      { name: "bare await fn()", run: loopAsync(promised) },
      {
        name: "cockatiel wrap(fallback, retry, breaker, bulkhead)",
        run: loopAsync(() => cockatielStack.execute(value))
      },
      {
        name: "cockatiel wrap(… + timeout)",
        run: loopAsync(() => cockatielStackTimeout.execute(value))
      },
      {
        name: "Effect.tryPromise(() => cockatiel wrap(fallback, retry, breaker, bulkhead).execute(fn))",
        run: loopTryPromise(() => cockatielStack.execute(value))
      },
      {
        name: "Effect.tryPromise(() => cockatiel wrap(… + timeout).execute(fn))",
        run: loopTryPromise(() => cockatielStackTimeout.execute(value))
      }
    ]
  }
]
