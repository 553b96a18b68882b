/**
 * Quickstart: a flaky upstream, a client behind one Policy, and the dashboard, for ~30 seconds.
 *
 * An HTTP upstream runs in this process; `Chaos` changes its latency and failure rate over time
 * (healthy → slow → outage → recovery). Supervised clients call it over real HTTP through one
 * `Policy`: a per-attempt timeout, retries drawn from a retry budget, a circuit breaker, a
 * bulkhead and a fallback to the last good quote. The `HealthServer` serves `/status`,
 * `/metrics` and a live dashboard; one status line per second shows what the toolkit's own
 * metrics say, and a summary closes the run (at the end, or on Ctrl-C / SIGTERM).
 *
 *     pnpm demo                      # ~30 s
 *     pnpm demo -- --duration 10     # a shorter run: the fault schedule scales with it
 *     pnpm demo -- --port 9464       # the dashboard on a fixed port (default: a free one)
 */
import {
  Backoff,
  Bulkhead,
  Chaos,
  CircuitBreaker,
  Failure,
  FiberSupervisor,
  Policy,
  Retry,
  RetryBudget
} from "@bulwark/core"
import { HealthServer, Main, Status } from "@bulwark/node"
import { HttpClient, HttpRouter, HttpServerResponse } from "@effect/platform"
import { NodeHttpClient, NodeHttpServer } from "@effect/platform-node"
import {
  Clock,
  Console,
  Data,
  Duration,
  Effect,
  Layer,
  Logger,
  LogLevel,
  Metric,
  MetricState,
  Ref,
  Schema
} from "effect"
import * as Http from "node:http"

// -----------------------------------------------------------------------------
// command line
// -----------------------------------------------------------------------------

const usage = "usage: quickstart [--duration <seconds>] [--port <port>]"

const parseArgs = (argv: ReadonlyArray<string>): { readonly seconds: number; readonly port: number } => {
  let seconds = 30
  let port = 0
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]
    const value = argv[i + 1]
    if (flag === "--") continue
    if (flag === "--duration" || flag === "--port") {
      const n = Number(value)
      i++
      if (flag === "--duration") {
        if (!(Number.isFinite(n) && n >= 4 && n <= 3600)) fail(`--duration must be a number of seconds in [4, 3600]`)
        seconds = n
      } else {
        if (!(Number.isInteger(n) && n >= 0 && n <= 65535)) fail(`--port must be an integer in [0, 65535]`)
        port = n
      }
    } else {
      fail(`unknown argument ${JSON.stringify(flag)}`)
    }
  }
  return { seconds, port }
}

function fail(message: string): never {
  process.stderr.write(`quickstart: ${message}\n${usage}\n`)
  process.exit(2)
}

// -----------------------------------------------------------------------------
// the upstream: an HTTP server whose faults follow a schedule
// -----------------------------------------------------------------------------

class Injected extends Data.TaggedError("Injected")<{}> {}

interface Phase {
  readonly name: string
  /** Where the phase ends, as a fraction of the run. */
  readonly until: number
  readonly says: string
  readonly chaos: Chaos.Options<Injected>
}

const injected = () => new Injected()

/** The fault schedule, scaled to the run's length. */
const phases: ReadonlyArray<Phase> = [
  {
    name: "healthy",
    until: 0.15,
    says: "answers in 5-20 ms, 1% errors",
    chaos: { seed: 1, failureRate: 0.01, failure: injected, latency: { min: "5 millis", max: "20 millis" } }
  },
  {
    name: "slow",
    until: 0.35,
    says: "answers in 150-1100 ms (the slowest hit the 1 s timeout), 2% errors",
    chaos: { seed: 2, failureRate: 0.02, failure: injected, latency: { min: "150 millis", max: "1100 millis" } }
  },
  {
    name: "outage",
    until: 0.65,
    says: "every request fails fast with 503",
    chaos: { seed: 3, failureRate: 1, failure: injected, latency: "2 millis" }
  },
  {
    name: "recovery",
    until: 1,
    says: "healthy again: 5-20 ms, 1% errors",
    chaos: { seed: 4, failureRate: 0.01, failure: injected, latency: { min: "5 millis", max: "20 millis" } }
  }
]

/** Serves `GET /quote` on a free local port; each request gets the faults of the phase it falls in. */
const startUpstream = (startedAt: number, runMillis: number) =>
  Effect.gen(function*() {
    const injectors = phases.map((phase) => ({ phase, inject: Chaos.inject(phase.chaos) }))
    const current = Effect.map(Clock.currentTimeMillis, (now) => {
      const at = (now - startedAt) / runMillis
      return injectors.find(({ phase }) => at < phase.until) ?? injectors[injectors.length - 1]!
    })
    const quote = Effect.flatMap(current, ({ inject }) =>
      Effect.sync(() =>
        HttpServerResponse.unsafeJson({ symbol: "ACME", price: 100 + Math.round(Math.random() * 500) / 100 })
      )
        .pipe(
          inject,
          Effect.catchTag("Injected", () =>
            Effect.succeed(HttpServerResponse.text("upstream outage", { status: 503 })))
        ))
    const server = yield* NodeHttpServer.make(() =>
      Http.createServer(), { host: "127.0.0.1", port: 0 })
    yield* server.serve(HttpRouter.empty.pipe(HttpRouter.get("/quote", quote)))
    const address = server.address
    return address._tag === "TcpAddress" ? `http://127.0.0.1:${address.port}` : `unix:${address.path}`
  })

// -----------------------------------------------------------------------------
// the client: one Policy around a real HTTP call
// -----------------------------------------------------------------------------

class UpstreamUnavailable extends Data.TaggedError("UpstreamUnavailable")<{ readonly status: number }> {}
class UpstreamUnreachable extends Data.TaggedError("UpstreamUnreachable")<{ readonly reason: string }> {}
type UpstreamError = UpstreamUnavailable | UpstreamUnreachable

const upstreamErrors = Failure.table<UpstreamError>({
  UpstreamUnavailable: { category: "connection", code: "UPSTREAM_UNAVAILABLE" },
  UpstreamUnreachable: { category: "connection", code: "UPSTREAM_UNREACHABLE" }
})

const Quote = Schema.Struct({ symbol: Schema.String, price: Schema.Number })

const WORKERS = 6

/** The settings printed at the start and used below. */
const settings = (openDuration: Duration.Duration) => ({
  timeout: "1 second",
  totalTimeout: "3 seconds",
  retry: { maxRetries: 2, base: "100 millis", cap: "400 millis", budgetRatio: 0.2 },
  breaker: { size: 20, minimumCalls: 10, rateThreshold: 0.5, openDuration, halfOpenProbes: 2, successThreshold: 2 },
  bulkhead: { maxConcurrent: 4, maxQueued: 2, maxWait: "100 millis" }
} as const)

// -----------------------------------------------------------------------------
// reading the toolkit's own numbers
// -----------------------------------------------------------------------------

/** The sum of a counter over every series carrying `tags`. */
const counter = (name: string, tags: Record<string, string>) =>
  Effect.map(Metric.snapshot, (pairs) => {
    let total = 0
    for (const pair of pairs) {
      if (pair.metricKey.name !== name || !MetricState.isCounterState(pair.metricState)) continue
      const labels = pair.metricKey.tags
      if (Object.entries(tags).every(([key, value]) => labels.some((l) => l.key === key && l.value === value))) {
        total += Number(pair.metricState.count)
      }
    }
    return total
  })

interface Reading {
  readonly at: number
  readonly state: CircuitBreaker.State
  readonly ok: number
  readonly failed: number
  readonly rejected: number
  readonly fallback: number
  readonly retries: number
  readonly restarts: number
  readonly transitions: ReadonlyArray<{ readonly from: string; readonly to: string; readonly at: number }>
}

const zero: Omit<Reading, "at" | "state" | "transitions"> = {
  ok: 0,
  failed: 0,
  rejected: 0,
  fallback: 0,
  retries: 0,
  restarts: 0
}

const pad = (n: number, width: number) => String(n).padStart(width)

// -----------------------------------------------------------------------------
// the program
// -----------------------------------------------------------------------------

const program = (seconds: number) =>
  Effect.gen(function*() {
    const runMillis = seconds * 1000
    // the breaker stays open for 6% of the run (0.5 s to 2 s), so it probes several times per outage
    const openDuration = Duration.millis(Math.min(2000, Math.max(500, Math.round(runMillis * 0.06))))
    const config = settings(openDuration)

    // the dashboard first: its URL is the first line
    const status = yield* Status.Status
    const dashboard = yield* HealthServer.HealthServer
    yield* Console.log(`Dashboard: ${dashboard.url}/  (also ${dashboard.url}/status and ${dashboard.url}/metrics)`)

    const startedAt = yield* Clock.currentTimeMillis
    const upstream = yield* startUpstream(startedAt, runMillis)

    const breaker = yield* CircuitBreaker.make({
      name: "upstream",
      policy: CircuitBreaker.countWindow({
        size: config.breaker.size,
        minimumCalls: config.breaker.minimumCalls,
        rateThreshold: config.breaker.rateThreshold
      }),
      openDuration: config.breaker.openDuration,
      halfOpenProbes: config.breaker.halfOpenProbes,
      successThreshold: config.breaker.successThreshold
    })
    const bulkhead = yield* Bulkhead.make({ name: "upstream", ...config.bulkhead })
    const budget = yield* RetryBudget.make({ name: "upstream", ratio: config.retry.budgetRatio })
    yield* status.trackBreaker(breaker)
    yield* status.trackBulkhead(bulkhead)
    yield* status.trackRetryBudget(budget)

    const lastGood = yield* Ref.make(100)
    const quotes = Policy.make({
      name: "quotes",
      timeout: config.timeout,
      bulkhead: bulkhead.protect,
      breaker: breaker.protect,
      retry: Retry.policy<UpstreamError>({
        maxRetries: config.retry.maxRetries,
        schedule: Backoff.exponential({ base: config.retry.base, cap: config.retry.cap }),
        budget,
        classify: upstreamErrors
      }),
      totalTimeout: config.totalTimeout,
      fallback: Effect.map(Ref.get(lastGood), (price) => ({ symbol: "ACME", price, stale: true }))
    })

    const client = (yield* HttpClient.HttpClient).pipe(HttpClient.filterStatusOk)
    const fetchQuote = client.get(`${upstream}/quote`).pipe(
      Effect.flatMap((response) => response.json),
      Effect.flatMap(Schema.decodeUnknown(Quote)),
      Effect.tap((quote) => Ref.set(lastGood, quote.price)),
      Effect.map((quote) => ({ ...quote, stale: false })),
      Effect.catchTags({
        ResponseError: (e) => Effect.fail(new UpstreamUnavailable({ status: e.response.status })),
        RequestError: (e) => Effect.fail(new UpstreamUnreachable({ reason: e.reason })),
        ParseError: (e) => Effect.die(e)
      }),
      Effect.scoped
    )
    // every attempt's decision is in the metrics and on the dashboard: keep the terminal quiet
    const callOnce = quotes(fetchQuote).pipe(Effect.asVoid, Logger.withMinimumLogLevel(LogLevel.None))

    // ---- the first lines say what is about to happen ----
    const at = (fraction: number) => `${(seconds * fraction).toFixed(1).replace(/\.0$/, "")}s`
    yield* Console.log(`Bulwark quickstart: ${WORKERS} supervised clients call ${upstream}/quote for ${seconds}s.`)
    yield* Console.log(`Fault schedule (Chaos, scaled to the run):`)
    let from = 0
    for (const phase of phases) {
      yield* Console.log(`  ${`${at(from)}-${at(phase.until)}`.padEnd(12)} ${phase.name.padEnd(9)} ${phase.says}`)
      from = phase.until
    }
    yield* Console.log(
      `Policy "quotes": timeout ${config.timeout} per attempt, ${config.totalTimeout} in all; ` +
        `retry ${config.retry.maxRetries}x (backoff ${config.retry.base}..${config.retry.cap}, budget ${
          config.retry.budgetRatio * 100
        }% of calls);`
    )
    yield* Console.log(
      `  breaker opens at ${config.breaker.rateThreshold * 100}% failures over ${config.breaker.size} calls, ` +
        `stays open ${Duration.format(openDuration)}, closes after ${config.breaker.successThreshold} good probes; ` +
        `bulkhead ${config.bulkhead.maxConcurrent} running + ${config.bulkhead.maxQueued} waiting; fallback: last good quote.`
    )
    yield* Console.log(`Each line: what happened in that second (calls ok / failed / rejected / fallback, retries).`)

    // ---- the clients, supervised ----
    const supervisor = yield* FiberSupervisor.FiberSupervisor
    for (let i = 1; i <= WORKERS; i++) {
      yield* supervisor.spawn(`client-${i}`, FiberSupervisor.loop(callOnce, { interval: "100 millis" }))
    }

    // ---- the numbers, read from the breaker, the metrics and the status registry ----
    const read: Effect.Effect<Reading> = Effect.gen(function*() {
      const m = yield* breaker.metrics
      const snapshot = yield* status.snapshot
      const bulkheads = snapshot.bulkheads.find((b) => b.name === "upstream")
      const breakers = snapshot.breakers.find((b) => b.name === "upstream")
      return {
        at: snapshot.checkedAt.getTime(),
        state: m.state,
        ok: m.successes,
        failed: m.failures,
        rejected: m.rejections + (bulkheads === undefined
          ? 0
          : bulkheads.rejected.queue_full + bulkheads.rejected.wait_timeout),
        fallback: yield* counter("bulwark_fallback_total", { operation: "quotes", outcome: "succeeded" }),
        retries: yield* counter("bulwark_retry_retries_total", { operation: "quotes" }),
        restarts: snapshot.supervisors.flatMap((s) => s.children).reduce((n, c) => n + c.restarts, 0),
        transitions: breakers?.transitions ?? []
      }
    })

    const phaseAt = (millis: number) => {
      const fraction = (millis - startedAt) / runMillis
      return (phases.find((p) => fraction < p.until) ?? phases[phases.length - 1]!).name
    }
    const line = (previous: Reading, now: Reading) => {
      const moved = now.transitions.filter((t) => t.at > previous.at).map((t) => `${t.from}→${t.to}`)
      return `${pad(Math.round((now.at - startedAt) / 1000), 3)}s  ${phaseAt(now.at).padEnd(9)} breaker ${
        now.state.padEnd(8)
      } ok ${pad(now.ok - previous.ok, 3)}  failed ${pad(now.failed - previous.failed, 3)}  rejected ${
        pad(now.rejected - previous.rejected, 3)
      }  fallback ${pad(now.fallback - previous.fallback, 3)}  retries ${
        pad(now.retries - previous.retries, 3)
      }  restarts ${pad(now.restarts, 1)}${moved.length > 0 ? `  (${moved.join(", ")})` : ""}`
    }

    const first = yield* read
    const start: Reading = { ...first, ...zero, transitions: [], at: startedAt }
    const last = yield* Ref.make(start)

    const summary = Effect.gen(function*() {
      const end = yield* read
      const opened = end.transitions.filter((t) => t.to === "Open").length
      const closed = end.transitions.filter((t) => t.from !== "Closed" && t.to === "Closed").length
      const answered = end.ok + end.fallback
      yield* Console.log(
        `Summary after ${Duration.format(Duration.millis(Math.round((end.at - startedAt) / 100) * 100))}: ` +
          `${answered} calls answered, ${end.ok} live and ${end.fallback} from the fallback; ` +
          `${end.failed} failed attempt(s), ${end.retries} retries, ${end.rejected} rejected without calling ` +
          `(breaker open or bulkhead full); breaker opened ${opened}x, closed again ${closed}x, ends ${end.state}; ` +
          `client restarts ${end.restarts}.`
      )
    })

    const tick = Effect.gen(function*() {
      const now = yield* read
      const previous = yield* Ref.getAndSet(last, now)
      yield* Console.log(line(previous, now))
    })

    yield* Effect.gen(function*() {
      // one line per second, until the run is over
      const lines = Math.floor(seconds)
      for (let i = 1; i <= lines; i++) {
        const now = yield* Clock.currentTimeMillis
        yield* Effect.sleep(Duration.millis(Math.max(0, startedAt + i * 1000 - now)))
        yield* tick
      }
      const now = yield* Clock.currentTimeMillis
      yield* Effect.sleep(Duration.millis(Math.max(0, startedAt + runMillis - now)))
    }).pipe(
      // the clients stop before the upstream closes, then the summary reads the final numbers
      Effect.ensuring(Effect.zipRight(supervisor.shutdown, summary))
    )
  })

// -----------------------------------------------------------------------------
// main
// -----------------------------------------------------------------------------

const { port, seconds } = parseArgs(process.argv.slice(2))

const Observability = HealthServer.layer({ port }).pipe(
  Layer.provideMerge(Status.layer({ service: "quickstart" })),
  Layer.provideMerge(FiberSupervisor.layer({ name: "clients" }))
)

Main.run(
  program(seconds).pipe(
    FiberSupervisor.supervised,
    Effect.scoped,
    Effect.provide(Layer.mergeAll(Observability, NodeHttpClient.layer)),
    Logger.withMinimumLogLevel(LogLevel.Warning)
  ),
  { name: "quickstart", gracePeriod: "5 seconds" }
)
