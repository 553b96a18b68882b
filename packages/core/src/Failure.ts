/**
 * The failure taxonomy: every error a program meets, the user's own tagged errors included, is
 * classified into a category, a severity, a recovery strategy, a retry budget and a stable code.
 * One classification drives retries, circuit breakers, supervisors, log levels and metric labels.
 *
 * **The rule: where a failure is classified.** A failure is classified when it happens, by the
 * {@link Classifier} in the context of the fiber that saw it — the caller's fiber for `Retry`,
 * `CircuitBreaker.protect`, `Fallback`, `Hedge` and `Policy`; the program's own fiber for
 * `FiberSupervisor.loop` — refined by a `classify` table given to the stage itself. The stage's
 * table is tried first, then the tables of the context's classifier, then the built-in rules.
 * No module captures a classifier when its Layer or service is built, and the success path never
 * reads it. So `Failure.layerClassifier` must be provided around the program that makes the
 * calls (`Effect.provide(program, ClassifierLive)`, or merged into the Layer provided to it); a
 * classifier provided only to another Layer is not seen by the calls.
 *
 * **A typed failure no rule names** is an expected failure nobody described yet (defects are
 * the bugs): it gets a bounded, visible default — {@link unclassifiedRule}: category `system`,
 * severity `major`, backoff retry at most 3 times, its code derived from its tag as usual — and
 * the stage that classified it logs one warning per tag and classifier that names the tag and
 * says how to classify it. Rules that cannot be used (an unknown category, an invalid retry-after hint, a
 * rule function that throws) are reported the same way, never as a defect.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import { describe, stringProperty, tagOf } from "./internal/describe.js"
import * as InternalDuration from "./internal/duration.js"

// -----------------------------------------------------------------------------
// taxonomy
// -----------------------------------------------------------------------------

/**
 * What kind of failure it is. The first nine are the worker-pool error taxonomy's (`external` is
 * a failure inside the remote worker); `validation`, `security` and `user_code` cover the errors
 * of execution engines.
 *
 * @since 0.1.0
 * @category models
 */
export const Category = Schema.Literal(
  "initialization",
  "connection",
  "communication",
  "timeout",
  "resource",
  "health_check",
  "session",
  "external",
  "system",
  "validation",
  "security",
  "user_code"
)

/**
 * @since 0.1.0
 * @category models
 */
export type Category = typeof Category.Type

/**
 * How bad it is, from worst to mildest.
 *
 * @since 0.1.0
 * @category models
 */
export const Severity = Schema.Literal("critical", "major", "minor", "warning")

/**
 * @since 0.1.0
 * @category models
 */
export type Severity = typeof Severity.Type

/**
 * What to do about it: the recovery strategies.
 *
 * @since 0.1.0
 * @category models
 */
export const Strategy = Schema.Literal("immediate_retry", "backoff_retry", "circuit_break", "failover", "abandon")

/**
 * @since 0.1.0
 * @category models
 */
export type Strategy = typeof Strategy.Type

/**
 * The shape of the delays between retries, as named by the decision matrix.
 *
 * @since 0.1.0
 * @category models
 */
export const BackoffKind = Schema.Literal("exponential", "linear", "none")

/**
 * @since 0.1.0
 * @category models
 */
export type BackoffKind = typeof BackoffKind.Type

/**
 * The complete verdict on one failure.
 *
 * `maxRetries` counts retries after the first call. `tripsBreaker` tells a circuit breaker
 * whether the failure counts against the dependency (validation errors do not, by default).
 *
 * @since 0.1.0
 * @category models
 */
export interface Classification {
  readonly category: Category
  readonly severity: Severity
  readonly strategy: Strategy
  readonly retryable: boolean
  readonly maxRetries: number
  readonly backoff: BackoffKind
  readonly code: string
  readonly tripsBreaker: boolean
  readonly defect: boolean
  readonly retryAfter: Option.Option<Duration.Duration>
  /**
   * Present when no table or built-in rule named the failure: the name to put in a table (its
   * `_tag`, or a description of an untagged value).
   */
  readonly unclassified?: string | undefined
  /**
   * Present (`true`) with `unclassified` when the failure had no tag (no `_tag`, and no Error
   * `name` other than "Error"): `unclassified` is then a description of the value ("null",
   * "a string", "an Error without a _tag"), not a tag to put in a table.
   */
  readonly untagged?: true | undefined
  /**
   * Present when the rule that produced this classification had something unusable in it (an
   * unknown category, an invalid retry-after hint, a rule function that threw): one sentence
   * each, for the stage to log (see {@link warningsFor}).
   */
  readonly warnings?: ReadonlyArray<string> | undefined
}

/**
 * One row of the decision matrix: the defaults for a category.
 *
 * @since 0.1.0
 * @category models
 */
export interface DecisionRow {
  readonly severity: Severity
  readonly strategy: Strategy
  readonly maxRetries: number
  readonly backoff: BackoffKind
  readonly tripsBreaker: boolean
}

/**
 * A decision matrix has a row for every category.
 *
 * @since 0.1.0
 * @category models
 */
export type DecisionMatrix = { readonly [C in Category]: DecisionRow }

const row = (
  severity: Severity,
  strategy: Strategy,
  maxRetries: number,
  backoff: BackoffKind,
  tripsBreaker = true
): DecisionRow => ({ severity, strategy, maxRetries, backoff, tripsBreaker })

/**
 * The default decision matrix: the worker-pool error decision matrix's nine rows exactly, plus
 * never-retried rows for the execution-engine categories. Validation errors do not trip a
 * circuit breaker.
 *
 * | category | severity | strategy | max retries | backoff |
 * |---|---|---|---|---|
 * | initialization | critical | circuit_break | 3 | exponential |
 * | connection | major | backoff_retry | 5 | exponential |
 * | communication | major | immediate_retry | 3 | linear |
 * | timeout | major | backoff_retry | 2 | exponential |
 * | resource | critical | circuit_break | 1 | none |
 * | health_check | minor | backoff_retry | 3 | linear |
 * | session | minor | immediate_retry | 2 | none |
 * | external | major | failover | 1 | none |
 * | system | critical | abandon | 0 | none |
 * | validation | warning | abandon | 0 | none |
 * | security | critical | abandon | 0 | none |
 * | user_code | minor | abandon | 0 | none |
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultMatrix: DecisionMatrix = {
  initialization: row("critical", "circuit_break", 3, "exponential"),
  connection: row("major", "backoff_retry", 5, "exponential"),
  communication: row("major", "immediate_retry", 3, "linear"),
  timeout: row("major", "backoff_retry", 2, "exponential"),
  resource: row("critical", "circuit_break", 1, "none"),
  health_check: row("minor", "backoff_retry", 3, "linear"),
  session: row("minor", "immediate_retry", 2, "none"),
  external: row("major", "failover", 1, "none"),
  system: row("critical", "abandon", 0, "none"),
  validation: row("warning", "abandon", 0, "none", false),
  security: row("critical", "abandon", 0, "none"),
  user_code: row("minor", "abandon", 0, "none")
}

// -----------------------------------------------------------------------------
// rules and tables
// -----------------------------------------------------------------------------

/**
 * What a user says about one kind of error: its category, and optionally anything that differs
 * from the matrix row. `retryAfter` is a hint from the error itself (an HTTP `Retry-After`).
 *
 * @since 0.1.0
 * @category models
 */
export interface RuleObject {
  readonly category: Category
  readonly code?: string | undefined
  readonly severity?: Severity | undefined
  readonly strategy?: Strategy | undefined
  readonly retryable?: boolean | undefined
  readonly maxRetries?: number | undefined
  readonly backoff?: BackoffKind | undefined
  readonly tripsBreaker?: boolean | undefined
  readonly retryAfter?: Duration.DurationInput | undefined
}

/**
 * A rule for errors of type `E`: a bare category, a rule object, or a function of the error.
 *
 * @since 0.1.0
 * @category models
 */
export type Rule<E> = Category | RuleObject | ((error: E) => Category | RuleObject)

/**
 * A classification table for the tagged error union `E`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Table<in E> {
  readonly _tag: "Table"
  /** The rule for an error, or `undefined` when the table has none for its tag. */
  readonly rule: (error: E) => RuleObject | undefined
  /** The tags this table knows. */
  readonly tags: ReadonlyArray<string>
}

/**
 * The rules of a table: one entry per `_tag` of `E`, no more and no fewer.
 *
 * @since 0.1.0
 * @category models
 */
export type TableRules<E extends { readonly _tag: string }> = {
  readonly [K in E["_tag"]]: Rule<Extract<E, { readonly _tag: K }>>
}

const toRuleObject = (rule: Category | RuleObject): RuleObject => typeof rule === "string" ? { category: rule } : rule

const categories = new Set<string>(Category.literals)
const severities = new Set<string>(Severity.literals)
const strategies = new Set<string>(Strategy.literals)
const backoffKinds = new Set<string>(BackoffKind.literals)

/** An own property of a record: a key of `Object.prototype` (`"constructor"`, `"__proto__"` …) is no entry. */
const own = <V>(record: { readonly [key: string]: V }, key: string): V | undefined =>
  Object.prototype.hasOwnProperty.call(record, key) ? record[key] : undefined

/**
 * Builds a classification table keyed by the `_tag`s of an error union. Leaving a tag of `E`
 * out is a compile error, so adding a new error to a union forces a decision about it.
 *
 * @example
 * ```ts
 * import { Failure } from "@bulwark/core"
 * import { Data } from "effect"
 *
 * class Refused extends Data.TaggedError("Refused")<{}> {}
 * class RateLimited extends Data.TaggedError("RateLimited")<{ readonly retryAfterMs: number }> {}
 * class BadInput extends Data.TaggedError("BadInput")<{}> {}
 *
 * const table = Failure.table<Refused | RateLimited | BadInput>({
 *   Refused: "connection",
 *   RateLimited: (e) => ({ category: "resource", strategy: "backoff_retry", maxRetries: 3, retryAfter: e.retryAfterMs }),
 *   BadInput: { category: "validation", code: "BAD_INPUT" }
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const table = <E extends { readonly _tag: string }>(rules: TableRules<E>): Table<E> => {
  const entries = rules as Record<string, Rule<E>>
  for (const [tag, rule] of Object.entries(entries)) {
    if (typeof rule === "string" && !categories.has(rule)) {
      throw new TypeError(
        `Failure.table: the rule for "${tag}" names the unknown category "${rule}" (expected one of ${
          [...categories].join(", ")
        })`
      )
    }
    if (rule === null || (typeof rule !== "string" && typeof rule !== "object" && typeof rule !== "function")) {
      throw new TypeError(
        `Failure.table: the rule for "${tag}" is ${describe(rule)} (expected a category, a rule object or a function)`
      )
    }
    if (typeof rule === "object" && !categories.has(rule.category)) {
      throw new TypeError(`Failure.table: the rule for "${tag}" has the unknown category "${String(rule.category)}"`)
    }
  }
  return {
    _tag: "Table",
    tags: Object.keys(entries),
    rule: (error) => {
      const tag = nameOf(error)
      const rule = tag === undefined ? undefined : own(entries, tag)
      if (rule === undefined) return undefined
      return toRuleObject(typeof rule === "function" ? rule(error) : rule)
    }
  }
}

/**
 * The key under which an error may carry its own rule. Bulwark's own errors (circuit open,
 * timeout, bulkhead rejected …) classify themselves this way.
 *
 * @since 0.1.0
 * @category symbols
 */
export const RuleKey: unique symbol = Symbol.for("@bulwark/core/Failure/Rule")

/**
 * An error that knows its own classification rule.
 *
 * @since 0.1.0
 * @category models
 */
export interface SelfClassifying {
  readonly [RuleKey]: RuleObject
}

const ownRule = (u: unknown): unknown => {
  if (!Predicate.isObject(u)) return undefined
  try {
    return RuleKey in u ? (u as SelfClassifying)[RuleKey] : undefined
  } catch {
    return undefined
  }
}

/**
 * @since 0.1.0
 * @category guards
 */
export const isSelfClassifying = (u: unknown): u is SelfClassifying => Predicate.isObject(ownRule(u))

// -----------------------------------------------------------------------------
// classification
// -----------------------------------------------------------------------------

/**
 * What the caller knows about the circumstances: the attempt number (1 for the first call) and
 * whether the failure affects every worker.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClassifyContext {
  readonly attempt?: number | undefined
  readonly affectsAllWorkers?: boolean | undefined
}

const upgrade = (severity: Severity): Severity =>
  severity === "minor" ? "major" : severity === "major" ? "critical" : severity

/**
 * Severity escalation: past attempt 3 the severity rises one step (minor → major → critical);
 * a failure that affects every worker is critical whatever the attempt.
 *
 * @since 0.1.0
 * @category classification
 */
export const escalateSeverity = (severity: Severity, context: ClassifyContext | undefined): Severity => {
  if (context?.affectsAllWorkers === true) return "critical"
  if ((context?.attempt ?? 1) > 3) return upgrade(severity)
  return severity
}

/**
 * Strategy escalation: a critical failure past attempt 2 is abandoned; otherwise the given
 * strategy stands. A rule that writes its own `maxRetries` is not abandoned this way (see
 * {@link fromRule}).
 *
 * @since 0.1.0
 * @category classification
 */
export const escalateStrategy = (
  strategy: Strategy,
  severity: Severity,
  context: ClassifyContext | undefined
): Strategy => severity === "critical" && (context?.attempt ?? 1) > 2 ? "abandon" : strategy

const retryingStrategies: ReadonlySet<Strategy> = new Set(["immediate_retry", "backoff_retry", "failover"])

const toCode = (tag: string): string =>
  tag
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/[^A-Za-z0-9]+/g, "_")
    .replace(/^_+|_+$/g, "")
    .toUpperCase() || "UNKNOWN_ERROR"

const nodeErrorCategories: Record<string, Category> = {
  ECONNREFUSED: "connection",
  ECONNRESET: "connection",
  ECONNABORTED: "connection",
  EPIPE: "connection",
  ENOTFOUND: "connection",
  EAI_AGAIN: "connection",
  EHOSTUNREACH: "connection",
  ENETUNREACH: "connection",
  ETIMEDOUT: "timeout",
  ESOCKETTIMEDOUT: "timeout",
  EMFILE: "resource",
  ENFILE: "resource",
  ENOMEM: "resource",
  ENOSPC: "resource",
  EACCES: "security",
  EPERM: "security"
}

const effectTagCategories: Record<string, Category> = {
  TimeoutException: "timeout",
  ParseError: "validation",
  ConfigError: "initialization",
  IllegalArgumentException: "validation"
}

/**
 * The rule Bulwark finds without help: the error's own rule, then Node's system error codes
 * (`ECONNREFUSED` → connection, `ETIMEDOUT` → timeout …) and Effect's well-known errors
 * (`TimeoutException` → timeout, `ParseError` → validation …). `undefined` for anything else.
 * Never throws, whatever the value (a `code` or `_tag` getter that throws reads as absent).
 *
 * @since 0.1.0
 * @category classification
 */
export const builtinRule = (error: unknown): RuleObject | undefined => {
  const rule = ownRule(error)
  if (Predicate.isObject(rule)) return rule as RuleObject
  const code = stringProperty(error, "code")
  if (code !== undefined) {
    const category = own(nodeErrorCategories, code)
    if (category !== undefined) return { category, code }
  }
  const tag = tagOf(error)
  if (tag !== undefined) {
    const category = own(effectTagCategories, tag)
    if (category !== undefined) return { category }
  }
  return undefined
}

/** The name a table would use for a failure: its `_tag`, or an `Error`'s own `name`. Never throws. */
const nameOf = (error: unknown): string | undefined => {
  const tag = tagOf(error)
  if (tag !== undefined) return tag
  if (error instanceof Error) {
    const name = stringProperty(error, "name")
    if (name !== undefined && name !== "Error") return name
  }
  return undefined
}

/**
 * The longest retry-after hint honoured when no classifier says otherwise: 1 hour. A longer
 * hint (an `Infinity` included) is capped at it, so no hint can stall a retry loop for ever.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultMaxRetryAfter: Duration.Duration = Duration.hours(1)

/**
 * The rule for a typed failure that no table and no built-in rule names: category `system`,
 * severity `major`, backoff retry (1 s, 2 s, 4 s) at most 3 times. Its code is
 * derived from its tag as for any failure (`Unavailable` → `UNAVAILABLE`), so that naming it in a
 * table later does not rename it in metrics and dashboards; the classification's `unclassified`
 * field marks it. A typed failure is an expected failure by definition — the bugs are
 * defects — so an undescribed one is retried a few times, visibly, rather than abandoned
 * blindly or retried without bound. Replace it with `ClassifierOptions.unclassified`.
 *
 * @since 0.1.0
 * @category constants
 */
export const unclassifiedRule: RuleObject = {
  category: "system",
  severity: "major",
  strategy: "backoff_retry",
  maxRetries: 3,
  backoff: "exponential"
}

/**
 * Options for {@link fromRule}.
 *
 * @since 0.1.0
 * @category models
 */
export interface FromRuleOptions {
  /** Default: {@link defaultMatrix}. */
  readonly matrix?: DecisionMatrix | undefined
  /** The failure's tag, for the code and for messages. */
  readonly tag?: string | undefined
  readonly context?: ClassifyContext | undefined
  /** The longest retry-after hint honoured. Default: {@link defaultMaxRetryAfter}. */
  readonly maxRetryAfter?: Duration.DurationInput | undefined
  /** The rule used when this one names an unknown category. Default: {@link unclassifiedRule}. */
  readonly unclassified?: RuleObject | undefined
}

const decodeRetryAfter = (
  hint: unknown,
  capMillis: number,
  tag: string | undefined,
  warnings: Array<string>
): Option.Option<Duration.Duration> => {
  if (hint === undefined) return Option.none()
  const millis = InternalDuration.toMillis(hint)
  if (Number.isNaN(millis)) {
    warnings.push(
      `The retry-after hint ${describe(hint)} of ${
        tag === undefined ? "a failure" : `"${tag}"`
      } is not a duration >= 0; it is ignored`
    )
    return Option.none()
  }
  return Option.some(Duration.millis(Math.min(millis, capMillis)))
}

const maxRetryAfterMillis = (input: Duration.DurationInput | undefined, where: string): number => {
  if (input === undefined) return Duration.toMillis(defaultMaxRetryAfter)
  const millis = InternalDuration.toMillis(input)
  if (!(millis >= 0) || !Number.isFinite(millis)) {
    throw new RangeError(`${where}: maxRetryAfter must be a finite duration >= 0, got ${describe(input)}`)
  }
  return millis
}

/**
 * Completes a rule into a classification with a matrix row and the escalation rules.
 *
 * - Categories and rows are looked up by own keys only; a rule with an unknown category (from a
 *   rule function or a self-classifying error) is classified by the `unclassified` rule, with a
 *   warning that names the category. An unknown severity, strategy or backoff, or a
 *   `maxRetries` that is not a whole number >= 0 (or `Infinity`), falls back to the row's, with
 *   a warning.
 * - A number the user wrote wins over escalation: a rule with its own `maxRetries` is never
 *   abandoned by strategy escalation (its severity still rises).
 * - The retry-after hint is decoded here, once: an invalid one (`"soon"`, `NaN`, negative) is
 *   absent, with a warning; a longer one than `maxRetryAfter` (an `Infinity` included) is capped.
 *
 * @since 0.1.0
 * @category classification
 */
export const fromRule = (rule: RuleObject, options: FromRuleOptions = {}): Classification =>
  completeRule(
    rule,
    options.matrix ?? defaultMatrix,
    options.tag,
    options.context,
    maxRetryAfterMillis(options.maxRetryAfter, "Failure.fromRule"),
    options.unclassified
  )

/** How a warning names the failure. */
const subjectOf = (tag: string | undefined): string => tag === undefined ? "a failure" : `"${tag}"`

/** The rule's severity, strategy or backoff when it is a known one, else the row's (with a warning). */
const pickRow = <K extends "severity" | "strategy" | "backoff">(
  rule: RuleObject,
  base: DecisionRow,
  key: K,
  allowed: ReadonlySet<string>,
  tag: string | undefined,
  warnings: Array<string>
): DecisionRow[K] => {
  const value = rule[key]
  if (value === undefined) return base[key]
  if (typeof value === "string" && allowed.has(value)) return value as DecisionRow[K]
  warnings.push(`The rule for ${subjectOf(tag)} has the unknown ${key} ${describe(value)}; the matrix's is used`)
  return base[key]
}

/**
 * {@link fromRule} with its options read: a classifier calls it on every failure with the cap it
 * decoded once, and builds no options record, no message and no closure unless a warning needs it.
 */
const completeRule = (
  rule: RuleObject,
  matrix: DecisionMatrix,
  tag: string | undefined,
  context: ClassifyContext | undefined,
  capMillis: number,
  unclassified: RuleObject | undefined
): Classification => {
  const warnings: Array<string> = []
  let base = typeof rule.category === "string" && categories.has(rule.category)
    ? own(matrix, rule.category)
    : undefined
  if (base === undefined) {
    warnings.push(
      `The rule for ${subjectOf(tag)} names the unknown category ${describe(rule.category)} (expected one of ${
        Category.literals.join(", ")
      }); it is classified as unclassified`
    )
    rule = unclassified ?? unclassifiedRule
    base = own(matrix, rule.category) ?? defaultMatrix.system
  }
  let written = rule.maxRetries
  if (written !== undefined && !(written === Number.POSITIVE_INFINITY || (Number.isInteger(written) && written >= 0))) {
    warnings.push(
      `The rule for ${subjectOf(tag)} has maxRetries ${
        describe(written)
      }, not a whole number >= 0; the matrix's is used`
    )
    written = undefined
  }
  const severity = escalateSeverity(pickRow(rule, base, "severity", severities, tag, warnings), context)
  const ruleStrategy = pickRow(rule, base, "strategy", strategies, tag, warnings)
  // a number the user wrote wins over escalation: only the matrix's default abandons early
  const strategy = written !== undefined ? ruleStrategy : escalateStrategy(ruleStrategy, severity, context)
  const maxRetries = written ?? base.maxRetries
  const retryable = strategy === "abandon"
    ? false
    : typeof rule.retryable === "boolean"
    ? rule.retryable
    : retryingStrategies.has(strategy) && maxRetries > 0
  const retryAfter = decodeRetryAfter(rule.retryAfter, capMillis, tag, warnings)
  const classification: Classification = {
    category: rule.category,
    severity,
    strategy,
    retryable,
    maxRetries,
    backoff: pickRow(rule, base, "backoff", backoffKinds, tag, warnings),
    code: typeof rule.code === "string"
      ? rule.code
      : tag !== undefined
      ? toCode(tag)
      : `${rule.category.toUpperCase()}_ERROR`,
    tripsBreaker: typeof rule.tripsBreaker === "boolean" ? rule.tripsBreaker : base.tripsBreaker,
    defect: false,
    retryAfter
  }
  return warnings.length > 0 ? { ...classification, warnings } : classification
}

/**
 * The classifier: the decision matrix plus the tables that know the user's errors.
 *
 * @since 0.1.0
 * @category models
 */
export interface Classifier {
  readonly matrix: DecisionMatrix
  /** The longest retry-after hint honoured; longer ones are capped at it. */
  readonly maxRetryAfter: Duration.Duration
  /** The rule for a typed failure nothing names (see {@link unclassifiedRule}). */
  readonly unclassified: RuleObject
  /**
   * Classifies a failure (a value from the error channel): the tables, then the built-in
   * rules, then the `unclassified` rule. Never throws, whatever the value.
   */
  readonly classify: (error: unknown, context?: ClassifyContext) => Classification
  /** Classifies a defect (a value from `Cause.die`): always system / critical, never retryable. */
  readonly classifyDefect: (defect: unknown, context?: ClassifyContext) => Classification
}

/**
 * The classifier service, replaceable through a Layer. When none is provided Bulwark uses
 * {@link defaultClassifier}. It is read from the context of the fiber that saw the failure,
 * when the failure happens (see the module comment): provide it around the program.
 *
 * @since 0.1.0
 * @category tags
 */
export const Classifier: Context.Tag<Classifier, Classifier> = Context.GenericTag<Classifier>(
  "@bulwark/core/Failure/Classifier"
)

/**
 * Options for {@link makeClassifier}.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClassifierOptions {
  /** The decision matrix. Default: {@link defaultMatrix}. */
  readonly matrix?: DecisionMatrix | undefined
  /** Tables for the user's own errors, tried in order before the built-in rules. Default: none. */
  readonly tables?: ReadonlyArray<Table<any>> | undefined
  /**
   * How a typed failure that no table and no built-in rule names is classified: a category or a
   * rule. `"system"` gives the matrix's system row (critical, never retried). Default:
   * {@link unclassifiedRule} (system, major, backoff retry at most 3 times).
   */
  readonly unclassified?: Category | RuleObject | undefined
  /**
   * The longest retry-after hint honoured; a longer hint (an `Infinity` included) is capped at
   * it. A finite duration >= 0. Default: 1 hour ({@link defaultMaxRetryAfter}).
   */
  readonly maxRetryAfter?: Duration.DurationInput | undefined
}

const validateMatrix = (matrix: DecisionMatrix): void => {
  for (const category of Category.literals) {
    const r = own(matrix, category)
    if (r === undefined) {
      throw new TypeError(`Failure.makeClassifier: matrix has no row for category "${category}"`)
    }
    if (!Number.isInteger(r.maxRetries) || r.maxRetries < 0) {
      throw new TypeError(
        `Failure.makeClassifier: matrix.${category}.maxRetries must be a whole number >= 0, got ${r.maxRetries}`
      )
    }
  }
}

const classifyDefectWith =
  (matrix: DecisionMatrix) => (_defect: unknown, context?: ClassifyContext): Classification => ({
    ...fromRule({ category: "system", code: "DEFECT" }, { matrix, context }),
    severity: "critical",
    strategy: "abandon",
    retryable: false,
    maxRetries: 0,
    defect: true
  })

/** The first rule for an error: the tables in order, then the built-in rules. Never throws. */
const findRule = (
  tables: ReadonlyArray<Table<any>>,
  error: unknown,
  tag: string | undefined,
  warnings: Array<string>
): RuleObject | undefined => {
  if (tag !== undefined) {
    for (const t of tables) {
      try {
        const rule = t.rule(error)
        if (rule === undefined) continue
        if (rule !== null && typeof rule === "object") return rule
        warnings.push(`The rule for "${tag}" gave ${describe(rule)}, which is not a rule; the next rule is tried`)
      } catch (e) {
        warnings.push(`The rule for "${tag}" threw (${describe(e)}); the next rule is tried`)
      }
    }
  }
  return builtinRule(error)
}

const withWarnings = (classification: Classification, warnings: ReadonlyArray<string>): Classification =>
  warnings.length === 0
    ? classification
    : { ...classification, warnings: [...warnings, ...(classification.warnings ?? [])] }

/**
 * Builds a classifier from a matrix and tables. Options that break a rule are a defect whose
 * message names the field.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeClassifier = (options: ClassifierOptions = {}): Classifier => {
  const matrix = options.matrix ?? defaultMatrix
  if (options.matrix !== undefined) validateMatrix(matrix)
  const tables = options.tables ?? []
  const maxRetryAfter = Duration.millis(maxRetryAfterMillis(options.maxRetryAfter, "Failure.makeClassifier"))
  const unclassified = toRuleObject(options.unclassified ?? unclassifiedRule)
  if (!categories.has(unclassified.category)) {
    throw new TypeError(
      `Failure.makeClassifier: unclassified names the unknown category ${describe(unclassified.category)}`
    )
  }
  const ruleOptions = { matrix, maxRetryAfter, unclassified }
  const capMillis = Duration.toMillis(maxRetryAfter)
  const classify = (error: unknown, context?: ClassifyContext): Classification => {
    const tag = nameOf(error)
    const warnings: Array<string> = []
    const rule = findRule(tables, error, tag, warnings)
    if (rule !== undefined) {
      return withWarnings(completeRule(rule, matrix, tag, context, capMillis, unclassified), warnings)
    }
    return withWarnings({
      ...fromRule(
        { ...unclassified, code: unclassified.code ?? (tag !== undefined ? toCode(tag) : "UNKNOWN_ERROR") },
        { ...ruleOptions, context }
      ),
      ...(tag !== undefined ? { unclassified: tag } : { unclassified: describeUntagged(error), untagged: true })
    }, warnings)
  }
  return { matrix, maxRetryAfter, unclassified, classify, classifyDefect: classifyDefectWith(matrix) }
}

const describeUntagged = (error: unknown): string => {
  if (error === null) return "null"
  if (error instanceof Error) return "an Error without a _tag"
  return typeof error === "object" ? "an object without a _tag" : `a ${typeof error}`
}

/**
 * The classifier used when no Layer provides one: the default matrix and the built-in rules.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultClassifier: Classifier = makeClassifier()

/**
 * Provides a classifier with the given matrix and tables. Provide it around the program that
 * makes the calls: stages read it from the caller's context when a failure happens.
 *
 * @example
 * ```ts
 * import { Failure } from "@bulwark/core"
 * import { Data } from "effect"
 *
 * class Refused extends Data.TaggedError("Refused")<{}> {}
 * const myTable = Failure.table<Refused>({ Refused: "connection" })
 *
 * const ClassifierLive = Failure.layerClassifier({ tables: [myTable] })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerClassifier = (options: ClassifierOptions): Layer.Layer<Classifier> =>
  Layer.sync(Classifier, () => makeClassifier(options))

/**
 * The classifier in the context, or {@link defaultClassifier}.
 *
 * @since 0.1.0
 * @category accessors
 */
export const currentClassifier: Effect.Effect<Classifier> = Effect.map(
  Effect.context<never>(),
  (context) => Context.getOrElse(context as Context.Context<Classifier>, Classifier, () => defaultClassifier)
)

// -----------------------------------------------------------------------------
// refinement by a stage
// -----------------------------------------------------------------------------

/**
 * How a stage (`Retry`, `Fallback`, a breaker, a loop …) refines the classifier in the
 * context: a table for its error union, or a function that returns a rule — or `undefined` to
 * leave the failure to the context's classifier.
 *
 * @since 0.1.0
 * @category models
 */
export type Classify<E> =
  | Table<E>
  | ((error: E) => Category | RuleObject | undefined)

/** Warnings already logged, per root classifier: refined classifiers share their base's. */
const warnedTags = new WeakMap<Classifier, Set<string>>()
const rootOf = new WeakMap<Classifier, Classifier>()
const refinedCache = new WeakMap<Classifier, WeakMap<object, Classifier>>()

/**
 * The classifier a stage uses: `classify` (the stage's own table or function) tried first, then
 * `base` (the classifier in the caller's context). Without `classify`, `base` itself. The
 * refined classifier shares `base`'s matrix, retry-after cap and once-per-tag warnings, and is
 * cached per `base` and `classify`, so calling this on every failure costs a lookup.
 *
 * @since 0.1.0
 * @category classification
 */
export const refine = <E>(base: Classifier, classify: Classify<E> | undefined): Classifier => {
  if (classify === undefined) return base
  let cache = refinedCache.get(base)
  if (cache === undefined) {
    cache = new WeakMap()
    refinedCache.set(base, cache)
  }
  const cached = cache.get(classify)
  if (cached !== undefined) return cached
  const ruleOf = typeof classify === "function"
    ? (error: unknown) => {
      const rule = (classify as (error: E) => Category | RuleObject | undefined)(error as E)
      return rule === undefined ? undefined : toRuleObject(rule)
    }
    : (error: unknown) => classify.rule(error as E)
  const ruleOptions = { matrix: base.matrix, maxRetryAfter: base.maxRetryAfter, unclassified: base.unclassified }
  const refined: Classifier = {
    matrix: base.matrix,
    maxRetryAfter: base.maxRetryAfter,
    unclassified: base.unclassified,
    classifyDefect: base.classifyDefect,
    classify: (error, context) => {
      const tag = nameOf(error)
      let rule: RuleObject | undefined
      try {
        rule = ruleOf(error)
      } catch (e) {
        const c = base.classify(error, context)
        return withWarnings(c, [
          `The stage's rule for ${tag === undefined ? "a failure" : `"${tag}"`} threw (${
            describe(e)
          }); the classifier in the context is used`
        ])
      }
      if (rule === undefined) return base.classify(error, context)
      if (rule === null || typeof rule !== "object") {
        return withWarnings(base.classify(error, context), [
          `The stage's rule for ${tag === undefined ? "a failure" : `"${tag}"`} gave ${
            describe(rule)
          }, which is not a rule; the classifier in the context is used`
        ])
      }
      return fromRule(rule, { ...ruleOptions, tag, context })
    }
  }
  rootOf.set(refined, rootOf.get(base) ?? base)
  cache.set(classify, refined)
  return refined
}

/**
 * The warnings a stage should log for a classification made by `classifier`: the rule's own
 * warnings (an unknown category, an invalid retry-after hint), and — the first time this
 * classifier (or a refinement of it) meets an unclassified tag — one that names the tag and
 * says how to classify it. Marks the tag as warned. Never throws.
 *
 * @since 0.1.0
 * @category classification
 */
export const warningsFor = (classifier: Classifier, classification: Classification): ReadonlyArray<string> => {
  const name = classification.unclassified
  const own = classification.warnings ?? []
  if (name === undefined) return own
  // a description is printed as it is, a tag in quotes: a tag "null" is not the value null
  const subject = classification.untagged === true ? name : `"${name}"`
  const root = rootOf.get(classifier) ?? classifier
  let warned = warnedTags.get(root)
  if (warned === undefined) {
    warned = new Set()
    warnedTags.set(root, warned)
  }
  if (warned.has(subject)) return own
  warned.add(subject)
  const c = classification
  return [
    ...own,
    `The failure ${subject} is not classified: ` +
    `no classify table given to this stage and no table of the Failure.Classifier in the caller's context names it, ` +
    `so it is treated as ${c.category} / ${c.severity}, ${
      c.retryable ? `retried at most ${c.maxRetries} times` : "not retried"
    }, code ${c.code}. Classify it in a Failure.table and provide Failure.layerClassifier({ tables }) around ` +
    `the program that makes the call (a classifier provided only to another Layer is not seen by the call). ` +
    `This is logged once per tag.`
  ]
}

/**
 * Logs {@link warningsFor} at warning level, annotated with the failure's code.
 *
 * @since 0.1.0
 * @category classification
 */
export const logWarnings = (classifier: Classifier, classification: Classification): Effect.Effect<void> => {
  if (classification.unclassified === undefined && classification.warnings === undefined) return Effect.void
  const warnings = warningsFor(classifier, classification)
  if (warnings.length === 0) return Effect.void
  return Effect.forEach(warnings, (warning) => Effect.logWarning(warning), { discard: true }).pipe(
    Effect.annotateLogs({
      "bulwark.failure.code": classification.code,
      ...(classification.unclassified !== undefined
        ? { "bulwark.failure.unclassified": classification.unclassified }
        : {})
    })
  )
}

/**
 * Classifies a failure the way every stage does: with `classify` (the stage's table or
 * function) first, then `classifier` (the one in the caller's context), and logs what
 * {@link warningsFor} says once the classification is made.
 *
 * @since 0.1.0
 * @category classification
 */
export const classifyWith = <E>(
  classifier: Classifier,
  error: E,
  options: { readonly classify?: Classify<E> | undefined; readonly context?: ClassifyContext | undefined } = {}
): Effect.Effect<Classification> =>
  Effect.suspend(() => {
    const refined = refine(classifier, options.classify)
    const classification = refined.classify(error, options.context)
    return Effect.as(logWarnings(refined, classification), classification)
  })

/**
 * Classifies a failure with the classifier in the context (and logs its warnings; see
 * {@link classifyWith}).
 *
 * @since 0.1.0
 * @category classification
 */
export const classify = (error: unknown, context?: ClassifyContext): Effect.Effect<Classification> =>
  Effect.flatMap(currentClassifier, (classifier) => classifyWith(classifier, error, { context }))

/**
 * Classifies a `Cause`: its first failure, or its first defect as system / critical. A cause
 * that holds only interruption is not a failure: `None`. Logs the classification's warnings.
 *
 * @since 0.1.0
 * @category classification
 */
export const classifyCause = <E>(
  cause: Cause.Cause<E>,
  context?: ClassifyContext
): Effect.Effect<Option.Option<Classification>> =>
  Effect.flatMap(currentClassifier, (classifier): Effect.Effect<Option.Option<Classification>> => {
    const c = classifyCauseWith(classifier, cause, context)
    return Option.isSome(c) ? Effect.as(logWarnings(classifier, c.value), c) : Effect.succeed(c)
  })

/**
 * Classifies a `Cause` with the given classifier (see {@link classifyCause}); logs nothing.
 *
 * @since 0.1.0
 * @category classification
 */
export const classifyCauseWith = <E>(
  classifier: Classifier,
  cause: Cause.Cause<E>,
  context?: ClassifyContext
): Option.Option<Classification> => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) return Option.some(classifier.classify(failure.value, context))
  const defect = Cause.dieOption(cause)
  if (Option.isSome(defect)) return Option.some(classifier.classifyDefect(defect.value, context))
  return Option.none()
}

// -----------------------------------------------------------------------------
// serialisation
// -----------------------------------------------------------------------------

/**
 * The serialisable shape of a classified failure (an `ExecutionError`), encoded to JSON
 * with snake_case keys and an ISO-8601 timestamp so that logs, HTTP responses and other
 * processes can read it.
 *
 * @since 0.1.0
 * @category serialisation
 */
export const ExecutionError = Schema.Struct({
  type: Category,
  code: Schema.String,
  message: Schema.String,
  details: Schema.optional(Schema.String),
  retryable: Schema.Boolean,
  severity: Severity,
  strategy: Strategy,
  taskId: Schema.optional(Schema.String).pipe(Schema.fromKey("task_id")),
  correlationId: Schema.optional(Schema.String).pipe(Schema.fromKey("correlation_id")),
  timestamp: Schema.Date
}).annotations({ identifier: "ExecutionError" })

/**
 * @since 0.1.0
 * @category serialisation
 */
export type ExecutionError = typeof ExecutionError.Type

/**
 * @since 0.1.0
 * @category serialisation
 */
export type ExecutionErrorJson = typeof ExecutionError.Encoded

/**
 * The message of an `ExecutionError` for a failure value: its `message` when it has a non-empty
 * one, else its tag and fields (`BadRequest { reason: "empty" }`), else its text. Never throws.
 */
const messageOf = (error: unknown): string => describe(error)

/**
 * Options for {@link toExecutionError}.
 *
 * @since 0.1.0
 * @category serialisation
 */
export interface ExecutionErrorOptions {
  readonly taskId?: string | undefined
  readonly correlationId?: string | undefined
  readonly details?: string | undefined
  readonly context?: ClassifyContext | undefined
}

/**
 * Classifies a failure (or, with `Cause`, a defect) and describes it as an `ExecutionError`,
 * stamped with the time from `Clock`.
 *
 * @since 0.1.0
 * @category serialisation
 */
export const toExecutionError = (
  error: unknown,
  options: ExecutionErrorOptions = {}
): Effect.Effect<ExecutionError> =>
  Effect.gen(function*() {
    const classifier = yield* currentClassifier
    const now = yield* Clock.currentTimeMillis
    let classification: Classification
    let message: string
    if (Cause.isCause(error)) {
      const c = classifyCauseWith(classifier, error, options.context)
      classification = Option.getOrElse(c, () => classifier.classifyDefect(undefined, options.context))
      const failure = Cause.failureOption(error)
      message = Option.isSome(failure)
        ? messageOf(failure.value)
        : Option.match(Cause.dieOption(error), { onNone: () => "Interrupted", onSome: messageOf })
    } else {
      classification = classifier.classify(error, options.context)
      message = messageOf(error)
    }
    yield* logWarnings(classifier, classification)
    return fromClassification(classification, message, now, options)
  })

/**
 * Builds an `ExecutionError` from a classification you already have.
 *
 * @since 0.1.0
 * @category serialisation
 */
export const fromClassification = (
  classification: Classification,
  message: string,
  timestampMillis: number,
  options: Omit<ExecutionErrorOptions, "context"> = {}
): ExecutionError => ({
  type: classification.category,
  code: classification.code,
  message,
  retryable: classification.retryable,
  severity: classification.severity,
  strategy: classification.strategy,
  timestamp: new Date(timestampMillis),
  ...(options.details !== undefined ? { details: options.details } : {}),
  ...(options.taskId !== undefined ? { taskId: options.taskId } : {}),
  ...(options.correlationId !== undefined ? { correlationId: options.correlationId } : {})
})

/**
 * Encodes an `ExecutionError` to its JSON shape.
 *
 * @since 0.1.0
 * @category serialisation
 */
export const encodeExecutionError: (error: ExecutionError) => ExecutionErrorJson = Schema.encodeSync(ExecutionError)

/**
 * Decodes the JSON shape; fails with a `ParseError` that names the bad field.
 *
 * @since 0.1.0
 * @category serialisation
 */
export const decodeExecutionError = Schema.decodeUnknown(ExecutionError)

/**
 * RFC 9457 problem details, with Bulwark's classification as extension members.
 *
 * @since 0.1.0
 * @category serialisation
 */
export const ProblemDetails = Schema.Struct({
  type: Schema.String,
  title: Schema.String,
  status: Schema.Int.pipe(Schema.between(400, 599)),
  detail: Schema.optional(Schema.String),
  instance: Schema.optional(Schema.String),
  code: Schema.String,
  category: Category,
  severity: Severity,
  retryable: Schema.Boolean,
  correlation_id: Schema.optional(Schema.String),
  timestamp: Schema.String
}).annotations({ identifier: "ProblemDetails" })

/**
 * @since 0.1.0
 * @category serialisation
 */
export type ProblemDetails = typeof ProblemDetails.Type

/**
 * The HTTP status that fits a category.
 *
 * @since 0.1.0
 * @category serialisation
 */
export const httpStatus: { readonly [C in Category]: number } = {
  initialization: 503,
  connection: 502,
  communication: 502,
  timeout: 504,
  resource: 503,
  health_check: 503,
  session: 409,
  external: 502,
  system: 500,
  validation: 400,
  security: 403,
  user_code: 422
}

/**
 * Converts an `ExecutionError` to RFC 9457 problem details (`application/problem+json`). The
 * `type` is a URN built from the category and code, so clients can switch on it.
 *
 * @since 0.1.0
 * @category serialisation
 */
export const toProblemDetails = (
  error: ExecutionError,
  options: { readonly status?: number; readonly instance?: string } = {}
): ProblemDetails => ({
  type: `urn:bulwark:failure:${error.type}:${error.code}`,
  title: error.message,
  status: options.status ?? httpStatus[error.type],
  code: error.code,
  category: error.type,
  severity: error.severity,
  retryable: error.retryable,
  timestamp: error.timestamp.toISOString(),
  ...(error.details !== undefined ? { detail: error.details } : {}),
  ...(options.instance !== undefined
    ? { instance: options.instance }
    : error.taskId !== undefined
    ? { instance: `urn:bulwark:task:${error.taskId}` }
    : {}),
  ...(error.correlationId !== undefined ? { correlation_id: error.correlationId } : {})
})

/**
 * Log level that fits a severity: critical → Fatal, major → Error, minor → Warning,
 * warning → Info.
 *
 * @since 0.1.0
 * @category classification
 */
export const logLevel = (severity: Severity): "Fatal" | "Error" | "Warning" | "Info" =>
  severity === "critical" ? "Fatal" : severity === "major" ? "Error" : severity === "minor" ? "Warning" : "Info"
