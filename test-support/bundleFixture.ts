import * as esbuild from "esbuild"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

/**
 * Bundles a fixture program (and @bulwark's sources, through the `source` condition) into one
 * plain JavaScript file, once per test file. A child started with `node <bundle>` then pays no
 * TypeScript transform and no loader hooks: about a tenth of the CPU of `node --import tsx`, which
 * a test starting a dozen children pays a dozen times.
 */
export const bundleFixture = async (entry: string): Promise<string> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bulwark-fixture-"))
  const outfile = path.join(dir, `${path.basename(entry, ".ts")}.mjs`)
  await esbuild.build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    conditions: ["source"],
    logLevel: "error",
    // CommonJS dependencies bundled into an ES module still call require for Node's built-ins
    banner: {
      js:
        "import { createRequire as __bulwarkRequire } from \"node:module\"; const require = __bulwarkRequire(import.meta.url);"
    }
  })
  return outfile
}
