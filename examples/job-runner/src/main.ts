/**
 * A job runner that executes user code in isolated processes.
 *
 * Each job is a real child process (`node -e <script>`) started in a temporary directory of its
 * own. Jobs wait in a priority `Bulkhead` (two run at once; interactive jobs are admitted before
 * normal ones, normal before batch), each runs under a `Timeout` (the process is killed when it
 * overruns), and whatever happens — success, failure, timeout, interruption — a run-all
 * `Cleanup` kills what is left of the process, removes the temp directory and releases the job's
 * licence, every step attempted even when one fails. Each failed job prints one classified
 * `ExecutionError` as a JSON line (category, code, severity, strategy, retryable …). The
 * `ResourceMonitor` samples CPU, memory, heap, event-loop delay and the temp directory's disk
 * while the jobs run; the program prints its readings at the end.
 *
 *   pnpm start                       # the nine jobs, temp dirs under the system's temp directory
 *   pnpm start --quick               # the same jobs with shorter sleeps (for CI)
 *   pnpm start --tmp /some/dir       # where the temp dirs go (must exist)
 */
import { Bulkhead, Cleanup, Failure, Timeout } from "@bulwark/core"
import { Main, ResourceMonitor } from "@bulwark/node"
import { Console, Data, Duration, Effect, Layer, Logger, LogLevel, Schedule } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

// -----------------------------------------------------------------------------
// command line
// -----------------------------------------------------------------------------

const flag = (name: string): string | undefined => {
  const at = process.argv.indexOf(`--${name}`)
  return at === -1 ? undefined : process.argv[at + 1]
}

const quick = process.argv.includes("--quick")
/** The jobs' sleeps and the slow job's timeout, scaled (the others get a minute: a loaded machine starts node slowly). */
const ms = (millis: number): number => Math.round(quick ? millis / 2 : millis)
const tmpRoot = flag("tmp") ?? os.tmpdir()
if (!fs.existsSync(tmpRoot)) throw new RangeError(`--tmp must name an existing directory, got ${tmpRoot}`)
const tmpPrefix = path.join(tmpRoot, "bulwark-job-")

// -----------------------------------------------------------------------------
// jobs and their failures
// -----------------------------------------------------------------------------

const priorities = { batch: 0, normal: 1, interactive: 2 } as const
type Priority = keyof typeof priorities

interface Job {
  readonly id: string
  readonly priority: Priority
  /** The body of an async JavaScript function, run by `node -e` in the job's temp directory. */
  readonly script: string
  readonly timeoutMillis: number
  /** The licence server refuses the release (a cleanup step that fails). */
  readonly licenceStuck?: boolean
}

/** The job was refused before it ran: it is malformed. */
class InvalidJob extends Data.TaggedError("InvalidJob")<{ readonly job: string; readonly reason: string }> {
  override get message() {
    return `job ${this.job} is invalid: ${this.reason}`
  }
}
/** The job was refused before it ran: it reaches outside its sandbox. */
class SandboxViolation extends Data.TaggedError("SandboxViolation")<{ readonly job: string; readonly path: string }> {
  override get message() {
    return `job ${this.job} tried to read ${this.path}, outside its sandbox`
  }
}
/** The process could not be started. */
class SpawnFailed extends Data.TaggedError("SpawnFailed")<{ readonly job: string; readonly reason: string }> {
  override get message() {
    return `job ${this.job} could not start: ${this.reason}`
  }
}
/** The user's code exited with a non-zero code. */
class UserCodeFailed extends Data.TaggedError("UserCodeFailed")<{
  readonly job: string
  readonly exitCode: number
  readonly stderr: string
}> {
  override get message() {
    return `job ${this.job} exited with code ${this.exitCode}`
  }
}
/** The process was killed by a signal it did not ask for (the out-of-memory killer). */
class ProcessKilled extends Data.TaggedError("ProcessKilled")<{ readonly job: string; readonly signal: string }> {
  override get message() {
    return `job ${this.job} was killed by ${this.signal}`
  }
}

type JobError = InvalidJob | SandboxViolation | SpawnFailed | UserCodeFailed | ProcessKilled

/** The engine's error taxonomy (infrastructure, resource, timeout, user code, validation, security). */
const jobErrors = Failure.table<JobError>({
  InvalidJob: { category: "validation", code: "INVALID_JOB" },
  SandboxViolation: { category: "security", code: "SANDBOX_VIOLATION" },
  SpawnFailed: { category: "initialization", code: "SPAWN_FAILED" },
  UserCodeFailed: { category: "user_code", code: "USER_CODE_FAILED" },
  ProcessKilled: (e) => ({
    category: "resource",
    code: e.signal === "SIGKILL" ? "OUT_OF_MEMORY" : "PROCESS_KILLED",
    strategy: "backoff_retry",
    maxRetries: 1
  })
})

const sleep = (millis: number) => `await new Promise((r) => setTimeout(r, ${millis}));`

const jobs: ReadonlyArray<Job> = [
  {
    id: "index-rebuild",
    priority: "batch",
    script: `${sleep(ms(600))} require("fs").writeFileSync("index.db", "x".repeat(1e5)); console.log("indexed")`,
    timeoutMillis: 60_000
  },
  {
    id: "thumbnails",
    priority: "batch",
    script: `${sleep(ms(400))} require("fs").writeFileSync("thumb.png", "png"); console.log("thumbnails made")`,
    timeoutMillis: 60_000
  },
  { id: "slow-export", priority: "batch", script: `${sleep(60_000)}`, timeoutMillis: ms(1500) },
  { id: "crashy-script", priority: "normal", script: `throw new Error("boom in user code")`, timeoutMillis: 60_000 },
  { id: "memory-hog", priority: "normal", script: `process.kill(process.pid, "SIGKILL")`, timeoutMillis: 60_000 },
  { id: "preview", priority: "interactive", script: `console.log("preview ready")`, timeoutMillis: 60_000 },
  { id: "empty", priority: "normal", script: "  ", timeoutMillis: 60_000 },
  {
    id: "escape",
    priority: "interactive",
    script: `console.log(require("fs").readFileSync("/etc/shadow", "utf8"))`,
    timeoutMillis: 60_000
  },
  {
    id: "licensed-render",
    priority: "batch",
    script: `${sleep(ms(200))} console.log("rendered")`,
    timeoutMillis: 60_000,
    licenceStuck: true
  }
]

/** Checks a job before it takes a slot: malformed jobs and sandbox escapes never run. */
const validate = (job: Job): Effect.Effect<Job, InvalidJob | SandboxViolation> => {
  if (job.script.trim().length === 0) return Effect.fail(new InvalidJob({ job: job.id, reason: "empty script" }))
  const outside = job.script.match(/["'](\/(etc|root|proc)\/[^"']*)["']/)
  if (outside !== null) return Effect.fail(new SandboxViolation({ job: job.id, path: outside[1]! }))
  return Effect.succeed(job)
}

// -----------------------------------------------------------------------------
// running one job
// -----------------------------------------------------------------------------

const started = Date.now()
const clock = () => `${String(Date.now() - started).padStart(5)} ms`

interface Running {
  readonly pid: number | undefined
  readonly done: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
  readonly kill: () => void
  readonly stderr: () => string
}

/** Starts `node -e <script>` in `dir`. */
const start = (job: Job, dir: string): Effect.Effect<Running, SpawnFailed> =>
  Effect.try({
    try: () => {
      // the job's script runs as an async function; an error it throws ends the process with code 1
      const wrapped = `(async () => { ${job.script} })().catch((e) => { console.error(String(e)); process.exit(1) })`
      const child = spawn(process.execPath, ["-e", wrapped], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] })
      let stderr = ""
      child.stdout.on("data", (chunk) => process.stdout.write(`        ${job.id}: ${String(chunk).trim()}\n`))
      child.stderr.on("data", (chunk) => (stderr += String(chunk)))
      const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
        child.once("error", reject)
        child.once("close", (code, signal) => resolve({ code, signal }))
      })
      return {
        pid: child.pid,
        done,
        kill: () => {
          if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
        },
        stderr: () => stderr
      }
    },
    catch: (e) => new SpawnFailed({ job: job.id, reason: String(e) })
  })

/** Waits for the process; interrupted (by the timeout), it kills the process and waits for it to go. */
const awaitExit = (job: Job, running: Running): Effect.Effect<void, SpawnFailed | UserCodeFailed | ProcessKilled> =>
  Effect.tryPromise({
    try: () => running.done,
    catch: (e) => new SpawnFailed({ job: job.id, reason: String(e) })
  }).pipe(
    Effect.onInterrupt(() =>
      Effect.sync(running.kill).pipe(Effect.zipRight(Effect.promise(() => running.done.catch(() => undefined))))
    ),
    Effect.flatMap(({ code, signal }): Effect.Effect<void, UserCodeFailed | ProcessKilled> =>
      signal !== null
        ? Effect.fail(new ProcessKilled({ job: job.id, signal }))
        : code !== 0
        ? Effect.fail(
          new UserCodeFailed({
            job: job.id,
            exitCode: code ?? -1,
            stderr: running.stderr().trim().split("\n")[0] ?? ""
          })
        )
        : Effect.void
    )
  )

/** The process of each job that has started. */
const current = new Map<string, Running>()

/** A temp directory for the job, removed with everything else the job holds by a run-all cleanup. */
const sandbox = (job: Job) =>
  Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(`${tmpPrefix}${job.id}-`)),
    (dir) =>
      Cleanup.run(`job ${job.id}`, [
        Cleanup.step("kill the process", Effect.sync(() => current.get(job.id)?.kill())),
        Cleanup.step(
          "release the licence",
          job.licenceStuck === true
            ? Effect.fail(new Error("licence server unreachable"))
            : Effect.void
        ),
        Cleanup.step("remove the temp directory", Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      ]).pipe(
        Effect.zipRight(Console.log(`        ${job.id}: cleaned up (${path.basename(dir)} removed)`)),
        // every step was attempted: the temp directory is gone even though the licence is stuck
        Effect.catchAll((error) => Console.log(`        ${job.id}: cleanup incomplete: ${error.message}`))
      )
  )

const runJob = (bulkhead: Bulkhead.Bulkhead) => (job: Job) =>
  Effect.gen(function*() {
    yield* validate(job)
    yield* Effect.scoped(Effect.gen(function*() {
      const dir = yield* sandbox(job)
      const running = yield* start(job, dir)
      current.set(job.id, running)
      yield* Console.log(`${clock()}  start ${job.id.padEnd(15)} priority ${job.priority}, pid ${running.pid}`)
      yield* awaitExit(job, running).pipe(Timeout.timeout(Duration.millis(job.timeoutMillis), { name: job.id }))
      yield* Console.log(`${clock()}  done  ${job.id}`)
    })).pipe(bulkhead.withPriority(priorities[job.priority]))
  }).pipe(
    // one classified ExecutionError per failed job, as a JSON line
    Effect.catchAll((error) =>
      Effect.gen(function*() {
        const execution = yield* Failure.toExecutionError(error, {
          taskId: job.id,
          ...("stderr" in error && error.stderr.length > 0 ? { details: error.stderr } : {})
        })
        yield* Console.log(JSON.stringify(Failure.encodeExecutionError(execution)))
      })
    )
  )

// -----------------------------------------------------------------------------
// the program
// -----------------------------------------------------------------------------

const leftovers = () => fs.readdirSync(tmpRoot).filter((name) => name.startsWith("bulwark-job-"))

const program = Effect.gen(function*() {
  const monitor = yield* ResourceMonitor.ResourceMonitor
  const bulkhead = yield* Bulkhead.make({ name: "runners", maxConcurrent: 2, maxQueued: 16, priorities: 3 })
  const before = leftovers().length
  yield* Console.log(
    `job runner: ${jobs.length} jobs as child processes, 2 at a time, interactive before normal before batch; ` +
      `temp dirs under ${tmpRoot}\n`
  )
  // submitted in list order; the bulkhead admits by priority as slots free up
  yield* Effect.forEach(jobs, runJob(bulkhead), { concurrency: "unbounded", discard: true })

  yield* monitor.sampleNow
  yield* Console.log("\nresources (ResourceMonitor):")
  for (const r of yield* monitor.state) {
    yield* Console.log(`  ${r.resource.padEnd(10)} ${(r.ratio * 100).toFixed(1).padStart(5)}%  ${r.level}`)
  }
  const state = yield* bulkhead.state
  yield* Console.log(`bulkhead "runners": ${state.admitted} admitted, ${state.active} running, ${state.queued} waiting`)
  yield* Console.log(`temp dirs left: ${leftovers().length - before}`)
}).pipe(
  Effect.provide(
    ResourceMonitor.layer({ schedule: Schedule.spaced("500 millis") }).pipe(
      Layer.provide(ResourceMonitor.layerSamplerNode({ diskPath: tmpRoot }))
    )
  ),
  Effect.provide(Failure.layerClassifier({ tables: [jobErrors] })),
  Logger.withMinimumLogLevel(LogLevel.None)
)

// exit code 0 once every job has run, whatever each did: failed jobs are reported, not fatal
Main.run(program, { name: "job-runner" })
