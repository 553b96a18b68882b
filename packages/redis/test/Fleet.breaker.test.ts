import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawnFleet } from "./fleet.js"
import type { FleetEvent } from "./fleet.js"
import { hasRedisServer, startRedisServer } from "./redisServer.js"

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

describe.skipIf(!hasRedisServer())("a fleet of three processes sharing one store", () => {
  it.scopedLive(
    "an open in one rejects calls in the others within a bounded delay; a close propagates",
    () =>
      Effect.gen(function*() {
        const server = yield* startRedisServer
        const fleet = yield* spawnFleet(server.socket, "60000")
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
      const fleet = yield* spawnFleet(server.socket, "300")
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
})
