/**
 * @since 0.1.0
 */
export * as BreakerRegistry from "./BreakerRegistry.js"
export * as BreakerStore from "./BreakerStore.js"
export * as CircuitBreaker from "./CircuitBreaker.js"
export * as Failure from "./Failure.js"
