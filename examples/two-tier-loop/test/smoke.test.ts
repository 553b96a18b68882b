import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const tsx = path.resolve(dir, "../../node_modules/.bin/tsx")

interface Ran {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs the example as a child process, as a user would, and collects what it printed. */
const run = (...args: ReadonlyArray<string>): Promise<Ran> =>
  new Promise((resolve, reject) => {
    const child = spawn(tsx, ["--conditions=source", "src/main.ts", ...args], { cwd: dir, env: process.env })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk) => (stdout += String(chunk)))
    child.stderr.on("data", (chunk) => (stderr += String(chunk)))
    child.on("error", reject)
    child.on("close", (code) => resolve({ code, stdout, stderr }))
  })

describe("two-tier-loop example", () => {
  it("recovers transient failures inside the loop and exits 0", async () => {
    const { code, stderr, stdout } = await run("--duration", "5")
    expect(stderr).not.toContain("FATAL")
    expect(stdout).toContain(`Program "meter-poller" failed on attempt 1 (LINK_DOWN); retrying in 100ms`)
    expect(stdout).toContain(`Program "meter-poller" failed on attempt 2 (LINK_DOWN); retrying in 200ms`)
    expect(stdout).toContain(`Program "meter-poller" failed on attempt 1 (READ_TIMED_OUT); retrying in 100ms`)
    // readings go on after the failures: the loop was never restarted
    expect(stdout).toContain("reading: 1015.0 kWh")
    expect(stdout).toMatch(
      /summary: program "meter-poller" running, 3 failure\(s\) recovered inside the loop, 0 restart\(s\)/
    )
    expect(code).toBe(0)
  })

  it("ends with a FATAL banner and exit code 1 when the loop meets a defect", async () => {
    const { code, stderr, stdout } = await run("--duration", "30", "--crash-after", "6")
    // the reads before the defect were handled by the inner tier
    expect(stdout).toContain("failed on attempt 2 (LINK_DOWN)")
    expect(stdout).toContain(`FATAL: Program "meter-poller" of supervisor "two-tier-loop" terminated by a defect`)
    expect(stderr).toContain(`FATAL: "two-tier-loop" stopped: a supervisor escalated`)
    expect(stderr).toContain("is not valid JSON")
    expect(stdout).not.toContain("summary:")
    expect(code).toBe(1)
  })
})
