/**
 * How big the long property, model and chaos runs are. `pnpm test` runs them at a size that
 * keeps the whole suite quick; `pnpm test:deep` (`BULWARK_DEEP=1`) runs them at full size. The
 * assertions are the same either way: only the number of samples, keys or programs changes.
 */
export const deep = process.env["BULWARK_DEEP"] === "1"

/** `fast` under `pnpm test`, `full` under `pnpm test:deep`. */
export const sized = (fast: number, full: number): number => (deep ? full : fast)
