import { Cleanup, Failure } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import {
  Data,
  Effect,
  Either,
  Exit,
  Fiber,
  HashMap,
  Logger,
  Metric,
  MetricState,
  Option,
  Ref,
  Schema,
  TestClock
} from "effect"

class DockerError extends Data.TaggedError("DockerError")<{ readonly message: string }> {}

/** Runs `effect` with a logger that keeps each line's level, message and `bulwark.cleanup` annotation. */
const logged = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const lines: Array<{ level: string; message: unknown; cleanup: unknown }> = []
    const logger = Logger.make(({ annotations, logLevel, message }) => {
      lines.push({
        level: logLevel.label,
        message: Array.isArray(message) ? message[0] : message,
        cleanup: Option.getOrElse(HashMap.get(annotations, "bulwark.cleanup"), () => "(none)")
      })
    })
    yield* Effect.exit(effect).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
    return lines
  })

/** Failure values that cannot be turned into a string the usual way. */
const oddValues: ReadonlyArray<readonly [string, () => unknown]> = [
  ["a null-prototype object", () => Object.create(null)],
  ["a throwing message getter", () => ({
    get message(): string {
      throw new Error("message getter")
    }
  })],
  ["a throwing toString", () => ({
    toString(): string {
      throw new Error("toString")
    }
  })],
  ["a throwing _tag getter", () =>
    Object.defineProperty(Object.create(null), "_tag", {
      enumerable: true,
      get(): string {
        throw new Error("_tag getter")
      }
    })],
  ["a throwing message getter and toString", () => ({
    get message(): string {
      throw new Error("message getter")
    },
    toString(): string {
      throw new Error("toString")
    }
  })]
]

describe("Cleanup.run", () => {
  it.effect("runs every step even when some fail and reports all failures in one typed error", () =>
    Effect.gen(function*() {
      const ran = yield* Ref.make<Array<string>>([])
      const mark = (name: string) => Ref.update(ran, (xs) => [...xs, name])
      const error = yield* Cleanup.run("execution-42", [
        Cleanup.step(
          "stop container",
          Effect.zipRight(mark("stop"), Effect.fail(new DockerError({ message: "no such container" })))
        ),
        Cleanup.step("remove container", Effect.zipRight(mark("remove"), Effect.die(new Error("daemon crashed")))),
        Cleanup.step("remove temp files", mark("temp"))
      ]).pipe(Effect.flip)
      expect(yield* Ref.get(ran)).toEqual(["stop", "remove", "temp"])
      expect(error).toBeInstanceOf(Cleanup.CleanupError)
      expect(error.attempted).toBe(3)
      expect(error.failures).toEqual([
        { step: "stop container", reason: "failure", message: "no such container" },
        { step: "remove container", reason: "defect", message: "daemon crashed" }
      ])
      expect(error.message).toBe(
        "Cleanup \"execution-42\": 2 of 3 step(s) failed: stop container (failure: no such container); remove container (defect: daemon crashed)"
      )
    }))

  it.effect("a step that overruns its timeout is interrupted, counted as a timeout, and the next steps still run", () =>
    Effect.gen(function*() {
      const ran = yield* Ref.make<Array<string>>([])
      const fiber = yield* Cleanup.run("slow", [
        Cleanup.step("hang", Effect.never, { timeout: "2 seconds" }),
        Cleanup.step("after", Ref.update(ran, (xs) => [...xs, "after"]))
      ]).pipe(Effect.flip, Effect.fork)
      yield* TestClock.adjust("2 seconds")
      const error = yield* Fiber.join(fiber)
      expect(error.failures).toEqual([{ step: "hang", reason: "timeout", message: "did not finish within 2s" }])
      expect(yield* Ref.get(ran)).toEqual(["after"])
    }))

  it.effect("a timeout that is not a positive duration is rejected naming the field; a hand-built one is reported", () =>
    Effect.gen(function*() {
      for (const timeout of [-1, 0, Number.NaN, "-5 seconds"] as const) {
        expect(() => Cleanup.step("stop", Effect.void, { timeout })).toThrow(/timeout must be a duration > 0/)
        expect(() => Cleanup.acquireRelease(Effect.void, () => Effect.void, { releaseTimeout: timeout })).toThrow(
          /releaseTimeout must be a duration > 0/
        )
      }
      let ran = 0
      const error = yield* Effect.flip(
        Cleanup.run("by-hand", [{ name: "stop", run: Effect.sync(() => ran++), timeout: -1 }])
      )
      expect(ran).toBe(1)
      expect(error.failures).toEqual([{
        step: "stop",
        reason: "defect",
        message: "timeout must be a duration > 0, got -1"
      }])
    }))

  it.effect("interrupting the caller never skips a step", () =>
    Effect.gen(function*() {
      const ran = yield* Ref.make<Array<string>>([])
      const fiber = yield* Effect.fork(Cleanup.run("interrupted", [
        Cleanup.step("first", Effect.zipRight(Effect.sleep("1 second"), Ref.update(ran, (xs) => [...xs, "first"]))),
        Cleanup.step("second", Ref.update(ran, (xs) => [...xs, "second"]))
      ]))
      yield* Effect.yieldNow()
      const interrupter = yield* Effect.fork(Fiber.interrupt(fiber))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(interrupter)
      expect(yield* Ref.get(ran)).toEqual(["first", "second"])
    }))

  for (const [label, make] of oddValues) {
    it.effect(`a step failing or dying with ${label} is reported, and every other step still runs`, () =>
      Effect.gen(function*() {
        const ran: Array<string> = []
        const error = yield* Cleanup.run("odd", [
          Cleanup.step("fails", Effect.zipRight(Effect.sync(() => ran.push("fails")), Effect.fail(make()))),
          Cleanup.step("dies", Effect.zipRight(Effect.sync(() => ran.push("dies")), Effect.die(make()))),
          Cleanup.step("last", Effect.sync(() => ran.push("last")))
        ]).pipe(Effect.flip)
        expect(ran).toEqual(["fails", "dies", "last"])
        expect(error.failures.map((f) => [f.step, f.reason, typeof f.message])).toEqual([
          ["fails", "failure", "string"],
          ["dies", "defect", "string"]
        ])
        expect(error.message).toMatch(/2 of 3 step\(s\) failed/)
      }))
  }

  it.effect("counts attempts, successes and failures and records durations, per cleanup name", () =>
    Effect.gen(function*() {
      yield* Cleanup.run("metrics-test", [Cleanup.step("ok", Effect.void)])
      yield* Effect.exit(Cleanup.run("metrics-test", [Cleanup.step("bad", Effect.fail("x"))]))
      const tagged = <T extends Metric.Metric<any, any, any>>(m: T) => Metric.tagged(m, "cleanup", "metrics-test") as T
      const attempts = yield* Metric.value(tagged(Cleanup.metrics.attempts))
      const successes = yield* Metric.value(tagged(Cleanup.metrics.successes))
      const failures = yield* Metric.value(tagged(Cleanup.metrics.failures))
      const duration = yield* Metric.value(tagged(Cleanup.metrics.duration))
      expect([attempts.count, successes.count, failures.count, duration.count]).toEqual([2, 1, 1, 2])
    }))
})

describe("Cleanup: what it reports", () => {
  it("CleanupError: its tag, and its classification (a resource failure, major, abandoned, not retried)", () => {
    const error = new Cleanup.CleanupError({
      cleanup: "execution-42",
      attempted: 1,
      failures: [{ step: "stop", reason: "failure", message: "no such container" }]
    })
    expect(error._tag).toBe("CleanupError")
    expect(Failure.defaultClassifier.classify(error)).toMatchObject({
      category: "resource",
      code: "CLEANUP_FAILED",
      severity: "major",
      strategy: "abandon",
      retryable: false
    })
  })

  it("a failed step that does not match the schema is named CleanupStepFailure in the decoding error", () => {
    expect(String(Cleanup.StepFailure.ast)).toBe("CleanupStepFailure")
    const decoded = Schema.decodeUnknownEither(Cleanup.StepFailure)({ step: "stop", reason: "lost", message: "" })
    expect(Either.isLeft(decoded) && decoded.left.message).toMatch(/^CleanupStepFailure\n/)
  })

  it.effect("a hand-built step whose name is not a string is reported under its name as a string", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Cleanup.run("by-hand", [{ name: 42 as unknown as string, run: Effect.fail(new Error("disk full")) }])
      )
      expect(error.failures).toEqual([{ step: "42", reason: "failure", message: "disk full" }])
      expect(error.message).toBe("Cleanup \"by-hand\": 1 of 1 step(s) failed: 42 (failure: disk full)")
    }))

  it.effect("a step that interrupts itself is reported as a defect, \"interrupted\", and the next steps still run", () =>
    Effect.gen(function*() {
      const ran: Array<string> = []
      const error = yield* Effect.flip(Cleanup.run("self-interrupted", [
        Cleanup.step("gives up", Effect.interrupt),
        Cleanup.step("after", Effect.sync(() => ran.push("after")))
      ]))
      expect(ran).toEqual(["after"])
      expect(error.failures).toEqual([{ step: "gives up", reason: "defect", message: "interrupted" }])
    }))

  it.effect("the duration histogram records how long the cleanup took, in seconds", () =>
    Effect.gen(function*() {
      // the cleanup starts at 1 s on the clock and ends at 3 s
      yield* TestClock.adjust("1 second")
      const fiber = yield* Effect.fork(Cleanup.run("timed", [Cleanup.step("slow", Effect.sleep("2 seconds"))]))
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(fiber)
      const histogram = yield* Metric.value(Metric.tagged(Cleanup.metrics.duration, "cleanup", "timed"))
      expect([histogram.count, histogram.sum, histogram.min, histogram.max]).toEqual([1, 2, 2, 2])
    }))

  it.effect("the metrics are exported as bulwark_cleanup_*, the counters counting up, each with its description", () =>
    Effect.gen(function*() {
      yield* Cleanup.run("exported", [Cleanup.step("ok", Effect.void)])
      yield* Effect.exit(Cleanup.run("exported", [Cleanup.step("bad", Effect.fail("x"))]))
      const pairs = [...Metric.unsafeSnapshot()].filter((p) =>
        p.metricKey.tags.some((t) => t.key === "cleanup" && t.value === "exported")
      ).sort((a, b) => a.metricKey.name.localeCompare(b.metricKey.name))
      expect(pairs.map((p) => [p.metricKey.name, p.metricKey.description])).toEqual([
        ["bulwark_cleanup_attempts_total", Option.some("Cleanups attempted")],
        ["bulwark_cleanup_duration_seconds", Option.some("How long cleanups take")],
        ["bulwark_cleanup_failures_total", Option.some("Cleanups with at least one failed step")],
        ["bulwark_cleanup_successes_total", Option.some("Cleanups whose every step succeeded")]
      ])
      const counters = pairs.filter((p) => p.metricKey.name.endsWith("_total"))
      expect(counters.map((p) => p.metricState)).toEqual([
        MetricState.counter(2),
        MetricState.counter(1),
        MetricState.counter(1)
      ])
      for (const p of counters) expect(p.metricKey.keyType).toMatchObject({ incremental: true })
    }))

  it.effect("a cleanup with a failed step logs its error message at ERROR, annotated with bulwark.cleanup", () =>
    Effect.gen(function*() {
      const lines = yield* logged(Cleanup.run("logged", [Cleanup.step("stop", Effect.fail(new Error("gone")))]))
      expect(lines).toEqual([{
        level: "ERROR",
        message: "Cleanup \"logged\": 1 of 1 step(s) failed: stop (failure: gone)",
        cleanup: "logged"
      }])
    }))

  it.effect("acquireRelease without a name reports its failed release as the step \"release\" of the cleanup \"resource\"", () =>
    Effect.gen(function*() {
      const lines = yield* logged(
        Cleanup.acquireUseRelease(Effect.void, () => Effect.void, () => Effect.fail(new Error("cannot close")))
      )
      expect(lines).toEqual([{
        level: "ERROR",
        message: "Cleanup \"resource\": 1 of 1 step(s) failed: release (failure: cannot close)",
        cleanup: "resource"
      }])
    }))
})

describe("Cleanup.acquireRelease", () => {
  const outcomes = {
    success: Effect.succeed(1),
    failure: Effect.fail("boom"),
    defect: Effect.die("bug"),
    interruption: Effect.interrupt
  } as const

  for (const [outcome, use] of Object.entries(outcomes)) {
    it.effect(`releases exactly once on ${outcome}`, () =>
      Effect.gen(function*() {
        const released = yield* Ref.make(0)
        yield* Effect.exit(
          Cleanup.acquireUseRelease(Effect.succeed("conn"), () => use, () => Ref.update(released, (n) => n + 1))
        )
        expect(yield* Ref.get(released)).toBe(1)
      }))
  }

  for (const [label, make] of oddValues) {
    it.effect(`a release failing or dying with ${label} still returns the value`, () =>
      Effect.gen(function*() {
        expect(
          yield* Cleanup.acquireUseRelease(Effect.succeed("conn"), () =>
            Effect.succeed("used"), () =>
            Effect.fail(make()))
        ).toBe("used")
        expect(
          yield* Cleanup.acquireUseRelease(Effect.succeed("conn"), () =>
            Effect.succeed("used"), () => Effect.die(make()))
        ).toBe("used")
      }))
  }

  it.effect("a release that fails or hangs does not fail the scope; the hang is cut at the release timeout", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Effect.scoped(Effect.gen(function*() {
        yield* Cleanup.acquireRelease(Effect.void, () => Effect.fail("cannot close"), { name: "a" })
        yield* Cleanup.acquireRelease(Effect.void, () => Effect.never, { name: "b", releaseTimeout: "5 seconds" })
        return "used"
      })))
      yield* TestClock.adjust("5 seconds")
      expect(yield* Fiber.await(fiber)).toEqual(Exit.succeed("used"))
    }))
})

describe("Cleanup: a step with a timeout while the caller is being interrupted", () => {
  /** A cleanup of one slow step with a timeout, then a quick one; the outcome is kept in `outcome`. */
  const slowCleanup = (
    ran: Ref.Ref<Array<string>>,
    outcome: Ref.Ref<Either.Either<void, Cleanup.CleanupError> | undefined>,
    options: { readonly work?: Effect.Effect<void> } = {}
  ) =>
    Effect.uninterruptible(Effect.flatMap(
      Effect.either(Cleanup.run("shutdown", [
        Cleanup.step(
          "flush",
          Effect.zipRight(options.work ?? Effect.sleep("1 second"), Ref.update(ran, (xs) => [...xs, "flush"])),
          { timeout: "5 seconds" }
        ),
        Cleanup.step("close", Ref.update(ran, (xs) => [...xs, "close"]))
      ])),
      (either) => Ref.set(outcome, either)
    ))

  const setup = Effect.all([
    Ref.make<Array<string>>([]),
    Ref.make<Either.Either<void, Cleanup.CleanupError> | undefined>(undefined)
  ])

  it.effect("runs fully when the caller is interrupted while the step runs", () =>
    Effect.gen(function*() {
      const [ran, outcome] = yield* setup
      const fiber = yield* Effect.fork(slowCleanup(ran, outcome))
      yield* Effect.yieldNow()
      yield* Fiber.interruptFork(fiber)
      yield* Effect.yieldNow()
      yield* TestClock.adjust("1 second")
      yield* Fiber.await(fiber)
      expect(yield* Ref.get(ran)).toEqual(["flush", "close"])
      expect(yield* Ref.get(outcome)).toEqual(Either.right(undefined))
    }))

  it.effect("runs fully from a scope finalizer when a second interruption arrives during the cleanup", () =>
    Effect.gen(function*() {
      const [ran, outcome] = yield* setup
      const fiber = yield* Effect.fork(Effect.scoped(Effect.zipRight(
        Effect.addFinalizer(() => slowCleanup(ran, outcome)),
        Effect.never
      )))
      yield* Effect.yieldNow()
      yield* Fiber.interruptFork(fiber)
      yield* Effect.yieldNow()
      yield* Fiber.interruptFork(fiber)
      yield* Effect.yieldNow()
      yield* TestClock.adjust("1 second")
      expect(Exit.isInterrupted(yield* Fiber.await(fiber))).toBe(true)
      expect(yield* Ref.get(ran)).toEqual(["flush", "close"])
      expect(yield* Ref.get(outcome)).toEqual(Either.right(undefined))
    }))

  it.effect("runs fully from Effect.onInterrupt when a second interruption arrives during the cleanup", () =>
    Effect.gen(function*() {
      const [ran, outcome] = yield* setup
      const fiber = yield* Effect.fork(Effect.onInterrupt(Effect.never, () => slowCleanup(ran, outcome)))
      yield* Effect.yieldNow()
      yield* Fiber.interruptFork(fiber)
      yield* Effect.yieldNow()
      yield* Fiber.interruptFork(fiber)
      yield* Effect.yieldNow()
      yield* TestClock.adjust("1 second")
      yield* Fiber.await(fiber)
      expect(yield* Ref.get(ran)).toEqual(["flush", "close"])
      expect(yield* Ref.get(outcome)).toEqual(Either.right(undefined))
    }))

  it.effect("runs fully when the interruption is already pending as the cleanup starts", () =>
    Effect.gen(function*() {
      const [ran, outcome] = yield* setup
      const fiber = yield* Effect.fork(Effect.uninterruptible(Effect.zipRight(
        Effect.sleep("1 second"),
        slowCleanup(ran, outcome)
      )))
      yield* Effect.yieldNow()
      yield* Fiber.interruptFork(fiber)
      yield* Effect.yieldNow()
      yield* TestClock.adjust("1 second")
      yield* Effect.yieldNow()
      yield* TestClock.adjust("1 second")
      yield* Fiber.await(fiber)
      expect(yield* Ref.get(ran)).toEqual(["flush", "close"])
      expect(yield* Ref.get(outcome)).toEqual(Either.right(undefined))
    }))

  it.effect("a step that overruns is still cut off at its timeout and reported as a timeout", () =>
    Effect.gen(function*() {
      const [ran, outcome] = yield* setup
      const fiber = yield* Effect.fork(slowCleanup(ran, outcome, { work: Effect.never }))
      yield* Effect.yieldNow()
      yield* Fiber.interruptFork(fiber)
      yield* Effect.yieldNow()
      yield* TestClock.adjust("4 seconds")
      expect(yield* Ref.get(outcome)).toBeUndefined()
      yield* TestClock.adjust("1 second")
      yield* Fiber.await(fiber)
      expect(yield* Ref.get(ran)).toEqual(["close"])
      const error = Either.getLeft((yield* Ref.get(outcome))!)
      expect(Option.map(error, (e) => e.failures)).toEqual(
        Option.some([{ step: "flush", reason: "timeout", message: "did not finish within 5s" }])
      )
    }))

  it.effect("acquireRelease: a release with a timeout runs fully when a second interruption arrives", () =>
    Effect.gen(function*() {
      const released = yield* Ref.make(0)
      const fiber = yield* Effect.fork(Effect.scoped(Effect.zipRight(
        Cleanup.acquireRelease(
          Effect.void,
          () => Effect.zipRight(Effect.sleep("1 second"), Ref.update(released, (n) => n + 1)),
          { name: "conn", releaseTimeout: "5 seconds" }
        ),
        Effect.never
      )))
      yield* Effect.yieldNow()
      yield* Fiber.interruptFork(fiber)
      yield* Effect.yieldNow()
      yield* Fiber.interruptFork(fiber)
      yield* Effect.yieldNow()
      yield* TestClock.adjust("1 second")
      yield* Fiber.await(fiber)
      expect(yield* Ref.get(released)).toBe(1)
    }))
})
