import { Bulkhead, CircuitBreaker, RetryBudget } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import {
  Chunk,
  ConfigProvider,
  Effect,
  Either,
  Exit,
  Fiber,
  JSONSchema,
  Layer,
  Schema,
  Scope,
  Stream,
  TestClock
} from "effect"
import * as Status from "../src/Status.js"

const failing = Effect.fail(new Error("down"))

/** Waits until the registry has counted `version` changes (its followers record transitions on their own fibers). */
const settled = (status: Status.Service, version: number) =>
  status.changes.pipe(Stream.takeUntil((n) => n >= version), Stream.runDrain)

describe("Status", () => {
  it.effect("a snapshot encodes to its full JSON shape", () =>
    Effect.gen(function*() {
      const status = yield* Status.make({ service: "billing" })
      const breaker = yield* CircuitBreaker.make({
        name: "payments",
        policy: CircuitBreaker.consecutive(2),
        openDuration: "10 seconds"
      })
      const bulkhead = yield* Bulkhead.make({ name: "pdf", maxConcurrent: 2, maxQueued: 3 })
      const budget = yield* RetryBudget.make({ name: "payments" })
      yield* status.trackBreaker(breaker)
      yield* status.trackBulkhead(bulkhead)
      yield* status.trackRetryBudget(budget)
      yield* status.trackResources(Effect.succeed([{ resource: "heap", level: "ok", ratio: 0.5, used: 5, limit: 10 }]))
      yield* TestClock.adjust("1 second")
      for (let i = 0; i < 2; i++) yield* Effect.exit(breaker.protect(failing))
      yield* bulkhead.protect(Effect.void)
      yield* TestClock.adjust("4 seconds")

      expect(Status.encodeSnapshot(yield* status.snapshot)).toEqual({
        service: "billing",
        checkedAt: "1970-01-01T00:00:05.000Z",
        breakers: [{
          name: "payments",
          state: "Open",
          failureRate: 0,
          slowCallRate: 0,
          calls: 2,
          failures: 2,
          rejections: 0,
          consecutiveFailures: 0,
          retryAfterMillis: 6_000,
          transitions: [{ from: "Closed", to: "Open", at: 1_000 }]
        }],
        bulkheads: [{
          name: "pdf",
          active: 0,
          queued: 0,
          queuedByPriority: [0],
          maxConcurrent: 2,
          maxQueued: 3,
          admitted: 1,
          rejected: { queue_full: 0, wait_timeout: 0 }
        }],
        retryBudgets: [{ name: "payments", calls: 0, retries: 0, available: 100 }],
        supervisors: [],
        resources: [{ resource: "heap", level: "ok", ratio: 0.5, used: 5, limit: 10 }]
      })
    }).pipe(Effect.scoped))

  it("the snapshot's JSON Schema names each of its parts", () => {
    const schema = JSONSchema.make(Status.StatusSnapshot)
    expect((schema as { readonly $ref?: string }).$ref).toBe("#/$defs/StatusSnapshot")
    expect(Object.keys(schema.$defs ?? {})).toEqual(expect.arrayContaining([
      "StatusSnapshot",
      "BreakerStatus",
      "BreakerTransition",
      "BulkheadStatus",
      "RetryBudgetStatus",
      "ResourceStatus"
    ]))
  })

  it("decoding rejects a transition or a rejection count of the wrong shape", () => {
    const breaker = {
      name: "b",
      state: "Closed",
      failureRate: 0,
      slowCallRate: 0,
      calls: 0,
      failures: 0,
      rejections: 0,
      consecutiveFailures: 0,
      retryAfterMillis: null,
      transitions: [{ from: "Closed", to: "Open", at: 5 }]
    }
    expect(Either.isRight(Schema.decodeUnknownEither(Status.BreakerStatus)(breaker))).toBe(true)
    for (const transition of [{ from: "Nowhere", to: "Open", at: 5 }, { from: "Closed", to: "Open" }]) {
      const decoded = Schema.decodeUnknownEither(Status.BreakerStatus)({ ...breaker, transitions: [transition] })
      expect(Either.isLeft(decoded)).toBe(true)
    }
    const bulkhead = {
      name: "pdf",
      active: 0,
      queued: 0,
      queuedByPriority: [0],
      maxConcurrent: 1,
      maxQueued: 0,
      admitted: 0,
      rejected: { queue_full: 0, wait_timeout: 0 }
    }
    expect(Either.isRight(Schema.decodeUnknownEither(Status.BulkheadStatus)(bulkhead))).toBe(true)
    const badRejected = { ...bulkhead, rejected: { queue_full: "many" } }
    expect(Either.isLeft(Schema.decodeUnknownEither(Status.BulkheadStatus)(badRejected))).toBe(true)
  })

  it("a retry budget's and a resource's status keep every field, and need each of them", () => {
    const budget = { name: "payments", calls: 10, retries: 1, available: 0 }
    const resource = { resource: "memory", level: "warning", ratio: 0.8, used: 800, limit: 1000 }
    expect(Schema.decodeUnknownSync(Status.RetryBudgetStatus)(budget)).toEqual(budget)
    expect(Schema.decodeUnknownSync(Status.ResourceStatus)(resource)).toEqual(resource)
    for (const key of Object.keys(budget)) {
      const { [key]: _, ...missing } = budget as Record<string, unknown>
      expect(Either.isLeft(Schema.decodeUnknownEither(Status.RetryBudgetStatus)(missing))).toBe(true)
    }
    for (const key of Object.keys(resource)) {
      const { [key]: _, ...missing } = resource as Record<string, unknown>
      expect(Either.isLeft(Schema.decodeUnknownEither(Status.ResourceStatus)(missing))).toBe(true)
    }
  })

  it("the registry's tag is @bulwark/node/Status", () => {
    expect(Status.Status.key).toBe("@bulwark/node/Status")
  })

  it.effect("a breaker out of the open state reports no retry-after", () =>
    Effect.gen(function*() {
      const status = yield* Status.make()
      const breaker = yield* CircuitBreaker.make({
        name: "b",
        policy: CircuitBreaker.consecutive(1),
        openDuration: "1 second"
      })
      yield* status.trackBreaker(breaker)
      yield* Effect.exit(breaker.protect(failing))
      yield* TestClock.adjust("1 second")
      // the probe that half-opens it is still running
      yield* Effect.forkScoped(breaker.protect(Effect.never))
      yield* settled(status, 3) // tracked, Closed → Open, Open → HalfOpen
      const [b] = (yield* status.snapshot).breakers
      expect(b).toMatchObject({ state: "HalfOpen", retryAfterMillis: null })
      expect(b!.transitions.map((t) => t.to)).toEqual(["Open", "HalfOpen"])
    }).pipe(Effect.scoped))

  it.effect("keeps the last transitionsKept transitions of each breaker", () =>
    Effect.gen(function*() {
      const status = yield* Status.make({ transitionsKept: 2 })
      const breaker = yield* CircuitBreaker.make({
        name: "b",
        policy: CircuitBreaker.consecutive(1),
        openDuration: "1 second",
        halfOpenProbes: 1,
        successThreshold: 1
      })
      yield* status.trackBreaker(breaker)
      yield* Effect.exit(breaker.protect(failing)) // Closed → Open at 0
      yield* TestClock.adjust("1 second")
      yield* breaker.protect(Effect.void) // Open → HalfOpen → Closed at 1000
      yield* settled(status, 4)
      const [b] = (yield* status.snapshot).breakers
      expect(b!.transitions).toEqual([
        { from: "Open", to: "HalfOpen", at: 1_000 },
        { from: "HalfOpen", to: "Closed", at: 1_000 }
      ])
    }).pipe(Effect.scoped))

  it.effect("a component is tracked until its scope closes, whatever its place in the list", () =>
    Effect.gen(function*() {
      const status = yield* Status.make()
      const names = Effect.map(status.snapshot, (s) => s.bulkheads.map((b) => b.name))
      const scopes = yield* Effect.forEach(["first", "second", "third"], (name) =>
        Effect.gen(function*() {
          const scope = yield* Scope.make()
          const bulkhead = yield* Bulkhead.make({ name, maxConcurrent: 1 })
          yield* Scope.extend(status.trackBulkhead(bulkhead), scope)
          return scope
        }))
      expect(yield* names).toEqual(["first", "second", "third"])
      yield* Scope.close(scopes[0]!, Exit.void)
      expect(yield* names).toEqual(["second", "third"])
      yield* Scope.close(scopes[2]!, Exit.void)
      expect(yield* names).toEqual(["second"])
      yield* Scope.close(scopes[1]!, Exit.void)
      expect(yield* names).toEqual([])
    }))

  it.effect("changes counts up: one tick for each tracking, transition and notify", () =>
    Effect.gen(function*() {
      const status = yield* Status.make()
      const ticks = yield* status.changes.pipe(Stream.take(5), Stream.runCollect, Effect.fork)
      yield* Effect.yieldNow()
      const breaker = yield* CircuitBreaker.make({ name: "b", policy: CircuitBreaker.consecutive(1) })
      yield* status.trackBreaker(breaker)
      yield* Effect.exit(breaker.protect(failing))
      yield* status.notify
      yield* status.trackRetryBudget(yield* RetryBudget.make({ name: "r" }))
      expect(Chunk.toReadonlyArray(yield* Fiber.join(ticks))).toEqual([0, 1, 2, 3, 4])
    }).pipe(Effect.scoped))

  it("bad literal options throw with the field named", () => {
    expect(() => Effect.runSync(Status.make({ service: "" }))).toThrow("Status: service must not be empty")
    expect(() => Effect.runSync(Status.make({ transitionsKept: 0 }))).toThrow(
      "Status: transitionsKept must be an integer >= 1, got 0"
    )
    expect(() => Effect.runSync(Status.make({ transitionsKept: 1.5 }))).toThrow(/transitionsKept/)
    expect(Effect.runSync(Status.make({ transitionsKept: 1 })).service).toBe("bulwark")
  })

  it.effect("Config: SERVICE defaults to bulwark; TRANSITIONS_KEPT must be an integer >= 1", () =>
    Effect.gen(function*() {
      const read = (map: Record<string, string>) =>
        Effect.exit(Effect.withConfigProvider(Status.config, ConfigProvider.fromMap(new Map(Object.entries(map)))))
      expect(yield* read({})).toEqual(Exit.succeed({ service: "bulwark", transitionsKept: 10 }))
      expect(yield* read({ TRANSITIONS_KEPT: "1" })).toEqual(Exit.succeed({ service: "bulwark", transitionsKept: 1 }))
      const zero = yield* read({ TRANSITIONS_KEPT: "0" })
      expect(String(Exit.isFailure(zero) && zero.cause)).toContain("TRANSITIONS_KEPT")
      expect(String(Exit.isFailure(zero) && zero.cause)).toContain("must be an integer >= 1")
      const layered = yield* Effect.provide(
        Status.Status,
        Status.layerConfig().pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map()))))
      )
      expect(layered.service).toBe("bulwark")
    }))
})
