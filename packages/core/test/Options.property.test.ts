/**
 * Every constructor and every `Config` reader, fed random option records (valid and invalid, with
 * every numeric edge value): each either builds a working service (one call goes through it) or
 * fails with an error that names the field or key — never a hang, never a silent clamp (an invalid
 * value accepted), never a bare runtime exception. `BULWARK_FUZZ_RUNS=1000` runs more cases.
 */
import {
  Alerts,
  Backoff,
  BreakerRegistry,
  Bulkhead,
  Chaos,
  CircuitBreaker,
  Cleanup,
  FiberSupervisor,
  Health,
  Hedge,
  Policy,
  Retry,
  RetryBudget,
  Timeout
} from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import type { Scope } from "effect"
import {
  Cause,
  Config,
  ConfigError,
  ConfigProvider,
  Duration,
  Effect,
  Exit,
  FastCheck as fc,
  Fiber,
  Option,
  TestClock
} from "effect"
import * as InternalConfig from "../src/internal/config.js"
import * as InternalDuration from "../src/internal/duration.js"

const numRuns = Number(process.env.BULWARK_FUZZ_RUNS ?? "") || 30

// -----------------------------------------------------------------------------
// values and what each field accepts
// -----------------------------------------------------------------------------

/** `invalid`: must be rejected; `valid`: must work (unless a rule across fields rejects it); `either`: may go both ways. */
type Verdict = "valid" | "invalid" | "either"

interface Picked {
  readonly value: unknown
  readonly verdict: Verdict
}

/** Values that are never a number nor a duration (`null` is apart: options read it as absent). */
const garbage: ReadonlyArray<unknown> = ["", "abc", "-5 seconds", {}, true, [], -5n, [-5, 0]]

/** Numbers with every edge, and strings, bigints and objects in their place. */
const numberCandidates: ReadonlyArray<unknown> = [
  0,
  -0,
  -1,
  0.5,
  1,
  2,
  3,
  10,
  Number.NaN,
  Infinity,
  -Infinity,
  2 ** 32,
  2 ** 53 + 1,
  1e300,
  "3",
  3n,
  ...garbage
]

/** `null` where an option is expected: read as absent (`??`) or rejected, either is fine. */
const absent = (verdict: Verdict, value: unknown): Verdict => value === null ? "either" : verdict

const number = (rule: (n: number) => Verdict): fc.Arbitrary<Picked> =>
  fc.constantFrom(...numberCandidates, null).map((value) => ({
    value,
    verdict: typeof value === "number" ? rule(value) : absent("invalid", value)
  }))

const huge = (n: number) => Math.abs(n) > 1e6

/** A whole number in `[min, max]`; above a million either way (a bound may reject it). */
const whole = (min: number, options: { readonly max?: number; readonly infinity?: Verdict } = {}) =>
  number((n) => {
    if (n === Infinity) return options.infinity ?? "invalid"
    if (!Number.isInteger(n) || n < min) return "invalid"
    if (options.max !== undefined && n > options.max) return "invalid"
    return huge(n) ? "either" : "valid"
  })

/** A number in `[low, high]` (or `(low, high]` when `openLow`). */
const range = (low: number, high: number, openLow = false) =>
  number((n) => (n <= high && (openLow ? n > low : n >= low) ? "valid" : "invalid"))

/** Durations in every written form, with their length in milliseconds (`NaN`: not a duration). */
const durationCandidates: ReadonlyArray<readonly [unknown, number]> = [
  [0, 0],
  [-0, 0],
  ["0 millis", 0],
  [0.5, 0.5],
  [1, 1],
  [10, 10],
  [250, 250],
  ["10 millis", 10],
  ["1 second", 1000],
  [Duration.millis(20), 20],
  [[0, 5_000_000], 5],
  [5_000_000n, 5],
  [Infinity, Infinity],
  [2 ** 53 + 1, 2 ** 53 + 1],
  [-1, Number.NaN],
  [Number.NaN, Number.NaN],
  [-Infinity, Number.NaN],
  ["-1 millis", Number.NaN],
  [[0, -1], Number.NaN],
  [null, Number.NaN],
  ...garbage.map((g) => [g, Number.NaN] as const)
]

const duration = (rule: (millis: number) => Verdict): fc.Arbitrary<Picked> =>
  fc.constantFrom(...durationCandidates).map(([value, millis]) => ({
    value,
    verdict: Number.isNaN(millis) ? absent("invalid", value) : rule(millis)
  }))

/** A duration > 0 (and at least `min`); an infinite one as `infinity` says; a huge one either way. */
const positive = (options: { readonly min?: number; readonly infinity?: Verdict } = {}) =>
  duration((ms) =>
    ms === Infinity
      ? options.infinity ?? "either"
      : ms <= 0 || ms < (options.min ?? 0)
      ? "invalid"
      : huge(ms)
      ? "either"
      : "valid"
  )

/** A duration >= 0. */
const nonNegative = (options: { readonly infinity?: Verdict } = {}) =>
  duration((ms) => (ms === Infinity ? options.infinity ?? "either" : huge(ms) ? "either" : "valid"))

const literal = (valid: ReadonlyArray<string>) =>
  fc.constantFrom<unknown>(...valid, "bogus", "", 1, null).map((value): Picked => ({
    value,
    verdict: valid.includes(value as string) ? "valid" : absent("invalid", value)
  }))

type Fields = Record<string, fc.Arbitrary<Picked>>

/** A record of some of `fields` (those in `required` always), with their verdicts. */
const record = (fields: Fields, required: ReadonlyArray<string> = []) =>
  fc.record(fields, { requiredKeys: required as Array<string> })

const valuesOf = (picked: Record<string, Picked>): Record<string, any> =>
  Object.fromEntries(Object.entries(picked).map(([k, v]) => [k, v.value]))

// -----------------------------------------------------------------------------
// the property
// -----------------------------------------------------------------------------

/** Runtime exceptions that say nothing about which option was wrong. */
const bare = /Invalid array length|Cannot read propert|Invalid DurationInput|is not a function|is not iterable/

const messagesOf = (cause: Cause.Cause<unknown>): Array<string> =>
  [...Cause.failures(cause), ...Cause.defects(cause)].map((e) => e instanceof Error ? e.message : String(e))

/**
 * Runs `build` (which builds the service and makes one call through it) on the test clock, with
 * time moved on until it ends, and checks the outcome against the verdicts of `fields`, labelled by
 * the names an error may use for them.
 */
const check = (
  fields: ReadonlyArray<readonly [label: ReadonlyArray<string>, picked: Picked]>,
  build: () => Effect.Effect<unknown, unknown, Scope.Scope>,
  related = false
) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(Effect.scoped(Effect.suspend(build)))
    yield* Effect.yieldNow()
    for (let i = 0; i < 20 && Option.isNone(yield* Fiber.poll(fiber)); i++) {
      yield* TestClock.adjust("1 hour")
    }
    const polled = yield* Fiber.poll(fiber)
    const shown = fields.map(([label, p]) => `${label[0]}=${describeValue(p.value)} (${p.verdict})`).join(", ")
    if (Option.isNone(polled)) {
      yield* Fiber.interrupt(fiber)
      expect.fail(`hangs with ${shown}`)
      return
    }
    const exit = polled.value
    const invalid = fields.filter(([, p]) => p.verdict === "invalid").map(([label]) => label[0])
    if (Exit.isSuccess(exit)) {
      expect(invalid, `accepted ${shown}`).toEqual([])
      return
    }
    const messages = messagesOf(exit.cause)
    const text = messages.join("\n")
    // valid fields may still break a rule that relates two of them (a cap below the base)
    const doubtful = related || fields.some(([, p]) => p.verdict !== "valid")
    expect(doubtful, `rejected valid options ${shown}: ${text}`).toBe(true)
    expect(messages.length, `failed without a message: ${Cause.pretty(exit.cause)}`).toBeGreaterThan(0)
    expect(text, `bare runtime exception with ${shown}`).not.toMatch(bare)
    const named = fields.some(([labels]) => labels.some((l) => text.includes(l)))
    expect(named, `"${text}" names no field of ${shown}`).toBe(true)
  })

const describeValue = (u: unknown): string => {
  if (typeof u === "bigint") return `${u}n`
  if (typeof u === "string") return JSON.stringify(u)
  try {
    return JSON.stringify(u) ?? String(u)
  } catch {
    return String(u)
  }
}

/** The fields of a picked record, each labelled by its own name. */
const labelled = (picked: Record<string, Picked>, prefix = "") =>
  Object.entries(picked).map(([k, p]) => [[`${prefix}${k}`, k], p] as const)

const ok = Effect.succeed(1)

/**
 * Checks `property` on `numRuns` random samples in one test run (one test clock), which costs far
 * less than a fresh test context per sample; a failing sample is printed with its seed.
 */
const forAll = <A>(arbitrary: fc.Arbitrary<A>, property: (a: A) => Effect.Effect<void>) =>
  Effect.gen(function*() {
    const seed = Number(process.env.BULWARK_FUZZ_SEED ?? "") || Date.now()
    const samples = fc.sample(arbitrary, { numRuns, seed })
    for (const sample of samples) {
      yield* property(sample).pipe(
        Effect.catchAllDefect((defect) =>
          Effect.die(new Error(`seed ${seed} (BULWARK_FUZZ_SEED), sample ${describeValue(sample)}: ${String(defect)}`))
        )
      )
    }
  })

/** One literal-options case: fields, how to build and call the service. */
interface Case {
  readonly name: string
  readonly fields: Fields
  readonly required?: ReadonlyArray<string>
  readonly run: (options: Record<string, any>) => Effect.Effect<unknown, unknown, Scope.Scope>
  /** Whether valid fields break a rule relating them (then a clear error is as good as a service). */
  readonly related?: (options: Record<string, any>) => boolean
}

const firstDelays = (schedule: Backoff.Backoff) =>
  Effect.map(Backoff.delays(schedule, 3), (delays) => {
    for (const d of delays) {
      if (!(Duration.toMillis(d) >= 0)) throw new Error(`a delay is not a duration >= 0: ${Duration.format(d)}`)
    }
  })

const jitterFields: Fields = {
  base: positive(),
  cap: positive(),
  factor: number((n) => n >= 1 && Number.isFinite(n) ? "valid" : "invalid")
}

/** Milliseconds of a written duration, `NaN` when it is not one. */
const millisOf = (input: unknown): number => {
  const found = durationCandidates.find(([value]) => Object.is(value, input) || value === input)
  return found !== undefined ? found[1] : Number.NaN
}

/** Jitter families reject a cap below the base. */
const capBelowBase = (o: Record<string, any>) => o.cap !== undefined && millisOf(o.cap) < millisOf(o.base)

const cases: ReadonlyArray<Case> = [
  {
    name: "Backoff.linear",
    related: capBelowBase,
    fields: { base: positive(), cap: positive() },
    required: ["base"],
    run: (o) => firstDelays(Backoff.linear(o as Backoff.LinearOptions))
  },
  {
    name: "Backoff.exponential",
    related: capBelowBase,
    fields: jitterFields,
    required: ["base"],
    run: (o) => firstDelays(Backoff.exponential(o as Backoff.ExponentialOptions))
  },
  {
    name: "Backoff.fibonacci",
    related: capBelowBase,
    fields: { base: positive(), cap: positive() },
    required: ["base"],
    run: (o) => firstDelays(Backoff.fibonacci(o as Backoff.FibonacciOptions))
  },
  {
    name: "Backoff.decorrelatedJitter",
    related: capBelowBase,
    fields: { base: positive(), cap: positive() },
    required: ["base", "cap"],
    run: (o) => firstDelays(Backoff.decorrelatedJitter(o as Backoff.JitterOptions))
  },
  {
    name: "Backoff.fullJitter",
    related: capBelowBase,
    fields: jitterFields,
    required: ["base", "cap"],
    run: (o) => firstDelays(Backoff.fullJitter(o as Backoff.JitterOptions))
  },
  {
    name: "Backoff.equalJitter",
    related: capBelowBase,
    fields: jitterFields,
    required: ["base", "cap"],
    run: (o) => firstDelays(Backoff.equalJitter(o as Backoff.JitterOptions))
  },
  {
    name: "Backoff.fromDelays",
    fields: { "delays[0]": nonNegative(), "delays[1]": nonNegative() },
    required: ["delays[0]"],
    run: (o) => firstDelays(Backoff.fromDelays(Object.values(o)))
  },
  {
    name: "Retry.policy",
    fields: {
      maxRetries: whole(0, { infinity: "valid" }),
      maxDelay: nonNegative(),
      maxElapsed: nonNegative()
    },
    run: (o) => Effect.suspend(() => ok.pipe(Retry.retry(Retry.policy(o))))
  },
  {
    name: "RetryBudget.make",
    fields: {
      ratio: range(0, 1),
      minRetriesPerSecond: number((n) => n >= 0 && Number.isFinite(n) ? (huge(n) ? "either" : "valid") : "invalid"),
      window: positive({ min: 10, infinity: "invalid" })
    },
    run: (o) => Effect.flatMap(RetryBudget.make(o), (budget) => Effect.zipRight(budget.deposit, budget.tryWithdraw))
  },
  {
    name: "Bulkhead.make",
    fields: {
      maxConcurrent: whole(1),
      maxQueued: whole(0),
      maxWait: positive(),
      priorities: whole(1, { max: Bulkhead.maxPriorities }),
      defaultPriority: whole(0)
    },
    // the default priority must be one of the classes
    related: (o) =>
      typeof o.defaultPriority === "number" &&
      o.defaultPriority >= (typeof o.priorities === "number" ? o.priorities : 1),
    run: (o) => Effect.flatMap(Bulkhead.make(o), (bulkhead) => bulkhead.protect(ok))
  },
  {
    name: "Timeout.timeout",
    fields: { duration: positive() },
    required: ["duration"],
    run: (o) => Effect.suspend(() => ok.pipe(Timeout.timeout(o.duration)))
  },
  {
    name: "Hedge.hedge",
    fields: { delay: positive(), maxHedges: whole(1) },
    required: ["delay"],
    run: (o) => Effect.suspend(() => ok.pipe(Hedge.hedge(o as Hedge.Options)))
  },
  {
    name: "Chaos.inject",
    fields: {
      failureRate: range(0, 1),
      defectRate: range(0, 1),
      hangRate: range(0, 1),
      latency: nonNegative({ infinity: "invalid" }),
      latencyRate: range(0, 1)
    },
    // a drawn hang is what was asked for: the call is the decision, not the effect
    run: (o) => Effect.suspend(() => Chaos.inject({ ...o, failure: () => "injected" }).decide)
  },
  {
    name: "FiberSupervisor.make",
    fields: {
      strategy: literal(["one_for_one", "one_for_all", "rest_for_one"]),
      maxRestarts: whole(0),
      within: positive(),
      shutdownTimeout: positive()
    },
    run: ({ maxRestarts, within, ...o }) =>
      Effect.flatMap(
        FiberSupervisor.make({
          ...o,
          ...(maxRestarts !== undefined || within !== undefined
            ? {
              intensity: {
                ...(maxRestarts !== undefined ? { maxRestarts } : {}),
                ...(within !== undefined ? { within } : {})
              }
            }
            : {})
        }),
        (supervisor) => supervisor.spawn("program", ok)
      )
  },
  {
    name: "FiberSupervisor.loop",
    fields: { maxRetries: whole(0, { infinity: "valid" }), interval: nonNegative() },
    run: (o) => FiberSupervisor.loop(ok, { ...o, while: () => false })
  },
  {
    name: "Cleanup",
    fields: { timeout: positive(), releaseTimeout: positive() },
    run: (o) =>
      Effect.suspend(() =>
        Effect.zipRight(
          Cleanup.run("cleanup", [Cleanup.step("step", Effect.void, { timeout: o.timeout })]),
          Cleanup.acquireUseRelease(ok, Effect.succeed, () => Effect.void, { releaseTimeout: o.releaseTimeout })
        )
      )
  },
  {
    name: "Health.make",
    fields: { checkTimeout: positive() },
    run: (o) =>
      Effect.flatMap(
        Health.make(o),
        (health) =>
          Effect.zipRight(
            health.register("db", Effect.succeed({ status: "up" as const }), { kind: "readiness" }),
            health.report
          )
      )
  },
  {
    name: "Alerts.make",
    fields: { maxPerKey: whole(1), interval: positive({ infinity: "invalid" }) },
    run: (o) =>
      Effect.flatMap(
        Alerts.make(() => Effect.void, o),
        (alerts) => alerts.alert({ key: "k", kind: "breaker_open", severity: "major", message: "m" })
      )
  },
  {
    name: "Policy.make",
    // only valid timeouts: an invalid `timeout` or `totalTimeout` is rejected by Timeout.timeout with
    // a message that names `duration`, not which of the two fields was wrong
    fields: {
      timeout: positive().filter((p) => p.verdict === "valid"),
      totalTimeout: positive().filter((p) => p.verdict === "valid"),
      maxRetries: whole(0, { infinity: "valid" })
    },
    run: ({ maxRetries, ...o }) =>
      Effect.suspend(() =>
        ok.pipe(
          Policy.make({
            ...o,
            name: "policy",
            ...(maxRetries !== undefined ? { retry: Retry.policy({ maxRetries }) } : {})
          })
        )
      )
  },
  {
    name: "CircuitBreaker.make",
    fields: {
      openDuration: nonNegative({ infinity: "invalid" }),
      halfOpenProbes: whole(1),
      successThreshold: whole(1)
    },
    run: (o) => Effect.flatMap(CircuitBreaker.make(o), (breaker) => breaker.protect(ok))
  },
  {
    name: "CircuitBreaker.make with consecutive",
    fields: { threshold: whole(1) },
    required: ["threshold"],
    run: (o) =>
      Effect.flatMap(CircuitBreaker.make({ policy: CircuitBreaker.consecutive(o.threshold) }), (b) => b.protect(ok))
  },
  {
    name: "CircuitBreaker.make with countWindow",
    related: (o) => typeof o.minimumCalls === "number" && o.minimumCalls > o.size,
    fields: {
      size: whole(1),
      rateThreshold: range(0, 1, true),
      minimumCalls: whole(1)
    },
    required: ["size", "rateThreshold"],
    run: (o) =>
      Effect.flatMap(
        CircuitBreaker.make({ policy: CircuitBreaker.countWindow(o as any) }),
        (b) => b.protect(ok)
      )
  },
  {
    name: "CircuitBreaker.make with timeWindow",
    // at most MAX_WINDOW_BUCKETS buckets (10 by default), each at least 1 ms wide
    related: (o) => millisOf(o.window) / (typeof o.buckets === "number" ? o.buckets : 10) < 1,
    fields: {
      window: positive(),
      buckets: whole(1),
      rateThreshold: range(0, 1, true),
      minimumCalls: whole(1)
    },
    required: ["window", "rateThreshold"],
    run: (o) =>
      Effect.flatMap(
        Effect.sync(() => CircuitBreaker.timeWindow(o as any)),
        (policy) => Effect.flatMap(CircuitBreaker.make({ policy }), (b) => b.protect(ok))
      )
  },
  {
    name: "CircuitBreaker.make with slowCall",
    fields: { duration: positive(), rateThreshold: range(0, 1, true) },
    required: ["duration"],
    run: (o) =>
      Effect.flatMap(
        CircuitBreaker.make({
          policy: CircuitBreaker.countWindow({ size: 4, rateThreshold: 0.5 }),
          slowCall: o as any
        }),
        (b) => b.protect(ok)
      )
  },
  {
    name: "BreakerRegistry.make",
    fields: { capacity: whole(1), idleTimeToLive: positive({ infinity: "invalid" }) },
    run: (o) => Effect.flatMap(BreakerRegistry.make(o), (registry) => registry.protect("key")(ok))
  }
]

describe("every constructor: a working service or an error naming the field", () => {
  for (const c of cases) {
    it.effect(
      c.name,
      () =>
        forAll(
          record(c.fields, c.required),
          (options) =>
            check(
              labelled(options as Record<string, Picked>),
              () => c.run(valuesOf(options as Record<string, Picked>)),
              c.related?.(valuesOf(options as Record<string, Picked>)) ?? false
            )
        )
    )
  }
})

// -----------------------------------------------------------------------------
// Config readers
// -----------------------------------------------------------------------------

/** Text a user may put in a variable. */
const texts: ReadonlyArray<string> = [
  "",
  " ",
  "abc",
  "-1",
  "-0",
  "0",
  "0.5",
  "1",
  "2",
  "3",
  "10",
  "1.5",
  "NaN",
  "Infinity",
  "-Infinity",
  "1e400",
  "4294967296",
  "9007199254740993",
  "-5 seconds",
  "0 millis",
  "100 millis",
  "5 seconds",
  "1 minute"
]

type TextRule = (text: string) => Verdict

const wholeText = (min: number, max = Number.MAX_SAFE_INTEGER): TextRule => (text) => {
  if (!/^\s*-?\d+\s*$/.test(text)) return "invalid"
  const n = Number(text)
  if (Object.is(n, -0)) return min <= 0 ? "either" : "invalid"
  return n < min || n > max ? "invalid" : huge(n) ? "either" : "valid"
}

const numberText = (accept: (n: number) => boolean): TextRule => (text) => {
  if (text.trim() === "") return "invalid"
  const n = Number(text)
  return Number.isNaN(n) || !accept(n) ? "invalid" : "valid"
}

const durationText = (accept: (millis: number) => boolean): TextRule => (text) => {
  const match = /^(\d+) (millis|seconds|minute)$/.exec(text)
  if (match === null) return "invalid"
  const millis = Number(match[1]) * (match[2] === "millis" ? 1 : match[2] === "seconds" ? 1000 : 60_000)
  return accept(millis) ? "valid" : "invalid"
}

const keyText = (rule: TextRule): fc.Arbitrary<Picked> =>
  fc.constantFrom(...texts).map((value) => ({ value, verdict: rule(value) }))

const configCase = (
  name: string,
  prefix: string,
  keys: Record<string, TextRule>,
  run: Effect.Effect<unknown, unknown, Scope.Scope>,
  related?: (texts: Record<string, string>) => boolean
) =>
  it.effect(name, () =>
    forAll(
      fc.record(Object.fromEntries(Object.entries(keys).map(([k, rule]) => [k, keyText(rule)])), { requiredKeys: [] }),
      (picked) => {
        const entries = Object.entries(picked as Record<string, Picked>)
        const provider = ConfigProvider.fromMap(
          new Map(entries.map(([k, p]) => [`${prefix}${k}`, p.value as string])),
          { pathDelim: "_" }
        )
        return check(
          entries.map(([k, p]) => [[`${prefix}${k}`], p] as const),
          () => Effect.withConfigProvider(run, provider),
          related?.(Object.fromEntries(entries.map(([k, p]) => [k, p.value as string]))) ?? false
        )
      }
    ))

class PaymentsBulkhead extends Bulkhead.Tag("payments")<PaymentsBulkhead>() {}
class PaymentsBreaker extends CircuitBreaker.Tag("payments")<PaymentsBreaker>() {}
class PaymentsBudget extends RetryBudget.Tag("payments")<PaymentsBudget>() {}

const isWholeAtLeast = (min: number) => wholeText(min)

describe("every Config reader: a working service or a ConfigError naming the key", () => {
  configCase(
    "Bulkhead.Tag layerConfig",
    "PAYMENTS_",
    {
      MAX_CONCURRENT: isWholeAtLeast(1),
      MAX_QUEUED: isWholeAtLeast(0),
      MAX_WAIT: durationText((ms) => ms > 0),
      PRIORITIES: wholeText(1, Bulkhead.maxPriorities),
      DEFAULT_PRIORITY: isWholeAtLeast(0)
    },
    Effect.provide(PaymentsBulkhead.protect(ok), PaymentsBulkhead.layerConfig()),
    // the default priority must be one of the classes
    (texts) =>
      texts.DEFAULT_PRIORITY !== undefined &&
      Number(texts.DEFAULT_PRIORITY) >= (texts.PRIORITIES !== undefined ? Number(texts.PRIORITIES) : 1)
  )

  configCase(
    "CircuitBreaker.Tag layerConfig",
    "PAYMENTS_",
    {
      FAILURE_THRESHOLD: isWholeAtLeast(1),
      HALF_OPEN_PROBES: isWholeAtLeast(1),
      SUCCESS_THRESHOLD: isWholeAtLeast(1),
      FAILURE_RATE_THRESHOLD: numberText((n) => n > 0 && n <= 1),
      OPEN_DURATION: durationText((ms) => ms >= 0),
      POLICY: (text) => ["consecutive", "count", "time"].includes(text) ? "valid" : "invalid",
      WINDOW_SIZE: isWholeAtLeast(1),
      WINDOW_BUCKETS: isWholeAtLeast(1),
      WINDOW_DURATION: durationText((ms) => ms > 0)
    },
    Effect.provide(PaymentsBreaker.protect(ok), PaymentsBreaker.layerConfig())
  )

  configCase(
    "RetryBudget.Tag layerConfig",
    "PAYMENTS_",
    {
      RATIO: numberText((n) => n >= 0 && n <= 1),
      MIN_RETRIES_PER_SECOND: numberText((n) => n >= 0 && Number.isFinite(n)),
      WINDOW: durationText((ms) => ms >= 10)
    },
    Effect.provide(
      Effect.flatMap(PaymentsBudget, (budget) => budget.tryWithdraw),
      PaymentsBudget.layerConfig()
    )
  )

  configCase(
    "FiberSupervisor.layerConfig",
    "",
    {
      STRATEGY: (text) => ["one_for_one", "one_for_all", "rest_for_one"].includes(text) ? "valid" : "invalid",
      MAX_RESTARTS: isWholeAtLeast(0),
      WITHIN: durationText((ms) => ms > 0),
      SHUTDOWN_TIMEOUT: durationText((ms) => ms > 0)
    },
    Effect.provide(FiberSupervisor.spawn("program", ok), FiberSupervisor.layerConfig())
  )
})

describe("Config keys are named as the variable a user sets", () => {
  const env = (entries: ReadonlyArray<readonly [string, string]>) =>
    ConfigProvider.fromMap(new Map(entries), { pathDelim: "_" })
  const errorOf = <A, E, R>(effect: Effect.Effect<A, E, R>, entries: ReadonlyArray<readonly [string, string]>) =>
    Effect.map(Effect.flip(Effect.withConfigProvider(effect, env(entries))), String)

  it.effect("per-dependency Tags: PAYMENTS_RATIO, not PAYMENTS.RATIO", () =>
    Effect.gen(function*() {
      const budget = Effect.provide(PaymentsBudget, PaymentsBudget.layerConfig())
      const breaker = Effect.provide(PaymentsBreaker, PaymentsBreaker.layerConfig())
      const bulkhead = Effect.provide(PaymentsBulkhead, PaymentsBulkhead.layerConfig())
      expect(yield* errorOf(budget, [["PAYMENTS_RATIO", "1.5"]])).toMatch(
        /at PAYMENTS_RATIO: "ratio must be in \[0, 1\]"/
      )
      expect(yield* errorOf(breaker, [["PAYMENTS_FAILURE_THRESHOLD", "0"]])).toMatch(
        /at PAYMENTS_FAILURE_THRESHOLD: "must be a whole number >= 1"/
      )
      expect(
        yield* errorOf(breaker, [["PAYMENTS_POLICY", "count"], ["PAYMENTS_WINDOW_SIZE", "4"], [
          "PAYMENTS_MINIMUM_CALLS",
          "5"
        ]])
      ).toMatch(/at PAYMENTS_MINIMUM_CALLS: "must be at most WINDOW_SIZE \(4\), got 5"/)
      expect(yield* errorOf(bulkhead, [["PAYMENTS_MAX_QUEUED", "-1"]])).toMatch(
        /at PAYMENTS_MAX_QUEUED: "must be a whole number >= 0"/
      )
    }))

  it.effect("an empty numeric key is an error naming it, not 0", () =>
    Effect.gen(function*() {
      const budget = Effect.provide(PaymentsBudget, PaymentsBudget.layerConfig())
      const breaker = Effect.provide(PaymentsBreaker, PaymentsBreaker.layerConfig())
      const supervisor = Effect.provide(FiberSupervisor.FiberSupervisor, FiberSupervisor.layerConfig())
      for (const empty of ["", "  "]) {
        expect(yield* errorOf(budget, [["PAYMENTS_RATIO", empty]])).toMatch(/at PAYMENTS_RATIO: .*empty value/)
        expect(yield* errorOf(budget, [["PAYMENTS_MIN_RETRIES_PER_SECOND", empty]])).toMatch(
          /at PAYMENTS_MIN_RETRIES_PER_SECOND: .*empty value/
        )
        expect(yield* errorOf(breaker, [["PAYMENTS_FAILURE_THRESHOLD", empty]])).toMatch(
          /at PAYMENTS_FAILURE_THRESHOLD: .*empty value/
        )
        expect(yield* errorOf(breaker, [["PAYMENTS_FAILURE_RATE_THRESHOLD", empty]])).toMatch(
          /at PAYMENTS_FAILURE_RATE_THRESHOLD: .*empty value/
        )
        expect(yield* errorOf(supervisor, [["MAX_RESTARTS", empty]])).toMatch(/at MAX_RESTARTS: .*empty value/)
      }
    }))

  it("a retry budget's ratio must be a number", () => {
    for (const ratio of [[], "0.5", true]) {
      expect(() => RetryBudget.unsafeMake({ ratio: ratio as unknown as number })).toThrow(/ratio must be in \[0, 1\]/)
    }
  })
})

describe("the Config helpers, exactly", () => {
  const readEither = <A>(config: Config.Config<A>, provider: ConfigProvider.ConfigProvider) =>
    Effect.either(Effect.withConfigProvider(config, provider))
  const env = (entries: ReadonlyArray<readonly [string, string]>) =>
    ConfigProvider.fromMap(new Map(entries), { pathDelim: "_" })

  it("prefixOf: the dependency in upper case, each run of other characters one underscore", () => {
    expect(InternalConfig.prefixOf("payments")).toBe("PAYMENTS")
    expect(InternalConfig.prefixOf("card-api")).toBe("CARD_API")
    expect(InternalConfig.prefixOf("card--api.v2")).toBe("CARD_API_V2")
  })

  it.effect("integer: the exact error for empty, fractional, unsafe and wrong text", () =>
    Effect.gen(function*() {
      const read = (text: string) =>
        Effect.map(
          readEither(
            InternalConfig.nested("PAYMENTS", InternalConfig.integer("MAX_X")),
            env([["PAYMENTS_MAX_X", text]])
          ),
          (e) => e._tag === "Right" ? e.right : String(e.left)
        )
      expect(yield* read("12")).toBe(12)
      expect(yield* read("9007199254740991")).toBe(9007199254740991)
      for (const empty of ["", "  "]) {
        expect(yield* read(empty)).toBe(
          `(Invalid data at PAYMENTS_MAX_X: "Expected a whole number but received an empty value")`
        )
      }
      expect(yield* read("1.5")).toBe(`(Invalid data at PAYMENTS_MAX_X: "Expected a whole number but received "1.5"")`)
      expect(yield* read("abc")).toBe(`(Invalid data at PAYMENTS_MAX_X: "Expected a whole number but received "abc"")`)
      expect(yield* read("9007199254740993")).toBe(
        `(Invalid data at PAYMENTS_MAX_X: "Expected a whole number of at most 2^53 - 1 but received "9007199254740993"")`
      )
    }))

  it.effect("number: the exact error for empty and wrong text", () =>
    Effect.gen(function*() {
      const read = (text: string) =>
        Effect.map(
          readEither(
            InternalConfig.nested("PAYMENTS", InternalConfig.number("RATIO")),
            env([["PAYMENTS_RATIO", text]])
          ),
          (e) => e._tag === "Right" ? e.right : String(e.left)
        )
      expect(yield* read("0.25")).toBe(0.25)
      for (const empty of ["", " "]) {
        expect(yield* read(empty)).toBe(
          `(Invalid data at PAYMENTS_RATIO: "Expected a number but received an empty value")`
        )
      }
      expect(yield* read("abc")).toBe(`(Invalid data at PAYMENTS_RATIO: "Expected a number but received "abc"")`)
    }))

  it.effect("nested: a provider's own path text (`.` for maps, U+FEFF for JSON) is renamed to the variable", () =>
    Effect.gen(function*() {
      const config = InternalConfig.nested("PAYMENTS", Config.string("KEY"))
      const expected = `(Missing data at PAYMENTS_KEY: "Expected PAYMENTS_KEY to exist in the provided map")`
      for (const provider of [ConfigProvider.fromMap(new Map()), ConfigProvider.fromJson({}), env([])]) {
        const result = yield* readEither(config, provider)
        expect(result._tag === "Left" ? String(result.left) : result).toBe(expected)
      }
      // three levels deep, every join renamed
      const deep = yield* readEither(
        InternalConfig.nested("A", InternalConfig.nested("B", Config.string("K"))),
        env([])
      )
      expect(deep._tag === "Left" ? String(deep.left) : deep).toBe(
        `(Missing data at A_B_K: "Expected A_B_K to exist in the provided map")`
      )
    }))

  it("envKeys: every kind of ConfigError keeps its kind, its key renamed in path and message", () => {
    const cause = Cause.fail("unreadable")
    const renamed = [
      ConfigError.And(ConfigError.MissingData(["A", "B"], "A.B"), ConfigError.InvalidData(["A", "C"], "A\ufeffC bad")),
      ConfigError.Or(ConfigError.MissingData(["X"], "X.Y stays"), ConfigError.MissingData([], "none")),
      ConfigError.InvalidData(["A", "B"], "A.B is bad"),
      ConfigError.MissingData(["A", "B"], "A.B is missing"),
      ConfigError.SourceUnavailable(["A", "B"], "cannot read A.B", cause),
      ConfigError.Unsupported(["A", "B"], "A.B is unsupported")
    ].map(InternalConfig.envKeys)
    expect(renamed.map((e) => [e._op, String(e)])).toEqual([
      ["And", `(Missing data at A_B: "A_B") and (Invalid data at A_C: "A_C bad")`],
      ["Or", `(Missing data at X: "X.Y stays") or (Missing data at : "none")`],
      ["InvalidData", `(Invalid data at A_B: "A_B is bad")`],
      ["MissingData", `(Missing data at A_B: "A_B is missing")`],
      ["SourceUnavailable", `(Source unavailable at A_B: "cannot read A_B")`],
      ["Unsupported", `(Unsupported operation at A_B: "A_B is unsupported")`]
    ])
    const source = renamed[4]
    expect(source._op === "SourceUnavailable" ? source.cause : undefined).toBe(cause)
  })
})

describe("toMillis: a duration option in milliseconds, NaN for anything else or anything negative", () => {
  it("every written form", () => {
    const cases: ReadonlyArray<readonly [unknown, number]> = [
      [0, 0],
      [-0, 0],
      [250, 250],
      [0.5, 0.5],
      [Infinity, Infinity],
      [-1, Number.NaN],
      [Number.NaN, Number.NaN],
      [-Infinity, Number.NaN],
      [0n, 0],
      [5_000_000n, 5],
      [-5n, Number.NaN],
      ["1 second", 1000],
      ["0 millis", 0],
      ["-5 seconds", Number.NaN],
      ["  -5 seconds", Number.NaN],
      ["soon", Number.NaN],
      [[0, 5_000_000], 5],
      [[1, 0], 1000],
      [[0, -1], Number.NaN],
      [[-1, 0], Number.NaN],
      [[1n, 0n], Number.NaN],
      [[1, "0"], Number.NaN],
      [[1, 0, 0], Number.NaN],
      [Duration.millis(20), 20],
      [Duration.infinity, Infinity],
      [{}, Number.NaN],
      [null, Number.NaN],
      [undefined, Number.NaN]
    ]
    expect(cases.map(([input]) => InternalDuration.toMillis(input))).toEqual(cases.map(([, millis]) => millis))
  })
})
