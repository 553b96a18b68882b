/**
 * Fail-fast background fibers: a service whose background work can never die silently.
 *
 * An ingest service runs three background fibers (a batch processor, a health check and a
 * metrics reporter) under a `FiberSupervisor`, and the whole program under `Main.run`:
 *
 * - a defect in any background fiber (an exception thrown by a bug, here a batch in an invalid
 *   format) escalates: the other fibers are interrupted, every resource is cleaned up, the FATAL
 *   banner names the service and shows the cause, and the process exits with code 1, so that the
 *   orchestrator restarts it;
 * - SIGTERM (or Ctrl-C) interrupts everything: each fiber's finalizer runs, the resources are
 *   cleaned up, and the process exits with code 0.
 *
 *     pnpm demo:fail-fast                           # runs until SIGTERM / Ctrl-C
 *     pnpm demo:fail-fast -- --crash-after 2        # the processor meets a bad batch after 2 s
 *     pnpm demo:fail-fast -- --crash-after 2 --unsupervised
 *                                                   # the same bug in a plain forked fiber: it dies
 *                                                   # silently and the service keeps running broken
 */
import { Cleanup, FiberSupervisor } from "@bulwark/core"
import { Main } from "@bulwark/node"
import { Console, Duration, Effect, Ref } from "effect"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"

// -----------------------------------------------------------------------------
// command line
// -----------------------------------------------------------------------------

const usage = "usage: fail-fast-service [--crash-after <seconds>] [--unsupervised]"

const parseArgs = (argv: ReadonlyArray<string>) => {
  let crashAfter: number | undefined
  let unsupervised = false
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]
    if (flag === "--") continue
    if (flag === "--crash-after") {
      const n = Number(argv[++i])
      if (!(Number.isFinite(n) && n >= 0)) fail("--crash-after must be a number of seconds >= 0")
      crashAfter = n
    } else if (flag === "--unsupervised") {
      unsupervised = true
    } else {
      fail(`unknown argument ${JSON.stringify(flag)}`)
    }
  }
  return { crashAfter, unsupervised }
}

function fail(message: string): never {
  process.stderr.write(`fail-fast-service: ${message}\n${usage}\n`)
  process.exit(2)
}

// -----------------------------------------------------------------------------
// the service
// -----------------------------------------------------------------------------

/** What a bug throws: the processor was not written for this batch's format. */
class InvalidDataFormat extends Error {
  override readonly name = "InvalidDataFormat"
}

interface Counters {
  readonly batches: Ref.Ref<number>
  readonly pending: Ref.Ref<number>
}

/** Prints a line when the fiber it wraps is interrupted: shows that shutdown reached it. */
const stoppedLine = (name: string) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.onInterrupt(self, () => Console.log(`${name}: interrupted, stopped cleanly`))

const processor = (counters: Counters, crashAt: number | undefined) =>
  Effect.gen(function*() {
    const batch = yield* Ref.updateAndGet(counters.batches, (n) => n + 1)
    if (crashAt !== undefined && Date.now() >= crashAt) {
      // a bug, not an expected failure: the code throws, and the fiber dies with a defect
      yield* Effect.sync(() => {
        throw new InvalidDataFormat(`batch #${batch}: field "price" is not a number`)
      })
    }
    yield* Ref.update(counters.pending, (n) => n + 25)
    yield* Effect.sleep("200 millis")
  }).pipe(Effect.forever, stoppedLine("batch-processor"))

const healthCheck = Effect.sleep("500 millis").pipe(Effect.forever, stoppedLine("health-check"))

const reporter = (counters: Counters) =>
  Effect.gen(function*() {
    let seen = 0
    while (true) {
      yield* Effect.sleep("1 second")
      const batches = yield* Ref.get(counters.batches)
      yield* Console.log(`metrics: ${batches - seen} batches in the last second (${batches} in all)`)
      seen = batches
    }
  }).pipe(stoppedLine("metrics-reporter"))

/**
 * The resources the service holds, released in reverse order on every way out (SIGTERM, a
 * defect, the end): a spool directory on disk and the pending records flushed into it. Every
 * step of the shutdown runs even if one fails (`Cleanup.run`).
 */
const resources = (counters: Counters) =>
  Effect.gen(function*() {
    const spool = yield* Cleanup.acquireRelease(
      Effect.tap(
        Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), "fail-fast-spool-"))),
        (dir) => Console.log(`spool: created ${dir}`)
      ),
      (dir) =>
        Effect.zipRight(
          Effect.promise(() => Fs.rm(dir, { recursive: true, force: true })),
          Console.log(`cleanup: removed the spool directory ${dir}`)
        ),
      { name: "spool", releaseTimeout: "2 seconds" }
    )
    yield* Effect.addFinalizer(() =>
      Cleanup.run("flush", [
        Cleanup.step(
          "flush pending records",
          Effect.gen(function*() {
            const pending = yield* Ref.getAndSet(counters.pending, 0)
            yield* Effect.promise(() => Fs.writeFile(Path.join(spool, "pending.jsonl"), `${pending}\n`))
            yield* Console.log(`cleanup: flushed ${pending} pending records to the spool`)
          })
        )
      ]).pipe(Effect.catchAll((error) => Console.log(`cleanup: ${error.message}`)))
    )
    return spool
  })

const program = (crashAfter: number | undefined, unsupervised: boolean) =>
  Effect.gen(function*() {
    const counters: Counters = { batches: yield* Ref.make(0), pending: yield* Ref.make(0) }
    yield* resources(counters)
    const crashAt = crashAfter === undefined ? undefined : Date.now() + crashAfter * 1000
    const fibers = [
      ["batch-processor", processor(counters, crashAt)],
      ["health-check", healthCheck],
      ["metrics-reporter", reporter(counters)]
    ] as const
    if (unsupervised) {
      // the anti-pattern, for contrast: a plain forked fiber that dies takes nobody with it
      for (const [, fiber] of fibers) yield* Effect.forkScoped(fiber)
    } else {
      const supervisor = yield* FiberSupervisor.FiberSupervisor
      for (const [name, fiber] of fibers) yield* supervisor.spawn(name, fiber)
    }
    yield* Console.log(
      `fail-fast-service: started ${fibers.length} ${unsupervised ? "plain forked (unsupervised)" : "supervised"} ` +
        `background fibers; ${
          crashAfter === undefined
            ? "running until SIGTERM / Ctrl-C"
            : `the batch processor meets a bad batch after ${Duration.format(Duration.seconds(crashAfter))}`
        }`
    )
    return yield* Effect.never
  }).pipe(Effect.scoped)

const { crashAfter, unsupervised } = parseArgs(process.argv.slice(2))

Main.run(
  program(crashAfter, unsupervised).pipe(
    FiberSupervisor.supervised,
    // restarting the processor would meet the same bad batch again: a defect stops the service
    Effect.provide(FiberSupervisor.layer({ name: "ingest", escalateOnDefect: true }))
  ),
  { name: "fail-fast-service", gracePeriod: "10 seconds" }
)
