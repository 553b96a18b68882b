#!/usr/bin/env bash
# Packs every published package as a user would receive it, installs the tarballs into a fresh
# project outside the workspace (with effect at the peer version), and checks that the packages
# load with ESM import and CommonJS require (Node >= 20.19 requires ES modules), and that a
# TypeScript consumer compiles under moduleResolution nodenext, bundler and node10 (root entry).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mktemp -d)"
consumer="$(mktemp -d)"
trap 'rm -rf "$out" "$consumer"' EXIT

for package in core node redis; do
  (cd "$root/packages/$package" && pnpm pack --pack-destination "$out" >/dev/null)
done
echo "pack-check: packed $(ls "$out" | tr '\n' ' ')"

cd "$consumer"
npm init -y >/dev/null
npm pkg set type=module >/dev/null
npm install --no-audit --no-fund --loglevel=error "$out"/*.tgz effect@3.22.4 typescript@5.9.3 @types/node@20 >/dev/null
for dir in core node redis; do
  test -f "node_modules/@bulwark/$dir/dist/index.js" || { echo "pack-check: @bulwark/$dir ships no dist/"; exit 1; }
  test -f "node_modules/@bulwark/$dir/LICENSE" || { echo "pack-check: @bulwark/$dir ships no LICENSE"; exit 1; }
  test -f "node_modules/@bulwark/$dir/README.md" || { echo "pack-check: @bulwark/$dir ships no README"; exit 1; }
done

node --input-type=module -e '
import { Retry, CircuitBreaker } from "@bulwark/core"
import * as Backoff from "@bulwark/core/Backoff"
import { Main } from "@bulwark/node"
import { RedisBreakerStore } from "@bulwark/redis"
for (const [name, value] of Object.entries({ Retry, CircuitBreaker, Backoff, Main, RedisBreakerStore })) {
  if (typeof value !== "object" || value === null) throw new Error(`ESM import: ${name} is missing`)
}
console.log("pack-check: ESM import ok")
'
node -e '
const core = require("@bulwark/core")
const backoff = require("@bulwark/core/Backoff")
if (typeof core.Retry.retry !== "function" || typeof backoff.exponential !== "function") {
  throw new Error("CommonJS require: exports missing")
}
console.log("pack-check: CommonJS require ok")
' 2>&1 | grep -v ExperimentalWarning

cat > consumer.ts <<'TS'
import { Failure, Retry } from "@bulwark/core"
import * as Backoff from "@bulwark/core/Backoff"
import { Main } from "@bulwark/node"
import { RedisBreakerStore } from "@bulwark/redis"
import { Data, Effect } from "effect"

class Refused extends Data.TaggedError("Refused")<{ readonly host: string }> {}
const errors = Failure.table<Refused>({ Refused: "connection" })
declare const call: Effect.Effect<number, Refused>
export const guarded: Effect.Effect<number, unknown> = call.pipe(
  Retry.retry({ name: "quotes", schedule: Backoff.exponential({ base: "100 millis" }) }),
  Effect.provide(Failure.layerClassifier({ tables: [errors] }))
)
export const run: typeof Main.run = Main.run
export const store = RedisBreakerStore.layer
TS
cat > node10.ts <<'TS'
import { Retry } from "@bulwark/core"
export const retry: typeof Retry.retry = Retry.retry
TS
check() {
  npx tsc --noEmit --strict --skipLibCheck --types node "$@" && echo "pack-check: TypeScript $* ok"
}
check --module nodenext --moduleResolution nodenext consumer.ts
check --module esnext --moduleResolution bundler consumer.ts
check --module commonjs --moduleResolution node10 node10.ts
