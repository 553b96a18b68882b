/**
 * @since 0.1.0
 */
export * as Bulkhead from "./Bulkhead.js"
export * as Chaos from "./Chaos.js"
export * as Failure from "./Failure.js"
export * as Fallback from "./Fallback.js"
export * as Hedge from "./Hedge.js"
export * as Timeout from "./Timeout.js"
