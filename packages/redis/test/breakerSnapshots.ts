/** Snapshots for the shared breaker store's rule tests. */
import type { BreakerStore } from "@bulwark/core"

/** The origin the store puts on what it hands back, and this process's and another's breakers. */
export const STORE = "@bulwark/redis"
export const OWN = "local#1"
export const OTHER = "other#1"

/** A snapshot of `breaker` (`svc`) in `state` since `since`, from `origin` (an open lasts a minute). */
export const snap = (
  state: BreakerStore.BreakerState,
  since: number,
  origin: string,
  breaker = "svc"
): BreakerStore.Snapshot => ({
  version: 1,
  breaker,
  state,
  since,
  openUntil: state === "Open" ? since + 60_000 : null,
  opens: state === "Open" ? 1 : 0,
  origin
})
