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
    // the pool keeps its workers for the whole run: with fewer kept, tinypool ends idle workers
    // of a shared module cache mid-run ("Terminating worker thread")
    minWorkers: os.availableParallelism() + 1,
    // Each worker loads effect, vitest and our sources once and runs file after file, instead of
    // a fresh process per file (that loading was about 3 s of CPU per file, half the suite's
    // CPU). Safe because no test reads state another file leaves behind: fibers and FiberRefs
    // are per test, Effect's global metric registry is read only under labels that one file
    // uses (`"metered"`, `"metrics-test"`, ...), `vi.useFakeTimers` is undone after each test.
    // Projects still get their own workers: vitest runs one project after the other.
    isolate: false,
    // lets memory tests force a collection before they measure the heap
    poolOptions: { forks: { execArgv: ["--expose-gc"] } }
  }
})
