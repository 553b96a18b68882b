import { FiberSupervisor } from "@bulwark/core"
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { Cause, ConfigProvider, Duration, Effect, Exit, FiberId } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { bundleFixture } from "../../../test-support/bundleFixture.js"
import { childEnv } from "../../../test-support/childEnv.js"
import * as Main from "../src/Main.js"

const here = path.dirname(fileURLToPath(import.meta.url))
const repoRoot = path.resolve(here, "../../..")
// the fixture runs as one bundled file (built once below): a child then starts in a fraction of
// the time `node --import tsx` takes
let fixture = ""
beforeAll(async () => {
  fixture = await bundleFixture(path.join(here, "fixtures/main.ts"))
}, 120_000)

interface Ended {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  readonly files: ReadonlyArray<string>
}

/** The bundle copied to a file of that name, in a folder of its own whose package is an ES module. */
const copyOfFixture = (name: string): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bulwark-main-entry-"))
  fs.writeFileSync(path.join(dir, "package.json"), "{\"type\": \"module\"}\n")
  fs.copyFileSync(fixture, path.join(dir, name))
  return path.join(dir, name)
}

/**
 * Runs the bundled fixture in a child `node` (never through pnpm, which eats signals).
 * `signals` are sent once the program printed READY (its handlers are installed by then).
 */
const runFixture = (
  mode: string,
  options: {
    readonly signals?: ReadonlyArray<NodeJS.Signals>
    readonly env?: Record<string, string>
    /** A copy of the bundle to run instead, by its file name (Main's default name comes from it). */
    readonly entry?: string
  } = {}
): Promise<Ended> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `bulwark-main-${mode}-`))
  const entry = options.entry === undefined ? fixture : copyOfFixture(options.entry)
  const child = spawn(process.execPath, [entry, mode, dir], {
    cwd: repoRoot,
    env: childEnv(options.env),
    stdio: ["ignore", "pipe", "pipe"]
  })
  let stdout = ""
  let stderr = ""
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString()
    if (options.signals?.[0] !== undefined && stdout.includes("READY\n") && sent === 0) {
      sent = 1
      child.kill(options.signals[0])
    }
  })
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString()
    // a second signal once the first one was seen (signals sent together may be merged)
    if (options.signals?.[1] !== undefined && stderr.includes("received; shutting down") && sent === 1) {
      sent = 2
      child.kill(options.signals[1])
    }
  })
  let sent = 0
  const killer = setTimeout(() => child.kill("SIGKILL"), 170_000)
  return new Promise((resolve) => {
    child.on("close", (code, signal) => {
      clearTimeout(killer)
      resolve({ code, signal, stdout, stderr, files: fs.readdirSync(dir).sort() })
    })
  })
}

const banners = (text: string) => text.split("\n").filter((line) => line.startsWith("║ FATAL: \"fixture-")).length

// each test starts a Node process (2-3 s of CPU, far longer to wait for on a busy machine): they
// run concurrently, with room to wait
describe.concurrent("Main.run (child processes)", { timeout: 240_000 }, () => {
  it("exits 0 when main succeeds, after its finalizers, also with no entry file to name it after", async () => {
    const ended = await runFixture("ok", { env: { FIXTURE_NO_ENTRY: "1" } })
    expect(ended.code).toBe(0)
    // nothing to log: no signal stopped it
    expect(ended.stdout).toBe("")
    expect(ended.files).toEqual(["done"])
    expect(ended.stderr).not.toContain("FATAL")
  })

  it("prints one FATAL banner with the whole cause on a defect and exits 1", async () => {
    const ended = await runFixture("defect")
    expect(ended.code).toBe(1)
    expect(banners(ended.stderr)).toBe(1)
    expect(ended.stderr).toContain("FATAL: \"fixture-defect\" died with a defect")
    expect(ended.stderr).toContain("ledger invariant broken")
    expect(ended.files).toEqual(["cleanup"])
  })

  it("logs a typed failure with its ExecutionError JSON and exits 1, without a banner", async () => {
    const ended = await runFixture("typed")
    expect(ended.code).toBe(1)
    expect(ended.stderr).not.toContain("FATAL")
    const line = ended.stdout.split("\n").find((l) => l.trim().startsWith("{\"type\""))
    expect(line).toBeDefined()
    const json = JSON.parse(line!.trim())
    expect(json).toMatchObject({ code: "PAYMENT_DECLINED", message: "card declined", task_id: "fixture-typed" })
    expect(ended.stdout).toContain("Main \"fixture-typed\" failed: card declined")
    expect(ended.stdout).toContain("\n  bulwark.category: system\n  bulwark.main: fixture-typed\n")
    // reported once, by Main: the runtime's own report of the failure is off
    expect(ended.stdout.match(/ ERROR /g)).toEqual([" ERROR "])
    expect(ended.stderr).toBe("")
    expect(ended.files).toEqual(["cleanup"])
  })

  it("leaves no signal handler behind once main ended, while something else keeps the process alive", async () => {
    const ended = await runFixture("linger")
    expect(ended.code).toBe(0)
    expect(ended.stdout).toBe("SIGINT 0 SIGTERM 0\n")
  })

  it("does not treat interruption as fatal", async () => {
    const ended = await runFixture("interrupt")
    expect(ended.code).toBe(0)
    expect(ended.stderr).not.toContain("FATAL")
    expect(ended.files).toEqual(["cleanup"])
  })

  it("shuts down gracefully on SIGTERM: every finalizer runs, exit 0", async () => {
    const ended = await runFixture("serve", { signals: ["SIGTERM"] })
    expect(ended.code).toBe(0)
    expect(ended.files).toEqual(["first", "second"])
    expect(ended.stdout).toContain("stopped after SIGTERM")
  })

  it("shuts down gracefully on SIGINT: every finalizer runs, exit 0; disablePrettyLogger keeps Effect's logger", async () => {
    const ended = await runFixture("serve", { signals: ["SIGINT"], env: { FIXTURE_PLAIN_LOGGER: "1" } })
    expect(ended.code).toBe(0)
    expect(ended.files).toEqual(["first", "second"])
    expect(ended.stdout).toMatch(/ level=INFO fiber=#\d+ message="Main \\"fixture-serve\\": stopped after SIGINT"\n/)
  })

  it("exits with the grace-period code and names what still runs when shutdown hangs", async () => {
    const ended = await runFixture("hang", { signals: ["SIGTERM"] })
    expect(ended.code).toBe(70)
    expect(ended.stderr).toContain("shutdown did not finish within 300ms")
    // main in its finalizer's span, then its children, one level deeper each, down to depth 8
    const running = ended.stderr.slice(ended.stderr.indexOf("Still running:\n") + "Still running:\n".length)
    expect(running.replaceAll(/#\d+/g, "#N").split("\n")).toEqual([
      "  fiber #N Suspended in span \"close-database\"",
      ...Array.from({ length: 8 }, (_, i) => `${"  ".repeat(i + 2)}fiber #N Suspended`),
      ""
    ])
    // the hanging finalizer runs first (reverse order) and never lets the other run
    expect(ended.files).toEqual([])
  })

  it("still exits with the grace-period code when the hanging fibers do not answer the log's status request", async () => {
    // and the highest grace-period exit code there is
    const ended = await runFixture("hang-deaf", {
      signals: ["SIGTERM"],
      env: { FIXTURE_GRACE_PERIOD_EXIT_CODE: "125" }
    })
    expect(ended.code).toBe(125)
    expect(ended.stderr).toContain(
      "shutdown did not finish within 300ms; exiting with code 125. Still running:\n  (the fibers did not answer)\n"
    )
  })

  it("exits at once on a second signal during shutdown, with 128 + the signal's number", async () => {
    const ended = await runFixture("hang", {
      signals: ["SIGTERM", "SIGINT"],
      // the lowest grace-period exit code is a valid option too
      env: { FIXTURE_GRACE_PERIOD: "1 minute", FIXTURE_GRACE_PERIOD_EXIT_CODE: "2" }
    })
    expect(ended.code).toBe(128 + 2)
    expect(ended.stderr).toContain("second signal (SIGINT)")
    expect(ended.stderr).not.toContain("shutdown did not finish")
  })

  it("exits 1 with the banner when a supervisor escalates", async () => {
    const ended = await runFixture("escalation")
    expect(ended.code).toBe(1)
    expect(banners(ended.stderr)).toBe(1)
    expect(ended.stderr).toContain("FATAL: \"fixture-escalation\" stopped: a supervisor escalated")
    expect(ended.stderr).toContain("SupervisorEscalation")
    expect(ended.files).toEqual(["worker-stopped"])
  })

  it("exits 1 when an escalation reaches a wrapped main only as an interruption", async () => {
    const ended = await runFixture("escalation-wrapped")
    expect(ended.code).toBe(1)
    expect(banners(ended.stderr)).toBe(1)
    expect(ended.stderr).toContain("stopped: a supervisor escalated")
  })

  it("exits 1 after an escalation the program caught and survived, also one its own listener heard", async () => {
    const ended = await runFixture("escalation-caught")
    expect(ended.files).toEqual(["caught-escalation", "own-listener"])
    expect(ended.code).toBe(1)
    expect(banners(ended.stderr)).toBe(1)
  })

  it("exits 1 on SIGTERM after an escalation the program caught before the signal", async () => {
    const ended = await runFixture("escalation-caught-serve", { signals: ["SIGTERM"] })
    expect(ended.files).toEqual(["caught-escalation", "own-listener"])
    expect(ended.code).toBe(1)
    expect(banners(ended.stderr)).toBe(1)
    expect(ended.stderr).toContain("SIGTERM received; shutting down")
  })

  it("exits 1 after an escalation reported only to its listener, by a supervisor whose count it cannot see", async () => {
    const ended = await runFixture("escalation-listener-only")
    expect(ended.files).toEqual(["reported"])
    expect(ended.code).toBe(1)
    expect(banners(ended.stderr)).toBe(1)
    expect(ended.stderr).toContain("FATAL: \"fixture-escalation-listener-only\" stopped: a supervisor escalated")
  })

  it("reads its options from Config and names a bad key", async () => {
    const ended = await runFixture("config", { env: { GRACE_PERIOD: "soon" } })
    expect(ended.code).toBe(1)
    expect(ended.stdout).toMatch(/Invalid data at GRACE_PERIOD/)
    // no name in the options: the entry file's name (main.mjs) without its extension
    expect(ended.stdout).toContain("Main \"main\" failed:")
    expect(ended.files).toEqual([])
  })

  it("is named main when its entry file's name is only an extension", async () => {
    const ended = await runFixture("config", { entry: ".js", env: { GRACE_PERIOD_EXIT_CODE: "1" } })
    expect(ended.code).toBe(1)
    expect(ended.stdout).toContain("Main \"main\" failed: (Invalid data at GRACE_PERIOD_EXIT_CODE: ")
  })

  it("exits 0 on SIGTERM when the only escalation comes during the shutdown", async () => {
    const ended = await runFixture("escalation-during-shutdown", { signals: ["SIGTERM"] })
    expect(ended.files).toEqual(["reported"])
    expect(ended.code).toBe(0)
    expect(ended.stderr).not.toContain("FATAL")
  })

  it("is named after its entry file when no name is given: only the extension at the end goes", async () => {
    const ended = await runFixture("config", { entry: "orders.ts-export.js", env: { GRACE_PERIOD_EXIT_CODE: "1" } })
    expect(ended.code).toBe(1)
    // a ConfigError's message alone would leave out the key
    expect(ended.stdout).toContain("Main \"orders.ts-export\" failed: (Invalid data at GRACE_PERIOD_EXIT_CODE: ")
  })
})

describe("Main.outcome", () => {
  const escalation = new FiberSupervisor.SupervisorEscalation({
    supervisor: "app",
    program: "worker",
    reason: "defect",
    maxRestarts: 3,
    within: "5s",
    cause: Cause.die("bug")
  })

  it("finds an escalation anywhere in the cause, also in a finalizer's defect", () => {
    expect(Main.outcome(Exit.failCause(Cause.sequential(Cause.interrupt(1 as never), Cause.fail(escalation))), false))
      .toEqual({ _tag: "Fatal", reason: "escalation" })
    expect(Main.outcome(Exit.failCause(Cause.parallel(Cause.fail("x"), Cause.die(escalation))), false))
      .toEqual({ _tag: "Fatal", reason: "escalation" })
  })

  it("keeps interruption and success non-fatal unless a supervisor escalated meanwhile", () => {
    expect(Main.outcome(Exit.interrupt(1 as never), false)).toEqual({ _tag: "Interrupted" })
    expect(Main.outcome(Exit.interrupt(1 as never), true)).toEqual({ _tag: "Fatal", reason: "escalation" })
    expect(Main.outcome(Exit.succeed(1), false)).toEqual({ _tag: "Success" })
    expect(Main.outcome(Exit.succeed(1), true)).toEqual({ _tag: "Fatal", reason: "escalation" })
  })

  it("rejects bad literal options with the field named", () => {
    expect(() => Main.run(Exit.void, { gracePeriod: "-1 seconds" })).toThrow(/gracePeriod/)
    expect(() => Main.run(Exit.void, { gracePeriod: 0 })).toThrow("Main: gracePeriod must be a duration > 0, got 0")
    expect(() => Main.run(Exit.void, { gracePeriodExitCode: 1 })).toThrow(/gracePeriodExitCode/)
    expect(() => Main.run(Exit.void, { gracePeriodExitCode: 126 })).toThrow(
      "Main: gracePeriodExitCode must be an integer in [2, 125], got 126"
    )
    expect(() => Main.run(Exit.void, { name: "" })).toThrow("Main: name must not be empty")
  })

  it("an escalation from another copy of the core is known by its tag; other values are not escalations", () => {
    // a second copy of @bulwark/core in node_modules makes an escalation that is not an instance
    const copied = { _tag: "SupervisorEscalation", supervisor: "app" }
    expect(Main.outcome(Exit.fail(copied), false)).toEqual({ _tag: "Fatal", reason: "escalation" })
    expect(Main.outcome(Exit.die(copied), false)).toEqual({ _tag: "Fatal", reason: "escalation" })
    expect(Main.hasEscalation(Cause.fail({ _tag: "Other" }))).toBe(false)
    expect(Main.hasEscalation(Cause.fail(null))).toBe(false)
    expect(Main.hasEscalation(Cause.fail("SupervisorEscalation"))).toBe(false)
    expect(Main.hasEscalation(Cause.die(undefined))).toBe(false)
  })

  it("a defect is fatal; a typed failure is not", () => {
    expect(Main.outcome(Exit.die(new Error("bug")), false)).toEqual({ _tag: "Fatal", reason: "defect" })
    expect(Main.outcome(Exit.fail("declined"), false)).toEqual({ _tag: "Failure", error: "declined" })
  })

  it("the FATAL banner shows an error's own cause, and says where to look when main was only interrupted", () => {
    const nested = Main.fatalBanner(
      "billing",
      "defect",
      Cause.die(new Error("outer", { cause: new Error("inner root") }))
    )
    expect(nested).toContain("[cause]: Error: inner root")
    expect(Main.fatalBanner("billing", "escalation", Cause.interrupt(FiberId.none))).toContain(
      "\n(main was interrupted by the supervisor's escalation; its log above holds the program's cause)\n"
    )
  })

  it("the FATAL banner is framed by 72-wide bars and says why the process stops", () => {
    const lines = Main.fatalBanner("billing", "defect", Cause.die("bug")).split("\n")
    expect(lines.slice(1, 5)).toEqual([
      `╔${"═".repeat(72)}`,
      "║ FATAL: \"billing\" died with a defect",
      "║ exit code 1: the process stops so that it can be restarted",
      `╚${"═".repeat(72)}`
    ])
  })
})

describe("Main.config", () => {
  const read = (map: Record<string, string>) =>
    Effect.runSync(Effect.exit(Effect.withConfigProvider(
      Main.config,
      ConfigProvider.fromMap(new Map(Object.entries(map)), { pathDelim: "_" })
    )))

  it("reads NAME, GRACE_PERIOD and GRACE_PERIOD_EXIT_CODE, each optional", () => {
    expect(read({})).toEqual(Exit.succeed({ gracePeriod: Duration.seconds(25), gracePeriodExitCode: 124 }))
    expect(read({ NAME: "billing", GRACE_PERIOD: "10 seconds", GRACE_PERIOD_EXIT_CODE: "2" })).toEqual(
      Exit.succeed({ name: "billing", gracePeriod: Duration.seconds(10), gracePeriodExitCode: 2 })
    )
  })

  it("a bad value fails naming the key and the rule", () => {
    const failure = (map: Record<string, string>) => {
      const exit = read(map)
      return Exit.isFailure(exit) ? String(exit.cause) : "read"
    }
    expect(failure({ GRACE_PERIOD: "0 seconds" })).toMatch(/GRACE_PERIOD.*must be a duration > 0/s)
    for (const code of ["1", "126"]) {
      expect(failure({ GRACE_PERIOD_EXIT_CODE: code })).toMatch(
        /GRACE_PERIOD_EXIT_CODE.*must be an integer in \[2, 125\]/s
      )
    }
    expect(failure({ GRACE_PERIOD_EXIT_CODE: "125" })).toBe("read")
  })
})
