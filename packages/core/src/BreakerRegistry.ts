/**
 * Circuit breakers by key: one per host, tenant or endpoint, made on demand from one set of
 * options. The registry holds at most `capacity` breakers (the least recently used one makes
 * room for a new key) and drops a breaker that no call used for `idleTimeToLive` (checked four
 * times per `idleTimeToLive`), so a flood of distinct keys cannot grow memory without bound. A
 * call still running on a dropped breaker finishes normally; the next call for its key gets a
 * fresh, closed breaker.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as CircuitBreaker from "./CircuitBreaker.js"
import { describe } from "./internal/describe.js"
import * as InternalDuration from "./internal/duration.js"

/**
 * Options of a registry.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * The registry's name: its breakers are named `<name>/<key>`, and their metrics carry
   * `breaker="<name>"` (one series per registry, not per key). Default: `"registry"`.
   */
  readonly name?: string | undefined
  /** Options of every breaker (the name comes from the key). Default: the breaker's defaults. */
  readonly breaker?: Omit<CircuitBreaker.Options, "name" | "metricLabel"> | undefined
  /** Most breakers held at once. Default: 1,000. */
  readonly capacity?: number | undefined
  /**
   * A breaker no call used for this long is dropped (its state is forgotten): keep it longer than
   * the breakers' open duration. Default: 10 minutes.
   */
  readonly idleTimeToLive?: Duration.DurationInput | undefined
}

/**
 * A registry of breakers by key.
 *
 * @since 0.1.0
 * @category models
 */
export interface BreakerRegistry {
  /** Runs an effect through the breaker of `key`, made on first use. */
  readonly protect: (
    key: string
  ) => <A, E, R>(
    self: Effect.Effect<A, E, R>,
    options?: CircuitBreaker.ProtectOptions<NoInfer<E>>
  ) => Effect.Effect<A, E | CircuitBreaker.CircuitOpenError, R>
  /** The breaker of `key`, made on first use. */
  readonly get: (key: string) => Effect.Effect<CircuitBreaker.CircuitBreaker>
  /** The keys that have a breaker now. */
  readonly keys: Effect.Effect<ReadonlyArray<string>>
  /** Drops the breaker of `key` (the next call makes a fresh one). */
  readonly invalidate: (key: string) => Effect.Effect<void>
}

/**
 * The registry service.
 *
 * @since 0.1.0
 * @category tags
 */
export const BreakerRegistry: Context.Tag<BreakerRegistry, BreakerRegistry> = Context.GenericTag<BreakerRegistry>(
  "@bulwark/core/BreakerRegistry"
)

/**
 * Makes a registry. Its breakers live until dropped or until the scope closes.
 *
 * @example
 * ```ts
 * import { BreakerRegistry, CircuitBreaker } from "@bulwark/core"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const perHost = yield* BreakerRegistry.make({
 *     name: "upstream",
 *     breaker: { policy: CircuitBreaker.consecutive(3) },
 *     capacity: 500
 *   })
 *   const fetchFrom = (host: string) => Effect.succeed(`response from ${host}`)
 *   return yield* perHost.protect("api.example.com")(fetchFrom("api.example.com"))
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<BreakerRegistry, never, Scope.Scope> =>
  Effect.suspend(() => {
    const name = options.name ?? "registry"
    const capacity = options.capacity ?? 1_000
    if (!Number.isInteger(capacity) || capacity < 1) {
      return Effect.dieMessage(`BreakerRegistry "${name}": capacity must be a whole number >= 1, got ${capacity}`)
    }
    const ttlMillis = InternalDuration.toMillis(options.idleTimeToLive ?? Duration.minutes(10))
    if (!(ttlMillis > 0) || !Number.isFinite(ttlMillis)) {
      return Effect.dieMessage(
        `BreakerRegistry "${name}": idleTimeToLive must be a finite duration > 0, got ${
          describe(options.idleTimeToLive)
        }`
      )
    }
    const breakerOptions = options.breaker ?? {}
    // check the breaker options once, now, so that a bad option fails the registry's Layer
    // (without making a breaker: that would touch the store and the metrics)
    try {
      CircuitBreaker.validateOptions({ ...breakerOptions, name: `${name}/<key>`, metricLabel: name, health: false })
    } catch (error) {
      return Effect.dieMessage((error as Error).message)
    }
    return Effect.gen(function*() {
      const registryScope = yield* Effect.scope
      // breakers are made with the registry's services (store, alerts, clock), not with those of
      // whichever caller first used their key; a failed call is classified in its caller's context
      const services = Context.omit(Scope.Scope)(yield* Effect.context<never>())
      const clock = yield* Effect.clock
      // entries by key, least recently used first (a Map iterates in insertion order)
      const entries = new Map<string, Entry>()

      const drop = (key: string, entry: Entry): Effect.Effect<void> => {
        if (entries.get(key) === entry) entries.delete(key)
        // a breaker still being made is closed once it is made: closing its scope now would
        // leave it without its store fibers
        if (entry.breaker === undefined) {
          entry.dropped = true
          return Effect.void
        }
        return Scope.close(entry.scope, Exit.void)
      }

      const create = (key: string): Effect.Effect<CircuitBreaker.CircuitBreaker> => {
        let made: Entry | undefined = undefined
        return Effect.gen(function*() {
          // least recently used first; breakers still being made are not evicted (the registry may
          // hold more than `capacity` entries while that many are being made at once)
          const evicted: Array<[string, Entry]> = []
          let excess = entries.size - capacity + 1
          if (excess > 0) {
            for (const [k, e] of entries) {
              if (excess <= 0) break
              if (e.breaker === undefined) continue
              evicted.push([k, e])
              excess--
            }
            for (const [k] of evicted) entries.delete(k)
          }
          const scope = yield* Scope.fork(registryScope, ExecutionStrategy.sequential)
          const ready = yield* Deferred.make<CircuitBreaker.CircuitBreaker>()
          const entry: Entry = {
            scope,
            ready,
            breaker: undefined,
            dropped: false,
            lastUsed: clock.unsafeCurrentTimeMillis()
          }
          made = entry
          entries.set(key, entry)
          yield* Effect.forEach(evicted, ([k, e]) => drop(k, e), { discard: true })
          const breaker = yield* Scope.extend(
            CircuitBreaker.make({ ...breakerOptions, name: `${name}/${key}`, metricLabel: name, health: false }).pipe(
              Effect.provide(services)
            ),
            scope
          )
          entry.breaker = breaker
          yield* Deferred.succeed(ready, breaker)
          // dropped while it was being made: its callers get it, and it is closed as any dropped
          // breaker (their calls finish normally)
          if (entry.dropped) yield* drop(key, entry)
          return breaker
        }).pipe(
          // a breaker that could not be made gives back what it acquired, and its waiters hear why
          Effect.tapErrorCause((cause) =>
            Effect.suspend(() => {
              const entry = made
              if (entry === undefined || entry.breaker !== undefined) return Effect.void
              if (entries.get(key) === entry) entries.delete(key)
              return Effect.zipRight(
                Scope.close(entry.scope, Exit.failCause(cause)),
                Deferred.failCause(entry.ready, cause)
              )
            })
          ),
          Effect.uninterruptible
        )
      }

      const get = (key: string): Effect.Effect<CircuitBreaker.CircuitBreaker> =>
        Effect.suspend(() => {
          const entry = entries.get(key)
          if (entry === undefined) return create(key)
          // most recently used goes last
          entries.delete(key)
          entries.set(key, entry)
          entry.lastUsed = clock.unsafeCurrentTimeMillis()
          return entry.breaker !== undefined ? Effect.succeed(entry.breaker) : Deferred.await(entry.ready)
        })

      // drops the breakers no call used for `idleTimeToLive`, oldest first
      const sweep = Effect.suspend(() => {
        const deadline = clock.unsafeCurrentTimeMillis() - ttlMillis
        const idle: Array<[string, Entry]> = []
        for (const [key, entry] of entries) {
          if (entry.lastUsed > deadline) break
          if (entry.breaker !== undefined) idle.push([key, entry])
        }
        return Effect.forEach(idle, ([key, entry]) => drop(key, entry), { discard: true })
      })
      yield* Effect.forkScoped(
        Effect.interruptible(
          Effect.repeat(Effect.zipRight(Effect.sleep(Duration.millis(ttlMillis / 4)), sweep), Schedule.forever)
        )
      )

      return {
        get,
        protect: (key) => (self, options) => Effect.flatMap(get(key), (breaker) => breaker.protect(self, options)),
        keys: Effect.sync(() => [...entries.keys()]),
        invalidate: (key) =>
          Effect.suspend(() => {
            const entry = entries.get(key)
            return entry === undefined ? Effect.void : drop(key, entry)
          })
      } satisfies BreakerRegistry
    })
  })

interface Entry {
  readonly scope: Scope.CloseableScope
  readonly ready: Deferred.Deferred<CircuitBreaker.CircuitBreaker>
  breaker: CircuitBreaker.CircuitBreaker | undefined
  /** Dropped (invalidated, or the registry closing it) while it was being made. */
  dropped: boolean
  lastUsed: number
}

/**
 * Provides a registry.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<BreakerRegistry> =>
  Layer.scoped(BreakerRegistry, make(options))
