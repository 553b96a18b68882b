/**
 * Supervised market monitors with managed resources and a graceful shutdown.
 *
 * One monitor per market runs under a `FiberSupervisor`. Each opens its market feed as a managed
 * resource (`Cleanup.acquireRelease`: the close runs on success, failure, defect and
 * cancellation, bounded by a timeout) and reads it in an inner loop (`FiberSupervisor.loop`):
 * a dropped feed is recovered inside the loop, a malformed message is skipped, and a protocol
 * violation (not retryable) ends the run: the feed is closed and the supervisor restarts the
 * monitor with a fresh one. Once a second the program prints each monitor's metrics from the
 * supervisor's snapshot (status, restarts, errors, last error).
 *
 * SIGTERM or Ctrl-C (through `Main.run`) interrupts everything: the monitors stop in reverse start
 * order, every feed is closed, then the shared store; the process exits 0.
 *
 *   pnpm start                  # runs until SIGTERM / Ctrl-C
 *   pnpm start --duration 3     # stops by itself after 3 seconds (the same shutdown)
 */
import { Backoff, Cleanup, Failure, FiberSupervisor } from "@bulwark/core"
import { Main } from "@bulwark/node"
import { Console, Context, Data, Effect, Exit, Layer, Logger, LogLevel, Schedule } from "effect"

// -----------------------------------------------------------------------------
// command line
// -----------------------------------------------------------------------------

const flag = (name: string): string | undefined => {
  const at = process.argv.indexOf(`--${name}`)
  return at === -1 ? undefined : process.argv[at + 1]
}

const durationRaw = flag("duration")
const durationSeconds = durationRaw === undefined ? undefined : Number(durationRaw)
if (durationSeconds !== undefined && !(durationSeconds > 0)) {
  throw new RangeError(`--duration must be a number of seconds > 0, got ${durationRaw}`)
}

const markets = ["btc", "eth", "sol"] as const
type Market = typeof markets[number]

// -----------------------------------------------------------------------------
// the feeds and their failures
// -----------------------------------------------------------------------------

/** The feed dropped: reconnecting is worth it. */
class FeedDropped extends Data.TaggedClass("FeedDropped")<{ readonly market: Market }> {}
/** A message that is not a quote: skipped. */
class MalformedMessage extends Data.TaggedClass("MalformedMessage")<{ readonly market: Market }> {}
/** The exchange broke the protocol: this connection cannot be trusted any more. */
class ProtocolViolation extends Data.TaggedClass("ProtocolViolation")<{ readonly market: Market }> {}

const feedErrors = Failure.table<FeedDropped | MalformedMessage | ProtocolViolation>({
  FeedDropped: { category: "connection", severity: "minor" },
  MalformedMessage: "validation",
  ProtocolViolation: { category: "communication", strategy: "abandon", code: "PROTOCOL_VIOLATION" }
})

interface Feed {
  readonly id: number
  readonly market: Market
  readonly next: Effect.Effect<number, FeedDropped | MalformedMessage | ProtocolViolation>
}

let connections = 0
const openedBefore = new Set<Market>()
const received = new Map<Market, number>()

/**
 * A scripted feed: a quote every 100 ms; btc's feed drops on its 5th message, sol sends a
 * malformed message every 7th, and eth's first connection breaks the protocol on its 8th message.
 */
const openFeed = (market: Market): Effect.Effect<Feed> =>
  Effect.gen(function*() {
    const id = ++connections
    const firstOfItsMarket = !openedBefore.has(market)
    openedBefore.add(market)
    yield* Effect.sleep("20 millis")
    yield* Console.log(`opened feed ${market} (connection #${id})`)
    let messages = 0
    return {
      id,
      market,
      next: Effect.suspend((): Effect.Effect<number, FeedDropped | MalformedMessage | ProtocolViolation> => {
        messages++
        if (market === "btc" && messages === 5) return Effect.fail(new FeedDropped({ market }))
        if (market === "sol" && messages % 7 === 0) return Effect.fail(new MalformedMessage({ market }))
        if (market === "eth" && firstOfItsMarket && messages === 8) {
          return Effect.fail(new ProtocolViolation({ market }))
        }
        received.set(market, (received.get(market) ?? 0) + 1)
        return Effect.succeed(100 + Math.sin(messages) * 2).pipe(Effect.delay("100 millis"))
      })
    }
  })
/** The store the monitors write quotes to: one for the process, closed last. */
class QuoteStore extends Context.Tag("QuoteStore")<QuoteStore, {
  readonly write: (market: Market, price: number) => Effect.Effect<void>
}>() {}

const QuoteStoreLive = Layer.scoped(
  QuoteStore,
  Cleanup.acquireRelease(
    Console.log("opened quote store").pipe(Effect.as({ write: () => Effect.void })),
    () => Console.log("closed quote store"),
    { name: "quote store", releaseTimeout: "2 seconds" }
  )
)

// -----------------------------------------------------------------------------
// a monitor
// -----------------------------------------------------------------------------

const monitor = (market: Market) =>
  Effect.gen(function*() {
    const store = yield* QuoteStore
    // the feed is closed however this run ends: a failure, a defect, or the shutdown's interruption
    const feed = yield* Cleanup.acquireRelease(
      openFeed(market),
      (feed, exit) =>
        Console.log(
          `closed feed ${market} (connection #${feed.id}) after ${
            Exit.isSuccess(exit) ? "completion" : Exit.isInterrupted(exit) ? "interruption" : "a failure"
          }`
        ),
      { name: `feed ${market}`, releaseTimeout: "1 second" }
    )
    const readOne = feed.next.pipe(
      Effect.flatMap((price) => store.write(market, price)),
      // a malformed message is skipped: the loop does not even see it
      Effect.catchTag("MalformedMessage", () => Effect.logWarning(`skipped a malformed ${market} message`))
    )
    yield* FiberSupervisor.loop(readOne, {
      classify: feedErrors,
      schedule: Backoff.exponential({ base: "100 millis", cap: "1 second" })
    })
  }).pipe(Effect.scoped)

// -----------------------------------------------------------------------------
// the program
// -----------------------------------------------------------------------------

const printMetrics = (label: string) =>
  Effect.gen(function*() {
    const snapshot = yield* FiberSupervisor.snapshot
    const cells = snapshot.children.map((c) =>
      `${c.name} ${c.status} msgs=${received.get(c.name.replace("monitor-", "") as Market) ?? 0} ` +
      `restarts=${c.restarts} errors=${c.errors}${c.lastError === undefined ? "" : ` last=${c.lastError.code}`}`
    )
    yield* Console.log(`[${label}] ${cells.join(" | ")}`)
  })

const program = Effect.gen(function*() {
  yield* Console.log(
    `market monitor: one supervised monitor per market (${markets.join(", ")}); ` +
      (durationSeconds === undefined ? "runs until SIGTERM or Ctrl-C" : `stops after ${durationSeconds} s`)
  )
  for (const market of markets) {
    yield* FiberSupervisor.spawn(`monitor-${market}`, monitor(market))
  }
  yield* Console.log("all monitors started")
  // runs first when main is interrupted, while the monitors still run
  yield* Effect.addFinalizer(() =>
    Console.log("shutting down: stopping the monitors in reverse start order").pipe(
      Effect.zipRight(printMetrics("final"))
    )
  )
  let second = 0
  const report = Effect.repeat(
    Effect.gen(function*() {
      second++
      yield* printMetrics(`${String(second).padStart(3)}s`)
    }).pipe(Effect.delay("1 second")),
    durationSeconds === undefined ? Schedule.forever : Schedule.recurs(Math.max(0, Math.ceil(durationSeconds) - 1))
  )
  yield* report
}).pipe(
  Effect.scoped,
  FiberSupervisor.supervised,
  Effect.provide(FiberSupervisor.layer({
    name: "market-agents",
    intensity: { maxRestarts: 5, within: "10 seconds" },
    restartSchedule: Backoff.exponential({ base: "200 millis", cap: "5 seconds" }),
    shutdownTimeout: "3 seconds"
  })),
  Effect.provide(Layer.merge(QuoteStoreLive, Failure.layerClassifier({ tables: [feedErrors] }))),
  Logger.withMinimumLogLevel(LogLevel.Warning)
)

Main.run(program, { name: "market-monitor", gracePeriod: "10 seconds" })
