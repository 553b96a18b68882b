import * as Fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"
import * as Smoke from "../../smoke/run.js"

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

/** Starts the service as a real child process. */
const start = (args: ReadonlyArray<string>) => Smoke.start(dir, args)

const metricsLines = (lines: ReadonlyArray<string>) => lines.filter((l) => l.startsWith("metrics: "))
const spoolOf = (lines: ReadonlyArray<string>) => lines.find((l) => l.startsWith("spool: created "))!.slice(15)

/** The cleanup ran: the pending records were flushed and the spool directory is gone. */
const expectCleanedUp = (lines: ReadonlyArray<string>) => {
  const spool = spoolOf(lines)
  expect(lines.some((l) => /^cleanup: flushed \d+ pending records to the spool$/.test(l))).toBe(true)
  expect(lines).toContain(`cleanup: removed the spool directory ${spool}`)
  expect(Fs.existsSync(spool)).toBe(false)
}

describe("examples/fail-fast-service", () => {
  it("a background fiber's defect stops the process: FATAL banner, cleanup, exit code 1", async () => {
    const run = start(["--crash-after", "1"])
    const { code } = await run.exit
    expect(code).toBe(1)
    const stderr = run.stderr()
    expect(stderr).toContain("FATAL: \"fail-fast-service\" stopped: a supervisor escalated")
    expect(stderr).toContain("exit code 1: the process stops so that it can be restarted")
    expect(stderr).toContain("program \"batch-processor\" died with a defect")
    expect(stderr).toContain("InvalidDataFormat")
    // the other background fibers were stopped, then the resources were cleaned up
    expect(run.lines).toContain("health-check: interrupted, stopped cleanly")
    expect(run.lines).toContain("metrics-reporter: interrupted, stopped cleanly")
    expectCleanedUp(run.lines)
  })

  it("SIGTERM stops every background fiber, runs the cleanup and exits 0", async () => {
    const run = start([])
    await run.waitFor((lines) => metricsLines(lines).length >= 2)
    run.signal("SIGTERM")
    const { code } = await run.exit
    expect(code).toBe(0)
    expect(run.stderr()).toContain("SIGTERM received; shutting down")
    expect(run.stderr()).not.toContain("FATAL")
    for (const fiber of ["batch-processor", "health-check", "metrics-reporter"]) {
      expect(run.lines).toContain(`${fiber}: interrupted, stopped cleanly`)
    }
    expectCleanedUp(run.lines)
  })

  it("for contrast, the same defect in a plain forked fiber dies silently: the process stays up, doing nothing", async () => {
    const run = start(["--crash-after", "1", "--unsupervised"])
    // the processor died, yet the service keeps running and reporting that nothing happens
    await run.waitFor((lines) => metricsLines(lines).filter((l) => l.startsWith("metrics: 0 batches")).length >= 2)
    run.signal("SIGTERM")
    const { code } = await run.exit
    expect(code).toBe(0)
    expect(run.stderr()).not.toContain("FATAL")
  })
})
