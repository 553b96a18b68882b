/**
 * The pure rule of the resource monitor: which level a usage ratio puts a resource at, given the
 * level it was at (hysteresis). Free of Effect so a model test can drive it directly.
 */

export type Level = "ok" | "warning" | "degraded" | "critical"

export const levels: ReadonlyArray<Level> = ["ok", "warning", "degraded", "critical"]

export interface Thresholds {
  readonly warning: number
  readonly degraded: number
  readonly critical: number
}

export const rank = (level: Level): number => levels.indexOf(level)

/** The highest level whose threshold the ratio reaches (thresholds are inclusive). */
export const levelFor = (ratio: number, t: Thresholds): Level =>
  ratio >= t.critical ? "critical" : ratio >= t.degraded ? "degraded" : ratio >= t.warning ? "warning" : "ok"

/**
 * The next level: up at once when a threshold is reached; down only once the ratio is below the
 * threshold of the current level by more than `hysteresis`, so a value hovering at a threshold
 * does not flap.
 */
export const next = (current: Level, ratio: number, t: Thresholds, hysteresis: number): Level => {
  const raised = levelFor(ratio, t)
  if (rank(raised) >= rank(current)) return raised
  const held = levelFor(ratio + hysteresis, t)
  return rank(held) < rank(current) ? held : current
}

export const validate = (t: Thresholds, hysteresis: number, where: string): void => {
  for (const key of ["warning", "degraded", "critical"] as const) {
    const v = t[key]
    if (!(v > 0 && v <= 1)) throw new RangeError(`${where}: ${key} must be a ratio in (0, 1], got ${v}`)
  }
  if (!(t.warning <= t.degraded && t.degraded <= t.critical)) {
    throw new RangeError(
      `${where}: thresholds must rise: warning (${t.warning}) <= degraded (${t.degraded}) <= critical (${t.critical})`
    )
  }
  if (!(hysteresis >= 0 && hysteresis < 1)) {
    throw new RangeError(`${where}: hysteresis must be in [0, 1), got ${hysteresis}`)
  }
}
