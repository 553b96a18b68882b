import { Effect } from "effect"
import type { Scope } from "effect"
import { spawn, spawnSync } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

/** What to do on a machine without Redis. */
export const INSTALL_HINT = "install it with `sudo apt-get install -y redis-server` or `brew install redis`"

/** The server binary: `redis-server` from PATH, or `BULWARK_REDIS_SERVER` when set. */
const binary = process.env["BULWARK_REDIS_SERVER"] ?? "redis-server"

/** Whether the server binary runs. */
export const hasRedisServer = (): boolean => spawnSync(binary, ["--version"], { stdio: "ignore" }).status === 0

/** A redis-server this test started, on its own Unix socket, without persistence. */
export interface RedisServer {
  /** The Unix socket path. */
  readonly socket: string
  /** `redis+unix`-style URL for ioredis: `{ path }` is simpler, this is for layerConfig tests. */
  readonly url: string
  /** Kills the server at once (SIGKILL): clients see the connection drop. */
  readonly kill: Effect.Effect<void>
  /** Starts it again on the same socket (empty: no persistence). */
  readonly restart: Effect.Effect<void>
}

const startProcess = (socket: string): Promise<ChildProcess> =>
  new Promise((resolve, reject) => {
    const child = spawn(
      binary,
      ["--port", "0", "--unixsocket", socket, "--unixsocketperm", "700", "--save", "", "--appendonly", "no"],
      { stdio: ["ignore", "pipe", "pipe"] }
    )
    let out = ""
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`redis-server did not become ready in 10s:\n${out}`))
    }, 10_000)
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString()
      if (out.includes("ready to accept connections")) {
        clearTimeout(timer)
        resolve(child)
      }
    })
    child.stderr!.on("data", (chunk: Buffer) => {
      out += chunk.toString()
    })
    child.on("exit", (code) => {
      clearTimeout(timer)
      reject(new Error(`redis-server exited with ${code}:\n${out}`))
    })
  })

const stopProcess = (child: ChildProcess, signal: NodeJS.Signals): Promise<void> =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.once("exit", () => resolve())
    child.kill(signal)
  })

/** Starts a redis-server for the scope; stops it (and removes its socket) when the scope closes. */
export const startRedisServer: Effect.Effect<RedisServer, never, Scope.Scope> = Effect.gen(function*() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bulwark-redis-"))
  const socket = path.join(dir, "redis.sock")
  let child: ChildProcess = yield* Effect.acquireRelease(
    Effect.promise(() => startProcess(socket)),
    (): Effect.Effect<void> =>
      Effect.promise(() => stopProcess(child, "SIGTERM")).pipe(
        Effect.ensuring(Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      )
  )
  return {
    socket,
    url: `redis+socket://${socket}`,
    kill: Effect.promise(() => stopProcess(child, "SIGKILL")),
    restart: Effect.promise(async () => {
      await stopProcess(child, "SIGKILL")
      fs.rmSync(socket, { force: true })
      child = await startProcess(socket)
    })
  }
})

/** Polls until `check` holds, for at most `within` ms (a liveness bound, not a timing assertion). */
export const eventually = (check: Effect.Effect<boolean>, within = 10_000): Effect.Effect<boolean> =>
  Effect.gen(function*() {
    const start = Date.now()
    while (Date.now() - start < within) {
      if (yield* check) return true
      yield* Effect.sleep("5 millis")
    }
    return yield* check
  })
