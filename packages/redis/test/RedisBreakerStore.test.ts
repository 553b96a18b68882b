import { BreakerStore, CircuitBreaker } from "@bulwark/core"
import { RedisBreakerStore, RedisClient } from "@bulwark/redis"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, FastCheck as fc, Layer, Metric, Queue, Scope, Stream } from "effect"
import { Redis } from "ioredis"
import { eventually, hasRedisServer, startRedisServer } from "./redisServer.js"

/** A "process": its own connection and store. */
const storeOn = (socket: string, options: RedisBreakerStore.Options = {}) =>
  Layer.build(
    RedisBreakerStore.layer(options).pipe(Layer.provide(RedisClient.layer({ connection: { path: socket } })))
  ).pipe(Effect.map((ctx) => ctx.unsafeMap.get(BreakerStore.BreakerStore.key) as BreakerStore.BreakerStore))

const breakerOn = (store: BreakerStore.BreakerStore, options: CircuitBreaker.Options) =>
  CircuitBreaker.make({ health: false, ...options }).pipe(Effect.provideService(BreakerStore.BreakerStore, store))

const fail = Effect.fail("boom")

describe.skipIf(!hasRedisServer())("RedisBreakerStore", () => {
  it.scopedLive("an open in one process rejects calls in another, and a close reaches it too", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const a = yield* breakerOn(yield* storeOn(server.socket), {
        name: "payments",
        policy: CircuitBreaker.consecutive(2),
        openDuration: "1 minute"
      })
      const b = yield* breakerOn(yield* storeOn(server.socket), { name: "payments", openDuration: "1 minute" })
      yield* Effect.exit(a.protect(fail))
      yield* Effect.exit(a.protect(fail))
      expect(yield* a.state).toBe("Open")
      expect(yield* eventually(Effect.map(b.state, (s) => s === "Open"))).toBe(true)
      const rejected = yield* Effect.flip(b.protect(Effect.succeed(1)))
      expect(rejected._tag).toBe("CircuitOpenError")
      yield* a.reset
      expect(yield* eventually(Effect.map(b.state, (s) => s === "Closed"))).toBe(true)
      expect(yield* b.protect(Effect.succeed(1))).toBe(1)
    }))

  it.scopedLive("a breaker made later starts from the shared state", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const a = yield* breakerOn(yield* storeOn(server.socket), { name: "db", openDuration: "1 minute" })
      yield* a.isolate
      const store = yield* storeOn(server.socket)
      expect(yield* eventually(Effect.map(store.load("db"), (o) => o._tag === "Some"))).toBe(true)
      const late = yield* breakerOn(store, { name: "db", openDuration: "1 minute" })
      expect(yield* late.state).toBe("Isolated")
    }))

  it.scopedLive("quorum: one process opening stays local; the K-th opens the fleet", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const options = { quorum: 2, quorumWindow: "1 minute" } as const
      const make = Effect.flatMap(storeOn(server.socket, options), (store) =>
        breakerOn(store, { name: "search", policy: CircuitBreaker.consecutive(1), openDuration: "1 minute" }))
      const a = yield* make
      const b = yield* make
      const c = yield* make
      yield* Effect.exit(a.protect(fail))
      expect(yield* a.state).toBe("Open")
      // give a wrongly shared open time to arrive, then check it did not
      yield* Effect.sleep("200 millis")
      expect(yield* c.state).toBe("Closed")
      yield* Effect.exit(b.protect(fail))
      expect(
        yield* eventually(Effect.map(c.state, (s) =>
          s === "Open"))
      ).toBe(true)
    }))

  it.scopedLive("fleet probes: after a shared open only `fleetProbes` processes half-open", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const options = { fleetProbes: 1, probeLease: "1 minute" } as const
      const make = Effect.flatMap(storeOn(server.socket, options), (store) =>
        breakerOn(store, {
          name: "inventory",
          policy: CircuitBreaker.consecutive(1),
          openDuration: "300 millis",
          halfOpenProbes: 1
        }))
      const breakers = [yield* make, yield* make, yield* make]
      yield* Effect.exit(breakers[0]!.protect(fail))
      for (const b of breakers) expect(yield* eventually(Effect.map(b.state, (s) => s === "Open"))).toBe(true)
      // the probe-slot claims are answered well within the open duration; wait past it
      yield* Effect.sleep("600 millis")
      // every process calls concurrently: the dependency sees one probe in flight, fleet-wide
      let inFlight = 0
      let most = 0
      const probe = Effect.acquireUseRelease(
        Effect.sync(() => {
          inFlight++
          most = Math.max(most, inFlight)
        }),
        () => Effect.sleep("100 millis"),
        () => Effect.sync(() => inFlight--)
      )
      yield* Effect.forEach(breakers, (b) => Effect.exit(b.protect(probe)), { concurrency: "unbounded" })
      expect(most).toBe(1)
      const states = yield* Effect.forEach(breakers, (b) => b.state)
      expect(states.filter((s) => s === "Open").length).toBe(2)
    }))

  it.scopedLive("fleet probes: a process whose open duration is shorter than the opener's stays held open", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const options = { fleetProbes: 1, probeLease: "1 minute" } as const
      const opener = yield* breakerOn(yield* storeOn(server.socket, options), {
        name: "ledger",
        policy: CircuitBreaker.consecutive(1),
        openDuration: "5 seconds",
        halfOpenProbes: 1
      })
      const other = yield* breakerOn(yield* storeOn(server.socket, options), {
        name: "ledger",
        policy: CircuitBreaker.consecutive(1),
        openDuration: "30 millis",
        halfOpenProbes: 1
      })
      const transitions: Array<string> = []
      yield* Effect.forkScoped(Stream.runForEach(other.changes, (t) => Effect.sync(() => transitions.push(t.to))))
      yield* Effect.exit(opener.protect(fail))
      expect(yield* eventually(Effect.map(other.state, (s) => s === "Open"))).toBe(true)
      // well past the other's own 30 ms (and the opener's slot is taken): it keeps rejecting
      let probes = 0
      const probe = Effect.sync(() => probes++)
      for (let i = 0; i < 60; i++) {
        yield* Effect.exit(other.protect(probe))
        yield* Effect.sleep("25 millis")
      }
      expect(probes).toBe(0)
      expect(yield* other.state).toBe("Open")
      // one transition: the held-open breaker is not re-opened again and again
      expect(transitions).toEqual(["Open"])
      // the opener's verdict releases it
      yield* opener.reset
      expect(yield* eventually(Effect.map(other.state, (s) => s === "Closed"))).toBe(true)
      expect(yield* other.protect(probe)).toBe(0)
    }))

  it.scopedLive("fleet probes: a held process with a short open duration probes once the lease is over, not before", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const options = { fleetProbes: 1, probeLease: "300 millis" } as const
      const opener = yield* breakerOn(yield* storeOn(server.socket, options), {
        name: "ledger",
        policy: CircuitBreaker.consecutive(1),
        openDuration: "400 millis",
        halfOpenProbes: 1
      })
      const other = yield* breakerOn(yield* storeOn(server.socket, options), {
        name: "ledger",
        policy: CircuitBreaker.consecutive(1),
        openDuration: "30 millis",
        halfOpenProbes: 1
      })
      yield* Effect.exit(opener.protect(fail))
      const open = yield* opener.exportState
      expect(yield* eventually(Effect.map(other.state, (s) => s === "Open"))).toBe(true)
      // the opener never probes (nobody calls it), so no verdict comes: the lease decides
      let firstProbe: number | undefined = undefined
      const probe = Effect.sync(() => {
        firstProbe ??= Date.now()
      })
      const start = Date.now()
      while (firstProbe === undefined && Date.now() - start < 5000) {
        yield* Effect.exit(other.protect(probe))
        yield* Effect.sleep("10 millis")
      }
      expect(firstProbe).toBeDefined()
      // not before the opener's open plus the lease (1 ms for the rounding of times to milliseconds)
      expect(firstProbe!).toBeGreaterThanOrEqual(open.openUntil! + 300 - 1)
    }))

  it.scopedLive("fleet probes: a held process whose claim finds the open already replaced stays held", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const other = yield* breakerOn(yield* storeOn(server.socket, { fleetProbes: 1, probeLease: "1 minute" }), {
        name: "ledger",
        policy: CircuitBreaker.consecutive(1),
        openDuration: "30 millis",
        halfOpenProbes: 1
      })
      // another process opened at version 1, and its prober half-opened (version 2) before this
      // process's claim for the open reached Redis: the claim is stale
      const raw = new Redis({ path: server.socket })
      yield* Effect.addFinalizer(() => Effect.sync(() => raw.disconnect()))
      const now = Date.now()
      const open: BreakerStore.Snapshot = {
        version: 1,
        breaker: "ledger",
        state: "Open",
        since: now,
        openUntil: now + 5000,
        opens: 1,
        origin: "ledger#opener"
      }
      const halfOpen = { ...open, state: "HalfOpen" as const, since: now + 5000, openUntil: null }
      yield* Effect.promise(() =>
        raw.hset("bulwark:breaker:{ledger}", {
          v: 2,
          s: JSON.stringify(BreakerStore.encodeSnapshot(halfOpen)),
          st: "HalfOpen",
          pe: 1,
          pc: 1
        })
      )
      yield* Effect.promise(() =>
        raw.publish("bulwark:breaker", `1|opener|${JSON.stringify(BreakerStore.encodeSnapshot(open))}`)
      )
      expect(yield* eventually(Effect.map(other.state, (s) => s === "Open"))).toBe(true)
      // well past its own 30 ms: the fleet's prober is at work, so it keeps rejecting
      let probes = 0
      const probe = Effect.sync(() => probes++)
      for (let i = 0; i < 20; i++) {
        yield* Effect.exit(other.protect(probe))
        yield* Effect.sleep("25 millis")
      }
      expect(probes).toBe(0)
      expect(yield* other.state).toBe("Open")
    }))

  it.scopedLive(
    "racing writers never lose a transition and every process ends on the last one",
    () =>
      Effect.gen(function*() {
        const server = yield* startRedisServer
        const observer = new Redis({ path: server.socket })
        yield* Effect.addFinalizer(() => Effect.sync(() => observer.disconnect()))
        let run = 0
        const property = fc.asyncProperty(
          fc.array(
            fc.array(
              fc.record({
                state: fc.constantFrom("Open" as const, "Closed" as const, "Isolated" as const),
                pause: fc.nat(3)
              }),
              {
                minLength: 1,
                maxLength: 8
              }
            ),
            { minLength: 2, maxLength: 4 }
          ),
          (plans) =>
            Effect.runPromise(Effect.scoped(Effect.gen(function*() {
              const prefix = `race${run++}:`
              const seen: Array<string> = []
              const onMessage = (channel: string, message: string) => {
                if (channel === `${prefix}breaker`) seen.push(message)
              }
              observer.on("message", onMessage)
              yield* Effect.addFinalizer(() => Effect.sync(() => observer.off("message", onMessage)))
              yield* Effect.promise(() => observer.subscribe(`${prefix}breaker`))
              const locals = yield* Effect.forEach(plans, (plan, w) =>
                Effect.gen(function*() {
                  const store = yield* storeOn(server.socket, { prefix })
                  const origin = `w${w}`
                  const local = { since: -1 }
                  const inbox = yield* store.subscribe("race")
                  yield* Queue.take(inbox).pipe(
                    Effect.tap((s) =>
                      Effect.sync(() => {
                        if (s.origin !== origin) local.since = s.since
                      })
                    ),
                    Effect.forever,
                    Effect.forkScoped
                  )
                  return { store, origin, local, plan }
                }))
              yield* Effect.forEach(locals, ({ local, origin, plan, store }, w) =>
                Effect.forEach(plan, (step, i) =>
                  Effect.gen(function*() {
                    if (step.pause > 0) {
                      yield* Effect.sleep(`${step.pause} millis`)
                    }
                    const since = w * 1000 + i
                    local.since = since
                    yield* store.publish({
                      version: 1,
                      breaker: "race",
                      state: step.state,
                      since,
                      openUntil: step.state === "Open" ? since + 60_000 : null,
                      opens: step.state === "Open" ? 1 : 0,
                      origin
                    })
                  }), { discard: true }), { concurrency: "unbounded", discard: true })
              const total = plans.reduce((n, p) => n + p.length, 0)
              yield* eventually(Effect.sync(() =>
                seen.length >= total
              ))
              yield* Effect.sleep("50 millis")
              const versions = seen.map((m) => Number(m.slice(0, m.indexOf("|"))))
              const body = (m: string) => JSON.parse(m.slice(m.indexOf("|", m.indexOf("|") + 1) + 1))
              const sinces = seen.map((m) => body(m).since as number).sort((a, b) => a - b)
              const published = plans.flatMap((p, w) => p.map((_, i) => w * 1000 + i))
              // every transition written once, versions 1..N in order
              expect(versions).toEqual(published.map((_, i) => i + 1))
              expect(sinces).toEqual(published)
              // every process ends on the transition with the highest version
              const last = body(seen[seen.length - 1]!).since
              for (const { local } of locals) expect(local.since).toBe(last)
            })))
        )
        yield* Effect.promise(() => fc.assert(property, { numRuns: process.env["BULWARK_DEEP"] === "1" ? 20 : 8 }))
      }),
    180_000
  )

  it.scopedLive("metrics count writes, received transitions, probe claims and writes lost to an outage", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const name = "metered"
      const counted = (counter: Metric.Metric.Counter<number>, tags: Record<string, string>) =>
        Effect.map(
          Metric.value(Object.entries(tags).reduce((m, [k, v]) => Metric.tagged(m, k, v), counter)),
          (state) => state.count
        )
      const a = yield* breakerOn(yield* storeOn(server.socket), {
        name,
        policy: CircuitBreaker.consecutive(1),
        openDuration: "1 minute"
      })
      const b = yield* breakerOn(yield* storeOn(server.socket), { name, openDuration: "1 minute" })
      yield* Effect.exit(a.protect(fail))
      expect(yield* eventually(Effect.map(b.state, (s) => s === "Open"))).toBe(true)
      expect(yield* counted(RedisBreakerStore.writesCounter, { breaker: name, result: "written" })).toBe(1)
      expect(yield* counted(RedisBreakerStore.receivedCounter, { breaker: name })).toBe(1)
      // the opener holds the fleet's one probe slot: b's claim finds it taken
      expect(
        yield* eventually(Effect.map(
          counted(RedisBreakerStore.probeClaimsCounter, { breaker: name, result: "taken" }),
          (n) => n === 1
        ))
      ).toBe(true)
      expect(yield* counted(RedisBreakerStore.probeClaimsCounter, { breaker: name, result: "granted" })).toBe(0)
      yield* server.kill
      yield* a.reset
      expect(
        yield* eventually(Effect.map(
          counted(RedisBreakerStore.writesCounter, { breaker: name, result: "unreachable" }),
          (n) => n === 1
        ))
      ).toBe(true)
    }))

  it.scopedLive("keys carry the prefix and expire", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const store = yield* storeOn(server.socket, { prefix: "app1:", ttl: "10 seconds" })
      yield* store.publish({
        version: 1,
        breaker: "mail",
        state: "Isolated",
        since: 1,
        openUntil: null,
        opens: 0,
        origin: "x"
      })
      const raw = new Redis({ path: server.socket })
      yield* Effect.addFinalizer(() => Effect.sync(() => raw.disconnect()))
      const keys = yield* Effect.promise(() => raw.keys("*"))
      expect(keys).toEqual(["app1:breaker:{mail}"])
      const ttl = yield* Effect.promise(() => raw.pttl(keys[0]!))
      expect(ttl).toBeGreaterThan(0)
      expect(ttl).toBeLessThanOrEqual(10_000)
    }))

  it.scopedLive("after the key expires, the next transition of one process still reaches the others", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const options = { ttl: "300 millis", syncInterval: "100 millis" } as const
      const shape = { name: "expiring", policy: CircuitBreaker.consecutive(1), openDuration: "1 minute" } as const
      const a = yield* breakerOn(yield* storeOn(server.socket, options), shape)
      const b = yield* breakerOn(yield* storeOn(server.socket, options), shape)
      yield* Effect.exit(a.protect(fail))
      expect(yield* eventually(Effect.map(b.state, (s) => s === "Open"))).toBe(true)
      yield* a.reset
      expect(yield* eventually(Effect.map(b.state, (s) => s === "Closed"))).toBe(true)
      // nothing is written for longer than the ttl: the key is gone, and versions start again at 1
      const raw = new Redis({ path: server.socket })
      yield* Effect.addFinalizer(() => Effect.sync(() => raw.disconnect()))
      expect(
        yield* eventually(Effect.map(Effect.promise(() => raw.exists("bulwark:breaker:{expiring}")), (n) => n === 0))
      )
        .toBe(true)
      yield* Effect.sleep("300 millis") // a resync or more in each process
      yield* Effect.exit(a.protect(fail))
      expect(yield* a.state).toBe("Open")
      expect(yield* eventually(Effect.map(b.state, (s) => s === "Open"))).toBe(true)
    }))

  it.scopedLive("bad literal options are defects naming the field", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const scope = yield* Scope.make()
      const exit = yield* Effect.exit(Scope.extend(storeOn(server.socket, { quorum: 0 }), scope))
      expect(Exit.isFailure(exit) && String(Exit.isFailure(exit) ? exit.cause : "")).toContain("quorum")
    }))
})
