/**
 * Draws the delays of every backoff family as SVG bar charts in docs/images/, straight from the
 * real Schedules (jitter families under a fixed seed, so the pictures are reproducible).
 *
 *   pnpm docs:charts
 */
import { Backoff } from "@bulwark/core"
import { Duration, Effect, Random } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")
const outDir = path.join(root, "docs", "images")

const RETRIES = 10
const SEED = 2026
const CAP = "30 seconds"

interface Family {
  readonly file: string
  readonly title: string
  readonly code: string
  readonly schedule: Backoff.Backoff
}

const families: ReadonlyArray<Family> = [
  {
    file: "backoff-from-delays",
    title: "fromDelays (the backoff_retry delay table)",
    code: "Backoff.fromDelays(Backoff.backoffRetryDelays)",
    schedule: Backoff.fromDelays(Backoff.backoffRetryDelays)
  },
  {
    file: "backoff-linear",
    title: "linear",
    code: `Backoff.linear({ base: "1 second", cap: "${CAP}" })`,
    schedule: Backoff.linear({ base: "1 second", cap: CAP })
  },
  {
    file: "backoff-exponential",
    title: "exponential",
    code: `Backoff.exponential({ base: "250 millis", cap: "${CAP}" })`,
    schedule: Backoff.exponential({ base: "250 millis", cap: CAP })
  },
  {
    file: "backoff-fibonacci",
    title: "fibonacci",
    code: `Backoff.fibonacci({ base: "500 millis", cap: "${CAP}" })`,
    schedule: Backoff.fibonacci({ base: "500 millis", cap: CAP })
  },
  {
    file: "backoff-decorrelated-jitter",
    title: "decorrelatedJitter (AWS)",
    code: `Backoff.decorrelatedJitter({ base: "250 millis", cap: "${CAP}" })`,
    schedule: Backoff.decorrelatedJitter({ base: "250 millis", cap: CAP })
  },
  {
    file: "backoff-full-jitter",
    title: "fullJitter (AWS)",
    code: `Backoff.fullJitter({ base: "250 millis", cap: "${CAP}" })`,
    schedule: Backoff.fullJitter({ base: "250 millis", cap: CAP })
  },
  {
    file: "backoff-equal-jitter",
    title: "equalJitter (AWS)",
    code: `Backoff.equalJitter({ base: "250 millis", cap: "${CAP}" })`,
    schedule: Backoff.equalJitter({ base: "250 millis", cap: CAP })
  }
]

const escape = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")

const label = (ms: number) => ms >= 1000 ? `${(ms / 1000).toFixed(ms % 1000 === 0 ? 0 : 1)}s` : `${Math.round(ms)}ms`

/** A round step (1, 2 or 5 times a power of ten) at least `raw`. */
const niceStep = (raw: number): number => {
  const power = Math.pow(10, Math.floor(Math.log10(raw)))
  return [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw)!
}

const chart = (family: Family, delays: ReadonlyArray<number>): string => {
  const width = 640
  const height = 300
  const left = 56
  const right = 16
  const top = 56
  const bottom = 40
  const plotW = width - left - right
  const plotH = height - top - bottom
  const step = niceStep(Math.max(...delays, 1) / 4)
  const max = step * Math.ceil(Math.max(...delays, 1) / step)
  const slot = plotW / delays.length
  const barW = slot * 0.7
  const y = (ms: number) => top + plotH - (ms / max) * plotH
  const ticks = Array.from({ length: Math.round(max / step) + 1 }, (_, i) => i * step)
  const parts: Array<string> = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${left}" y="22" font-size="16" font-weight="600" fill="#1f2937">${escape(family.title)}</text>`,
    `<text x="${left}" y="42" font-size="11" font-family="ui-monospace, monospace" fill="#4b5563">${
      escape(family.code)
    }</text>`
  ]
  for (const t of ticks) {
    parts.push(
      `<line x1="${left}" x2="${width - right}" y1="${y(t)}" y2="${y(t)}" stroke="#e5e7eb"/>`,
      `<text x="${left - 6}" y="${y(t) + 4}" font-size="11" text-anchor="end" fill="#6b7280">${label(t)}</text>`
    )
  }
  delays.forEach((ms, i) => {
    const x = left + i * slot + (slot - barW) / 2
    parts.push(
      `<rect x="${x.toFixed(1)}" y="${y(ms).toFixed(1)}" width="${barW.toFixed(1)}" height="${
        (top + plotH - y(ms)).toFixed(1)
      }" fill="#2563eb"><title>retry ${i + 1}: ${label(ms)}</title></rect>`,
      `<text x="${(x + barW / 2).toFixed(1)}" y="${
        (y(ms) - 4).toFixed(1)
      }" font-size="10" text-anchor="middle" fill="#1f2937">${label(ms)}</text>`,
      `<text x="${(x + barW / 2).toFixed(1)}" y="${
        height - bottom + 16
      }" font-size="11" text-anchor="middle" fill="#6b7280">${i + 1}</text>`
    )
  })
  parts.push(
    `<text x="${left + plotW / 2}" y="${
      height - 6
    }" font-size="11" text-anchor="middle" fill="#6b7280">retry number (seeded Random ${SEED} for jitter)</text>`,
    `</svg>`
  )
  return parts.join("\n") + "\n"
}

const program = Effect.gen(function*() {
  fs.mkdirSync(outDir, { recursive: true })
  for (const family of families) {
    const delays = yield* Backoff.delays(family.schedule, RETRIES).pipe(
      Effect.map((ds) => ds.map(Duration.toMillis)),
      Effect.withRandom(Random.make(SEED))
    )
    const file = path.join(outDir, `${family.file}.svg`)
    fs.writeFileSync(file, chart(family, delays))
    console.log(`${path.relative(root, file)}: ${delays.map(label).join(", ")}`)
  }
})

Effect.runPromise(program).catch((error) => {
  console.error(error)
  process.exit(1)
})
