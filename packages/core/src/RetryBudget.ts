/**
 * A retry budget per dependency: retries may be at most a ratio of the calls made over a sliding
 * window, plus a small floor so that a quiet service can still retry. When a dependency is down
 * and every call fails, the budget stops the retry storm that would otherwise multiply its load.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Schema from "effect/Schema"
import * as Failure from "./Failure.js"
import * as InternalConfig from "./internal/config.js"

/**
 * A retry was refused because the dependency's retry budget is spent.
 *
 * @since 0.1.0
 * @category errors
 */
export class RetryBudgetExhaustedError extends Schema.TaggedError<RetryBudgetExhaustedError>()(
  "RetryBudgetExhaustedError",
  {
    /** The budget's name (usually the dependency). */
    budget: Schema.String,
    /** Calls seen in the window. */
    calls: Schema.Number,
    /** Retries already spent in the window. */
    retries: Schema.Number,
    /** Retries allowed per call. */
    ratio: Schema.Number,
    /** The failure that would have been retried. */
    cause: Schema.optional(Schema.Unknown)
  }
) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Retry budget "${this.budget}" is spent: ${this.retries} retries for ${this.calls} calls in the window (ratio ${this.ratio}); not retrying`
  }
  /**
   * @since 0.1.0
   */
  get [Failure.RuleKey](): Failure.RuleObject {
    return { category: "resource", code: "RETRY_BUDGET_EXHAUSTED", strategy: "abandon", retryable: false }
  }
}

/**
 * Options of a retry budget.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The budget's name, for errors, logs and metrics. Default: `"default"`. */
  readonly name?: string | undefined
  /** Retries allowed per call made, in [0, 1]. Default: 0.2 (one retry per five calls). */
  readonly ratio?: number | undefined
  /** Retries always allowed per second, whatever the traffic. Default: 10. */
  readonly minRetriesPerSecond?: number | undefined
  /**
   * How the floor (`minRetriesPerSecond` over the window) and the ratio meet: `"added"` allows
   * `floor + ratio × calls`; `"minimum"` allows the larger of the two, so that the floor only
   * serves quiet traffic and a busy window retries `ratio` of its calls. Default: `"added"`.
   */
  readonly floorMode?: "added" | "minimum" | undefined
  /** The sliding window over which calls and retries are counted. Default: 10 seconds. */
  readonly window?: Duration.DurationInput | undefined
}

/**
 * What a budget has seen in its window.
 *
 * @since 0.1.0
 * @category models
 */
export interface Snapshot {
  readonly name: string
  readonly calls: number
  readonly retries: number
  /** How many more retries the budget would allow now. */
  readonly available: number
}

/**
 * A retry budget.
 *
 * @since 0.1.0
 * @category models
 */
export interface RetryBudget {
  readonly name: string
  readonly ratio: number
  /** Records one call (the first attempt of an operation; retries are not calls). */
  readonly deposit: Effect.Effect<void>
  /** Takes one retry from the budget; `false` when none is left. */
  readonly tryWithdraw: Effect.Effect<boolean>
  readonly snapshot: Effect.Effect<Snapshot>
}

/**
 * The default retry budget service. For one budget per dependency, see {@link Tag}.
 *
 * @since 0.1.0
 * @category tags
 */
export const RetryBudget: Context.Tag<RetryBudget, RetryBudget> = Context.GenericTag<RetryBudget>(
  "@bulwark/core/RetryBudget"
)

const BUCKETS = 10

/**
 * Retries refused because a budget was spent (`budget` label). Budgets kept elsewhere (a shared
 * budget in Redis) count their refusals here too.
 *
 * @since 0.1.0
 * @category metrics
 */
export const exhaustedCounter = Metric.counter("bulwark_retry_budget_exhausted_total", {
  description: "Retries refused because a retry budget was spent",
  incremental: true
})

const validate = (options: Options): {
  readonly name: string
  readonly ratio: number
  readonly minRetriesPerSecond: number
  readonly windowMillis: number
  readonly floorMode: "added" | "minimum"
} => {
  const name = options.name ?? "default"
  const ratio = options.ratio ?? 0.2
  if (!(typeof ratio === "number" && ratio >= 0 && ratio <= 1)) {
    throw new RangeError(`RetryBudget "${name}": ratio must be in [0, 1], got ${ratio}`)
  }
  const minRetriesPerSecond = options.minRetriesPerSecond ?? 10
  if (!(minRetriesPerSecond >= 0) || !Number.isFinite(minRetriesPerSecond)) {
    throw new RangeError(
      `RetryBudget "${name}": minRetriesPerSecond must be >= 0 and finite, got ${minRetriesPerSecond}`
    )
  }
  const window = Duration.decodeUnknown(options.window ?? Duration.seconds(10))
  const windowMillis = window._tag === "Some" ? Duration.toMillis(window.value) : Number.NaN
  if (!(windowMillis >= BUCKETS) || !Number.isFinite(windowMillis)) {
    throw new RangeError(
      `RetryBudget "${name}": window must be a finite duration of at least ${BUCKETS} millis, got ${
        String(options.window)
      }`
    )
  }
  const floorMode = options.floorMode ?? "added"
  if (floorMode !== "added" && floorMode !== "minimum") {
    throw new RangeError(`RetryBudget "${name}": floorMode must be "added" or "minimum", got ${String(floorMode)}`)
  }
  return { name, ratio, minRetriesPerSecond, windowMillis, floorMode }
}

/**
 * Builds a budget without effects (the window is read from `Clock` on each use).
 *
 * @since 0.1.0
 * @category constructors
 */
export const unsafeMake = (options: Options = {}): RetryBudget => {
  const { floorMode, minRetriesPerSecond, name, ratio, windowMillis } = validate(options)
  const bucketMillis = windowMillis / BUCKETS
  const floor = minRetriesPerSecond * (windowMillis / 1000)
  const calls = new Array<number>(BUCKETS).fill(0)
  const retries = new Array<number>(BUCKETS).fill(0)
  let totalCalls = 0
  let totalRetries = 0
  let epoch = Number.NEGATIVE_INFINITY
  // advance the ring to `now`, dropping buckets that left the window: O(1) amortised
  const advance = (now: number): number => {
    const current = Math.floor(now / bucketMillis)
    if (current > epoch) {
      const steps = Math.min(BUCKETS, current - epoch)
      for (let i = 1; i <= steps; i++) {
        const idx = (((current - steps + i) % BUCKETS) + BUCKETS) % BUCKETS
        totalCalls -= calls[idx]!
        totalRetries -= retries[idx]!
        calls[idx] = 0
        retries[idx] = 0
      }
      epoch = current
    }
    return ((current % BUCKETS) + BUCKETS) % BUCKETS
  }
  const allowed = () =>
    Math.floor(floorMode === "added" ? floor + ratio * totalCalls : Math.max(floor, ratio * totalCalls))
  return {
    name,
    ratio,
    deposit: Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.sync(() => {
        const idx = advance(now)
        calls[idx]!++
        totalCalls++
      })),
    tryWithdraw: Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.suspend(() => {
        const idx = advance(now)
        if (totalRetries + 1 > allowed()) {
          return Effect.as(Metric.increment(Metric.tagged(exhaustedCounter, "budget", name)), false)
        }
        retries[idx]!++
        totalRetries++
        return Effect.succeed(true)
      })),
    snapshot: Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.sync(() => {
        advance(now)
        return { name, calls: totalCalls, retries: totalRetries, available: Math.max(0, allowed() - totalRetries) }
      }))
  }
}

/**
 * Builds a budget. Options that break a rule are a defect whose message names the field.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<RetryBudget> => Effect.sync(() => unsafeMake(options))

/**
 * Provides the default {@link RetryBudget}.
 *
 * @example
 * ```ts
 * import { Retry, RetryBudget } from "@bulwark/core"
 * import { Effect } from "effect"
 *
 * declare const callService: Effect.Effect<string, Error>
 *
 * const program = Effect.gen(function*() {
 *   const budget = yield* RetryBudget.RetryBudget
 *   return yield* callService.pipe(Retry.retry(Retry.policy({ budget })))
 * }).pipe(Effect.provide(RetryBudget.layer({ ratio: 0.1 })))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<RetryBudget> => Layer.effect(RetryBudget, make(options))

/**
 * The options read from `Config`: `RATIO`, `MIN_RETRIES_PER_SECOND`, `WINDOW`, `FLOOR_MODE` (under an
 * optional prefix set with `Config.nested`; a per-dependency Tag nests them under its name in
 * UPPER_SNAKE case, so the default provider reads `PAYMENTS_RATIO` from the environment). A
 * value that breaks a rule — an empty value included — fails with a `ConfigError` that names
 * the key.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Options> = Config.all({
  ratio: InternalConfig.number("RATIO").pipe(
    Config.validate({ message: "ratio must be in [0, 1]", validation: (n) => n >= 0 && n <= 1 }),
    Config.withDefault(0.2)
  ),
  minRetriesPerSecond: InternalConfig.number("MIN_RETRIES_PER_SECOND").pipe(
    Config.validate({
      message: "minRetriesPerSecond must be >= 0 and finite",
      validation: (n) => n >= 0 && Number.isFinite(n)
    }),
    Config.withDefault(10)
  ),
  window: Config.duration("WINDOW").pipe(
    Config.validate({
      message: `window must be at least ${BUCKETS} millis`,
      validation: (d) => Duration.toMillis(d) >= BUCKETS && Duration.isFinite(d)
    }),
    Config.withDefault(Duration.seconds(10))
  ),
  floorMode: Config.literal("added", "minimum")("FLOOR_MODE").pipe(Config.withDefault("added" as const))
})

const fromConfig = (name: string | undefined, cfg: Config.Config<Options>) =>
  Effect.flatMap(cfg, (options) =>
    Effect.try({
      try: () => unsafeMake({ ...options, ...(name !== undefined ? { name } : {}) }),
      catch: (e) => ConfigError.InvalidData([], e instanceof Error ? e.message : String(e))
    }))

/**
 * Provides the default {@link RetryBudget} from `Config` (see {@link config}).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (cfg: Config.Config<Options> = config): Layer.Layer<RetryBudget, ConfigError.ConfigError> =>
  Layer.effect(RetryBudget, fromConfig(undefined, cfg))

/**
 * The class {@link Tag} returns: a service Tag for one dependency's budget with its own layers.
 *
 * @since 0.1.0
 * @category tags
 */
export interface TagClass<Self, Name extends string>
  extends Context.TagClass<Self, `@bulwark/core/RetryBudget/${Name}`, RetryBudget>
{
  readonly dependency: Name
  layer(options?: Omit<Options, "name">): Layer.Layer<Self>
  layerConfig(cfg?: Config.Config<Options>): Layer.Layer<Self, ConfigError.ConfigError>
}

/**
 * A Tag class for one dependency's budget, with its own `layer` and `layerConfig`.
 *
 * @example
 * ```ts
 * import { RetryBudget } from "@bulwark/core"
 *
 * class PaymentsBudget extends RetryBudget.Tag("payments")<PaymentsBudget>() {}
 *
 * const PaymentsBudgetLive = PaymentsBudget.layer({ ratio: 0.1 })
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export const Tag = <const Name extends string>(name: Name) => <Self>(): TagClass<Self, Name> => {
  const Base = Context.Tag(`@bulwark/core/RetryBudget/${name}`)<Self, RetryBudget>()
  // the cast only widens Effect's `Unify` marker to the interface above
  return class extends Base {
    /** The dependency this budget guards. */
    static readonly dependency: Name = name
    /** Provides this dependency's budget. */
    static layer(options: Omit<Options, "name"> = {}): Layer.Layer<Self> {
      return Layer.effect(this, make({ ...options, name }))
    }
    /** Provides this dependency's budget from `Config` (see {@link config}). */
    static layerConfig(
      cfg: Config.Config<Options> = InternalConfig.nested(InternalConfig.prefixOf(name), config)
    ): Layer.Layer<Self, ConfigError.ConfigError> {
      return Layer.effect(this, fromConfig(name, cfg))
    }
  } as unknown as TagClass<Self, Name>
}
