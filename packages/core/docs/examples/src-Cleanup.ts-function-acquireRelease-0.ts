import { Cleanup } from '../../src'
import { Effect } from "effect"

declare const connect: Effect.Effect<WebSocket, Error>

const socket = Cleanup.acquireRelease(connect, (ws) => Effect.sync(() => ws.close()), {
  name: "market feed",
  releaseTimeout: "5 seconds"
})
