/**
 * The `Config` prefix of a dependency's options: its name in UPPER_SNAKE case, so that the
 * default provider reads `PAYMENTS_MAX_CONCURRENT` for the dependency "payments" (and
 * `CARD_API_…` for "card-api"). Every per-dependency Tag nests its config under this.
 */
export const prefixOf = (dependency: string): string => dependency.toUpperCase().replace(/[^A-Z0-9]+/g, "_")
