/**
 * Fault injection for tests and demos: typed failures (by rate, or during an outage scripted
 * with a `Schedule`), latency, defects and hangs, injected into an effect or into every method
 * of a service provided by a Layer. Randomness comes only from Effect's `Random` (a private one
 * seeded from `seed` when given), time only from `Clock`, so a run is reproducible.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Random from "effect/Random"
import type * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import { describe } from "./internal/describe.js"
import * as InternalDuration from "./internal/duration.js"

/**
 * A latency to add before each call: a fixed duration, or a range drawn uniformly.
 *
 * @since 0.1.0
 * @category models
 */
export type Latency = Duration.DurationInput | {
  readonly min: Duration.DurationInput
  readonly max: Duration.DurationInput
}

/**
 * What to inject. Rates are probabilities per call in [0, 1]; `hangRate + defectRate +
 * failureRate` must not exceed 1 (one draw decides a call's fault).
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<E = never> {
  /** Seed of a private `Random`, so the same seed gives the same faults. Default: the context's `Random`. */
  readonly seed?: number | string | undefined
  /** Probability that a call fails with `failure()`. Default: `0`. */
  readonly failureRate?: number | undefined
  /** Builds the typed failure to inject. Required when `failureRate > 0` or `outage` is set. */
  readonly failure?: (() => E) | undefined
  /**
   * Calls fail with `failure()` while this schedule continues; it is stepped once per call
   * with the time from `Clock` (`Schedule.recurs(3)`: the first 3 calls fail;
   * `Schedule.forever.pipe(Schedule.upTo("10 seconds"))`: calls fail for 10 s after the first).
   * Default: none.
   */
  readonly outage?: Schedule.Schedule<unknown, unknown> | undefined
  /** Probability that a call dies with `defect()`. Default: `0`. */
  readonly defectRate?: number | undefined
  /** Builds the defect. Default: an `Error` saying it was injected. */
  readonly defect?: (() => unknown) | undefined
  /** Probability that a call never completes (until interrupted). Default: `0`. */
  readonly hangRate?: number | undefined
  /** Latency added before calls. Default: none. */
  readonly latency?: Latency | undefined
  /** Probability that a call gets the latency. Default: `1` when `latency` is set. */
  readonly latencyRate?: number | undefined
}

const checkRate = (field: string, value: number | undefined): number => {
  const rate = value ?? 0
  if (!(typeof rate === "number" && rate >= 0 && rate <= 1)) {
    throw new RangeError(`Chaos: ${field} must be a number in [0, 1], got ${describe(value)}`)
  }
  return rate
}

const decode = (field: string, input: Duration.DurationInput): Duration.Duration => {
  const millis = InternalDuration.toMillis(input)
  // an infinite latency would be a hang that `hangRate` does not show: ask for that explicitly
  if (!(millis >= 0 && Number.isFinite(millis))) {
    throw new RangeError(`Chaos: ${field} must be a finite duration >= 0, got ${describe(input)}`)
  }
  return Duration.millis(millis)
}

const checkFunction = (field: string, value: unknown): void => {
  if (value !== undefined && typeof value !== "function") {
    throw new TypeError(`Chaos: ${field} must be a function, got ${describe(value)}`)
  }
}

/**
 * What an injector did to one call; see {@link Injector.decide}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Decision {
  readonly fault: "none" | "failure" | "outage" | "defect" | "hang"
  readonly latency: Duration.Duration
}

/**
 * A fault injector: a policy function plus the decision it takes for the next call.
 *
 * @since 0.1.0
 * @category models
 */
export interface Injector<E> {
  <A, E1, R>(self: Effect.Effect<A, E1, R>): Effect.Effect<A, E1 | E, R>
  /** Draws the decision for the next call (and consumes it). */
  readonly decide: Effect.Effect<Decision>
}

/**
 * Builds a fault injector: a policy function that, per call, may add latency and then fail,
 * die or hang instead of running its effect. Options that break a rule throw a `RangeError`.
 *
 * @example
 * ```ts
 * import { Chaos } from "@bulwark/core"
 * import { Data, Effect } from "effect"
 *
 * class Unavailable extends Data.TaggedError("Unavailable")<{}> {}
 *
 * const flaky = Chaos.inject({ seed: 42, failureRate: 0.2, failure: () => new Unavailable(), latency: { min: "5 millis", max: "50 millis" } })
 * const call = Effect.succeed("ok").pipe(flaky) // Effect<string, Unavailable>
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const inject = <E = never>(options: Options<E>): Injector<E> => {
  const failureRate = checkRate("failureRate", options.failureRate)
  const defectRate = checkRate("defectRate", options.defectRate)
  const hangRate = checkRate("hangRate", options.hangRate)
  const givenLatencyRate = checkRate("latencyRate", options.latencyRate ?? 1)
  const latencyRate = options.latency === undefined ? 0 : givenLatencyRate
  if (hangRate + defectRate + failureRate > 1 + 1e-12) {
    throw new RangeError(
      `Chaos: hangRate + defectRate + failureRate must not exceed 1, got ${hangRate + defectRate + failureRate}`
    )
  }
  checkFunction("failure", options.failure)
  checkFunction("defect", options.defect)
  if ((failureRate > 0 || options.outage !== undefined) && options.failure === undefined) {
    throw new RangeError("Chaos: failure must be given when failureRate > 0 or an outage is set")
  }
  let latencyMin = Duration.zero
  let latencyMax = Duration.zero
  if (options.latency !== undefined) {
    if (typeof options.latency === "object" && options.latency !== null && "min" in options.latency) {
      latencyMin = decode("latency.min", options.latency.min)
      latencyMax = decode("latency.max", options.latency.max)
      if (Duration.lessThan(latencyMax, latencyMin)) {
        throw new RangeError("Chaos: latency.max must not be below latency.min")
      }
    } else {
      latencyMin = latencyMax = decode("latency", options.latency as Duration.DurationInput)
    }
  }
  const random: Effect.Effect<Random.Random> = options.seed === undefined
    ? Effect.random
    : Effect.succeed(Random.make(options.seed))
  const makeDefect = options.defect ?? (() => new Error("Chaos: injected defect"))
  const failure = options.failure
  const outage = options.outage
  let outageState: unknown = outage?.initial
  let outageOver = outage === undefined

  const stepOutage: Effect.Effect<boolean> = outage === undefined
    ? Effect.succeed(false)
    : Effect.suspend(() => {
      if (outageOver) return Effect.succeed(false)
      return Effect.flatMap(
        Clock.currentTimeMillis,
        (now) =>
          Effect.map(outage.step(now, undefined, outageState), ([state, , decision]) => {
            outageState = state
            if (ScheduleDecision.isDone(decision)) outageOver = true
            return !outageOver
          })
      )
    })

  const decide: Effect.Effect<Decision> = Effect.flatMap(random, (rng) =>
    Effect.gen(function*() {
      let latency = Duration.zero
      if (latencyRate > 0 && (yield* rng.next) < latencyRate) {
        const min = Duration.toMillis(latencyMin)
        const max = Duration.toMillis(latencyMax)
        latency = Duration.millis(max === min ? min : min + (yield* rng.next) * (max - min))
      }
      if (yield* stepOutage) return { fault: "outage", latency } as const
      if (hangRate + defectRate + failureRate === 0) return { fault: "none", latency } as const
      const r = yield* rng.next
      const fault = r < hangRate
        ? "hang"
        : r < hangRate + defectRate
        ? "defect"
        : r < hangRate + defectRate + failureRate
        ? "failure"
        : "none"
      return { fault, latency } as const
    }))

  const injector = <A, E1, R>(self: Effect.Effect<A, E1, R>): Effect.Effect<A, E1 | E, R> =>
    Effect.flatMap(decide, (decision) => {
      const faulted: Effect.Effect<A, E1 | E, R> = decision.fault === "none"
        ? self
        : decision.fault === "hang"
        ? Effect.never
        : decision.fault === "defect"
        ? Effect.die(makeDefect())
        : Effect.fail(failure!())
      return Duration.greaterThan(decision.latency, Duration.zero)
        ? Effect.zipRight(Effect.sleep(decision.latency), faulted)
        : faulted
    })
  return Object.assign(injector, { decide })
}

/**
 * The errors a service's methods can raise.
 *
 * @since 0.1.0
 * @category models
 */
export type ErrorOf<T> = T extends (...args: ReadonlyArray<any>) => Effect.Effect<any, infer E, any> ? E
  : T extends Effect.Effect<any, infer E, any> ? E
  : unknown

/**
 * An error type that every Effect-returning member of `S` can already raise, so injecting it
 * keeps each method's type honest.
 *
 * @since 0.1.0
 * @category models
 */
export type CommonError<S> = { readonly [K in keyof S]: (e: ErrorOf<S[K]>) => void }[keyof S] extends
  (e: infer I) => void ? I
  : never

/**
 * Wraps every Effect-valued member of a service (effects and functions returning effects) with
 * the injector built from `options`; the members of a class instance, on its prototypes, are
 * wrapped too. One injector serves all members, so one seed scripts the whole service.
 *
 * @since 0.1.0
 * @category combinators
 */
export const service = <S extends object>(self: S, options: Options<CommonError<S>>): S => {
  const injector = inject(options)
  const wrapped: Record<PropertyKey, unknown> = {}
  // the members of a class instance live on its prototypes: collect them too, or the wrapped
  // service would lack its methods
  const keys = new Set<PropertyKey>()
  for (
    let holder: object | null = self;
    holder !== null && holder !== Object.prototype;
    holder = Object.getPrototypeOf(holder) as object | null
  ) {
    for (const key of Reflect.ownKeys(holder)) if (key !== "constructor") keys.add(key)
  }
  for (const key of keys) {
    const member = (self as Record<PropertyKey, unknown>)[key]
    if (Effect.isEffect(member)) {
      wrapped[key] = injector(member)
    } else if (typeof member === "function") {
      wrapped[key] = (...args: Array<unknown>) => {
        const result = (member as (...args: Array<unknown>) => unknown).apply(self, args)
        return Effect.isEffect(result) ? injector(result) : result
      }
    } else {
      wrapped[key] = member
    }
  }
  return wrapped as S
}

/**
 * Injects faults into the service that `layer` provides for `tag`: every Effect-valued member
 * is wrapped (see {@link service}). Injected failures must be errors every member can already
 * raise, so the service's types stay true.
 *
 * @example
 * ```ts
 * import { Chaos } from "@bulwark/core"
 * import { Context, Data, Effect, Layer } from "effect"
 *
 * class PaymentDeclined extends Data.TaggedError("PaymentDeclined")<{}> {}
 * class Payments extends Context.Tag("Payments")<Payments, {
 *   readonly charge: (cents: number) => Effect.Effect<string, PaymentDeclined>
 * }>() {}
 * const PaymentsLive = Layer.succeed(Payments, { charge: (cents) => Effect.succeed(`charged ${cents}`) })
 *
 * const FlakyPayments = Chaos.layer(Payments, PaymentsLive, {
 *   seed: 7,
 *   latency: "20 millis",
 *   hangRate: 0.01,
 *   failureRate: 0.1,
 *   failure: () => new PaymentDeclined()
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <I, S extends object, E, R>(
  tag: Context.Tag<I, S>,
  self: Layer.Layer<I, E, R>,
  options: Options<CommonError<S>>
): Layer.Layer<I, E, R> =>
  Layer.map(self, (context) => Context.add(context, tag, service(Context.get(context, tag), options)))
