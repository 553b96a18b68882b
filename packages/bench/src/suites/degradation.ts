import { Bulkhead, Timeout } from "@bulwark/core"
import { bulkhead as cockatielBulkhead, timeout as cockatielTimeout, TimeoutStrategy } from "cockatiel"
import { Effect } from "effect"
import type { Suite } from "../harness.js"
import { loop } from "./retry.js"

const ok = Effect.succeed(1)

/** Awaits `fn` n times in a row: the per-call cost for a Promise-based library. */
const awaitLoop = (fn: () => Promise<unknown>) => async (n: number): Promise<void> => {
  for (let i = 0; i < n; i++) await fn()
}

const bulkhead = Effect.runSync(Bulkhead.make({ name: "bench", maxConcurrent: 10, maxQueued: 10 }))
const semaphore = Effect.runSync(Effect.makeSemaphore(10))
const cockatielBh = cockatielBulkhead(10, 10)
const cockatielTo = cockatielTimeout(10_000, TimeoutStrategy.Cooperative)
const value = () => 1
const promised = () => Promise.resolve(1)

export const suites: ReadonlyArray<Suite> = [
  {
    name: "bulkhead: uncontended admit",
    baseline: "bare yield*",
    iterations: 20_000,
    cases: [
      { name: "bare yield*", run: loop(ok) },
      { name: "Bulkhead.protect", run: loop(bulkhead.protect(ok)) },
      { name: "semaphore.withPermits(1)", run: loop(semaphore.withPermits(1)(ok)) },
      { name: "bare await fn()", run: awaitLoop(promised) },
      { name: "cockatiel bulkhead.execute", run: awaitLoop(() => cockatielBh.execute(value)) }
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
      { name: "cockatiel timeout.execute", run: awaitLoop(() => cockatielTo.execute(value)) }
    ]
  }
]
