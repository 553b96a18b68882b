/**
 * How a breaker decides whether a failed call counts: the classification is made when the call
 * fails, by the classifier in the calling fiber's context; a predicate given to the breaker or to
 * the call decides instead when present. This file is typechecked (`tsc -b`): the `@ts-expect-error`
 * lines are type tests.
 */
import { CircuitBreaker, Failure } from "@bulwark/core"
import { describe, expect, expectTypeOf, it } from "@effect/vitest"
import { Cause, Data, Effect, Exit, Layer, Logger, LogLevel, Option } from "effect"

class BadInput extends Data.TaggedError("BadInput")<{}> {}
class HttpError extends Data.TaggedError("HttpError")<{ readonly status: number }> {}

const tables = [Failure.table<BadInput>({ BadInput: "validation" })]
const classifierLayer = Failure.layerClassifier({ tables })

/** Three validation errors through the breaker of the context, then its state. */
const threeValidationErrors = Effect.gen(function*() {
  const breaker = yield* CircuitBreaker.CircuitBreaker
  for (let i = 0; i < 3; i++) yield* Effect.exit(breaker.protect(Effect.fail(new BadInput())))
  return yield* breaker.state
})

const breakerLayer = CircuitBreaker.layer({ name: "svc", policy: CircuitBreaker.consecutive(3) })

describe("CircuitBreaker classification", () => {
  it.effect("Layer.mergeAll(breaker, classifier) around the calls: validation errors do not open it", () =>
    Effect.gen(function*() {
      const state = yield* threeValidationErrors.pipe(Effect.provide(Layer.mergeAll(breakerLayer, classifierLayer)))
      expect(state).toBe("Closed")
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.effect("Layer.provideMerge(breaker, classifier) around the calls: the same", () =>
    Effect.gen(function*() {
      const state = yield* threeValidationErrors.pipe(
        Effect.provide(breakerLayer.pipe(Layer.provideMerge(classifierLayer)))
      )
      expect(state).toBe("Closed")
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.effect("the classifier is read from the calling fiber's context, whichever breaker layer", () =>
    Effect.gen(function*() {
      // the classifier given around the program, the breaker built by a Layer.provide chain
      // that gives it no classifier: the calls see the program's classifier
      const state = yield* threeValidationErrors.pipe(
        Effect.provide(breakerLayer),
        Effect.provide(classifierLayer)
      )
      expect(state).toBe("Closed")
      // a classifier given only to the breaker's Layer is not around the calls: the default
      // classifier sees an unknown error, which counts
      const layerOnly = yield* threeValidationErrors.pipe(
        Effect.provide(breakerLayer.pipe(Layer.provide(classifierLayer)))
      )
      expect(layerOnly).toBe("Open")
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("one breaker, two callers with different classifiers: each call is classified by its own", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "svc", policy: CircuitBreaker.consecutive(1) })
      yield* Effect.exit(breaker.protect(Effect.fail(new BadInput()))).pipe(Effect.provide(classifierLayer))
      expect(yield* breaker.metrics).toMatchObject({ state: "Closed", ignored: 1, failures: 0 })
      yield* Effect.exit(breaker.protect(Effect.fail(new BadInput())))
      expect(yield* breaker.metrics).toMatchObject({ state: "Open", ignored: 1, failures: 1 })
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("a successful call never reads the classifier", () =>
    Effect.gen(function*() {
      let reads = 0
      const counting: Failure.Classifier = {
        ...Failure.defaultClassifier,
        classify: (error, context) => {
          reads++
          return Failure.defaultClassifier.classify(error, context)
        }
      }
      const breaker = yield* CircuitBreaker.make({ name: "svc", policy: CircuitBreaker.consecutive(2) })
      const withCounting = Effect.provideService(Failure.Classifier, counting)
      for (let i = 0; i < 5; i++) yield* withCounting(breaker.protect(Effect.succeed(i)))
      expect(reads).toBe(0)
      yield* Effect.exit(withCounting(breaker.protect(Effect.fail(new BadInput()))))
      expect(reads).toBe(1)
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("a per-call isFailure, typed against the effect's error, wins over the breaker's and the classification", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "http",
        policy: CircuitBreaker.consecutive(2),
        // the breaker's own predicate: every typed failure counts
        isFailure: () => true
      })
      const call = (status: number): Effect.Effect<string, HttpError> => Effect.fail(new HttpError({ status }))
      const serverErrors = {
        isFailure: (error: HttpError, classification: Failure.Classification) => {
          expectTypeOf(classification).toEqualTypeOf<Failure.Classification>()
          return error.status >= 500
        }
      }
      for (let i = 0; i < 5; i++) yield* Effect.exit(breaker.protect(call(404), serverErrors))
      expect(yield* breaker.metrics).toMatchObject({ state: "Closed", ignored: 5, failures: 0 })
      yield* Effect.exit(breaker.protect(call(503), serverErrors))
      // without a per-call predicate the breaker's own decides
      yield* Effect.exit(breaker.protect(call(404)))
      expect(yield* breaker.metrics).toMatchObject({ state: "Open", failures: 2 })

      // the parameter is inferred from the effect
      yield* Effect.exit(breaker.protect(call(500), {
        isFailure: (error) => {
          expectTypeOf(error).toEqualTypeOf<HttpError>()
          return error.status >= 500
        }
      }))
      // a predicate over another error type does not compile
      const byCode = (error: { readonly code: string }) => error.code === "x"
      // @ts-expect-error the predicate is checked against the effect's error
      breaker.protect(call(500), { isFailure: byCode })
      // the same through a Tag and the module-level protect
      class Http extends CircuitBreaker.Tag("http-tag")<Http>() {}
      const viaTag = Http.protect(call(500), { isFailure: (error) => error.status >= 500 })
      expectTypeOf(viaTag).toEqualTypeOf<Effect.Effect<string, HttpError | CircuitBreaker.CircuitOpenError, Http>>()
      // @ts-expect-error the predicate is checked against the effect's error
      Http.protect(call(500), { isFailure: (error: number) => error > 1 })
      const viaService = CircuitBreaker.protect(call(500), { isFailure: (error) => error.status >= 500 })
      expectTypeOf(viaService).toEqualTypeOf<
        Effect.Effect<string, HttpError | CircuitBreaker.CircuitOpenError, CircuitBreaker.CircuitBreaker>
      >()
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("protect passed straight to Effect.forEach ignores the index it is given", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "svc" })
      const results = yield* Effect.forEach(
        [Effect.succeed(1), Effect.succeed(2)],
        breaker.protect as unknown as (self: Effect.Effect<number>, index: number) => Effect.Effect<number>
      )
      expect(results).toEqual([1, 2])
    }))

  it.scoped("odd failure values never crash the breaker: the failure comes back unchanged and counts", () =>
    Effect.gen(function*() {
      const throwing = (key: string) =>
        Object.defineProperty({}, key, {
          enumerable: true,
          get() {
            throw new Error(`${key} getter`)
          }
        })
      const odd: ReadonlyArray<unknown> = [
        Object.create(null),
        { _tag: "constructor" },
        { _tag: "__proto__" },
        { _tag: "toString" },
        { _tag: "hasOwnProperty" },
        { code: "constructor" },
        { code: "__proto__" },
        throwing("_tag"),
        throwing("code"),
        throwing("message"),
        {
          toString() {
            throw new Error("toString")
          }
        },
        Object.assign(Object.create(null), { _tag: "valueOf", message: 42 }),
        Symbol("odd"),
        null,
        undefined
      ]
      for (const value of odd) {
        const breaker = yield* CircuitBreaker.make({ name: "odd", policy: CircuitBreaker.consecutive(1) })
        const exit = yield* Effect.exit(breaker.protect(Effect.fail(value)))
        if (!Exit.isFailure(exit)) return expect.unreachable("the call succeeded")
        expect(Cause.isDie(exit.cause)).toBe(false)
        expect(Option.getOrUndefined(Cause.failureOption(exit.cause))).toBe(value)
        const metrics = yield* breaker.metrics
        expect(metrics.failures + metrics.ignored).toBe(1)
      }
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))
})
