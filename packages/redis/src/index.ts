/**
 * @since 0.1.0
 */
export * as RedisBreakerStore from "./RedisBreakerStore.js"

/**
 * @since 0.1.0
 */
export * as RedisClient from "./RedisClient.js"

/**
 * @since 0.1.0
 */
export * as RedisRetryBudget from "./RedisRetryBudget.js"

/**
 * @since 0.1.0
 */
export * as RateLimit from "./RateLimit.js"
