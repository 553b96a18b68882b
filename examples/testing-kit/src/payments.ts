/**
 * The code under test: a payments client's backoff and resilience policy, as an application
 * would define them. The tests in ../test check them with the testing kit.
 */
import { Backoff, CircuitBreaker, Testing } from "@bulwark/core"

/** Full jitter from 100 ms, never above 5 s a delay, at most 5 retries, none after 20 s. */
export const paymentsBackoff = Backoff.fullJitter({ base: "100 millis", cap: "5 seconds" }).pipe(
  Backoff.limit({ maxRetries: 5, maxElapsed: "20 seconds" })
)

/** The stages of the payments policy, as options, so a test can build a fresh one per run. */
export const paymentsPolicy: Testing.PolicyOptions = {
  name: "payments",
  timeout: "2 seconds",
  retry: { maxRetries: 3, schedule: paymentsBackoff },
  breaker: { policy: CircuitBreaker.consecutive(3), openDuration: "10 seconds", halfOpenProbes: 1 },
  bulkhead: { maxConcurrent: 4, maxQueued: 8 }
}
