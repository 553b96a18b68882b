/**
 * The one project `pnpm test:examples` runs: the examples' smoke tests, configured by
 * `vitest.examples.config.ts`. Named on the command line (`--workspace`) because vitest would
 * otherwise pick up `vitest.workspace.ts` beside that config and run the packages' projects.
 */
export default ["./vitest.examples.config.ts"]
