import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"

/**
 * The `Config` prefix of a dependency's options: its name in UPPER_SNAKE case, so that the
 * default provider reads `PAYMENTS_MAX_CONCURRENT` for the dependency "payments" (and
 * `CARD_API_…` for "card-api"). Every per-dependency Tag nests its config under this.
 */
export const prefixOf = (dependency: string): string => dependency.toUpperCase().replace(/[^A-Z0-9]+/g, "_")

/** Keys as the environment provider reads them: path segments joined with `_`. */
const envOptions: ConfigError.Options = { pathDelim: "_" }

/** The ways a provider may have joined a path in a message: `.` (maps), `_` (env), U+FEFF (JSON). */
const joins = [".", "\ufeff"]

// a path of one key (or none) joins to itself: the message comes back as it was
const renameKeys = (path: ReadonlyArray<string>, message: string): string => {
  const key = path.join("_")
  let out = message
  for (const join of joins) out = out.split(path.join(join)).join(key)
  return out
}

/**
 * A `ConfigError` that names every key as the environment provider reads it (`PAYMENTS_RATIO`,
 * not `PAYMENTS.RATIO`): the path stays structured, only its text and the messages change.
 */
export const envKeys = (error: ConfigError.ConfigError): ConfigError.ConfigError => {
  switch (error._op) {
    case "And":
      return ConfigError.And(envKeys(error.left), envKeys(error.right))
    case "Or":
      return ConfigError.Or(envKeys(error.left), envKeys(error.right))
    case "InvalidData":
      return ConfigError.InvalidData(error.path, renameKeys(error.path, error.message), envOptions)
    case "MissingData":
      return ConfigError.MissingData(error.path, renameKeys(error.path, error.message), envOptions)
    case "SourceUnavailable":
      return ConfigError.SourceUnavailable(
        error.path,
        renameKeys(error.path, error.message),
        error.cause,
        envOptions
      )
    case "Unsupported":
      return ConfigError.Unsupported(error.path, renameKeys(error.path, error.message), envOptions)
  }
}

/**
 * `Config.nested(config, prefix)` for a dependency's options, whose errors name the key a user
 * sets in the environment: read as an effect (as the per-dependency Tags' `layerConfig` does), a
 * bad `PAYMENTS_RATIO` fails with `Invalid data at PAYMENTS_RATIO`, where `Config.nested` alone
 * says `PAYMENTS.RATIO`. Composed into a bigger `Config`, it reads exactly as `Config.nested`.
 */
export const nested = <A>(prefix: string, config: Config.Config<A>): Config.Config<A> => {
  const base = Config.nested(config, prefix)
  // the same config (the provider reads its fields through the prototype), with one difference:
  // evaluated as an effect, its errors are renamed
  const renamed: Config.Config<A> = Object.create(base)
  Object.defineProperty(renamed, "commit", {
    value: () => Effect.mapError(Effect.configProviderWith((provider) => provider.load(base)), envKeys)
  })
  return renamed
}

/**
 * A value parsed from the text at `key`. The key is the outermost layer, so that a
 * `Config.validate` added by the caller still names it in its error.
 */
const keyed = <A>(key: string, parse: (text: string) => Either.Either<A, ConfigError.ConfigError>): Config.Config<A> =>
  Config.nested(Config.string().pipe(Config.mapOrFail(parse)), key)

const blank = (what: string) => ConfigError.InvalidData([], `Expected ${what} but received an empty value`)

/**
 * `Config.integer`, except that an empty or blank value is an error rather than `0` (JavaScript's
 * `Number("")` is 0, so `MAX_QUEUED=""` would otherwise read as zero).
 */
export const integer = (key: string): Config.Config<number> =>
  keyed(key, (text) => {
    if (text.trim() === "") return Either.left(blank("a whole number"))
    const n = Number(text)
    if (Number.isInteger(n) && !Number.isSafeInteger(n)) {
      // beyond 2^53 the text no longer names one number: "9007199254740993" would read as ...992
      return Either.left(
        ConfigError.InvalidData([], `Expected a whole number of at most 2^53 - 1 but received ${JSON.stringify(text)}`)
      )
    }
    return Number.isInteger(n)
      ? Either.right(n)
      : Either.left(ConfigError.InvalidData([], `Expected a whole number but received ${JSON.stringify(text)}`))
  })

/** `Config.number`, except that an empty or blank value is an error rather than `0`. */
export const number = (key: string): Config.Config<number> =>
  keyed(key, (text) => {
    if (text.trim() === "") return Either.left(blank("a number"))
    const n = Number(text)
    return Number.isNaN(n)
      ? Either.left(ConfigError.InvalidData([], `Expected a number but received ${JSON.stringify(text)}`))
      : Either.right(n)
  })
