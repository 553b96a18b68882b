import { Backoff } from '../../src'

const schedule = Backoff.exponential({ base: "100 millis" }).pipe(
  Backoff.limit({ maxDelay: "5 seconds", maxRetries: 8, maxElapsed: "1 minute" })
)
