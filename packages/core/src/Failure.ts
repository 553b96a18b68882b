/**
 * The failure taxonomy: every error a program meets, the user's own tagged errors included, is
 * classified into a category, a severity, a recovery strategy, a retry budget and a stable code.
 * One classification drives retries, circuit breakers, supervisors, log levels and metric labels.
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

// -----------------------------------------------------------------------------
// taxonomy
// -----------------------------------------------------------------------------

/**
 * What kind of failure it is. The first nine are seed 001's categories (`external` is its
 * `python_error`: a failure inside the remote worker); `validation`, `security` and `user_code`
 * come from seed 003.
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
 * What to do about it (seed 001's recovery strategies).
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
 * The default decision matrix: seed 001's nine rows exactly, plus never-retried rows for the
 * categories seed 003 adds. Validation errors do not trip a circuit breaker.
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
    if (typeof rule === "object" && rule !== null && !categories.has(rule.category)) {
      throw new TypeError(`Failure.table: the rule for "${tag}" has the unknown category "${String(rule.category)}"`)
    }
  }
  return {
    _tag: "Table",
    tags: Object.keys(entries),
    rule: (error) => {
      const rule = Object.prototype.hasOwnProperty.call(entries, error._tag) ? entries[error._tag] : undefined
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

/**
 * @since 0.1.0
 * @category guards
 */
export const isSelfClassifying = (u: unknown): u is SelfClassifying =>
  Predicate.isObject(u) && RuleKey in u && Predicate.isObject((u as SelfClassifying)[RuleKey])

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
 * Severity escalation (SPEC R1): past attempt 3 the severity rises one step (minor → major →
 * critical); a failure that affects every worker is critical whatever the attempt.
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
 * strategy stands.
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
 *
 * @since 0.1.0
 * @category classification
 */
export const builtinRule = (error: unknown): RuleObject | undefined => {
  if (isSelfClassifying(error)) return error[RuleKey]
  if (Predicate.isObject(error)) {
    const code = (error as { readonly code?: unknown }).code
    if (typeof code === "string" && code in nodeErrorCategories) {
      return { category: nodeErrorCategories[code]!, code }
    }
    const tag = (error as { readonly _tag?: unknown })._tag
    if (typeof tag === "string" && tag in effectTagCategories) {
      return { category: effectTagCategories[tag]! }
    }
  }
  return undefined
}

const tagOf = (error: unknown): string | undefined => {
  if (Predicate.isObject(error)) {
    const tag = (error as { readonly _tag?: unknown })._tag
    if (typeof tag === "string") return tag
    const name = (error as { readonly name?: unknown }).name
    if (error instanceof Error && typeof name === "string" && name !== "Error") return name
  }
  return undefined
}

/**
 * Completes a rule into a classification with a matrix row and the escalation rules.
 *
 * @since 0.1.0
 * @category classification
 */
export const fromRule = (
  rule: RuleObject,
  options: { readonly matrix?: DecisionMatrix; readonly tag?: string | undefined; readonly context?: ClassifyContext }
): Classification => {
  const matrix = options.matrix ?? defaultMatrix
  const base = matrix[rule.category]
  const severity = escalateSeverity(rule.severity ?? base.severity, options.context)
  const strategy = escalateStrategy(rule.strategy ?? base.strategy, severity, options.context)
  const maxRetries = rule.maxRetries ?? base.maxRetries
  const retryable = strategy === "abandon"
    ? false
    : rule.retryable ?? (retryingStrategies.has(strategy) && maxRetries > 0)
  return {
    category: rule.category,
    severity,
    strategy,
    retryable,
    maxRetries,
    backoff: rule.backoff ?? base.backoff,
    code: rule.code ?? (options.tag !== undefined ? toCode(options.tag) : `${rule.category.toUpperCase()}_ERROR`),
    tripsBreaker: rule.tripsBreaker ?? base.tripsBreaker,
    defect: false,
    retryAfter: rule.retryAfter === undefined ? Option.none() : Option.some(Duration.decode(rule.retryAfter))
  }
}

/**
 * The classifier: the decision matrix plus the tables that know the user's errors.
 *
 * @since 0.1.0
 * @category models
 */
export interface Classifier {
  readonly matrix: DecisionMatrix
  /** Classifies a failure (a value from the error channel). Unknown errors are system / critical. */
  readonly classify: (error: unknown, context?: ClassifyContext) => Classification
  /** Classifies a defect (a value from `Cause.die`): always system / critical, never retryable. */
  readonly classifyDefect: (defect: unknown, context?: ClassifyContext) => Classification
}

/**
 * The classifier service, replaceable through a Layer. When none is provided Bulwark uses
 * {@link defaultClassifier}.
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
}

const validateMatrix = (matrix: DecisionMatrix): void => {
  for (const category of Category.literals) {
    const r = matrix[category]
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

/**
 * Builds a classifier from a matrix and tables.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeClassifier = (options: ClassifierOptions = {}): Classifier => {
  const matrix = options.matrix ?? defaultMatrix
  if (options.matrix !== undefined) validateMatrix(matrix)
  const tables = options.tables ?? []
  const classify = (error: unknown, context?: ClassifyContext): Classification => {
    const tag = tagOf(error)
    let rule: RuleObject | undefined = undefined
    if (tag !== undefined && Predicate.isObject(error) && "_tag" in error) {
      for (const t of tables) {
        rule = t.rule(error as { readonly _tag: string })
        if (rule !== undefined) break
      }
    }
    if (rule === undefined) rule = builtinRule(error)
    if (rule === undefined) {
      return fromRule({ category: "system", code: tag !== undefined ? toCode(tag) : "UNKNOWN_ERROR" }, {
        matrix,
        ...(context !== undefined ? { context } : {})
      })
    }
    return fromRule(rule, { matrix, tag, ...(context !== undefined ? { context } : {}) })
  }
  const classifyDefect = (_defect: unknown, context?: ClassifyContext): Classification => ({
    ...fromRule({ category: "system", code: "DEFECT" }, { matrix, ...(context !== undefined ? { context } : {}) }),
    severity: "critical",
    strategy: "abandon",
    retryable: false,
    maxRetries: 0,
    defect: true
  })
  return { matrix, classify, classifyDefect }
}

/**
 * The classifier used when no Layer provides one: the default matrix and the built-in rules.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultClassifier: Classifier = makeClassifier()

/**
 * Provides a classifier with the given matrix and tables.
 *
 * @example
 * ```ts
 * import { Failure } from "@bulwark/core"
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

/**
 * Classifies a failure with the classifier in the context.
 *
 * @since 0.1.0
 * @category classification
 */
export const classify = (error: unknown, context?: ClassifyContext): Effect.Effect<Classification> =>
  Effect.map(currentClassifier, (classifier) => classifier.classify(error, context))

/**
 * Classifies a `Cause`: its first failure, or its first defect as system / critical. A cause
 * that holds only interruption is not a failure: `None`.
 *
 * @since 0.1.0
 * @category classification
 */
export const classifyCause = <E>(
  cause: Cause.Cause<E>,
  context?: ClassifyContext
): Effect.Effect<Option.Option<Classification>> =>
  Effect.map(currentClassifier, (classifier) => classifyCauseWith(classifier, cause, context))

/**
 * Classifies a `Cause` with the given classifier (see {@link classifyCause}).
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
 * The serialisable shape of a classified failure (seed 003's `ExecutionError`), encoded to JSON
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

const messageOf = (error: unknown): string => {
  if (Predicate.isObject(error)) {
    const message = (error as { readonly message?: unknown }).message
    if (typeof message === "string" && message.length > 0) return message
    const tag = (error as { readonly _tag?: unknown })._tag
    if (typeof tag === "string") return tag
  }
  if (typeof error === "string") return error
  return String(error)
}

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
