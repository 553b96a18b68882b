/**
 * @since 0.1.0
 */
export * as Alerts from "./Alerts.js"

/**
 * @since 0.1.0
 */
export * as Cleanup from "./Cleanup.js"

/**
 * @since 0.1.0
 */
export * as Failure from "./Failure.js"

/**
 * @since 0.1.0
 */
export * as FiberSupervisor from "./FiberSupervisor.js"

/**
 * @since 0.1.0
 */
export * as Health from "./Health.js"
