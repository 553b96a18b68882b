/**
 * @since 0.1.0
 */
export * as HealthServer from "./HealthServer.js"

/**
 * @since 0.1.0
 */
export * as HttpDeadline from "./HttpDeadline.js"

/**
 * @since 0.1.0
 */
export * as Main from "./Main.js"

/**
 * @since 0.1.0
 */
export * as Status from "./Status.js"

/**
 * @since 0.1.0
 */
export * as ResourceMonitor from "./ResourceMonitor.js"

/**
 * @since 0.1.0
 */
export * as Telemetry from "./Telemetry.js"
