/**
 * A long-running loop with two tiers of error handling.
 *
 * A background program polls a charger's meter forever. Its inner tier (`FiberSupervisor.loop`)
 * recovers the failures that are expected and transient — the meter's link drops, a read times
 * out — with a backoff `Schedule`, classified by a `Failure.table`, and carries on without a
 * restart. Anything else escapes to the outer tier: a defect (a bug: here, a reading the parser
 * does not understand) makes the supervisor escalate, and `Main.run` ends the process with a
 * FATAL banner and exit code 1, so that an orchestrator restarts it.
 *
 *   pnpm start                      # ten seconds of polling, transient failures recovered, exit 0
 *   pnpm start --duration 3         # the same, shorter
 *   pnpm start --crash-after 12     # the twelfth reading is garbage: FATAL banner, exit 1
 */
import { Backoff, Failure, FiberSupervisor } from "@bulwark/core"
import { Main } from "@bulwark/node"
import { Console, Context, Data, Effect, Layer } from "effect"

// -----------------------------------------------------------------------------
// command line
// -----------------------------------------------------------------------------

const flag = (name: string): string | undefined => {
  const at = process.argv.indexOf(`--${name}`)
  return at === -1 ? undefined : process.argv[at + 1]
}

const positive = (name: string, fallback: number): number => {
  const raw = flag(name)
  if (raw === undefined) return fallback
  const n = Number(raw)
  if (!(n > 0)) throw new RangeError(`--${name} must be a number > 0, got ${raw}`)
  return n
}

const durationSeconds = positive("duration", 10)
const crashAfter = flag("crash-after") === undefined ? undefined : positive("crash-after", 1)

// -----------------------------------------------------------------------------
// the meter: a dependency that fails now and then
// -----------------------------------------------------------------------------

/** The link to the meter dropped: worth retrying after a pause. (Plain data, not an `Error`: no stack to log.) */
class LinkDown extends Data.TaggedClass("LinkDown")<{ readonly meter: string }> {}

/** The meter did not answer in time: worth retrying. */
class ReadTimedOut extends Data.TaggedClass("ReadTimedOut")<{ readonly meter: string }> {}

type MeterError = LinkDown | ReadTimedOut

class Meter extends Context.Tag("Meter")<Meter, {
  /** One raw reading, as the meter sends it. */
  readonly read: Effect.Effect<string, MeterError>
}>() {}

/**
 * A scripted meter: its link drops on reads 4 and 5 (two in a row, so the backoff grows), a read
 * times out on read 9, and with `--crash-after n` read n returns garbage.
 */
const MeterLive = Layer.sync(Meter, () => {
  let reads = 0
  return {
    read: Effect.suspend((): Effect.Effect<string, MeterError> => {
      reads++
      if (reads === 4 || reads === 5) return Effect.fail(new LinkDown({ meter: "charger-7" }))
      if (reads === 9) return Effect.fail(new ReadTimedOut({ meter: "charger-7" }))
      if (reads === crashAfter) return Effect.succeed("\u0000\u0007garbage")
      return Effect.succeed(JSON.stringify({ kwh: 1000 + reads * 1.5 }))
    })
  }
})

/** The meter's errors, in the failure taxonomy: both are transient and retried with backoff. */
const meterErrors = Failure.table<MeterError>({
  LinkDown: { category: "connection", severity: "minor" },
  ReadTimedOut: { category: "timeout", severity: "minor" }
})

// -----------------------------------------------------------------------------
// the program
// -----------------------------------------------------------------------------

/** One step of the inner loop: read, parse, report. A parse error is a bug in this program: a defect. */
const pollOnce = Effect.gen(function*() {
  const meter = yield* Meter
  const raw = yield* meter.read
  // Effect.sync turns a throw into a defect: nothing typed, nothing to retry
  const reading = yield* Effect.sync(() => JSON.parse(raw) as { readonly kwh: number })
  yield* Console.log(`reading: ${reading.kwh.toFixed(1)} kWh`)
})

const poller = FiberSupervisor.loop(pollOnce, {
  classify: meterErrors,
  interval: "200 millis",
  // the inner tier's backoff: 100 ms, 200 ms, 400 ms … never more than 1 s
  schedule: Backoff.exponential({ base: "100 millis", cap: "1 second" })
})

const program = Effect.gen(function*() {
  yield* Console.log(
    `two-tier loop: polling a meter every 200 ms for ${durationSeconds} s; its link drops on reads 4-5 and ` +
      `a read times out on read 9 (recovered inside the loop)${
        crashAfter === undefined ? "" : `; read ${crashAfter} is garbage (a defect: fatal)`
      }`
  )
  yield* FiberSupervisor.spawn("meter-poller", poller)
  yield* Effect.sleep(`${durationSeconds} seconds`)
  const snapshot = yield* FiberSupervisor.snapshot
  for (const child of snapshot.children) {
    yield* Console.log(
      `summary: program "${child.name}" ${child.status}, ${child.errors} failure(s) recovered inside the loop, ` +
        `${child.restarts} restart(s)${child.lastError === undefined ? "" : `, last: ${child.lastError.code}`}`
    )
  }
}).pipe(
  FiberSupervisor.supervised,
  Effect.provide(FiberSupervisor.layer({ name: "two-tier-loop" })),
  Effect.provide(Layer.merge(MeterLive, Failure.layerClassifier({ tables: [meterErrors] })))
)

Main.run(program, { name: "two-tier-loop" })
