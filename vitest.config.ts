import * as os from "node:os"
import { defineConfig } from "vitest/config"
import projects from "./vitest.workspace.js"

export default defineConfig({
  ssr: { resolve: { conditions: ["source", "import", "default"] } },
  resolve: { conditions: ["source", "import", "default"] },
  test: {
    projects,
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    sequence: { concurrent: false },
    // vitest's default on a 2-core machine is ONE worker (cores - 1): every file would wait for
    // the one before it. Most of the suite's wall time is waiting, not computing (TestClock steps
    // pause on a real setTimeout, child processes, Redis, a browser), so one worker more than
    // cores keeps the cores busy. `--maxWorkers=N` still overrides it.
    maxWorkers: os.availableParallelism() + 1,
    minWorkers: os.availableParallelism() + 1,
    isolate: false,
    // lets memory tests force a collection before they measure the heap
    poolOptions: { forks: { execArgv: ["--expose-gc"] } }
  }
})
