import * as Duration from "effect/Duration"

/**
 * Decodes a duration option to milliseconds, or `NaN` when it is not a duration. Unlike
 * `Duration.decode`, a negative number is not clamped to zero: it is a mistake worth naming, so
 * it decodes to `NaN` too. Callers check the range they need and name the field.
 */
export const toMillis = (input: unknown): number => {
  if (typeof input === "number" && !(input >= 0)) return Number.NaN
  const decoded = Duration.decodeUnknown(input)
  return decoded._tag === "None" ? Number.NaN : Duration.toMillis(decoded.value)
}
