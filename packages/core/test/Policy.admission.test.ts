/**
 * The registry `Policy.make` reads to fuse Bulwark's stages (`internal/fusion.ts`): which policy
 * functions have a reporting variant or an admission, and the one-step admission mask.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, FiberId } from "effect"
import * as Fusion from "../src/internal/fusion.js"

const policyFunction = () => <A, E, R>(self: Effect.Effect<A, E, R>) => self

describe("Policy stage registry", () => {
  it("a registered policy function has its reporting variant; other functions and non-functions have none", () => {
    const policy = policyFunction()
    const variant: Fusion.Reporting = () => (self) => self
    expect(Fusion.register(policy, variant)).toBe(policy)
    expect(Fusion.reportingVariant(policy)).toBe(variant)
    expect(Fusion.reportingVariant(policyFunction())).toBeUndefined()
    // only functions are looked up, even when an object was registered
    const object = {}
    expect(Fusion.register(object, variant)).toBe(object)
    expect(Fusion.reportingVariant(object)).toBeUndefined()
    expect(Fusion.reportingVariant(undefined)).toBeUndefined()
  })

  it("a registered breaker function has its admission, apart from bulkheads and reporting variants", () => {
    const policy = policyFunction()
    const admission: Fusion.BreakerAdmission = { admitNow: () => undefined }
    expect(Fusion.registerBreaker(policy, admission)).toBe(policy)
    expect(Fusion.breakerAdmission(policy)).toBe(admission)
    expect(Fusion.bulkheadAdmission(policy)).toBeUndefined()
    expect(Fusion.reportingVariant(policy)).toBeUndefined()
    expect(Fusion.breakerAdmission(policyFunction())).toBeUndefined()
    const object = {}
    expect(Fusion.registerBreaker(object, admission)).toBe(object)
    expect(Fusion.breakerAdmission(object)).toBeUndefined()
  })

  it("a registered bulkhead function has its admission, apart from breakers and reporting variants", () => {
    const policy = policyFunction()
    const admission: Fusion.BulkheadAdmission = { free: () => true, acquire: () => {}, release: () => {} }
    expect(Fusion.registerBulkhead(policy, admission)).toBe(policy)
    expect(Fusion.bulkheadAdmission(policy)).toBe(admission)
    expect(Fusion.breakerAdmission(policy)).toBeUndefined()
    expect(Fusion.reportingVariant(policy)).toBeUndefined()
    expect(Fusion.bulkheadAdmission(policyFunction())).toBeUndefined()
    const object = {}
    expect(Fusion.registerBulkhead(object, admission)).toBe(object)
    expect(Fusion.bulkheadAdmission(object)).toBeUndefined()
  })

  it("the admission mask is one flag change on Effect 3's runtime, calling its body each time it runs", () => {
    let runs = 0
    const masked = Fusion.admissionMask(() => Effect.sync(() => ++runs))
    // `Effect.uninterruptibleMask` is a step that builds the flag change: a different primitive
    expect((masked as unknown as { readonly _op: unknown })._op).toBe("UpdateRuntimeFlags")
    expect(runs).toBe(0)
    expect([Effect.runSync(masked), Effect.runSync(masked)]).toEqual([1, 2])
  })

  it("the runtime is checked once: building more admission masks runs no fiber", () => {
    Fusion.admissionMask(() => Effect.void)
    // fiber ids come from one counter: the two ids taken here are consecutive if no fiber ran between them
    const before = FiberId.unsafeMake().id
    Fusion.admissionMask(() => Effect.void)
    Fusion.admissionMask(() => Effect.void)
    expect(FiberId.unsafeMake().id - before).toBe(1)
  })

  it.effect("the admission mask runs its body uninterruptibly and restores the caller's interruptibility", () =>
    Effect.gen(function*() {
      const interruptible = Effect.checkInterruptible((interruptible) => Effect.succeed(interruptible))
      const masked = Fusion.admissionMask((restore) => Effect.zip(interruptible, restore(interruptible)))
      expect(yield* masked).toEqual([false, true])
      expect(yield* Effect.uninterruptible(masked)).toEqual([false, false])
      expect(yield* masked).toEqual([false, true])
    }))
})
