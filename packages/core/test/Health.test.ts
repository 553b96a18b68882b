import { Health } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Duration, Effect, Exit, Fiber, Schema, Scope, TestClock } from "effect"

const up = Effect.succeed<Health.ComponentHealth>({ status: "up" })
const degraded = Effect.succeed<Health.ComponentHealth>({ status: "degraded", details: { reason: "breaker open" } })
const down = Effect.succeed<Health.ComponentHealth>({ status: "down" })

describe("Health", () => {
  it.scoped("liveness and readiness are split by cause", () =>
    Effect.gen(function*() {
      const health = yield* Health.Health
      expect(yield* health.report).toMatchObject({ status: "up", live: true, ready: true, components: [] })
      yield* health.register("db", up, { kind: "readiness" })
      yield* health.register("payments breaker", degraded, { kind: "readiness" })
      const notReady = yield* health.report
      expect(notReady).toMatchObject({ status: "degraded", live: true, ready: false })
      expect(notReady.components.map((c) => [c.name, c.kind, c.status])).toEqual([
        ["db", "readiness", "up"],
        ["payments breaker", "readiness", "degraded"]
      ])
      yield* health.register("supervisor", down, { kind: "liveness" })
      expect(yield* health.report).toMatchObject({ status: "down", live: false, ready: false })
    }).pipe(Effect.provide(Health.layer())))

  it.scoped("a degraded liveness check keeps the process live and ready but reports degraded", () =>
    Effect.gen(function*() {
      const health = yield* Health.Health
      yield* health.register("memory", degraded, { kind: "liveness" })
      expect(yield* health.report).toMatchObject({ status: "degraded", live: true, ready: true })
    }).pipe(Effect.provide(Health.layer())))

  it.scoped("a check that fails, dies or times out counts as down", () =>
    Effect.gen(function*() {
      const health = yield* Health.Health
      yield* health.register("fails", Effect.fail(new Error("refused")), { kind: "readiness" })
      yield* health.register("dies", Effect.die("bug"), { kind: "readiness" })
      yield* health.register("hangs", Effect.never, { kind: "readiness" })
      const fiber = yield* Effect.fork(health.report)
      yield* TestClock.adjust("1 second")
      const report = yield* Fiber.join(fiber)
      expect(report.components.map((c) => [c.name, c.status, c.details?.error])).toEqual([
        ["fails", "down", "refused"],
        ["dies", "down", "bug"],
        ["hangs", "down", "check timed out after 1s"]
      ])
      expect(report).toMatchObject({ live: true, ready: false, status: "degraded" })
    }).pipe(Effect.provide(Health.layer({ checkTimeout: "1 second" }))))

  it.effect("a checkTimeout that is not a positive duration is a defect naming the field", () =>
    Effect.gen(function*() {
      for (const checkTimeout of [-1, 0, Number.NaN, "soon"] as const) {
        const exit = yield* Effect.exit(Health.make({ checkTimeout: checkTimeout as Duration.DurationInput }))
        expect(Exit.isFailure(exit) && Cause.isDie(exit.cause) && Cause.pretty(exit.cause)).toContain("checkTimeout")
      }
    }))

  it.effect("a check is unregistered when its scope closes; registering a name again replaces it", () =>
    Effect.gen(function*() {
      const health = yield* Health.Health
      yield* Effect.scoped(Effect.gen(function*() {
        yield* health.register("cache", down, { kind: "liveness" })
        yield* health.register("cache", up, { kind: "liveness" })
        expect((yield* health.report).components).toHaveLength(1)
        expect((yield* health.report).live).toBe(true)
      }))
      expect((yield* health.report).components).toEqual([])
    }).pipe(Effect.provide(Health.layer())))

  it.scoped("the report encodes to JSON through its Schema and decodes back", () =>
    Effect.gen(function*() {
      const health = yield* Health.Health
      yield* health.register("db", degraded, { kind: "readiness" })
      const report = yield* health.report
      const json = JSON.parse(JSON.stringify(Health.encodeReport(report)))
      expect(json.checkedAt).toBe("1970-01-01T00:00:00.000Z")
      expect(Schema.decodeUnknownSync(Health.HealthReport)(json)).toEqual(report)
    }).pipe(Effect.provide(Health.layer())))

  it.scoped("a check returning an unknown status is down, names the status, and the report still encodes", () =>
    Effect.gen(function*() {
      const health = yield* Health.Health
      const odd = (result: unknown) => Effect.succeed(result as Health.ComponentHealth)
      yield* health.register("sideways", odd({ status: "sideways" }), { kind: "liveness" })
      yield* health.register("nothing", odd(undefined), { kind: "readiness" })
      yield* health.register("inherited", odd(Object.create({ status: "up" })), { kind: "readiness" })
      yield* health.register("odd details", odd({ status: "up", details: 42 }), { kind: "readiness" })
      const report = yield* health.report
      expect(report.components.map((c) => [c.name, c.status, c.details?.error])).toEqual([
        [
          "sideways",
          "down",
          "check returned an unknown status \"sideways\" (expected \"up\", \"degraded\" or \"down\")"
        ],
        ["nothing", "down", "check returned an unknown status undefined (expected \"up\", \"degraded\" or \"down\")"],
        ["inherited", "up", undefined],
        ["odd details", "up", "check returned details that are not a record: 42"]
      ])
      expect(report).toMatchObject({ live: false, ready: false, status: "down" })
      const json = JSON.parse(JSON.stringify(Health.encodeReport(report)))
      expect(Schema.decodeUnknownSync(Health.HealthReport)(json)).toEqual(report)
    }).pipe(Effect.provide(Health.layer())))

  it.scoped("a check failing with a value that cannot be described is down; the other checks still report", () =>
    Effect.gen(function*() {
      const health = yield* Health.Health
      const throwing = {
        get message(): string {
          throw new Error("message getter")
        },
        toString(): string {
          throw new Error("toString")
        }
      }
      yield* health.register("null prototype", Effect.fail(Object.create(null)), { kind: "readiness" })
      yield* health.register("throwing", Effect.fail(throwing), { kind: "readiness" })
      yield* health.register("dies oddly", Effect.die(Object.create(null)), { kind: "liveness" })
      yield* health.register("db", up, { kind: "readiness" })
      const report = yield* health.report
      expect(report.components.map((c) => [c.name, c.status, typeof c.details?.error])).toEqual([
        ["null prototype", "down", "string"],
        ["throwing", "down", "string"],
        ["dies oddly", "down", "string"],
        ["db", "up", "undefined"]
      ])
      expect(report).toMatchObject({ live: false, status: "down" })
    }).pipe(Effect.provide(Health.layer())))

  it.scoped("registerIfPresent does nothing without a Health service and registers with one", () =>
    Effect.gen(function*() {
      // without the service: succeeds, registers nowhere, and needs nothing but a Scope
      const without: Effect.Effect<void, never, Scope.Scope> = Health.registerIfPresent("x", down, { kind: "liveness" })
      expect(yield* Effect.exit(without)).toEqual(Exit.void)
      const health = yield* Health.make()
      yield* Health.registerIfPresent("x", down, { kind: "liveness" }).pipe(
        Effect.provideService(Health.Health, health)
      )
      expect((yield* health.report).components.map((c) => [c.name, c.kind, c.status])).toEqual([
        ["x", "liveness", "down"]
      ])
    }))

  it.scoped("a liveness check that is down is never ready, even when every readiness check is up", () =>
    Effect.gen(function*() {
      const health = yield* Health.Health
      yield* health.register("db", up, { kind: "readiness" })
      yield* health.register("event loop", down, { kind: "liveness" })
      expect(yield* health.report).toMatchObject({ status: "down", live: false, ready: false })
      expect(Health.aggregate([{ name: "l", kind: "liveness", status: "down" }, {
        name: "r",
        kind: "readiness",
        status: "up"
      }], new Date(0))).toMatchObject({ status: "down", live: false, ready: false })
    }).pipe(Effect.provide(Health.layer())))

  it.scoped("all checks up reads as up, live and ready", () =>
    Effect.gen(function*() {
      const health = yield* Health.Health
      yield* health.register("db", up, { kind: "readiness" })
      yield* health.register("loop", up, { kind: "liveness" })
      expect(yield* health.report).toMatchObject({ status: "up", live: true, ready: true })
    }).pipe(Effect.provide(Health.layer())))

  it.effect("closing the scope of a replaced registration leaves the newer check in place", () =>
    Effect.gen(function*() {
      const health = yield* Health.make()
      const names = Effect.map(health.report, (r) => r.components.map((c) => [c.name, c.status]))
      const first = yield* Scope.make()
      const second = yield* Scope.make()
      yield* Scope.extend(health.register("cache", down, { kind: "readiness" }), first)
      yield* Scope.extend(health.register("cache", up, { kind: "readiness" }), second)
      yield* Scope.close(first, Exit.void)
      expect(yield* names).toEqual([["cache", "up"]])
      yield* Scope.close(second, Exit.void)
      expect(yield* names).toEqual([])
    }))

  it.effect("checks run concurrently: two one-second checks report after one second", () =>
    Effect.gen(function*() {
      const health = yield* Health.make()
      const slow = Effect.as(Effect.sleep("1 second"), { status: "up" } as const)
      yield* Effect.scoped(Effect.gen(function*() {
        yield* health.register("a", slow, { kind: "readiness" })
        yield* health.register("b", slow, { kind: "readiness" })
        const fiber = yield* Effect.fork(health.report)
        yield* TestClock.adjust("1 second")
        const report = yield* Fiber.join(fiber)
        expect(report.components.map((c) => c.status)).toEqual(["up", "up"])
        expect(report.checkedAt.getTime()).toBe(1000)
      }))
    }))

  it.scoped("an interrupted check, a throwing status getter, null details and odd statuses are down or flagged", () =>
    Effect.gen(function*() {
      const health = yield* Health.Health
      const odd = (result: unknown) => Effect.succeed(result as Health.ComponentHealth)
      yield* health.register("interrupted", Effect.interrupt, { kind: "readiness" })
      yield* health.register(
        "getter",
        odd({
          get status(): string {
            throw new Error("status getter")
          }
        }),
        { kind: "readiness" }
      )
      yield* health.register("null details", odd({ status: "up", details: null }), { kind: "readiness" })
      yield* health.register("symbol", odd({ status: Symbol("s") }), { kind: "readiness" })
      yield* health.register("bigint", odd({ status: 1n }), { kind: "readiness" })
      const report = yield* health.report
      expect(report.components.map((c) => [c.name, c.status, c.details?.error])).toEqual([
        ["interrupted", "down", "interrupted"],
        ["getter", "down", "check returned an unknown status undefined (expected \"up\", \"degraded\" or \"down\")"],
        ["null details", "up", "check returned details that are not a record: null"],
        ["symbol", "down", expect.stringContaining("Symbol(s)")],
        ["bigint", "down", expect.stringContaining("1")]
      ])
    }).pipe(Effect.provide(Health.layer())))

  it.scoped("a check's details record is reported as given; a function result is not read and is down", () =>
    Effect.gen(function*() {
      const health = yield* Health.Health
      const odd = (result: unknown) => Effect.succeed(result as Health.ComponentHealth)
      yield* health.register("breaker", odd({ status: "degraded", details: { state: "Open", failures: 3 } }), {
        kind: "readiness"
      })
      yield* health.register("function", odd(Object.assign(() => "up", { status: "up" })), { kind: "readiness" })
      const report = yield* health.report
      expect(report.components).toEqual([
        { name: "breaker", kind: "readiness", status: "degraded", details: { state: "Open", failures: 3 } },
        {
          name: "function",
          kind: "readiness",
          status: "down",
          details: {
            error: "check returned an unknown status undefined (expected \"up\", \"degraded\" or \"down\")"
          }
        }
      ])
    }).pipe(Effect.provide(Health.layer())))

  it.effect("a checkTimeout that is not a positive duration names the value it got", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Health.make({ checkTimeout: 0 }))
      expect(exit).toEqual(Exit.die(new RangeError("Health: checkTimeout must be a duration > 0, got 0")))
    }))

  it("the schemas and the service carry their names", () => {
    expect(Health.Health.key).toBe("@bulwark/core/Health")
    expect(String(Health.ComponentHealth)).toBe("ComponentHealth")
    expect(String(Health.ComponentReport)).toBe("ComponentReport")
    expect(String(Health.HealthReport)).toBe("HealthReport")
    expect(Schema.decodeUnknownSync(Health.ComponentHealth)({ status: "up", details: { a: 1 } })).toEqual({
      status: "up",
      details: { a: 1 }
    })
    expect(() => Schema.decodeUnknownSync(Health.ComponentHealth)({ status: "sideways" })).toThrow(/status/)
  })
})
