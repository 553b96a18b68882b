import { Health } from '../../src'
import { Effect } from "effect"

const program = Effect.gen(function*() {
  const health = yield* Health.Health
  yield* health.register("database", Effect.succeed({ status: "up" as const }), { kind: "readiness" })
  const report = yield* health.report
  return report.ready
}).pipe(Effect.scoped, Effect.provide(Health.layer()))
