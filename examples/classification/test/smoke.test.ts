import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"
import * as Smoke from "../../smoke/run.js"

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

/** Runs the example to its end as a real child process. */
const run = () => Smoke.run(dir).then((ran) => ({ ...ran, lines: ran.stdout.split("\n") }))

describe("examples/classification", () => {
  it("runs the four scenarios, each decided by the classification, and exits 0", async () => {
    const { code, lines, stderr } = await run()
    expect(stderr).toBe("")
    expect(code).toBe(0)
    expect(lines[0]).toBe("Bulwark classification: classification-driven retry")
    const attempts = (symbol: string) => lines.filter((l) => l.startsWith(`  [${symbol}] attempt`))
    // 1. two refusals, retried, then an answer
    expect(attempts("ACME")).toHaveLength(3)
    expect(lines).toContain("  → ACME = 103")
    // 2. the Retry-After hint decides the delay
    expect(lines.some((l) => l.includes("RATE_LIMITED (resource); retrying in 1s"))).toBe(true)
    expect(lines).toContain("  → GLOBEX = 102")
    // 3. a validation failure gets one attempt and a classified error
    expect(attempts("???")).toHaveLength(1)
    const badRequest = lines.find((l) => l.startsWith("  → gave up:") && l.includes("BAD_QUOTE_REQUEST"))
    expect(JSON.parse(badRequest!.slice("  → gave up: ".length))).toMatchObject({
      type: "validation",
      retryable: false,
      strategy: "abandon",
      correlation_id: "quote-???"
    })
    // 4. the fourth attempt escalates to critical and is abandoned
    expect(attempts("INITECH")).toHaveLength(4)
    const abandoned = lines.find((l) => l.startsWith("  → gave up:") && l.includes("quote-INITECH"))
    expect(JSON.parse(abandoned!.slice("  → gave up: ".length))).toMatchObject({
      type: "connection",
      code: "CONNECTION_REFUSED",
      severity: "critical",
      strategy: "abandon"
    })
  })
})
