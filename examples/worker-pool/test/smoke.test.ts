import { describe, expect, it } from "@effect/vitest"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as Smoke from "../../smoke/run.js"

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

/** Runs the example to its end as a real child process. */
const run = (...args: ReadonlyArray<string>) => Smoke.run(dir, args)

describe("worker-pool example", () => {
  it("retries, opens the breaker, fails over to the fallback worker and prints its telemetry", async () => {
    const { code, stderr, stdout } = await run("--requests", "40")
    expect(stderr).not.toContain("FATAL")
    // retry: the connection and communication failures were retried and served by the pool
    expect(stdout).toContain("PortExited: PORT_EXITED is connection -> backoff_retry")
    expect(stdout).toMatch(/# 3 -> worker-\d/)
    expect(stdout).toContain("DecodeFailed: DECODE_FAILED is communication -> immediate_retry")
    expect(stdout).toMatch(/# 6 -> worker-\d/)
    // failover: the worker's own exception went to the fallback worker at once
    expect(stdout).toContain("failover: WORKER_EXCEPTION (external, failover) -> fallback worker")
    expect(stdout).toContain("# 9 -> fallback-worker")
    // circuit break: the exhausted pool opened the breaker, which rejected calls, then closed again
    expect(stdout).toContain("failover: CHECKOUT_FAILED (resource, circuit_break) -> fallback worker")
    expect(stdout).toContain(`breaker "pool": Closed -> Open`)
    expect(stdout).toContain("failover: CIRCUIT_OPEN (resource, failover) -> fallback worker")
    expect(stdout).toContain(`breaker "pool": HalfOpen -> Closed`)
    expect(stdout).toMatch(/#40 -> worker-\d/)
    expect(stdout).toContain(`breaker "pool" ends Closed`)
    // telemetry: the spans carry the classification, the counters saw the same story
    expect(stdout).toMatch(/bulwark\.worker +\d+ span\(s\); failed: .*\d+× CHECKOUT_FAILED \(circuit_break\)/)
    expect(stdout).toContain("bulwark_retry_recovered_total{operation=pool} 2")
    expect(stdout).toMatch(/bulwark_breaker_calls_total\{breaker=pool,outcome=rejected\} [1-9]/)
    expect(stdout).toMatch(/bulwark_fallback_total\{operation=pool,outcome=succeeded\} [1-9]/)
    expect(code).toBe(0)
  })
})
