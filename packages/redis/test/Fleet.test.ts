import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawnMember } from "./fleet.js"
import type { FleetEvent } from "./fleet.js"
import { hasRedisServer, startRedisServer } from "./redisServer.js"

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

describe.skipIf(!hasRedisServer())("a fleet of three processes sharing one store", () => {
  it.scopedLive(
    "an open in one rejects calls in the others within a bounded delay; a close propagates",
    () =>
      Effect.gen(function*() {
        const server = yield* startRedisServer
        const fleet = yield* Effect.all(
          [0, 1, 2].map(() => spawnMember("fleetMember", [server.socket, "60000", "1"])),
          { concurrency: "unbounded" }
        )
        const [a, b, c] = fleet as [typeof fleet[0], typeof fleet[0], typeof fleet[0]]
        const delays: Array<number> = []
        for (let round = 0; round < 5; round++) {
          const marks = fleet.map((m) => m.events.length)
          yield* a.send("trip")
          const opened = yield* a.waitFor((e) => e.event === "transition" && e.to === "Open", 5000, marks[0])
          const others = yield* Effect.all(
            [b, c].map((m, i) => m.waitFor((e) => e.event === "transition" && e.to === "Open", 5000, marks[i + 1]))
          )
          delays.push(Math.max(...others.map((e) => e.at - opened.at)))
          for (const m of [b, c]) {
            const mark = m.events.length
            yield* m.send("call")
            const result = yield* m.waitFor((e) => e.event === "result", 5000, mark)
            expect(result["result"]).toBe("rejected")
          }
          const closing = fleet.map((m) => m.events.length)
          yield* a.send("reset")
          yield* Effect.all(
            [b, c].map((m, i) => m.waitFor((e) => e.event === "transition" && e.to === "Closed", 5000, closing[i + 1]))
          )
          const mark = b.events.length
          yield* b.send("call")
          expect((yield* b.waitFor((e) => e.event === "result", 5000, mark))["result"]).toBe("ok")
        }
        console.log(
          `@bulwark/redis: open propagated to 2 other processes in median ${median(delays)} ms, max ${
            Math.max(...delays)
          } ms (${delays.join(", ")})`
        )
      }),
    120_000
  )

  it.scopedLive("the fleet-wide probe budget holds under concurrent probing", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const fleet = yield* Effect.all(
        [0, 1, 2].map(() => spawnMember("fleetMember", [server.socket, "300", "1"])),
        { concurrency: "unbounded" }
      )
      yield* fleet[0]!.send("trip")
      yield* Effect.all(fleet.map((m) => m.waitFor((e) => e.event === "transition" && e.to === "Open")))
      // every process sends probes at once, 4 at a time, for 3 seconds: the dependency stays down
      const until = Date.now() + 3000
      while (Date.now() < until) {
        yield* Effect.forEach(fleet, (m) => Effect.forEach([1, 2, 3, 4], () => m.send("probe 100")))
        yield* Effect.sleep("20 millis")
      }
      yield* Effect.sleep("300 millis")
      // calls that ran, across processes: at most one at a time
      const marks: Array<[number, number]> = fleet.flatMap((m) =>
        m.events.filter((e: FleetEvent) => e.event === "start" || e.event === "end").map((e): [number, number] => [
          e.at,
          e.event === "start" ? 1 : -1
        ])
      )
      marks.sort((x, y) => x[0] - y[0] || x[1] - y[1])
      let inFlight = 0
      let most = 0
      for (const [, d] of marks) {
        inFlight += d
        most = Math.max(most, inFlight)
      }
      const probes = marks.filter(([, d]) => d === 1).length
      expect(probes).toBeGreaterThan(1)
      expect(most).toBe(1)
      console.log(`@bulwark/redis: ${probes} probes in 3 s across 3 processes, at most ${most} in flight`)
    }), 120_000)

  it.scopedLive(
    "a shared 10% retry budget holds across three processes; separate budgets each grant their own floor",
    () =>
      Effect.gen(function*() {
        const server = yield* startRedisServer
        const fleet = yield* Effect.all(
          [0, 1, 2].map(() => spawnMember("fleetMember", [server.socket, "60000", "1"])),
          { concurrency: "unbounded" }
        )
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

  it.scopedLive(
    "floorMode minimum: a shared 10% budget keeps the fleet at ~10% of its calls; separate budgets retry 3× that",
    () =>
      Effect.gen(function*() {
        const server = yield* startRedisServer
        const fleet = yield* Effect.all(
          [0, 1, 2].map(() => spawnMember("fleetMember", [server.socket, "60000", "1"])),
          { concurrency: "unbounded" }
        )
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
