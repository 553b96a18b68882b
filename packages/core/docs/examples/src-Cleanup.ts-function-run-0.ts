import { Cleanup } from '../../src'
import { Effect } from "effect"

declare const stopContainer: Effect.Effect<void, Error>
declare const removeContainer: Effect.Effect<void, Error>
declare const removeTempFiles: Effect.Effect<void, Error>

const cleanup = Cleanup.run("execution-42", [
  Cleanup.step("stop container", stopContainer, { timeout: "10 seconds" }),
  Cleanup.step("remove container", removeContainer),
  Cleanup.step("remove temp files", removeTempFiles)
])
