import { describe, expect, it } from "@effect/vitest"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as Smoke from "../../smoke/run.js"

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

/** Runs the example to its end as a real child process. */
const run = (...args: ReadonlyArray<string>) => Smoke.run(dir, args)

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
