/**
 * The dashboard in a real headless Chromium (Debian's `chromium`, driven by playwright-core; no
 * browser is ever downloaded).
 */
import { Bulkhead, CircuitBreaker, FiberSupervisor, Health, RetryBudget } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { chromium } from "playwright-core"
import * as HealthServer from "../src/HealthServer.js"
import * as ResourceMonitor from "../src/ResourceMonitor.js"
import * as Status from "../src/Status.js"

const here = path.dirname(fileURLToPath(import.meta.url))
/** Where the screenshots go (build/ is not committed). */
const outputDir = path.join(here, "../build/test-output")
const executablePath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"

const browserFlags = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync"
]

/** A fresh profile per run, removed afterwards. */
const browserPage = Effect.acquireRelease(
  Effect.promise(async () => {
    const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "bulwark-chromium-"))
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      args: browserFlags,
      viewport: { width: 1280, height: 820 }
    })
    const page = context.pages()[0] ?? (await context.newPage())
    return { context, page, userDataDir }
  }),
  ({ context, userDataDir }) =>
    Effect.promise(async () => {
      await context.close()
      fs.rmSync(userDataDir, { recursive: true, force: true })
    })
)

/** Fixed readings, so that the screenshot shows every level. */
const sampler = Layer.succeed(ResourceMonitor.Sampler, {
  sample: Effect.succeed<ResourceMonitor.Readings>({
    cpu: { used: 0.62, limit: 2 },
    memory: { used: 410, limit: 1024 },
    heap: { used: 84, limit: 100 },
    event_loop: { used: 12, limit: 200 },
    disk: { used: 91, limit: 100 }
  })
})

const ServerLive = Layer.merge(
  HealthServer.layer({ port: 0, streamInterval: "5 seconds" }),
  ResourceMonitor.layer().pipe(Layer.provide(sampler))
).pipe(
  Layer.provideMerge(Status.layer({ service: "billing" })),
  Layer.provideMerge(Health.layer())
)

describe("dashboard", () => {
  it.live("shows a breaker that opens within a second, with no console error", () =>
    Effect.gen(function*() {
      const { url } = yield* HealthServer.HealthServer
      const breaker = yield* CircuitBreaker.make({ name: "payments", policy: CircuitBreaker.consecutive(3) })
      const bulkhead = yield* Bulkhead.make({ name: "pdf-render", maxConcurrent: 4, maxQueued: 8 })
      const budget = yield* RetryBudget.make({ name: "payments" })
      const supervisor = yield* FiberSupervisor.make({ name: "jobs" })
      yield* Status.trackBreaker(breaker)
      yield* Status.trackBulkhead(bulkhead)
      yield* Status.trackRetryBudget(budget)
      yield* Status.trackSupervisor(supervisor)
      yield* supervisor.spawn("mailer", Effect.never)
      yield* supervisor.spawn("importer", Effect.never)
      yield* Effect.forkScoped(bulkhead.protect(Effect.never))
      for (let i = 0; i < 4; i++) {
        yield* budget.deposit
        yield* breaker.protect(Effect.void)
      }

      const { page } = yield* browserPage
      const problems: Array<string> = []
      page.on("console", (message) => {
        if (message.type() === "error") problems.push(message.text())
      })
      page.on("pageerror", (error) => problems.push(error.message))

      yield* Effect.promise(() => page.goto(url))
      yield* Effect.promise(() =>
        page.locator("[data-breaker=\"payments\"][data-state=\"Closed\"]").waitFor({ timeout: 10_000 })
      )
      expect(yield* Effect.promise(() => page.locator("#programs").textContent())).toContain("jobs / mailer")
      expect(yield* Effect.promise(() => page.locator("#resources").textContent())).toContain("disk91.0%critical")

      // three failures in a row open it; the transition is pushed at once (the periodic push is
      // every 5 s, so only the push can satisfy the 1 s wait)
      for (let i = 0; i < 3; i++) yield* Effect.exit(breaker.protect(Effect.fail(new Error("card network down"))))
      expect(yield* breaker.state).toBe("Open")
      yield* Effect.promise(() =>
        page.locator("[data-breaker=\"payments\"][data-state=\"Open\"]").waitFor({ timeout: 1_000 })
      )
      expect(yield* Effect.promise(() => page.locator("#breakers").textContent())).toContain("Closed → Open")
      expect(yield* Effect.promise(() => page.locator("#overall").textContent())).toBe("degraded")

      fs.mkdirSync(outputDir, { recursive: true })
      const screenshot = path.join(outputDir, "dashboard.png")
      yield* Effect.promise(() => page.screenshot({ path: screenshot, fullPage: true }))
      expect(fs.statSync(screenshot).size).toBeGreaterThan(10_000)
      expect(problems).toEqual([])
    }).pipe(Effect.scoped, Effect.provide(ServerLive)))
})
