/**
 * The environment for a child process a test starts: the test's own, plus, under mutation
 * testing, the mutant StrykerJS switched on in the test's process. Stryker's instrumented code
 * takes the active mutant from `globalThis.__stryker__`, which its vitest runner sets in the test's
 * process only, and, where that is unset, from `__STRYKER_ACTIVE_MUTANT__`: without it a child
 * running the instrumented sources (a fixture bundled from Stryker's sandbox) runs the original
 * code, and a mutant only the child reaches can never be killed. Read at each spawn: the runner
 * may switch the mutant on in a `beforeAll`. Outside mutation testing this is `process.env` and
 * `extra`.
 */
export const childEnv = (extra: Readonly<Record<string, string>> = {}): NodeJS.ProcessEnv => {
  const active = (globalThis as { readonly __stryker__?: { readonly activeMutant?: unknown } }).__stryker__
    ?.activeMutant
  return {
    ...process.env,
    ...(active === undefined || active === null ? {} : { __STRYKER_ACTIVE_MUTANT__: String(active) }),
    ...extra
  }
}
