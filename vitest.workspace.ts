import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.dirname(fileURLToPath(import.meta.url))

/**
 * One inline project per package with tests. Imported by `vitest.config.ts` as
 * `test.projects`; roots are absolute so `pnpm --filter <pkg> test` works too.
 */
export default [
  { extends: true, test: { name: "core", root: path.join(root, "packages/core") } },
  { extends: true, test: { name: "example-testing-kit", root: path.join(root, "examples/testing-kit") } },
  { extends: true, test: { name: "node", root: path.join(root, "packages/node") } },
  {
    extends: true,
    test: {
      name: "redis",
      root: path.join(root, "packages/redis"),
      // says once how to install redis-server when it is missing (fails under `pnpm test:redis`)
      globalSetup: [path.join(root, "packages/redis/test/globalSetup.ts")]
    }
  }
]
