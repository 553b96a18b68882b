// Shared with @bulwark/node and @bulwark/redis through the package's one exported internal path
// ("@bulwark/core/internal/duration"); every other internal module stays private.
import * as Duration from "effect/Duration"

const isNegative = (input: unknown): boolean => {
  switch (typeof input) {
    case "number":
      return !(input >= 0)
    case "bigint":
      return input < 0n
    case "string":
      // `Duration.decodeUnknown` reads no leading blanks: " -5 seconds" is NaN either way
      return input.startsWith("-")
    default:
      // a tuple decodes only when both parts are numbers: any other part is NaN either way
      return Array.isArray(input) && input.some((part) => !(part >= 0))
  }
}

/**
 * Decodes a duration option to milliseconds, or `NaN` when it is not a duration. Unlike
 * `Duration.decode`, a negative value is not clamped to zero — whether written as a number, a
 * bigint, a string (`"-5 seconds"`) or an `[seconds, nanos]` tuple: it is a mistake worth
 * naming, so it decodes to `NaN` too. Callers check the range they need and name the field.
 */
export const toMillis = (input: unknown): number => {
  if (isNegative(input)) return Number.NaN
  let decoded: ReturnType<typeof Duration.decodeUnknown>
  try {
    decoded = Duration.decodeUnknown(input)
  } catch {
    return Number.NaN
  }
  return decoded._tag === "None" ? Number.NaN : Duration.toMillis(decoded.value)
}
