import { hasRedisServer, INSTALL_HINT } from "./redisServer.js"

/**
 * Runs once for the redis project: without `redis-server` on PATH the tests that need it are
 * skipped with one line saying how to install it, unless `BULWARK_REQUIRE_REDIS=1`
 * (`pnpm test:redis`), where a missing server fails the run.
 */
export default function setup(): void {
  if (hasRedisServer()) return
  if (process.env["BULWARK_REQUIRE_REDIS"] === "1") {
    throw new Error(`redis-server is not on PATH: ${INSTALL_HINT}`)
  }
  process.stdout.write(`@bulwark/redis: redis-server not found, Redis tests skipped (${INSTALL_HINT})\n`)
}
