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
    // lets memory tests force a collection before they measure the heap
    poolOptions: { forks: { execArgv: ["--expose-gc"] } }
  }
})
