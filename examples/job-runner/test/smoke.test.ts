import { afterAll, describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as Smoke from "../../smoke/run.js"

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
/** The jobs' temp dirs go here, so that the test can see that none is left. */
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "job-runner-smoke-"))

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))

/** Runs the example to its end as a real child process. */
const run = (...args: ReadonlyArray<string>) => Smoke.run(dir, args)

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe("job-runner example", () => {
  it("runs jobs as child processes by priority, reports failures as ExecutionError JSON and leaves no temp dir", async () => {
    const { code, stderr, stdout } = await run("--quick", "--tmp", tmp)
    expect(stderr).not.toContain("FATAL")

    // one classified ExecutionError JSON line per failed job
    const failures = new Map<string, Record<string, unknown>>()
    for (const line of stdout.split("\n").filter((l) => l.startsWith("{"))) {
      const parsed = JSON.parse(line) as Record<string, unknown>
      failures.set(String(parsed.task_id), parsed)
    }
    expect([...failures.keys()].sort()).toEqual(["crashy-script", "empty", "escape", "memory-hog", "slow-export"])
    expect(failures.get("empty")).toMatchObject({ type: "validation", code: "INVALID_JOB", retryable: false })
    expect(failures.get("escape")).toMatchObject({
      type: "security",
      code: "SANDBOX_VIOLATION",
      severity: "critical",
      retryable: false
    })
    expect(failures.get("crashy-script")).toMatchObject({
      type: "user_code",
      code: "USER_CODE_FAILED",
      details: "Error: boom in user code",
      retryable: false
    })
    expect(failures.get("memory-hog")).toMatchObject({ type: "resource", code: "OUT_OF_MEMORY", retryable: true })
    expect(failures.get("slow-export")).toMatchObject({ type: "timeout", code: "TIMEOUT", retryable: true })
    for (const failure of failures.values()) {
      expect(typeof failure.severity).toBe("string")
      expect(typeof failure.strategy).toBe("string")
      expect(Number.isNaN(Date.parse(String(failure.timestamp)))).toBe(false)
    }

    // the priority bulkhead: the interactive job, submitted late, started before the earlier normal
    // and batch jobs that waited with it
    const startOf = (job: string) => stdout.search(new RegExp(`start ${job} `))
    expect(startOf("preview")).toBeGreaterThan(0)
    expect(startOf("preview")).toBeLessThan(startOf("crashy-script"))
    expect(startOf("crashy-script")).toBeLessThan(startOf("slow-export"))
    expect(startOf("memory-hog")).toBeLessThan(startOf("slow-export"))
    expect(stdout).not.toMatch(/start (empty|escape) /)

    // the timed-out process was killed, not left running
    const pid = Number(stdout.match(/start slow-export +priority batch, pid (\d+)/)?.[1])
    expect(pid).toBeGreaterThan(0)
    expect(isAlive(pid)).toBe(false)

    // run-all cleanup: a failed step does not stop the others; no temp dir is left
    expect(stdout).toContain(
      `licensed-render: cleanup incomplete: Cleanup "job licensed-render": 1 of 3 step(s) failed: release the licence`
    )
    expect(stdout).toMatch(/slow-export: cleaned up \(bulwark-job-slow-export-\w+ removed\)/)
    expect(stdout).toContain("temp dirs left: 0")
    expect(fs.readdirSync(tmp)).toEqual([])

    // the resource monitor's readings
    for (const resource of ["cpu", "memory", "heap", "event_loop", "disk"]) {
      expect(stdout).toMatch(new RegExp(`  ${resource} +\\d+\\.\\d% +(ok|warning|degraded|critical)`))
    }
    expect(code).toBe(0)
  })
})
