/**
 * Typechecks every ```ts / ```typescript code block of README.md, docs/*.md and
 * packages/*\/README.md against the workspace's own `@bulwark/core` (its sources, through the
 * `source` export condition) and `effect`, with the repository's strict compiler options.
 *
 * Each block becomes its own module under build/docs-check/ (ignored by git and eslint), and
 * one TypeScript program checks them all. A failure is printed as `docs/retry.md:123: <message>`,
 * pointing at the line of the markdown file. Exits with 1 when any block does not compile.
 *
 * Run with `pnpm docs:check`. A block a reader must not compile has no place in the docs:
 * declare what a block uses (`declare const callApi: Effect.Effect<string, ApiError>`) instead.
 * The one exception is another library's code, shown for comparison: fence it as ```ts no-check.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import ts from "typescript"

const root = path.resolve(import.meta.dirname, "..")
const outDir = path.join(root, "build", "docs-check")

interface Block {
  /** The markdown file, relative to the repository root. */
  readonly source: string
  /** The 1-based line, in the markdown file, of the block's first line of code. */
  readonly firstLine: number
  readonly code: string
  /** The module the block is written to. */
  readonly file: string
}

const markdownFiles = (): Array<string> => {
  const files: Array<string> = []
  const add = (relative: string) => {
    if (fs.existsSync(path.join(root, relative))) files.push(relative)
  }
  add("README.md")
  const listMarkdown = (dir: string) =>
    fs.existsSync(path.join(root, dir))
      ? fs.readdirSync(path.join(root, dir)).filter((name) => name.endsWith(".md")).sort()
      : []
  for (const name of listMarkdown("docs")) add(`docs/${name}`)
  const packages = path.join(root, "packages")
  for (const name of fs.existsSync(packages) ? fs.readdirSync(packages).sort() : []) {
    add(`packages/${name}/README.md`)
  }
  return files
}

// the info string's first word is the language; a block marked `no-check` (```ts no-check) is
// shown, not compiled: another library's code, on the pages that compare Bulwark with it
const fence = /^(\s*)(`{3,}|~{3,})\s*([\w-]*)(.*)$/

const extract = (source: string): Array<Block> => {
  const lines = fs.readFileSync(path.join(root, source), "utf8").split("\n")
  const blocks: Array<Block> = []
  let index = 0
  while (index < lines.length) {
    const open = fence.exec(lines[index]!)
    if (open === null) {
      index++
      continue
    }
    const [, indent, marker, language, info] = open
    const start = index + 1
    let end = start
    const isClose = (line: string) => line.trim().startsWith(marker!) && /^[`~]+$/.test(line.trim())
    while (end < lines.length && !isClose(lines[end]!)) end++
    if ((language === "ts" || language === "typescript") && !/\bno-check\b/.test(info!)) {
      const code = lines.slice(start, end).map((line) => line.startsWith(indent!) ? line.slice(indent!.length) : line)
      const stem = source.replace(/\.md$/, "").replace(/[^\w]+/g, "_")
      blocks.push({
        source,
        firstLine: start + 1,
        code: code.join("\n") + "\n",
        file: path.join(outDir, `${stem}_L${start + 1}.ts`)
      })
    }
    index = end + 1
  }
  return blocks
}

const compilerOptions = (): ts.CompilerOptions => {
  const configPath = path.join(root, "tsconfig.base.json")
  const config = ts.readConfigFile(configPath, ts.sys.readFile)
  if (config.error) throw new Error(ts.flattenDiagnosticMessageText(config.error.messageText, "\n"))
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, root, undefined, configPath)
  return {
    ...parsed.options,
    // The repository's type rules stay (strict, exactOptionalPropertyTypes, verbatimModuleSyntax,
    // isolatedModules…). A snippet shows declarations for the reader to take, so unused names
    // are not an error here; nothing is emitted.
    noUnusedLocals: false,
    noUnusedParameters: false,
    composite: false,
    incremental: false,
    declaration: false,
    declarationMap: false,
    sourceMap: false,
    noEmit: true,
    // every block is a module of its own, even one without imports
    moduleDetection: ts.ModuleDetectionKind.Force,
    // resolve @bulwark/core to its TypeScript sources, as tests and examples do
    customConditions: ["source"]
  }
}

const main = (): number => {
  const started = Date.now()
  fs.rmSync(outDir, { recursive: true, force: true })
  fs.mkdirSync(outDir, { recursive: true })
  const blocks = markdownFiles().flatMap(extract)
  for (const block of blocks) fs.writeFileSync(block.file, block.code)
  const byFile = new Map(blocks.map((block) => [path.normalize(block.file), block]))

  const program = ts.createProgram(blocks.map((block) => block.file), compilerOptions())
  // Only the blocks are checked; @bulwark/core's own sources are checked by `pnpm typecheck`,
  // and the checker reads from them only what the blocks use.
  const diagnostics = [
    ...program.getOptionsDiagnostics(),
    ...program.getGlobalDiagnostics(),
    ...blocks.flatMap((block) => {
      const sourceFile = program.getSourceFile(block.file)!
      return [...program.getSyntacticDiagnostics(sourceFile), ...program.getSemanticDiagnostics(sourceFile)]
    })
  ]

  const failures: Array<string> = []
  for (const diagnostic of diagnostics) {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n  ")
    const code = `TS${diagnostic.code}`
    if (diagnostic.file === undefined || diagnostic.start === undefined) {
      failures.push(`${code}: ${message}`)
      continue
    }
    const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start)
    const block = byFile.get(path.normalize(diagnostic.file.fileName))
    if (block === undefined) {
      failures.push(`${path.relative(root, diagnostic.file.fileName)}:${line + 1}: ${code}: ${message}`)
    } else {
      failures.push(`${block.source}:${block.firstLine + line}: ${code}: ${message}`)
    }
  }

  const files = new Set(blocks.map((block) => block.source)).size
  const seconds = ((Date.now() - started) / 1000).toFixed(1)
  if (failures.length > 0) {
    for (const failure of failures) console.error(failure)
    console.error(
      `docs:check: ${failures.length} error(s) in the code blocks of ${files} markdown files ` +
        `(${blocks.length} blocks, ${seconds}s; modules in ${path.relative(root, outDir)})`
    )
    return 1
  }
  console.log(`docs:check: ${blocks.length} code blocks in ${files} markdown files typecheck (${seconds}s)`)
  return 0
}

process.exitCode = main()
