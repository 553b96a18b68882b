import { Backoff } from '../../src'

// 100ms, 200ms, 400ms … never more than 10s
const schedule = Backoff.exponential({ base: "100 millis", cap: "10 seconds" })
