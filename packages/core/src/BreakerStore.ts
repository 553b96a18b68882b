/**
 * Where circuit breaker state lives between processes. A breaker decides locally on every call
 * and never waits on its store: it pushes a snapshot after each transition from a background
 * fiber, and applies the snapshots other processes publish as they arrive. The in-memory store is
 * the default; a Redis store implements the same interface for fleets.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"

/**
 * The states of a circuit breaker. `Isolated` is forced open by an operator until released;
 * `Disabled` is forced closed: every call runs and is still measured.
 *
 * @since 0.1.0
 * @category models
 */
export const BreakerState = Schema.Literal("Closed", "Open", "HalfOpen", "Isolated", "Disabled")

/**
 * @since 0.1.0
 * @category models
 */
export type BreakerState = typeof BreakerState.Type

/**
 * A breaker's state as it travels between processes: versioned so that a store can hold
 * snapshots written by an older or newer release. Times are epoch milliseconds from `Clock`
 * (wall time) and must be finite: `Infinity`, `-Infinity` and `NaN` are rejected when decoding.
 * A breaker that takes a snapshot stays open at most as long as its own open duration allows
 * for that many opens, whatever `openUntil` says.
 *
 * @since 0.1.0
 * @category models
 */
export const Snapshot = Schema.Struct({
  /** Format version; this release writes and reads 1. */
  version: Schema.Literal(1),
  /** The breaker's name. */
  breaker: Schema.String,
  state: BreakerState,
  /** When the breaker entered this state. */
  since: Schema.Finite,
  /** When an open breaker lets the next call through (`null` unless `Open`). */
  openUntil: Schema.NullOr(Schema.Finite),
  /** How many times it opened since it last closed (drives a growing open duration). */
  opens: Schema.Int.pipe(Schema.nonNegative()),
  /** Who wrote the snapshot: a breaker ignores its own snapshots when they come back. */
  origin: Schema.String,
  /**
   * Set by a store on what it delivers: its order among everything the store delivered and
   * published in this process (it only grows). A breaker never takes a snapshot at or below the
   * highest revision it has published or taken, so a delivery that its own newer publish
   * overtook cannot move it back.
   */
  revision: Schema.optional(Schema.Int.pipe(Schema.nonNegative())),
  /**
   * Set by a shared store on an open it holds a breaker in while other processes probe: the
   * breaker stays open until then even past its own open duration (a later hold of the same open
   * may move it earlier again, when this process may probe after all).
   */
  leaseUntil: Schema.optional(Schema.Finite)
}).annotations({ identifier: "BreakerSnapshot" })

/**
 * @since 0.1.0
 * @category models
 */
export type Snapshot = typeof Snapshot.Type

/**
 * The JSON form of a snapshot.
 *
 * @since 0.1.0
 * @category models
 */
export type SnapshotJson = typeof Snapshot.Encoded

/**
 * Encodes a snapshot to its JSON shape.
 *
 * @since 0.1.0
 * @category serialisation
 */
export const encodeSnapshot: (snapshot: Snapshot) => SnapshotJson = Schema.encodeSync(Snapshot)

/**
 * Decodes a snapshot; fails with a `ParseError` that names the bad field (an unknown `version`
 * included).
 *
 * @since 0.1.0
 * @category serialisation
 */
export const decodeSnapshot = Schema.decodeUnknown(Snapshot)

/**
 * A store of breaker snapshots.
 *
 * A store never fails its callers: a remote store that cannot be reached logs the problem and
 * carries on, and the breakers keep deciding locally.
 *
 * @since 0.1.0
 * @category models
 */
export interface BreakerStore {
  /** The last snapshot published for a breaker, if any. */
  readonly load: (breaker: string) => Effect.Effect<Option.Option<Snapshot>>
  /**
   * Records a snapshot and tells every subscriber of that breaker. A store that orders its
   * deliveries returns the revision the publish took (see `Snapshot.revision`).
   */
  readonly publish: (snapshot: Snapshot) => Effect.Effect<number | void>
  /**
   * Subscribes to a breaker's snapshots. The subscription is live when the effect completes and
   * ends with the scope.
   */
  readonly subscribe: (breaker: string) => Effect.Effect<Queue.Dequeue<Snapshot>, never, Scope.Scope>
}

/**
 * The store service. A breaker made where no store is provided keeps its state to itself.
 *
 * @since 0.1.0
 * @category tags
 */
export const BreakerStore: Context.Tag<BreakerStore, BreakerStore> = Context.GenericTag<BreakerStore>(
  "@bulwark/core/BreakerStore"
)

/**
 * Makes an in-memory store: the breakers of one process (for example one per worker fiber, or a
 * breaker rebuilt after a Layer restart) share their state through it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory: Effect.Effect<BreakerStore> = Effect.gen(function*() {
  const latest = new Map<string, Snapshot>()
  const hub = yield* PubSub.unbounded<Snapshot>()
  let revision = 0
  return {
    load: (breaker) => Effect.sync(() => Option.fromNullable(latest.get(breaker))),
    publish: (snapshot) =>
      Effect.suspend(() => {
        const stored = { ...snapshot, revision: ++revision }
        latest.set(snapshot.breaker, stored)
        return Effect.as(PubSub.publish(hub, stored), stored.revision)
      }),
    subscribe: (breaker) =>
      Effect.gen(function*() {
        const subscription = yield* PubSub.subscribe(hub)
        const out = yield* Effect.acquireRelease(Queue.unbounded<Snapshot>(), Queue.shutdown)
        yield* Queue.take(subscription).pipe(
          // a snapshot another one replaced meanwhile is not passed on: breakers that published at
          // once all end on the one published last
          Effect.flatMap((snapshot) =>
            snapshot.breaker === breaker && latest.get(breaker) === snapshot ? Queue.offer(out, snapshot) : Effect.void
          ),
          Effect.forever,
          // interruptible even when subscribed from an uninterruptible region, or closing the
          // subscription's scope would wait for it forever
          Effect.interruptible,
          Effect.forkScoped
        )
        return out
      })
  }
})

/**
 * Provides the in-memory store.
 *
 * @example
 * ```ts
 * import { BreakerStore, CircuitBreaker } from "@bulwark/core"
 * import { Layer } from "effect"
 *
 * const Breakers = CircuitBreaker.layer({ name: "payments" }).pipe(Layer.provide(BreakerStore.layerMemory))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<BreakerStore> = Layer.effect(BreakerStore, makeMemory)
