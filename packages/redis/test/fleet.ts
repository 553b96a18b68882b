import { Effect } from "effect"
import type { Scope } from "effect"
import { spawn } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { bundleFixture } from "../../../test-support/bundleFixture.js"

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, "../../..")

/** An event a fleet member printed. */
export interface FleetEvent {
  readonly event: string
  readonly at: number
  readonly [key: string]: unknown
}

/** A child process running test/fixtures/<fixture>.ts. */
export interface Member {
  readonly events: Array<FleetEvent>
  readonly send: (line: string) => Effect.Effect<void>
  /** Waits for an event matching `p` after index `from`; fails after `within` ms. */
  readonly waitFor: (p: (e: FleetEvent) => boolean, within?: number, from?: number) => Effect.Effect<FleetEvent, Error>
}

/** Each fixture bundled once per test file: a member then starts without tsx's transform. */
const bundles = new Map<string, Promise<string>>()
const bundled = (fixture: string): Effect.Effect<string> =>
  Effect.promise(() => {
    let bundle = bundles.get(fixture)
    if (bundle === undefined) {
      bundle = bundleFixture(path.join(here, "fixtures", `${fixture}.ts`))
      bundles.set(fixture, bundle)
    }
    return bundle
  })

/** Spawns `node <bundled fixture>` directly (never through pnpm); killed with the scope. */
export const spawnMember = (
  fixture: string,
  args: ReadonlyArray<string>
): Effect.Effect<Member, Error, Scope.Scope> =>
  Effect.gen(function*() {
    const events: Array<FleetEvent> = []
    const program = yield* bundled(fixture)
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(process.execPath, [program, ...args], {
          cwd: root,
          stdio: ["pipe", "pipe", "inherit"]
        })
      ),
      (child) =>
        Effect.async<void>((resume) => {
          if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
          child.once("exit", () => resume(Effect.void))
          child.kill("SIGKILL")
        })
    )
    let buffer = ""
    child.stdout!.on("data", (chunk: Buffer) => {
      buffer += chunk.toString()
      let nl = buffer.indexOf("\n")
      while (nl >= 0) {
        const line = buffer.slice(0, nl)
        buffer = buffer.slice(nl + 1)
        try {
          events.push(JSON.parse(line))
        } catch {
          // not an event
        }
        nl = buffer.indexOf("\n")
      }
    })
    const waitFor = (p: (e: FleetEvent) => boolean, within = 20_000, from = 0) =>
      Effect.gen(function*() {
        const start = Date.now()
        while (Date.now() - start < within) {
          const found = events.slice(from).find(p)
          if (found !== undefined) return found
          yield* Effect.sleep("2 millis")
        }
        return yield* Effect.fail(new Error(`no matching event within ${within} ms: ${JSON.stringify(events)}`))
      })
    const member: Member = {
      events,
      send: (line) => Effect.sync(() => void child.stdin!.write(line + "\n")),
      waitFor
    }
    yield* waitFor((e) => e.event === "ready", 90_000)
    return member
  })

/** Three members of the `fleetMember` fixture on one Redis server (`socket`), with the lease given in ms. */
export const spawnFleet = (
  socket: string,
  leaseMillis: string
): Effect.Effect<ReadonlyArray<Member>, Error, Scope.Scope> =>
  Effect.all([0, 1, 2].map(() => spawnMember("fleetMember", [socket, leaseMillis, "1"])), {
    concurrency: "unbounded"
  })
