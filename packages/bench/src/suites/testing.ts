import { Testing } from "@bulwark/core"
import { Effect, FastCheck as fc } from "effect"
import { scale, type Suite } from "../harness.js"

/** The same 200 scripts for every case (up to 8 calls each, from one fixed seed). */
const scripts = fc.sample(Testing.Arbitrary.script({ maxCalls: 8 }), { numRuns: 200, seed: 42 })

const subjects = {
  "no policy": Testing.policy({}),
  "timeout + retry": Testing.policy({ timeout: "1 second", retry: { maxRetries: 2 } }),
  "timeout + retry + breaker + bulkhead": Testing.policy({
    timeout: "1 second",
    retry: { maxRetries: 2 },
    breaker: { halfOpenProbes: 1 },
    bulkhead: { name: "bench", maxConcurrent: 4, maxQueued: 8 }
  })
}

/** Plays `n` scripts (cycling through the sample) through the subject, one run each. */
const play = (subject: (typeof subjects)[keyof typeof subjects]) => (n: number): Promise<void> =>
  Effect.runPromise(
    Effect.gen(function*() {
      for (let i = 0; i < n; i++) yield* Testing.runScript(subject, scripts[i % scripts.length]!)
    })
  )

export const suites: ReadonlyArray<Suite> = [
  {
    name: "testing: Testing.runScript, one script per op (up to 8 calls each)",
    baseline: "no policy",
    iterations: 200,
    cases: Object.entries(subjects).map(([name, subject]) => ({ name, run: play(subject) })),
    extra: async () => {
      const lines = ["", "| subject | scripts / s |", "|---|---:|"]
      for (const [name, subject] of Object.entries(subjects)) {
        const start = process.hrtime.bigint()
        const runs = scale(400)
        await play(subject)(runs)
        const seconds = Number(process.hrtime.bigint() - start) / 1e9
        lines.push(`| ${name} | ${Math.round(runs / seconds)} |`)
      }
      return lines
    }
  }
]
