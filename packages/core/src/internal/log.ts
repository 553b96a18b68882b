/**
 * Logs whose message and annotations are built only when the entry is kept: a fiber whose
 * minimum log level is above the entry's (a test run with logs dropped, an app at `Warning`)
 * pays one fiber-ref read, not the message's formatting. The rule is the fiber's own: an entry is
 * dropped when the minimum level is greater than its level.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as LogLevel from "effect/LogLevel"

/** Logs `message()` at `level` with `annotations()`, building both only when the entry is kept. */
export const lazily = (
  level: LogLevel.LogLevel,
  message: () => string,
  annotations?: () => Record<string, unknown>
): Effect.Effect<void> =>
  Effect.withFiberRuntime((fiber) => {
    if (LogLevel.greaterThan(fiber.getFiberRef(FiberRef.currentMinimumLogLevel), level)) return Effect.void
    const logged = Effect.logWithLevel(level, message())
    return annotations === undefined ? logged : Effect.annotateLogs(logged, annotations())
  })
