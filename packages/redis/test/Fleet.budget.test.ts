import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawnFleet } from "./fleet.js"
import { hasRedisServer, startRedisServer } from "./redisServer.js"

describe.skipIf(!hasRedisServer())("a fleet of three processes sharing one store", () => {
  it.scopedLive(
    "a shared 10% retry budget holds across three processes; separate budgets each grant their own floor",
    () =>
      Effect.gen(function*() {
        const server = yield* startRedisServer
        const fleet = yield* spawnFleet(server.socket, "60000")
        // every process runs `calls` failing calls that each want 3 retries; a fresh budget a run
        const outage = (command: string, calls: number, name: string, every: number) =>
          Effect.gen(function*() {
            const marks = fleet.map((m) => m.events.length)
            yield* Effect.forEach(fleet, (m) => m.send(`${command} ${calls} ${name} ${every}`))
            const done = yield* Effect.all(
              fleet.map((m, i) => m.waitFor((e) => e.event === "budget", 30_000, marks[i]))
            )
            return done.reduce((n, e) => n + (e["retries"] as number), 0)
          })
        // ratio 0.1 and a floor of 1 retry/s over a 10 s window: the fleet rule is 10 + 10% of
        // the fleet's calls; separate budgets grant 10 + 10% of its own calls to each process

        // busy: 300 calls, the ratio dominates
        const busyShared = yield* outage("budget-shared", 100, "busy-shared", 10)
        const busySeparate = yield* outage("budget-local", 100, "busy-separate", 10)
        const busyRule = 10 + 30
        // quiet: 15 calls (one every two syncs), the floor dominates
        const quietShared = yield* outage("budget-shared", 5, "quiet-shared", 1)
        const quietSeparate = yield* outage("budget-local", 5, "quiet-separate", 1)
        const quietRule = Math.floor(10 + 1.5)
        console.log(
          `@bulwark/redis: retries during an outage of 3 processes, ratio 0.1, floor 1/s over 10 s: ` +
            `300 calls: shared ${busyShared} (fleet rule ${busyRule}), separate ${busySeparate}; ` +
            `15 calls: shared ${quietShared} (fleet rule ${quietRule}), separate ${quietSeparate}`
        )
        // busy: the shared budget keeps to the fleet rule within a sync's worth of overshoot
        expect(busyShared).toBeLessThanOrEqual(busyRule + 6)
        expect(busyShared).toBeGreaterThanOrEqual(busyRule - 3)
        // separate budgets: each process its own floor, exactly (a local budget is exact)
        expect(busySeparate).toBe(3 * (10 + 10))
        // quiet: the floor is granted once for the fleet instead of once a process. Between two
        // syncs each process spends at most its share of what the fleet had left (the shares add
        // up to it): 11 with every sync on time
        expect(quietShared).toBeLessThanOrEqual(quietRule + 3)
        expect(quietShared).toBeGreaterThanOrEqual(quietRule - 1)
        expect(quietSeparate).toBe(3 * Math.floor(10 + 0.5))
        expect(quietSeparate).toBeGreaterThanOrEqual(2 * quietShared)
      }),
    120_000
  )
})
