/**
 * A pool of workers behind one circuit breaker, driven by the failure decision matrix.
 *
 * Requests go to a pool of three workers. Every failure a worker reports is classified by one
 * `Failure.table` into the pool's taxonomy (connection, communication, resource, external …),
 * and the decision matrix's strategy for its category decides what happens next:
 *
 * - `immediate_retry` / `backoff_retry` → `Retry` tries again (on the next worker);
 * - `circuit_break` → no retry: the failure counts against the pool's `CircuitBreaker`, which
 *   opens after three in a row and rejects calls until a probe finds the pool healthy again;
 * - `failover` (and a rejection by the open breaker) → `Fallback` sends the request to the
 *   fallback worker.
 *
 * Every stage runs in a span (`Telemetry.stage`) exported through `Telemetry.layer`; at the end
 * the program prints what the spans recorded and the `bulwark_*` metrics.
 *
 *   pnpm start                   # 40 requests, one every 100 ms
 *   pnpm start --requests 30     # shorter
 *   pnpm start --verbose         # with the toolkit's own logs (retries, breaker, fallback)
 */
import { Backoff, CircuitBreaker, Failure, Fallback, Retry } from "@bulwark/core"
import { Main, Telemetry } from "@bulwark/node"
import { Console, Data, Effect, Fiber, Logger, LogLevel, Metric, MetricState, Stream } from "effect"

// -----------------------------------------------------------------------------
// command line
// -----------------------------------------------------------------------------

const flag = (name: string): string | undefined => {
  const at = process.argv.indexOf(`--${name}`)
  return at === -1 ? undefined : process.argv[at + 1]
}

const requestsRaw = flag("requests") ?? "40"
const requests = Number(requestsRaw)
if (!Number.isInteger(requests) || requests < 1) {
  throw new RangeError(`--requests must be a whole number >= 1, got ${requestsRaw}`)
}
const verbose = process.argv.includes("--verbose")

// -----------------------------------------------------------------------------
// the pool and its failures
// -----------------------------------------------------------------------------

/** A worker's process exited under the request. */
class PortExited extends Data.TaggedError("PortExited")<{ readonly worker: string }> {}
/** A reply could not be decoded. */
class DecodeFailed extends Data.TaggedError("DecodeFailed")<{ readonly worker: string }> {}
/** No worker could be checked out: the pool is exhausted. */
class CheckoutFailed extends Data.TaggedError("CheckoutFailed")<{ readonly reason: string }> {}
/** The worker's own code raised: another worker would raise too, the fallback may not. */
class WorkerException
  extends Data.TaggedError("WorkerException")<{ readonly worker: string; readonly detail: string }>
{}

type PoolError = PortExited | DecodeFailed | CheckoutFailed | WorkerException

/** The pool's errors in the taxonomy; the matrix gives each category its strategy and budget. */
const poolErrors = Failure.table<PoolError>({
  PortExited: "connection", // major, backoff_retry, 5 retries
  DecodeFailed: "communication", // major, immediate_retry, 3 retries
  CheckoutFailed: "resource", // critical, circuit_break
  WorkerException: "external" // major, failover
})

const workers = ["worker-1", "worker-2", "worker-3"] as const
let nextWorker = 0
const failedOnce = new Set<string>()

/**
 * One request on the next worker (round robin). Scripted: request 3 loses its worker's port
 * once, request 6 gets an undecodable reply once, request 9 raises inside the worker, and the
 * pool is exhausted for requests 14 to 24.
 */
const onPool = (request: number): Effect.Effect<string, PoolError> =>
  Effect.suspend((): Effect.Effect<string, PoolError> => {
    const worker = workers[nextWorker++ % workers.length]!
    const once = (key: string) => !failedOnce.has(key) && failedOnce.add(key) !== undefined
    if (request >= 14 && request <= 24) return Effect.fail(new CheckoutFailed({ reason: "all workers busy" }))
    if (request === 3 && once("3")) return Effect.fail(new PortExited({ worker }))
    if (request === 6 && once("6")) return Effect.fail(new DecodeFailed({ worker }))
    if (request === 9) return Effect.fail(new WorkerException({ worker, detail: "KeyError: 'prompt'" }))
    return Effect.succeed(worker).pipe(Effect.delay("5 millis"))
  })

/** The fallback worker: slower and simpler, but independent of the pool. */
const onFallbackWorker = Effect.succeed("fallback-worker").pipe(Effect.delay("20 millis"))

// -----------------------------------------------------------------------------
// telemetry: a span processor that tallies the stages' spans
// -----------------------------------------------------------------------------

type SpanProcessor = NonNullable<Telemetry.Options["spanProcessors"]>[number]

const spanTally = new Map<string, { spans: number; failed: Map<string, number> }>()

/** Counts ended spans by name, and the failed ones by the classification recorded on them. */
const tally: SpanProcessor = {
  onStart: () => {},
  onEnd: (span) => {
    const entry = spanTally.get(span.name) ?? { spans: 0, failed: new Map<string, number>() }
    entry.spans++
    const code = span.attributes["bulwark.code"]
    if (typeof code === "string") {
      const key = `${code} (${String(span.attributes["bulwark.strategy"])})`
      entry.failed.set(key, (entry.failed.get(key) ?? 0) + 1)
    }
    spanTally.set(span.name, entry)
  },
  forceFlush: () => Promise.resolve(),
  shutdown: () => Promise.resolve()
}

const printTelemetry = Effect.gen(function*() {
  yield* Console.log("\nspans (Telemetry.stage, through the OpenTelemetry SDK):")
  for (const [name, entry] of spanTally) {
    const failed = [...entry.failed].map(([key, n]) => `${n}× ${key}`).join(", ")
    yield* Console.log(
      `  ${name.padEnd(16)} ${String(entry.spans).padStart(3)} span(s)${failed ? `; failed: ${failed}` : ""}`
    )
  }
  yield* Console.log("\nmetrics (bulwark_* counters):")
  const lines: Array<string> = []
  for (const pair of yield* Metric.snapshot) {
    const name = pair.metricKey.name
    if (!name.startsWith("bulwark_") || !MetricState.isCounterState(pair.metricState)) continue
    const count = Number(pair.metricState.count)
    if (count === 0) continue
    const labels = pair.metricKey.tags.map((t) => `${t.key}=${t.value}`).join(",")
    lines.push(`  ${name}{${labels}} ${count}`)
  }
  for (const line of lines.sort()) yield* Console.log(line)
})

// -----------------------------------------------------------------------------
// the program
// -----------------------------------------------------------------------------

const program = Effect.gen(function*() {
  const breaker = yield* CircuitBreaker.make({
    name: "pool",
    policy: CircuitBreaker.consecutive(3),
    openDuration: "500 millis",
    halfOpenProbes: 1,
    successThreshold: 1
  })
  // the matrix decides: only the retrying strategies are retried here; circuit_break is left to
  // the breaker and failover to the fallback worker
  const retry = Retry.policy<PoolError | CircuitBreaker.CircuitOpenError>({
    name: "pool",
    while: (_error, c) => c.strategy === "immediate_retry" || c.strategy === "backoff_retry",
    schedules: {
      connection: Backoff.exponential({ base: "20 millis", cap: "200 millis" }),
      communication: Backoff.fromDelays([0, 10, 20])
    }
  })
  const failover = (failed: Fallback.Failed) =>
    Console.log(
      `        failover: ${failed.classification.code} (${failed.classification.category}, ` +
        `${failed.classification.strategy}) -> fallback worker`
    ).pipe(Effect.zipRight(onFallbackWorker.pipe(Telemetry.stage("fallback-worker"))))

  // what the matrix says about each failure, as it happens
  const explain = (error: PoolError) =>
    Effect.flatMap(
      Failure.classify(error),
      (c) => Console.log(`        ${error._tag}: ${c.code} is ${c.category} -> ${c.strategy}`)
    )

  const handle = (request: number) =>
    onPool(request).pipe(
      Effect.tapError(explain),
      Telemetry.stage("worker"),
      breaker.protect,
      Telemetry.stage("breaker"),
      Retry.retry(retry),
      Telemetry.stage("retry"),
      Fallback.orElse(failover, {
        name: "pool",
        when: (_error, c) => c.strategy === "failover" || c.strategy === "circuit_break"
      }),
      Telemetry.stage("pool")
    )

  yield* Console.log(
    `worker pool: ${requests} requests, one every 100 ms, to 3 workers behind one breaker ` +
      `(opens after 3 failures in a row, probes after 500 ms); faults: port exit (#3), bad reply (#6), ` +
      `worker exception (#9), pool exhausted (#14-#24)\n`
  )
  const transitions = yield* breaker.changes.pipe(
    Stream.runForEach((t) => Console.log(`        breaker "${t.breaker}": ${t.from} -> ${t.to}`)),
    Effect.fork
  )
  const served = new Map<string, number>()
  for (let request = 1; request <= requests; request++) {
    const answer = yield* handle(request).pipe(
      Effect.catchAll((error) => Effect.succeed(`failed: ${error._tag}`))
    )
    served.set(answer, (served.get(answer) ?? 0) + 1)
    yield* Console.log(`#${String(request).padStart(2)} -> ${answer}`)
    yield* Effect.sleep("100 millis")
  }
  yield* Fiber.interrupt(transitions)
  yield* Console.log(`\nserved by: ${[...served].map(([by, n]) => `${by} ${n}`).join(", ")}`)
  yield* Console.log(`breaker "pool" ends ${yield* breaker.state}`)
  yield* printTelemetry
}).pipe(
  Effect.scoped,
  Logger.withMinimumLogLevel(verbose ? LogLevel.Info : LogLevel.None),
  Effect.provide(Failure.layerClassifier({ tables: [poolErrors] })),
  Effect.provide(Telemetry.layer({ serviceName: "worker-pool", spanProcessors: [tally] }))
)

Main.run(program, { name: "worker-pool" })
