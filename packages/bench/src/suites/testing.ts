import { Testing } from "@bulwark/core"
import { Effect, FastCheck as fc } from "effect"
import * as os from "node:os"
import { quick, scale, type Suite } from "../harness.js"

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
      // scripts per second over one pass through the 200 scripts, median of 7 passes: wall
      // clock, and CPU time (user + system), which a loaded machine inflates far less
      const median = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
      const lines = [
        "",
        `load average before: ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}`,
        "",
        "| subject | scripts / s (wall) | scripts / s (CPU time) |",
        "|---|---:|---:|"
      ]
      for (const [name, subject] of Object.entries(subjects)) {
        const runs = scale(scripts.length)
        const wall: Array<number> = []
        const cpu: Array<number> = []
        for (let pass = 0; pass < (quick ? 1 : 7); pass++) {
          const started = process.hrtime.bigint()
          const usage = process.cpuUsage()
          await play(subject)(runs)
          const used = process.cpuUsage(usage)
          wall.push(runs / (Number(process.hrtime.bigint() - started) / 1e9))
          cpu.push(runs / ((used.user + used.system) / 1e6))
        }
        lines.push(`| ${name} | ${Math.round(median(wall))} | ${Math.round(median(cpu))} |`)
      }
      lines.push("", `load average after: ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}`)
      return lines
    }
  }
]
