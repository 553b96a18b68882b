import { Backoff, Testing } from '../../src'

const schedule = Backoff.fullJitter({ base: "100 millis", cap: "10 seconds" }).pipe(Backoff.limit({ maxRetries: 5 }))
const check = Testing.scheduleLaws(schedule, { maxDelay: "10 seconds", maxRetries: 5 })
// in a test: it.effect("backoff keeps its caps", () => check)
