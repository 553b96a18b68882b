import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"
import * as Smoke from "../../smoke/run.js"

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

/** Starts the example as a real child process. */
const start = (args: ReadonlyArray<string>) => Smoke.start(dir, args)

const statusLine =
  /^\s*(\d+)s\s+(healthy|slow|outage|recovery)\s+breaker (\w+)\s+ok\s+\d+\s+failed\s+\d+\s+rejected\s+\d+\s+fallback\s+\d+\s+retries\s+\d+\s+restarts\s+\d+/
const isStatus = (line: string) => statusLine.test(line)
const stateOf = (line: string) => statusLine.exec(line)![3]

describe("examples/quickstart", () => {
  it("prints the dashboard URL first, a status line per second, the breaker opening in the outage and closing after it, a summary, and exits 0", async () => {
    const run = start(["--duration", "10"])
    const first = await run.waitForLine(() => true)
    const url = /^Dashboard: (http:\/\/127\.0\.0\.1:\d+)\//.exec(first)?.[1]
    expect(url).toBeDefined()

    // the dashboard's data is live while the demo runs: the breaker, the bulkhead, the budget, the clients
    await run.waitForLine(isStatus)
    const status = await (await fetch(`${url}/status`)).json() as {
      breakers: Array<{ name: string }>
      bulkheads: Array<{ name: string }>
      retryBudgets: Array<{ name: string }>
      supervisors: Array<{ children: Array<{ name: string; status: string }> }>
    }
    expect(status.breakers.map((b) => b.name)).toEqual(["upstream"])
    expect(status.bulkheads.map((b) => b.name)).toEqual(["upstream"])
    expect(status.retryBudgets.map((b) => b.name)).toEqual(["upstream"])
    expect(status.supervisors[0]!.children.map((c) => c.name)).toEqual(
      ["client-1", "client-2", "client-3", "client-4", "client-5", "client-6"]
    )
    expect((await fetch(`${url}/`)).status).toBe(200)

    const { code } = await run.exit
    expect(code).toBe(0)
    const lines = run.lines
    // it says what it is about to show before the first status line
    const intro = lines.slice(0, lines.findIndex(isStatus)).join("\n")
    expect(intro).toContain("Fault schedule")
    expect(intro).toMatch(/outage\s+every request fails/)
    expect(intro).toContain("Policy \"quotes\": timeout")
    const statuses = lines.filter(isStatus)
    expect(statuses).toHaveLength(10)
    const opened = statuses.findIndex((l) => stateOf(l) === "Open" || l.includes("→Open"))
    expect(opened).toBeGreaterThanOrEqual(0)
    expect(statuses.slice(opened + 1).some((l) => stateOf(l) === "Closed")).toBe(true)
    expect(stateOf(statuses[statuses.length - 1]!)).toBe("Closed")
    const summary = lines.find((l) => l.startsWith("Summary after"))
    expect(summary).toMatch(/breaker opened [1-9]\d*x, closed again [1-9]\d*x, ends Closed/)
    expect(lines.indexOf(summary!)).toBeGreaterThan(lines.indexOf(statuses[statuses.length - 1]!))
  })

  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    it(`${signal} after a few status lines ends it cleanly with the summary and exit code 0`, async () => {
      const run = start(["--duration", "60"])
      await run.waitForLine((l) => statusLine.exec(l)?.[1] === "3")
      run.signal(signal)
      const { code } = await run.exit
      expect(code).toBe(0)
      expect(run.stderr()).toContain(`${signal} received; shutting down`)
      expect(run.lines.filter(isStatus).length).toBeLessThan(10)
      expect(run.lines.some((l) => /^Summary after \d+s.*calls answered/.test(l))).toBe(true)
    })
  }
})
