import { beforeAll, describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { bundleFixture } from "../../../test-support/bundleFixture.js"
import { childEnv } from "../../../test-support/childEnv.js"

const here = path.dirname(fileURLToPath(import.meta.url))
const repoRoot = path.resolve(here, "../../..")
let fixture = ""
beforeAll(async () => {
  fixture = await bundleFixture(path.join(here, "fixtures/cleanup.ts"))
}, 120_000)

interface Ended {
  readonly code: number | null
  readonly stderr: string
  readonly files: ReadonlyArray<string>
}

/** Runs the bundled fixture in a child `node` and sends it SIGTERM once it printed READY. */
const terminate = (mode: string): Promise<Ended> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `bulwark-cleanup-${mode}-`))
  const child = spawn(process.execPath, [fixture, mode, dir], {
    cwd: repoRoot,
    env: childEnv(),
    stdio: ["ignore", "pipe", "pipe"]
  })
  let stdout = ""
  let stderr = ""
  let sent = false
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString()
    if (!sent && stdout.includes("READY\n")) {
      sent = true
      child.kill("SIGTERM")
    }
  })
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString()
  })
  const killer = setTimeout(() => child.kill("SIGKILL"), 170_000)
  return new Promise((resolve) => {
    child.on("close", (code) => {
      clearTimeout(killer)
      resolve({ code, stderr, files: fs.readdirSync(dir).sort() })
    })
  })
}

describe.concurrent("Main.run: a cleanup step with a timeout during a SIGTERM shutdown", { timeout: 240_000 }, () => {
  it("runs fully from a finalizer of the supervised main program, exit 0", async () => {
    const ended = await terminate("main")
    expect(ended.files).toEqual(["main-closed", "main-flushed"])
    expect(ended.code).toBe(0)
    expect(ended.stderr).not.toContain("FATAL")
  })

  it("runs fully from a finalizer of a supervised program, exit 0", async () => {
    const ended = await terminate("worker")
    expect(ended.files).toEqual(["worker-closed", "worker-flushed"])
    expect(ended.code).toBe(0)
    expect(ended.stderr).not.toContain("FATAL")
  })
})
