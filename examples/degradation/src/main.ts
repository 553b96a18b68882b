/**
 * Graceful degradation under injected faults.
 *
 * An inventory service is made flaky with `Chaos` (a seeded mix of failures, hangs and latency,
 * plus a scripted outage during the first second). Every lookup goes through one `Policy`:
 * per-attempt timeout, bulkhead, circuit breaker, retry and a fallback to a cached answer.
 * Waves of lookups run for about three seconds on the real clock; the demo prints what
 * happened to them, second by second, and how the breaker moved.
 */
import { Backoff, Bulkhead, Chaos, CircuitBreaker, Failure, Policy, Retry } from "@bulwark/core"
import { Console, Context, Data, Duration, Effect, Fiber, Layer, Logger, LogLevel, Schedule, Stream } from "effect"

class Unavailable extends Data.TaggedError("Unavailable")<{ readonly sku: string }> {}

class Inventory extends Context.Tag("Inventory")<Inventory, {
  readonly lookup: (sku: string) => Effect.Effect<number, Unavailable>
}>() {}

/** The healthy service: answers in 10 ms. */
const InventoryLive = Layer.succeed(Inventory, {
  lookup: (sku) => Effect.sleep("10 millis").pipe(Effect.as(sku.length * 7))
})

/** The same service with faults injected, reproducibly from the seed. */
const FlakyInventory = Chaos.layer(Inventory, InventoryLive, {
  seed: 2024,
  failureRate: 0.15,
  failure: () => new Unavailable({ sku: "?" }),
  hangRate: 0.03,
  latency: { min: "0 millis", max: "80 millis" },
  // every call fails during the first second after the first one: an outage the breaker must see
  outage: Schedule.forever.pipe(Schedule.upTo("1 second"))
})

const classifier = Failure.layerClassifier({
  tables: [Failure.table<Unavailable>({ Unavailable: "connection" })]
})

type Outcome = "live" | "fallback" | "rejected"

const program = Effect.gen(function*() {
  const inventory = yield* Inventory
  const breaker = yield* CircuitBreaker.make({
    name: "inventory",
    policy: CircuitBreaker.consecutive(5),
    openDuration: "500 millis",
    halfOpenProbes: 2,
    successThreshold: 2
  })
  const bulkhead = yield* Bulkhead.make({ name: "inventory", maxConcurrent: 6, maxQueued: 6, maxWait: "100 millis" })
  const lookup = Policy.make({
    name: "inventory",
    timeout: "150 millis",
    bulkhead: bulkhead.protect,
    breaker: breaker.protect,
    retry: Retry.policy({ maxRetries: 2, schedule: Backoff.exponential({ base: "20 millis", cap: "100 millis" }) }),
    totalTimeout: "600 millis",
    fallback: (failed) => Effect.succeed({ quantity: -1, reason: failed.classification.code })
  })

  const started = Date.now()
  const buckets = new Map<number, Record<Outcome, number>>()
  const reasons = new Map<string, number>()
  const record = (outcome: Outcome, reason?: string) => {
    const second = Math.floor((Date.now() - started) / 1000)
    const bucket = buckets.get(second) ?? { live: 0, fallback: 0, rejected: 0 }
    bucket[outcome]++
    buckets.set(second, bucket)
    if (reason !== undefined) reasons.set(reason, (reasons.get(reason) ?? 0) + 1)
  }

  const transitions = yield* breaker.changes.pipe(
    Stream.runForEach((t) =>
      Console.log(`  breaker: ${t.from} -> ${t.to} at ${String(Date.now() - started).padStart(4)} ms`)
    ),
    Effect.fork
  )

  const one = (sku: string) =>
    inventory.lookup(sku).pipe(
      lookup,
      Effect.matchEffect({
        onFailure: (error) => Effect.sync(() => record("rejected", error._tag)),
        onSuccess: (answer) =>
          Effect.sync(() => typeof answer === "number" ? record("live") : record("fallback", answer.reason))
      })
    )

  yield* Console.log("Waves of 12 lookups every 60 ms for 3 seconds:\n")
  const waves = []
  for (let wave = 0; wave < 50; wave++) {
    waves.push(
      yield* Effect.forEach(Array.from({ length: 12 }, (_, i) => `sku-${wave}-${i}`), one, {
        concurrency: "unbounded",
        discard: true
      }).pipe(Effect.fork)
    )
    yield* Effect.sleep("60 millis")
  }
  yield* Fiber.joinAll(waves)
  yield* Effect.sleep("50 millis")
  yield* Fiber.interrupt(transitions)

  yield* Console.log("\nsecond | answered live | from fallback | failed")
  for (const [second, b] of [...buckets].sort(([a], [b]) => a - b)) {
    yield* Console.log(
      `${String(second).padStart(6)} | ${String(b.live).padStart(13)} | ${String(b.fallback).padStart(13)} | ${
        String(b.rejected).padStart(6)
      }`
    )
  }
  yield* Console.log("\nwhy the fallback answered:")
  for (const [reason, n] of [...reasons].sort(([, a], [, b]) => b - a)) {
    yield* Console.log(`  ${reason.padEnd(24)} ${n}`)
  }
  const state = yield* bulkhead.state
  yield* Console.log(
    `\nbulkhead: ${state.admitted} admitted, rejected ${state.rejected.queue_full} (queue full) and ${state.rejected.wait_timeout} (wait timeout); now ${state.active} running, ${state.queued} waiting`
  )
  yield* Console.log(`breaker: ${yield* breaker.state} after ${Duration.format(Duration.millis(Date.now() - started))}`)
})

program.pipe(
  Effect.scoped,
  Effect.provide(Layer.mergeAll(FlakyInventory, classifier)),
  Logger.withMinimumLogLevel(LogLevel.None),
  Effect.runPromise
)
