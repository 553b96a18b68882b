import { Testing } from '../../src'
import { Effect } from "effect"

const subject = Testing.policy({ timeout: "1 second", retry: { maxRetries: 2 }, breaker: { halfOpenProbes: 1 } })
const script: Testing.Script = {
  calls: [
    { at: 0, outcomes: [{ _tag: "Failure", category: "connection", latency: 10 }] },
    { at: 100, outcomes: [{ _tag: "Hang" }] }
  ],
  seed: 1
}
const program = Effect.gen(function*() {
  const timeline = yield* Testing.runScript(subject, script)
  yield* Testing.check(timeline)
})
