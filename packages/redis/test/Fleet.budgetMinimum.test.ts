import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawnFleet } from "./fleet.js"
import { hasRedisServer, startRedisServer } from "./redisServer.js"

describe.skipIf(!hasRedisServer())("a fleet of three processes sharing one store", () => {
  it.scopedLive(
    "floorMode minimum: a shared 10% budget keeps the fleet at ~10% of its calls; separate budgets retry 3× that",
    () =>
      Effect.gen(function*() {
        const server = yield* startRedisServer
        const fleet = yield* spawnFleet(server.socket, "60000")
        const outage = (command: string, name: string) =>
          Effect.gen(function*() {
            const marks = fleet.map((m) => m.events.length)
            // each process: 100 failing calls, one every 100 ms (10 calls/s for 10 s), each wanting
            // 3 retries; ratio 0.1, a minimum of 1.5 retries/s over a 20 s window (30 retries)
            yield* Effect.forEach(fleet, (m) => m.send(`${command} 100 ${name} 1 100 minimum 1.5 20`))
            const done = yield* Effect.all(
              fleet.map((m, i) => m.waitFor((e) => e.event === "budget", 60_000, marks[i]))
            )
            return done.reduce((n, e) => n + (e["retries"] as number), 0)
          })
        const shared = yield* outage("budget-shared", "steady-shared")
        const separate = yield* outage("budget-local", "steady-separate")
        console.log(
          `@bulwark/redis: retries during a steady outage of 3 processes × 100 calls, ratio 0.1, floorMode ` +
            `minimum, 1.5/s over 20 s: shared ${shared} (${
              (shared / 3).toFixed(1)
            }% of 300 calls), separate ${separate} (${(separate / 3).toFixed(1)}%)`
        )
        // the fleet's rule: max(30, 0.1 × 300) = 30, 10% of its calls; a sync's worth of overshoot
        // (the two other processes' retries of one call each) on top
        expect(shared).toBeGreaterThanOrEqual(30 - 3)
        expect(shared).toBeLessThanOrEqual(30 + 6)
        // separate budgets: max(30, 0.1 × 100) each, exactly
        expect(separate).toBe(3 * 30)
        expect(separate).toBeGreaterThanOrEqual(2.5 * shared)
      }),
    120_000
  )
})
