import { BreakerStore, CircuitBreaker } from "@bulwark/core"
import { RedisBreakerStore, RedisClient } from "@bulwark/redis"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Duration, Effect, Exit, FastCheck as fc, Layer, Metric, Option, Queue, Stream } from "effect"
import { Redis } from "ioredis"
import { snap } from "./breakerSnapshots.js"
import { eventually, hasRedisServer, startRedisServer } from "./redisServer.js"

/** A "process": its own connection and store. */
const storeOn = (socket: string, options: RedisBreakerStore.Options = {}) =>
  Layer.build(
    RedisBreakerStore.layer(options).pipe(Layer.provide(RedisClient.layer({ connection: { path: socket } })))
  ).pipe(Effect.map((ctx) => ctx.unsafeMap.get(BreakerStore.BreakerStore.key) as BreakerStore.BreakerStore))

const breakerOn = (store: BreakerStore.BreakerStore, options: CircuitBreaker.Options) =>
  CircuitBreaker.make({ health: false, ...options }).pipe(Effect.provideService(BreakerStore.BreakerStore, store))

const fail = Effect.fail("boom")

const tagged = (counter: Metric.Metric.Counter<number>, tags: Record<string, string>) =>
  Object.entries(tags).reduce((m, [k, v]) => Metric.tagged(m, k, v), counter)

const counted = (counter: Metric.Metric.Counter<number>, tags: Record<string, string>) =>
  Effect.map(Metric.value(tagged(counter, tags)), (state) => state.count)

/** The probe-slot claims of `breaker`, whatever their result. */
const claims = (breaker: string) =>
  Effect.map(
    Effect.forEach(
      ["granted", "taken", "stale", "unreachable"],
      (result) => counted(RedisBreakerStore.probeClaimsCounter, { breaker, result })
    ),
    (ns) => ns.reduce((a, b) => a + b, 0)
  )

/** Waits (at most 10 s) until one probe-slot claim of `breaker` was counted with `result`. */
const claimedOnce = (breaker: string, result: string) =>
  eventually(Effect.map(counted(RedisBreakerStore.probeClaimsCounter, { breaker, result }), (n) => n === 1))

/** Calls through `breaker` until one call runs, for at most 5 s: whether one did. */
const probesWithin5s = (breaker: CircuitBreaker.CircuitBreaker) =>
  Effect.suspend(() => {
    let probes = 0
    const probe = Effect.sync(() => probes++)
    return eventually(Effect.map(Effect.exit(breaker.protect(probe)), () => probes === 1), 5000)
  })

/** A plain connection to the test's server, closed with the scope. */
const rawOn = (socket: string) =>
  Effect.acquireRelease(Effect.sync(() => new Redis({ path: socket })), (r) => Effect.sync(() => r.disconnect()))

/** Stores `snapshot` at `version` under the store's key, as a writer's script would have. */
const storeRaw = (raw: Redis, version: number | string, snapshot: BreakerStore.Snapshot, prefix = "bulwark:") =>
  Effect.promise(() =>
    raw.hset(`${prefix}breaker:{${snapshot.breaker}}`, {
      v: version,
      s: JSON.stringify(BreakerStore.encodeSnapshot(snapshot)),
      st: snapshot.state
    })
  )

/** Broadcasts `snapshot` at `version` as another process's store (`writer`) would. */
const publishRaw = (raw: Redis, version: number, snapshot: BreakerStore.Snapshot, writer = "elsewhere") =>
  Effect.promise(() =>
    raw.publish("bulwark:breaker", `${version}|${writer}|${JSON.stringify(BreakerStore.encodeSnapshot(snapshot))}`)
  )

/** Takes deliveries from `q` until one matches `p` (at most 5 s): what was taken, in order. */
const takeUntil = (q: Queue.Dequeue<BreakerStore.Snapshot>, p: (s: BreakerStore.Snapshot) => boolean) =>
  Effect.gen(function*() {
    const taken: Array<BreakerStore.Snapshot> = []
    const start = Date.now()
    while (Date.now() - start < 5000) {
      const next = yield* Queue.take(q).pipe(Effect.timeout("100 millis"), Effect.option)
      if (Option.isSome(next)) {
        taken.push(next.value)
        if (p(next.value)) break
      }
    }
    return taken
  })

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
        name: "replaced",
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
        breaker: "replaced",
        state: "Open",
        since: now,
        openUntil: now + 5000,
        opens: 1,
        origin: "replaced#opener"
      }
      const halfOpen = { ...open, state: "HalfOpen" as const, since: now + 5000, openUntil: null }
      yield* Effect.promise(() =>
        raw.hset("bulwark:breaker:{replaced}", {
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
      expect(yield* counted(RedisBreakerStore.probeClaimsCounter, { breaker: "replaced", result: "stale" })).toBe(1)
      expect(yield* claims("replaced")).toBe(1)
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
      expect(yield* claimedOnce(name, "taken")).toBe(true)
      expect(yield* counted(RedisBreakerStore.probeClaimsCounter, { breaker: name, result: "granted" })).toBe(0)
      // a's own open came back to it too: it is neither received nor claimed for
      yield* Effect.sleep("200 millis")
      expect(yield* counted(RedisBreakerStore.receivedCounter, { breaker: name })).toBe(1)
      expect(yield* claims(name)).toBe(1)
      const keys = Metric.unsafeSnapshot()
        .filter((p) =>
          p.metricKey.name.startsWith("bulwark_redis_") &&
          p.metricKey.tags.some((t) => t.key === "breaker" && t.value === name)
        )
        .map((p) => p.metricKey)
      const described = [...new Set(keys.map((k) => `${k.name}: ${Option.getOrElse(k.description, () => "")}`))].sort()
      expect(described).toEqual([
        "bulwark_redis_breaker_probe_claims_total: Claims of a fleet-wide half-open probe slot, by result",
        "bulwark_redis_breaker_received_total: Breaker transitions received from other processes and applied",
        "bulwark_redis_breaker_writes_total: Breaker transitions written to Redis, by result"
      ])
      for (const k of keys) expect(k.keyType).toMatchObject({ incremental: true })
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

  it.scopedLive("a bad duration or count is a defect naming the option", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const cases: ReadonlyArray<readonly [RedisBreakerStore.Options, string]> = [
        [{ ttl: "0 millis" }, "`ttl` must be a positive, finite duration"],
        [{ probeLease: Duration.infinity }, "`probeLease` must be a positive, finite duration"],
        [{ quorumWindow: -5 }, "`quorumWindow` must be a positive, finite duration"],
        [{ commandTimeout: "soon" as Duration.DurationInput }, "`commandTimeout` must be a positive, finite duration"],
        [{ syncInterval: "0 seconds" }, "`syncInterval` must be a positive, finite duration"],
        [{ fleetProbes: 0 }, "`fleetProbes` must be an integer >= 1, got 0"],
        [{ quorum: 1.5 }, "`quorum` must be an integer >= 1, got 1.5"]
      ]
      for (const [options, message] of cases) {
        const exit = yield* Effect.exit(Effect.scoped(storeOn(server.socket, options)))
        const cause = Exit.isFailure(exit) ? exit.cause : Cause.empty
        expect(Cause.isDie(cause)).toBe(true)
        expect(Cause.squash(cause)).toEqual(new Error(`RedisBreakerStore: ${message}`))
      }
    }))
})

describe.skipIf(!hasRedisServer())("RedisBreakerStore: writes, claims, loads and deliveries", () => {
  it.scopedLive("a write that lost a race is re-based, counted as a conflict, and its outcome handed back", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const raw = yield* rawOn(server.socket)
      // another process wrote version 3; this one has seen nothing yet
      yield* storeRaw(raw, 3, snap("Closed", 1, "other#1", "rebased"))
      const store = yield* storeOn(server.socket)
      const inbox = yield* store.subscribe("rebased")
      yield* store.publish(snap("Isolated", 2, "rebased#1", "rebased"))
      expect(yield* counted(RedisBreakerStore.writesCounter, { breaker: "rebased", result: "conflict" })).toBe(1)
      expect(yield* counted(RedisBreakerStore.writesCounter, { breaker: "rebased", result: "written" })).toBe(1)
      expect(yield* Effect.promise(() => raw.hget("bulwark:breaker:{rebased}", "v"))).toBe("4")
      // the local breakers may have taken what it raced: they are told the outcome
      const taken = yield* takeUntil(inbox, (s) => s.origin === "@bulwark/redis")
      expect(taken[taken.length - 1]).toMatchObject({ state: "Isolated", since: 2, origin: "@bulwark/redis" })
    }))

  it.scopedLive("a write that keeps losing gives up after 16 attempts", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const raw = yield* rawOn(server.socket)
      // a version no write can expect: every attempt conflicts
      yield* storeRaw(raw, "1.5", snap("Closed", 1, "other#1", "stuck"))
      const store = yield* storeOn(server.socket)
      yield* store.publish(snap("Isolated", 2, "stuck#1", "stuck"))
      expect(yield* counted(RedisBreakerStore.writesCounter, { breaker: "stuck", result: "conflict" })).toBe(16)
      expect(yield* counted(RedisBreakerStore.writesCounter, { breaker: "stuck", result: "written" })).toBe(0)
    }))

  it.scopedLive("quorum: an open short of it is counted as a vote under the votes key, a close as local", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const raw = yield* rawOn(server.socket)
      const store = yield* storeOn(server.socket, { prefix: "q2:", quorum: 2 })
      const writes = Effect.forEach(
        ["vote", "local", "written"],
        (result) => counted(RedisBreakerStore.writesCounter, { breaker: "quorate", result })
      )
      yield* store.publish(snap("Open", 1, "quorate#1", "quorate"))
      expect(yield* Effect.promise(() => raw.keys("*"))).toEqual(["q2:breaker:{quorate}:votes"])
      expect(yield* writes).toEqual([1, 0, 0])
      yield* store.publish(snap("Closed", 2, "quorate#1", "quorate"))
      expect(yield* writes).toEqual([1, 1, 0])
    }))

  it.scopedLive("fleet probes: a process granted a slot probes when the opener's open ends, not a lease later", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const options = { fleetProbes: 2, probeLease: "1 minute" } as const
      const shape = {
        name: "granted",
        policy: CircuitBreaker.consecutive(1),
        openDuration: "300 millis",
        halfOpenProbes: 1
      } as const
      const opener = yield* breakerOn(yield* storeOn(server.socket, options), shape)
      const other = yield* breakerOn(yield* storeOn(server.socket, options), shape)
      yield* Effect.exit(opener.protect(fail))
      expect(yield* eventually(Effect.map(other.state, (s) => s === "Open"))).toBe(true)
      expect(yield* claimedOnce("granted", "granted")).toBe(true)
      expect(yield* probesWithin5s(other)).toBe(true)
      expect(yield* claims("granted")).toBe(1)
    }))

  it.scopedLive("fleet probes: a slot granted after a newer transition leaves the process on the newer one", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const raw = yield* rawOn(server.socket)
      const other = yield* breakerOn(yield* storeOn(server.socket, { fleetProbes: 1, probeLease: "1 minute" }), {
        name: "overtaken",
        openDuration: "1 minute"
      })
      // an open with a free slot, then its close broadcast before this process's claim is answered
      const now = Date.now()
      const open = snap("Open", now, "opener#1", "overtaken")
      yield* storeRaw(raw, 1, open)
      yield* Effect.promise(() => raw.hset("bulwark:breaker:{overtaken}", { pe: 1, pc: 0 }))
      yield* publishRaw(raw, 1, open)
      yield* publishRaw(raw, 2, snap("Closed", now + 1, "opener#1", "overtaken"))
      expect(yield* claimedOnce("overtaken", "granted")).toBe(true)
      expect(yield* eventually(Effect.map(other.state, (s) => s === "Closed"))).toBe(true)
      // the grant releases nothing: the open it was for is over
      yield* Effect.sleep("200 millis")
      expect(yield* other.state).toBe("Closed")
    }))

  it.scopedLive("fleet probes: an open whose lease is already over is not held", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const raw = yield* rawOn(server.socket)
      const store = yield* storeOn(server.socket, { probeLease: "1 second" })
      const inbox = yield* store.subscribe("lapsed")
      // an open that ended 10 s ago: its lease ended 9 s ago
      const now = Date.now()
      yield* publishRaw(raw, 1, { ...snap("Open", now - 70_000, "opener#1", "lapsed"), openUntil: now - 10_000 })
      // no key: the claim finds that open no longer current
      expect(yield* claimedOnce("lapsed", "stale")).toBe(true)
      // the claim holds first: by now a hold would have been delivered
      expect(Array.from(yield* Queue.takeAll(inbox))).toMatchObject([{ state: "Open", origin: "opener#1" }])
    }))

  it.scopedLive("fleet probes: when the claim cannot be answered, the process probes on its own", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const raw = yield* rawOn(server.socket)
      // the breaker's key holds what the claim script cannot read: its call fails
      yield* Effect.promise(() => raw.set("bulwark:breaker:{unanswered}", "not a hash"))
      const other = yield* breakerOn(yield* storeOn(server.socket, { probeLease: "1 minute" }), {
        name: "unanswered",
        openDuration: "1 minute",
        halfOpenProbes: 1
      })
      const now = Date.now()
      yield* publishRaw(raw, 1, { ...snap("Open", now, "opener#1", "unanswered"), openUntil: now + 300 })
      expect(yield* eventually(Effect.map(other.state, (s) => s === "Open"))).toBe(true)
      expect(yield* claimedOnce("unanswered", "unreachable")).toBe(true)
      expect(yield* probesWithin5s(other)).toBe(true)
    }))

  it.scopedLive("a process's own transitions coming back are neither received nor claimed for", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const raw = yield* rawOn(server.socket)
      const store = yield* storeOn(server.socket)
      // its breaker's transitions, each written before the next (their messages may come back
      // before or after the write's reply)
      for (let i = 0; i < 20; i++) yield* store.publish(snap(i % 2 === 0 ? "Open" : "Closed", i, "own#1", "own"))
      // a marker published after them: once it is delivered, they have come back and been taken
      const marker = yield* store.subscribe("own-marker")
      yield* publishRaw(raw, 1, snap("Isolated", 1, "other#1", "own-marker"))
      yield* Queue.take(marker)
      expect(yield* counted(RedisBreakerStore.receivedCounter, { breaker: "own" })).toBe(0)
      expect(yield* claims("own")).toBe(0)
      expect(yield* counted(RedisBreakerStore.writesCounter, { breaker: "own", result: "written" })).toBe(20)
    }))

  it.scopedLive("load: a half-open fleet is an open held for the probe lease, and the next write is handed back", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const raw = yield* rawOn(server.socket)
      const halfOpen = { ...snap("HalfOpen", 1, "prober#1", "probing"), opens: 3 }
      yield* storeRaw(raw, 2, halfOpen)
      const store = yield* storeOn(server.socket, { probeLease: "7 seconds" })
      const loaded = yield* store.load("probing")
      expect(Option.isSome(loaded)).toBe(true)
      const open = Option.getOrThrow(loaded)
      expect(open).toMatchObject({ breaker: "probing", state: "Open", opens: 3, origin: "@bulwark/redis" })
      expect([open.openUntil! - open.since, open.leaseUntil]).toEqual([7000, open.openUntil])
      // the breakers made from it took the store's snapshot: their next transition comes back
      const inbox = yield* store.subscribe("probing")
      yield* store.publish(snap("Closed", Date.now(), "probing#1", "probing"))
      const taken = yield* takeUntil(inbox, (s) => s.origin === "@bulwark/redis")
      expect(taken[taken.length - 1]).toMatchObject({ state: "Closed", origin: "@bulwark/redis" })
      expect(yield* claims("probing")).toBe(0)
    }))

  it.scopedLive("load: an open claims a probe slot, a close does not", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const raw = yield* rawOn(server.socket)
      yield* storeRaw(raw, 1, snap("Closed", 1, "other#1", "loaded-closed"))
      yield* storeRaw(raw, 1, snap("Open", 1, "other#1", "loaded-open"))
      // the opener holds the one slot
      yield* Effect.promise(() => raw.hset("bulwark:breaker:{loaded-open}", { pe: 1, pc: 1 }))
      const store = yield* storeOn(server.socket, { fleetProbes: 1 })
      expect(yield* store.load("loaded-closed")).toMatchObject(Option.some({ state: "Closed" }))
      expect(yield* store.load("loaded-open")).toMatchObject(Option.some({ state: "Open" }))
      // claims go out in order on one connection: once the open's is counted, a close's would be
      expect(yield* claimedOnce("loaded-open", "taken")).toBe(true)
      expect(yield* claims("loaded-closed")).toBe(0)
    }))

  it.scopedLive("deliveries: an older message is ignored, and revisions order deliveries and writes", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const raw = yield* rawOn(server.socket)
      const store = yield* storeOn(server.socket)
      const inbox = yield* store.subscribe("ordered")
      yield* storeRaw(raw, 2, snap("Closed", 2, "other#1", "ordered"))
      yield* publishRaw(raw, 2, snap("Closed", 2, "other#1", "ordered"))
      yield* publishRaw(raw, 1, snap("Open", 1, "other#1", "ordered"))
      yield* publishRaw(raw, 3, snap("Isolated", 3, "other#1", "ordered"))
      const taken = yield* takeUntil(inbox, (s) => s.state === "Isolated")
      expect(taken.map((s) => [s.state, s.since])).toEqual([["Closed", 2], ["Isolated", 3]])
      expect(taken[1]!.revision!).toBeGreaterThan(taken[0]!.revision!)
      yield* storeRaw(raw, 3, snap("Isolated", 3, "other#1", "ordered"))
      const first = yield* store.publish(snap("Closed", 4, "ordered#1", "ordered"))
      const second = yield* store.publish(snap("Isolated", 5, "ordered#1", "ordered"))
      // a breaker ignores a delivery ordered before its own publish: each publish takes the next revision
      expect(Number(first)).toBeGreaterThan(taken[1]!.revision!)
      expect(Number(second)).toBeGreaterThan(Number(first))
    }))

  it.scopedLive("after its subscription connection drops, a process subscribes again and catches up at once", () =>
    Effect.gen(function*() {
      const server = yield* startRedisServer
      const raw = yield* rawOn(server.socket)
      const options = { syncInterval: "1 minute" } as const
      const shape = { name: "resubscribed", openDuration: "1 minute" } as const
      const a = yield* breakerOn(yield* storeOn(server.socket, options), shape)
      // b's connections come back a second after they drop (a caller's client, its own reconnect delay)
      const slow = yield* Effect.acquireRelease(
        Effect.sync(() => new Redis({ path: server.socket, retryStrategy: () => 1000 })),
        (c) => Effect.sync(() => c.disconnect())
      )
      const bStore = yield* Layer.build(
        RedisBreakerStore.layer(options).pipe(Layer.provide(RedisClient.layer({ client: slow })))
      ).pipe(Effect.map((ctx) => ctx.unsafeMap.get(BreakerStore.BreakerStore.key) as BreakerStore.BreakerStore))
      const b = yield* breakerOn(bStore, shape)
      const subscribers = Effect.map(
        Effect.promise(() => raw.pubsub("NUMSUB", "bulwark:breaker")),
        (reply) => Number((reply as Array<unknown>)[1])
      )
      expect(yield* eventually(Effect.map(subscribers, (n) => n === 2))).toBe(true)
      const resyncs = yield* Metric.value(RedisBreakerStore.resyncsCounter)
      yield* Effect.promise(() => raw.client("KILL", "TYPE", "pubsub"))
      expect(yield* eventually(Effect.map(subscribers, (n) => n < 2))).toBe(true)
      // published while b's subscription is down: only its catch-up brings it
      yield* a.isolate
      expect(yield* subscribers).toBeLessThan(2)
      expect(yield* eventually(Effect.map(b.state, (s) => s === "Isolated"))).toBe(true)
      expect(yield* eventually(Effect.map(subscribers, (n) => n === 2))).toBe(true)
      expect((yield* Metric.value(RedisBreakerStore.resyncsCounter)).count).toBeGreaterThan(resyncs.count)
      const key = Metric.unsafeSnapshot().find((p) => p.metricKey.name === "bulwark_redis_breaker_resyncs_total")
      expect(Option.getOrUndefined(key!.metricKey.description)).toBe(
        "Comparisons of the local breakers with the state stored in Redis"
      )
      expect(key!.metricKey.keyType).toMatchObject({ incremental: true })
    }))
})
