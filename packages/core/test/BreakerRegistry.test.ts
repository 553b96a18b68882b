import { BreakerRegistry, BreakerStore, CircuitBreaker, Failure, Health } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Data, Deferred, Effect, Exit, Fiber, Logger, LogLevel, Option, Scope, TestClock } from "effect"
import { sized } from "./size.js"

class Refused extends Data.TaggedError("Refused")<{}> {}

describe("BreakerRegistry", () => {
  it.scoped("one breaker per key, made on demand from one set of options", () =>
    Effect.gen(function*() {
      const registry = yield* BreakerRegistry.make({
        name: "hosts",
        breaker: { policy: CircuitBreaker.consecutive(2) }
      })
      const a = registry.protect("a.example")
      const b = registry.protect("b.example")
      yield* Effect.exit(a(Effect.fail(new Refused())))
      yield* Effect.exit(a(Effect.fail(new Refused())))
      expect(yield* b(Effect.succeed("ok"))).toBe("ok")
      const error = yield* Effect.flip(a(Effect.succeed("ok")))
      expect(error).toBeInstanceOf(CircuitBreaker.CircuitOpenError)
      expect((error as CircuitBreaker.CircuitOpenError).breaker).toBe("hosts/a.example")
      const state = yield* Effect.flatMap(registry.get("a.example"), (breaker) => breaker.state)
      expect(state).toBe("Open")
      expect([...(yield* registry.keys)].sort()).toEqual(["a.example", "b.example"])
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  // 10,000 keys (100 times the capacity) under `pnpm test`, 100,000 under `pnpm test:deep`
  const flood = sized(10_000, 100_000)
  it.scoped(
    `stays within its bound under ${flood.toLocaleString("en")} distinct keys and keeps the recent ones`,
    () =>
      Effect.gen(function*() {
        const registry = yield* BreakerRegistry.make({ name: "flood", capacity: 100 })
        let largest = 0
        for (let i = 0; i < flood; i++) {
          yield* registry.protect(`key-${i}`)(Effect.void)
          if (i % 1000 === 0) largest = Math.max(largest, (yield* registry.keys).length)
        }
        const keys = yield* registry.keys
        expect(keys.length).toBe(100)
        expect(largest).toBeLessThanOrEqual(100)
        expect([...keys].sort()).toEqual(Array.from({ length: 100 }, (_, i) => `key-${flood - 100 + i}`).sort())
      }),
    // about 0.3 ms of CPU per key: room for 100,000 keys on a busy machine
    { timeout: 240_000 }
  )

  it.scoped("drops breakers left idle, and forgets their state", () =>
    Effect.gen(function*() {
      const registry = yield* BreakerRegistry.make({
        breaker: { policy: CircuitBreaker.consecutive(1) },
        idleTimeToLive: "1 minute"
      })
      yield* Effect.exit(registry.protect("x")(Effect.fail(new Refused())))
      yield* registry.protect("y")(Effect.void)
      yield* TestClock.adjust("30 seconds")
      yield* registry.protect("y")(Effect.void)
      yield* TestClock.adjust("31 seconds")
      expect(yield* registry.keys).toEqual(["y"])
      // x was open; its replacement starts closed
      expect(yield* registry.protect("x")(Effect.succeed("fresh"))).toBe("fresh")
      yield* TestClock.adjust("2 minutes")
      expect(yield* registry.keys).toEqual([])
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("a breaker that cannot be made gives back what it acquired", () =>
    Effect.gen(function*() {
      // a store whose subscription takes a connection, then dies for one key
      const memory = yield* BreakerStore.makeMemory
      let connections = 0
      const store: BreakerStore.BreakerStore = {
        ...memory,
        subscribe: (breaker) =>
          Effect.acquireRelease(Effect.sync(() => connections++), () => Effect.sync(() => connections--)).pipe(
            Effect.zipRight(breaker.endsWith("/bad") ? Effect.dieMessage("store lost") : memory.subscribe(breaker))
          )
      }
      yield* Effect.gen(function*() {
        const registry = yield* BreakerRegistry.make({ name: "hosts" })
        yield* registry.get("good")
        const before = connections
        const exit = yield* Effect.exit(registry.get("bad"))
        expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
        expect(connections).toBe(before)
        expect(yield* registry.keys).toEqual(["good"])
      }).pipe(Effect.provideService(BreakerStore.BreakerStore, store))
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))
  it.effect("with a BreakerStore, eviction, invalidation and closing the registry all finish", () =>
    Effect.gen(function*() {
      const settle = Effect.gen(function*() {
        for (let i = 0; i < 100; i++) yield* Effect.yieldNow()
      })
      const scope = yield* Scope.make()
      const registry = yield* BreakerRegistry.make({ name: "hosts", capacity: 1 }).pipe(Scope.extend(scope))
      yield* registry.get("a")
      // "b" evicts "a": its breaker's scope is closed on the way
      const evicting = yield* Effect.fork(registry.get("b"))
      yield* settle
      expect(Option.isSome(yield* Fiber.poll(evicting))).toBe(true)
      expect(yield* registry.keys).toEqual(["b"])
      const invalidating = yield* Effect.fork(registry.invalidate("b"))
      yield* settle
      expect(Option.isSome(yield* Fiber.poll(invalidating))).toBe(true)
      yield* registry.get("c")
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* settle
      expect(Option.isSome(yield* Fiber.poll(closing))).toBe(true)
    }).pipe(Effect.provide(BreakerStore.layerMemory), Logger.withMinimumLogLevel(LogLevel.None)))

  it.effect("a registry made in an uninterruptible region still closes", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      yield* BreakerRegistry.make({ name: "hosts" }).pipe(Scope.extend(scope), Effect.uninterruptible)
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      for (let i = 0; i < 100; i++) yield* Effect.yieldNow()
      expect(Option.isSome(yield* Fiber.poll(closing))).toBe(true)
    }))

  it.scoped("breakers classify a failure with the caller's classifier, not the registry's", () =>
    Effect.gen(function*() {
      // the registry is made where Refused is a validation error, which trips no breaker
      const registry = yield* BreakerRegistry.make({
        name: "hosts",
        breaker: { policy: CircuitBreaker.consecutive(1) }
      })
        .pipe(
          Effect.provide(Failure.layerClassifier({ tables: [Failure.table<Refused>({ Refused: "validation" })] }))
        )
      const state = (key: string) => Effect.flatMap(registry.get(key), (breaker) => breaker.state)
      // a caller that says Refused is a validation error: it does not count
      yield* Effect.exit(registry.protect("a.example")(Effect.fail(new Refused()))).pipe(
        Effect.provide(Failure.layerClassifier({ tables: [Failure.table<Refused>({ Refused: "validation" })] }))
      )
      expect(yield* state("a.example")).toBe("Closed")
      // a caller whose context has no classifier: an unknown error counts
      yield* Effect.exit(registry.protect("b.example")(Effect.fail(new Refused())))
      expect(yield* state("b.example")).toBe("Open")
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.effect("bad options are a defect that names the field, before any call", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Effect.scoped(BreakerRegistry.make({ capacity: 0 })))
      expect(Exit.isFailure(exit) && Cause.pretty(exit.cause)).toMatch(/capacity must be a whole number >= 1, got 0/)
      const badBreaker = yield* Effect.exit(
        Effect.scoped(BreakerRegistry.make({ breaker: { policy: CircuitBreaker.consecutive(0) } }))
      )
      expect(Exit.isFailure(badBreaker) && Cause.pretty(badBreaker.cause)).toMatch(
        /policy\.threshold must be a whole number >= 1, got 0/
      )
    }))
  it.scoped("a breaker evicted or invalidated while it is being made keeps its store sync", () =>
    Effect.gen(function*() {
      const memory = yield* BreakerStore.makeMemory
      // loading "hosts/a" waits for the gate: its breaker is being made until then
      const gate = yield* Deferred.make<void>()
      const store: BreakerStore.BreakerStore = {
        ...memory,
        load: (breaker) =>
          breaker === "hosts/a" || breaker === "hosts/c"
            ? Effect.zipRight(Deferred.await(gate), memory.load(breaker))
            : memory.load(breaker)
      }
      const provideStore = Effect.provideService(BreakerStore.BreakerStore, store)
      const registry = yield* BreakerRegistry.make({
        name: "hosts",
        capacity: 1,
        breaker: { policy: CircuitBreaker.consecutive(1) }
      }).pipe(provideStore)
      const gettingA = yield* Effect.fork(registry.get("a"))
      const gettingC = yield* Effect.fork(registry.get("c"))
      for (let i = 0; i < 10; i++) yield* Effect.yieldNow()
      // "b" would evict "a" (least recently used), and "c" is invalidated, while both are being made
      yield* registry.get("b")
      yield* registry.invalidate("c")
      yield* Deferred.succeed(gate, undefined)
      const a = yield* Fiber.join(gettingA)
      const c = yield* Fiber.join(gettingC)
      // "a" was not evicted while being made; "c" was dropped once made
      expect([...(yield* registry.keys)].sort()).toEqual(["a", "b"])

      // another breaker of the same name opens: "a" follows it through the store
      const peer = yield* CircuitBreaker.make({ name: "hosts/a", policy: CircuitBreaker.consecutive(1) }).pipe(
        provideStore
      )
      yield* Effect.exit(peer.protect(Effect.fail(new Refused())))
      for (let i = 0; i < 10; i++) yield* Effect.yieldNow()
      expect(yield* a.state).toBe("Open")
      // the dropped one still answers its callers
      expect(yield* c.protect(Effect.succeed(1))).toBe(1)
      // the next key brings the registry back to its capacity
      yield* registry.get("d")
      expect(yield* registry.keys).toEqual(["d"])
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.effect("checking the breaker options up front makes no breaker and touches no store", () =>
    Effect.gen(function*() {
      const memory = yield* BreakerStore.makeMemory
      const touched: Array<string> = []
      const store: BreakerStore.BreakerStore = {
        load: (breaker) => Effect.zipRight(Effect.sync(() => touched.push(`load ${breaker}`)), memory.load(breaker)),
        publish: (snapshot) =>
          Effect.zipRight(Effect.sync(() => touched.push(`publish ${snapshot.breaker}`)), memory.publish(snapshot)),
        subscribe: (breaker) =>
          Effect.zipRight(Effect.sync(() => touched.push(`subscribe ${breaker}`)), memory.subscribe(breaker))
      }
      yield* Effect.gen(function*() {
        const registry = yield* BreakerRegistry.make({
          name: "hosts",
          breaker: { policy: CircuitBreaker.consecutive(2) }
        })
        expect(touched).toEqual([])
        yield* registry.protect("a")(Effect.succeed(1))
        expect(touched).toEqual(["load hosts/a", "subscribe hosts/a"])
      }).pipe(Effect.scoped, Effect.provideService(BreakerStore.BreakerStore, store))
      // bad breaker options and a negative idle time are still caught, naming the field
      const negative = yield* Effect.exit(
        Effect.scoped(BreakerRegistry.make({ breaker: { openDuration: "-5 seconds" } }))
      )
      expect(Exit.isFailure(negative) && Cause.pretty(negative.cause)).toMatch(/openDuration must be/)
      const ttl = yield* Effect.exit(Effect.scoped(BreakerRegistry.make({ idleTimeToLive: "-5 minutes" })))
      expect(Exit.isFailure(ttl) && Cause.pretty(ttl.cause)).toMatch(
        /idleTimeToLive must be a finite duration > 0, got -5 minutes/
      )
    }))

  it.scoped("a per-call isFailure reaches the key's breaker", () =>
    Effect.gen(function*() {
      const registry = yield* BreakerRegistry.make({
        name: "hosts",
        breaker: { policy: CircuitBreaker.consecutive(1) }
      })
      yield* Effect.exit(registry.protect("a")(Effect.fail(new Refused()), { isFailure: () => false }))
      expect(yield* Effect.flatMap(registry.get("a"), (breaker) => breaker.state)).toBe("Closed")
      yield* Effect.exit(registry.protect("a")(Effect.fail(new Refused())))
      expect(yield* Effect.flatMap(registry.get("a"), (breaker) => breaker.state)).toBe("Open")
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))
})

/** A memory store that counts the subscriptions its breakers hold open. */
const countingStore = Effect.gen(function*() {
  const memory = yield* BreakerStore.makeMemory
  const open = new Set<string>()
  const store: BreakerStore.BreakerStore = {
    ...memory,
    subscribe: (breaker) =>
      Effect.zipRight(
        Effect.acquireRelease(Effect.sync(() => open.add(breaker)), () => Effect.sync(() => open.delete(breaker))),
        memory.subscribe(breaker)
      )
  }
  return { open, store }
})

const settle = Effect.forEach(Array.from({ length: 20 }), () => Effect.yieldNow(), { discard: true })

describe("BreakerRegistry: bounds, names and what a dropped breaker gives back", () => {
  it.scoped("the least recently used breaker makes room for a new key; a used one stays, with its state", () =>
    Effect.gen(function*() {
      const registry = yield* BreakerRegistry.make({
        name: "hosts",
        capacity: 3,
        breaker: { policy: CircuitBreaker.consecutive(1) }
      })
      yield* Effect.exit(registry.protect("a")(Effect.fail(new Refused())))
      yield* registry.protect("b")(Effect.void)
      yield* registry.protect("c")(Effect.void)
      expect(yield* registry.keys).toEqual(["a", "b", "c"])
      const a = yield* registry.get("a")
      expect(yield* registry.keys).toEqual(["b", "c", "a"])
      yield* registry.get("d")
      expect(yield* registry.keys).toEqual(["c", "a", "d"])
      yield* registry.get("e")
      expect(yield* registry.keys).toEqual(["a", "d", "e"])
      expect(yield* registry.get("a")).toBe(a)
      expect(yield* a.state).toBe("Open")
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("without a name, the registry's breakers are named registry/<key>", () =>
    Effect.gen(function*() {
      const registry = yield* BreakerRegistry.make({ breaker: { policy: CircuitBreaker.consecutive(1) } })
      yield* Effect.exit(registry.protect("a.example")(Effect.fail(new Refused())))
      const error = yield* Effect.flip(registry.protect("a.example")(Effect.succeed("ok")))
      expect((error as CircuitBreaker.CircuitOpenError).breaker).toBe("registry/a.example")
      expect((yield* registry.get("b.example")).name).toBe("registry/b.example")
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.effect("the service's tag is @bulwark/core/BreakerRegistry, and layer provides a registry", () =>
    Effect.gen(function*() {
      expect(BreakerRegistry.BreakerRegistry.key).toBe("@bulwark/core/BreakerRegistry")
      const registry = yield* BreakerRegistry.BreakerRegistry
      expect(yield* registry.protect("a")(Effect.succeed(1))).toBe(1)
      expect((yield* registry.get("a")).name).toBe("hosts/a")
      expect(yield* registry.keys).toEqual(["a"])
    }).pipe(Effect.provide(BreakerRegistry.layer({ name: "hosts" }))))

  it.effect("idleTimeToLive must be finite and > 0, capacity a whole number; a bad breaker option names <name>/<key>", () =>
    Effect.gen(function*() {
      const defect = (options: BreakerRegistry.Options) =>
        Effect.map(
          Effect.exit(Effect.scoped(BreakerRegistry.make(options))),
          (exit) => Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "made"
        )
      expect(yield* defect({ idleTimeToLive: 0 })).toMatch(/idleTimeToLive must be a finite duration > 0, got 0/)
      expect(yield* defect({ idleTimeToLive: Infinity })).toMatch(
        /idleTimeToLive must be a finite duration > 0, got Infinity/
      )
      expect(yield* defect({ capacity: 2.5 })).toMatch(/capacity must be a whole number >= 1, got 2.5/)
      expect(yield* defect({ idleTimeToLive: 1, capacity: 1 })).toBe("made")
      expect(yield* defect({ name: "hosts", breaker: { policy: CircuitBreaker.consecutive(0) } })).toMatch(
        /CircuitBreaker "hosts\/<key>": policy\.threshold must be/
      )
    }))

  it.scoped("a registry's breakers do not register a health check each", () =>
    Effect.gen(function*() {
      const health = yield* Health.Health
      const registry = yield* BreakerRegistry.make({ name: "hosts" })
      yield* registry.protect("a")(Effect.void)
      yield* registry.protect("b")(Effect.void)
      expect((yield* health.report).components).toEqual([])
      // a breaker of its own does
      yield* CircuitBreaker.make({ name: "payments" })
      expect((yield* health.report).components.map((c) => c.name)).toEqual(["breaker:payments"])
    }).pipe(Effect.provide(Health.layer())))

  it.scoped("a dropped breaker gives back its store subscription: evicted, invalidated, left idle, or invalidated while being made", () =>
    Effect.gen(function*() {
      const { open, store } = yield* countingStore
      const gate = yield* Deferred.make<void>()
      const gated: BreakerStore.BreakerStore = {
        ...store,
        load: (breaker) =>
          breaker === "hosts/slow" ? Effect.zipRight(Deferred.await(gate), store.load(breaker)) : store.load(breaker)
      }
      const registry = yield* BreakerRegistry.make({ name: "hosts", capacity: 2, idleTimeToLive: "1 minute" }).pipe(
        Effect.provideService(BreakerStore.BreakerStore, gated)
      )
      yield* registry.get("a")
      yield* registry.get("b")
      expect([...open].sort()).toEqual(["hosts/a", "hosts/b"])
      // evicted
      yield* registry.get("c")
      expect([...open].sort()).toEqual(["hosts/b", "hosts/c"])
      // invalidated
      yield* registry.invalidate("b")
      expect([...open]).toEqual(["hosts/c"])
      // left idle
      yield* TestClock.adjust("2 minutes")
      expect([...open]).toEqual([])
      expect(yield* registry.keys).toEqual([])
      // invalidated while being made: given back once made
      const making = yield* Effect.fork(registry.get("slow"))
      yield* settle
      yield* registry.invalidate("slow")
      yield* Deferred.succeed(gate, undefined)
      const slow = yield* Fiber.join(making)
      yield* settle
      expect(slow.name).toBe("hosts/slow")
      expect([...open]).toEqual([])
      expect(yield* registry.keys).toEqual([])
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("a key asked for again after its breaker was invalidated while being made keeps its new breaker", () =>
    Effect.gen(function*() {
      const memory = yield* BreakerStore.makeMemory
      const gate = yield* Deferred.make<void>()
      let loads = 0
      const store: BreakerStore.BreakerStore = {
        ...memory,
        // the first breaker of "hosts/a" waits for the gate; the next one is made at once
        load: (breaker) =>
          Effect.suspend(() =>
            breaker === "hosts/a" && loads++ === 0
              ? Effect.zipRight(Deferred.await(gate), memory.load(breaker))
              : memory.load(breaker)
          )
      }
      const registry = yield* BreakerRegistry.make({ name: "hosts" }).pipe(
        Effect.provideService(BreakerStore.BreakerStore, store)
      )
      const first = yield* Effect.fork(registry.get("a"))
      yield* settle
      yield* registry.invalidate("a")
      const second = yield* registry.get("a")
      yield* Deferred.succeed(gate, undefined)
      const old = yield* Fiber.join(first)
      yield* settle
      expect(old).not.toBe(second)
      expect(yield* registry.keys).toEqual(["a"])
      expect(yield* registry.get("a")).toBe(second)
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("a breaker that fails to be made after its key was invalidated and asked for again leaves the new one in place", () =>
    Effect.gen(function*() {
      const memory = yield* BreakerStore.makeMemory
      const gate = yield* Deferred.make<void>()
      let subscriptions = 0
      const store: BreakerStore.BreakerStore = {
        ...memory,
        // the first breaker of "hosts/a" waits for the gate, then its subscription dies
        subscribe: (breaker) =>
          Effect.suspend(() =>
            breaker === "hosts/a" && subscriptions++ === 0
              ? Effect.zipRight(Deferred.await(gate), Effect.dieMessage("store lost"))
              : memory.subscribe(breaker)
          )
      }
      const registry = yield* BreakerRegistry.make({ name: "hosts" }).pipe(
        Effect.provideService(BreakerStore.BreakerStore, store)
      )
      const first = yield* Effect.fork(registry.get("a"))
      yield* settle
      yield* registry.invalidate("a")
      const second = yield* registry.get("a")
      yield* Deferred.succeed(gate, undefined)
      const exit = yield* Fiber.await(first)
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      expect(yield* registry.keys).toEqual(["a"])
      expect(yield* registry.get("a")).toBe(second)
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("a breaker whose making outlasts idleTimeToLive is not dropped while being made", () =>
    Effect.gen(function*() {
      const memory = yield* BreakerStore.makeMemory
      const gate = yield* Deferred.make<void>()
      const store: BreakerStore.BreakerStore = {
        ...memory,
        load: (breaker) => Effect.zipRight(Deferred.await(gate), memory.load(breaker))
      }
      const registry = yield* BreakerRegistry.make({
        name: "hosts",
        idleTimeToLive: "1 minute",
        breaker: { policy: CircuitBreaker.consecutive(1) }
      }).pipe(Effect.provideService(BreakerStore.BreakerStore, store))
      const making = yield* Effect.fork(registry.get("a"))
      yield* settle
      // four sweeps pass the minute while the store is slow
      yield* TestClock.adjust("70 seconds")
      yield* Deferred.succeed(gate, undefined)
      const a = yield* Fiber.join(making)
      yield* Effect.exit(a.protect(Effect.fail(new Refused())))
      // the next call finds the same breaker, open
      expect(yield* registry.get("a")).toBe(a)
      expect(yield* registry.keys).toEqual(["a"])
      expect(yield* a.state).toBe("Open")
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))
})
