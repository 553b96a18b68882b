/**
 * @since 0.1.0
 */
export * as AdaptiveLimit from "./AdaptiveLimit.js"

/**
 * @since 0.1.0
 */
export * as Alerts from "./Alerts.js"

/**
 * @since 0.1.0
 */
export * as Backoff from "./Backoff.js"

/**
 * @since 0.1.0
 */
export * as BreakerRegistry from "./BreakerRegistry.js"

/**
 * @since 0.1.0
 */
export * as BreakerStore from "./BreakerStore.js"

/**
 * @since 0.1.0
 */
export * as Bulkhead from "./Bulkhead.js"

/**
 * @since 0.1.0
 */
export * as Chaos from "./Chaos.js"

/**
 * @since 0.1.0
 */
export * as CircuitBreaker from "./CircuitBreaker.js"

/**
 * @since 0.1.0
 */
export * as Cleanup from "./Cleanup.js"

/**
 * @since 0.1.0
 */
export * as Deadline from "./Deadline.js"

/**
 * @since 0.1.0
 */
export * as Failure from "./Failure.js"

/**
 * @since 0.1.0
 */
export * as Fallback from "./Fallback.js"

/**
 * @since 0.1.0
 */
export * as FiberSupervisor from "./FiberSupervisor.js"

/**
 * @since 0.1.0
 */
export * as Health from "./Health.js"

/**
 * @since 0.1.0
 */
export * as Hedge from "./Hedge.js"

/**
 * @since 0.1.0
 */
export * as Policy from "./Policy.js"

/**
 * @since 0.1.0
 */
export * as Retry from "./Retry.js"

/**
 * @since 0.1.0
 */
export * as RetryBudget from "./RetryBudget.js"

/**
 * @since 0.1.0
 */
export * as Testing from "./Testing.js"

/**
 * @since 0.1.0
 */
export * as Timeout from "./Timeout.js"
