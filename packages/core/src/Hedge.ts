/**
 * Hedged requests: when the first attempt has not answered after a delay, start another one
 * and take whichever succeeds first. The number of extra attempts is bounded, the losers are
 * interrupted, and their finalizers have finished before the winner's value is returned.
 *
 * A failed attempt is classified when it fails, by the `Classifier` in the caller's context
 * (see the `Failure` module for the rule); the success path never reads it.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Failure from "./Failure.js"
import { describe } from "./internal/describe.js"

/**
 * Options for {@link hedge}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** How long to wait for an answer before starting the next attempt; a duration > 0. Required. */
  readonly delay: Duration.DurationInput
  /** How many attempts may be started besides the first; a whole number >= 1. Default: `1`. */
  readonly maxHedges?: number | undefined
  /** A name for the operation, used as the `operation` metric tag. Default: none. */
  readonly name?: string | undefined
}

/**
 * Hedge attempts started after the first (tagged `operation` when named).
 *
 * @since 0.1.0
 * @category metrics
 */
export const hedgesCounter = Metric.counter("bulwark_hedge_started_total", {
  description: "Extra attempts started by hedging",
  incremental: true
})

type Event<A, E> =
  | { readonly _tag: "Tick"; readonly generation: number }
  | { readonly _tag: "Done"; readonly exit: Exit.Exit<A, E> }

/**
 * A policy function that hedges its effect. The first attempt starts at once; each time
 * `delay` passes without a success another attempt starts, up to `maxHedges` extra ones.
 *
 * - The first success wins; every other attempt is interrupted, and the winner's value is
 *   returned once their finalizers have finished.
 * - A failure the classification marks retryable does not end the call while other attempts
 *   run; when none is left running, the next attempt (if any remains) starts at once.
 * - A non-retryable failure or a defect ends the call at once (another copy of a request
 *   that was refused as invalid will be refused too).
 * - When every attempt has failed, the call fails with all their causes, in the order they
 *   failed (the first failure is the error a handler sees).
 * - A losing attempt whose finalizers die while it is interrupted makes the call die with that
 *   defect (after the winner's, or the failure's, cause): a bug in a finalizer is never dropped,
 *   even when another attempt succeeded.
 *
 * Use it only for idempotent work: several copies of it run at once.
 *
 * @example
 * ```ts
 * import { Hedge } from "@bulwark/core"
 * import { Effect } from "effect"
 *
 * const lookup: Effect.Effect<string, Error> = Effect.succeed("ada").pipe(Effect.delay("80 millis"))
 * const fast = lookup.pipe(Hedge.hedge({ delay: "50 millis", maxHedges: 2 }))
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const hedge = (options: Options) => {
  const delay = Duration.decodeUnknown(options.delay)
  if (Option.isNone(delay) || !Duration.greaterThan(delay.value, Duration.zero)) {
    throw new RangeError(`Hedge.hedge: delay must be a duration > 0, got ${describe(options.delay)}`)
  }
  const maxHedges = options.maxHedges ?? 1
  if (!Number.isInteger(maxHedges) || maxHedges < 1) {
    throw new RangeError(`Hedge.hedge: maxHedges must be a whole number >= 1, got ${describe(maxHedges)}`)
  }
  const counter = options.name === undefined ? hedgesCounter : Metric.tagged(hedgesCounter, "operation", options.name)
  const wait = Effect.sleep(delay.value)

  return <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.suspend(() => {
      // set once the call is decided: an attempt that ends after it is a loser being interrupted
      let settled = false
      const lost: Array<Cause.Cause<never>> = []
      const attempt = Effect.onExit(self, (exit) => {
        if (settled && Exit.isFailure(exit) && Cause.isDie(exit.cause)) {
          for (const defect of Cause.defects(exit.cause)) lost.push(Cause.die(defect))
        }
        return Effect.void
      })
      const race = Effect.scoped(Effect.gen(function*() {
        const events = yield* Queue.unbounded<Event<A, E>>()
        let started = 0
        let running = 0
        let generation = 0
        let timer: Fiber.RuntimeFiber<boolean> | undefined = undefined
        const failures: Array<Cause.Cause<E>> = []

        const start = Effect.suspend(() => {
          if (started > 0) counter.unsafeUpdate(1, [])
          started++
          running++
          return Effect.forkScoped(
            Effect.flatMap(Effect.exit(attempt), (exit) => Queue.offer(events, { _tag: "Done", exit }))
          )
        })
        const armTimer = Effect.suspend(() => {
          if (started > maxHedges) return Effect.void
          const current = ++generation
          return Effect.map(
            Effect.forkScoped(Effect.zipRight(wait, Queue.offer(events, { _tag: "Tick", generation: current }))),
            (fiber) => {
              timer = fiber
            }
          )
        })
        const settle = <X>(effect: Effect.Effect<X, E>) =>
          Effect.zipRight(
            Effect.sync(() => {
              settled = true
            }),
            effect
          )

        yield* start
        yield* armTimer
        while (true) {
          const event = yield* Queue.take(events)
          if (event._tag === "Tick") {
            if (event.generation !== generation) continue
            yield* start
            yield* armTimer
            continue
          }
          running--
          const exit = event.exit
          if (Exit.isSuccess(exit)) return yield* settle(Effect.succeed(exit.value))
          // a defect ends the call even beside a retryable typed failure (a finalizer that died):
          // a later success must not hide a bug
          let fatal = Cause.isDie(exit.cause)
          if (!fatal) {
            const failure = Cause.failureOption(exit.cause)
            if (Option.isSome(failure)) {
              // the rule: the caller's classifier, when the failure happens
              const classifier = yield* Failure.currentClassifier
              const classification = yield* Failure.classifyWith(classifier, failure.value)
              fatal = !classification.retryable
            }
          }
          failures.push(exit.cause)
          if (fatal) return yield* settle(Effect.failCause(exit.cause))
          if (running > 0) continue
          if (started <= maxHedges) {
            if (timer !== undefined) yield* Fiber.interrupt(timer)
            yield* start
            yield* armTimer
            continue
          }
          return yield* settle(Effect.failCause(failures.reduce((all, cause) => Cause.sequential(all, cause))))
        }
      }))
      // the scope has closed: every loser has been interrupted and its finalizers have run
      return race.pipe(
        Effect.exit,
        Effect.flatMap((exit) => {
          if (lost.length === 0) return exit
          const defects = lost.reduce((all, cause) => Cause.sequential(all, cause))
          return Effect.failCause(Exit.isSuccess(exit) ? defects : Cause.sequential(exit.cause, defects))
        })
      )
    })
}
