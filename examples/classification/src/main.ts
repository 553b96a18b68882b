/**
 * Classification: classify a service's errors once, then let Retry decide what to do with each.
 *
 * A flaky quote service fails in three different ways. The table below tells Bulwark what each
 * failure is; Retry then retries the connection error with backoff, honours the rate limiter's
 * Retry-After hint, and gives up at once on a bad request. Every attempt is printed.
 */
import { Backoff, Failure, Retry } from "@bulwark/core"
import { Console, Data, Duration, Effect, Logger, LogLevel } from "effect"

class ConnectionRefused extends Data.TaggedError("ConnectionRefused")<{ readonly host: string }> {}
class RateLimited extends Data.TaggedError("RateLimited")<{ readonly retryAfterMs: number }> {}
class BadRequest extends Data.TaggedError("BadRequest")<{ readonly reason: string }> {}
type QuoteError = ConnectionRefused | RateLimited | BadRequest

// One table for the whole union: leaving a tag out is a compile error.
const quoteErrors = Failure.table<QuoteError>({
  ConnectionRefused: "connection",
  RateLimited: (e) => ({ category: "resource", strategy: "backoff_retry", maxRetries: 3, retryAfter: e.retryAfterMs }),
  BadRequest: { category: "validation", code: "BAD_QUOTE_REQUEST" }
})

/** A service that answers after failing in the given ways, printing every attempt. */
const flakyQuote = (symbol: string, failures: ReadonlyArray<QuoteError>) => {
  let attempt = 0
  const started = Date.now()
  const call = Effect.suspend(() => {
    attempt++
    const elapsed = `${String(Date.now() - started).padStart(5)} ms`
    const failure = failures[attempt - 1]
    if (failure !== undefined) {
      return Console.log(`  [${symbol}] attempt ${attempt} at ${elapsed}: fails with ${failure._tag}`).pipe(
        Effect.zipRight(Effect.fail(failure))
      )
    }
    return Console.log(`  [${symbol}] attempt ${attempt} at ${elapsed}: ok`).pipe(Effect.as(100 + attempt))
  })
  return { call, attempts: () => attempt }
}

// Short delays so the demo runs in a few seconds; production code would keep the matrix's.
const policy = Retry.policy<QuoteError>({
  name: "quotes",
  schedule: Backoff.exponential({ base: "200 millis", cap: "2 seconds" })
})

const scenario = (title: string, symbol: string, failures: ReadonlyArray<QuoteError>) =>
  Effect.gen(function*() {
    yield* Console.log(`\n${title}`)
    const quote = flakyQuote(symbol, failures)
    const result = yield* quote.call.pipe(Retry.retry(policy), Effect.either)
    if (result._tag === "Right") {
      yield* Console.log(`  → ${symbol} = ${result.right}`)
    } else {
      // classified at the attempt it gave up on, as Retry did: escalation included
      const classified = yield* Failure.toExecutionError(result.left, {
        correlationId: `quote-${symbol}`,
        context: { attempt: quote.attempts() }
      })
      yield* Console.log(`  → gave up: ${JSON.stringify(Failure.encodeExecutionError(classified))}`)
    }
  })

const program = Effect.gen(function*() {
  yield* Console.log("Bulwark classification: classification-driven retry")
  yield* scenario("1. Connection refused twice, then success (retried with backoff):", "ACME", [
    new ConnectionRefused({ host: "quotes.internal" }),
    new ConnectionRefused({ host: "quotes.internal" })
  ])
  yield* scenario("2. Rate limited with Retry-After: 1s (the hint beats the 200 ms backoff):", "GLOBEX", [
    new RateLimited({ retryAfterMs: 1000 })
  ])
  yield* scenario("3. A bad request is not retryable (one attempt, then a classified error):", "???", [
    new BadRequest({ reason: "unknown symbol" })
  ])
  yield* scenario("4. The connection never comes back (attempt 4 escalates to critical and is abandoned):", "INITECH", [
    new ConnectionRefused({ host: "quotes.internal" }),
    new ConnectionRefused({ host: "quotes.internal" }),
    new ConnectionRefused({ host: "quotes.internal" }),
    new ConnectionRefused({ host: "quotes.internal" }),
    new ConnectionRefused({ host: "quotes.internal" })
  ])
  yield* Console.log(`\nDone in ${Duration.format(Duration.millis(Math.round(performance.now())))} of process time.`)
})

// A compact one-line logger for the terminal; the annotations (attempt, delay, category, code)
// are there for structured loggers such as Logger.json.
const compact = Logger.make(({ logLevel, message }) =>
  globalThis.console.log(
    `    ${logLevel.label.padEnd(5)} ${Array.isArray(message) ? message.join(" ") : String(message)}`
  )
)

program.pipe(
  Effect.provide(Failure.layerClassifier({ tables: [quoteErrors] })),
  Effect.provide(Logger.replace(Logger.defaultLogger, compact)),
  Logger.withMinimumLogLevel(LogLevel.Info),
  Effect.runPromise
).catch((error) => {
  console.error(error)
  process.exit(1)
})
