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
  ) => <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | CircuitBreaker.CircuitOpenError, R>
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
    const ttl = Duration.decodeUnknown(options.idleTimeToLive ?? Duration.minutes(10))
    if (ttl._tag === "None" || !Duration.isFinite(ttl.value) || Duration.toMillis(ttl.value) <= 0) {
      return Effect.dieMessage(
        `BreakerRegistry "${name}": idleTimeToLive must be a finite duration > 0, got ${String(options.idleTimeToLive)}`
      )
    }
    const ttlMillis = Duration.toMillis(ttl.value)
    const breakerOptions = options.breaker ?? {}
    return Effect.gen(function*() {
      // check the breaker options once, now, so that a bad option fails the registry's Layer
      yield* Effect.scoped(
        CircuitBreaker.make({ ...breakerOptions, name: `${name}/options`, metricLabel: name, health: false })
      )
      const registryScope = yield* Effect.scope
      // breakers are made with the registry's services (classifier, store, alerts), not with
      // those of whichever caller first used their key
      const services = Context.omit(Scope.Scope)(yield* Effect.context<never>())
      const clock = yield* Effect.clock
      // entries by key, least recently used first (a Map iterates in insertion order)
      const entries = new Map<string, Entry>()

      const drop = (key: string, entry: Entry): Effect.Effect<void> => {
        if (entries.get(key) === entry) entries.delete(key)
        return Scope.close(entry.scope, Exit.void)
      }

      const create = (key: string): Effect.Effect<CircuitBreaker.CircuitBreaker> => {
        let made: Entry | undefined = undefined
        return Effect.gen(function*() {
          const evicted: Array<[string, Entry]> = []
          while (entries.size >= capacity) {
            const oldest = entries.entries().next().value as [string, Entry]
            entries.delete(oldest[0])
            evicted.push(oldest)
          }
          const scope = yield* Scope.fork(registryScope, ExecutionStrategy.sequential)
          const ready = yield* Deferred.make<CircuitBreaker.CircuitBreaker>()
          const entry: Entry = { scope, ready, breaker: undefined, lastUsed: clock.unsafeCurrentTimeMillis() }
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
        protect: (key) => (self) => Effect.flatMap(get(key), (breaker) => breaker.protect(self)),
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
