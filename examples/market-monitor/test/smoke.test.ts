import { describe, expect, it } from "@effect/vitest"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as Smoke from "../../smoke/run.js"

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

/** Runs the example to its end; with `signalAfter`, sends SIGTERM once stdout contains that text. */
const run = (args: ReadonlyArray<string>, signalAfter?: string) =>
  Smoke.run(dir, args, signalAfter === undefined ? {} : { signalAfter })

/** The lines of the shutdown, in the order they must come: feeds in reverse start order, then the store. */
const releases = [
  "closed feed sol (connection #3) after interruption",
  /closed feed eth \(connection #\d+\) after interruption/,
  "closed feed btc (connection #1) after interruption",
  "closed quote store"
]

const positions = (stdout: string) =>
  releases.map((line) => typeof line === "string" ? stdout.indexOf(line) : stdout.search(line))

describe("market-monitor example", () => {
  it("shuts down gracefully on SIGTERM: every feed and the store are released, exit code 0", async () => {
    // the second report comes after the monitors run and eth has been restarted once
    const { code, signal, stderr, stdout } = await run([], "[  2s]")
    expect(stderr).toContain(`Main "market-monitor": SIGTERM received; shutting down`)
    expect(stdout).toContain("shutting down: stopping the monitors in reverse start order")
    expect(stdout).toMatch(/\[final\] monitor-btc running .* \| monitor-eth \S+ .* \| monitor-sol running/)
    const at = positions(stdout)
    expect(at.every((p) => p >= 0)).toBe(true)
    expect([...at].sort((a, b) => a - b)).toEqual(at)
    expect(stdout).toContain(`Main "market-monitor": stopped after SIGTERM`)
    expect(stderr).not.toContain("FATAL")
    expect(signal).toBeNull()
    expect(code).toBe(0)
  })

  it("shows each monitor's metrics: a recovered drop, a skipped message, a restart after a failure", async () => {
    const { code, stdout } = await run(["--duration", "3"])
    expect(stdout).toContain(`Program "monitor-btc" failed on attempt 1 (FEED_DROPPED); retrying in 100ms`)
    expect(stdout).toContain("skipped a malformed sol message")
    expect(stdout).toContain("closed feed eth (connection #2) after a failure")
    expect(stdout).toMatch(/opened feed eth \(connection #4\)/)
    expect(stdout).toMatch(
      /\[  3s\] monitor-btc running msgs=\d+ restarts=0 errors=1 last=FEED_DROPPED \| monitor-eth running msgs=\d+ restarts=1 errors=1 last=PROTOCOL_VIOLATION \| monitor-sol running msgs=\d+ restarts=0 errors=0/
    )
    const at = positions(stdout)
    expect(at.every((p) => p >= 0)).toBe(true)
    expect(code).toBe(0)
  })
})
