/**
 * Deadlines over HTTP. The client middleware sends the time left before the caller's
 * `Deadline` in a header; the server middleware reads it and sets the deadline for the
 * handler, minus an allowance for the network, so the whole call tree shares one budget.
 *
 * Two encodings: `"millis"` (a whole number of milliseconds, in `bulwark-timeout-ms` by
 * default) and `"grpc"` (gRPC's `grpc-timeout`: up to 8 digits and a unit, `H M S m u n`).
 *
 * @since 0.1.0
 */
import { Deadline } from "@bulwark/core"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"

/**
 * How the time left is written in the header.
 *
 * @since 0.1.0
 * @category models
 */
export type Encoding = "millis" | "grpc"

/**
 * Options shared by both middlewares.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** How the time left is written. Default: `"millis"`. */
  readonly encoding?: Encoding | undefined
  /**
   * The header's name. Default: `bulwark-timeout-ms` with `"millis"`, `grpc-timeout` with
   * `"grpc"`.
   */
  readonly header?: string | undefined
}

/**
 * Options of the server middleware.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerOptions extends Options {
  /**
   * Taken off the received time, for the time the answer spends on the way back (and the
   * request spent on the way in); >= 0 milliseconds. Default: `0`.
   */
  readonly networkAllowanceMillis?: number | undefined
}

const headerOf = (options: Options): string =>
  (options.header ?? (options.encoding === "grpc" ? "grpc-timeout" : "bulwark-timeout-ms")).toLowerCase()

const grpcUnits: ReadonlyArray<readonly [string, number]> = [
  ["n", 1e-6],
  ["u", 1e-3],
  ["m", 1],
  ["S", 1000],
  ["M", 60_000],
  ["H", 3_600_000]
]

/**
 * Writes a time left in gRPC's `grpc-timeout` form: at most 8 digits and a unit, in whole
 * milliseconds when it fits (`1500m`), microseconds below one millisecond, seconds, minutes or
 * hours above 8 digits. Rounded down, so the receiver never gets more time than there is.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeGrpcTimeout = (millis: number): string => {
  const left = Math.max(0, millis)
  if (left > 0 && left < 1) return `${Math.floor(left * 1000)}u`
  for (const [unit, size] of grpcUnits.slice(2)) {
    const value = Math.floor(left / size)
    if (value <= 99_999_999) return `${value}${unit}`
  }
  return "99999999H"
}

/**
 * Reads a `grpc-timeout` value into milliseconds; `undefined` when it is not one.
 *
 * @since 0.1.0
 * @category encoding
 */
export const decodeGrpcTimeout = (value: string): number | undefined => {
  const match = /^(\d{1,8})([HMSmun])$/.exec(value.trim())
  if (match === null) return undefined
  const size = grpcUnits.find(([unit]) => unit === match[2])![1]
  return Number(match[1]) * size
}

const encode = (encoding: Encoding, millis: number): string =>
  encoding === "grpc" ? encodeGrpcTimeout(millis) : String(Math.max(0, Math.floor(millis)))

const decode = (encoding: Encoding, value: string): number | undefined => {
  if (encoding === "grpc") return decodeGrpcTimeout(value)
  const trimmed = value.trim()
  return /^\d{1,15}$/.test(trimmed) ? Number(trimmed) : undefined
}

const check = (options: ServerOptions, where: string) => {
  if (options.encoding !== undefined && options.encoding !== "millis" && options.encoding !== "grpc") {
    throw new RangeError(`${where}: encoding must be "millis" or "grpc", got ${String(options.encoding)}`)
  }
  if (options.header !== undefined && !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(options.header)) {
    throw new RangeError(`${where}: header must be a valid HTTP header name, got ${JSON.stringify(options.header)}`)
  }
  const allowance = options.networkAllowanceMillis
  if (allowance !== undefined && !(allowance >= 0 && Number.isFinite(allowance))) {
    throw new RangeError(`${where}: networkAllowanceMillis must be a number >= 0, got ${String(allowance)}`)
  }
}

/**
 * A client middleware: every request sent while a `Deadline` is set carries the time left in
 * the header. Without a deadline nothing is added.
 *
 * @example
 * ```ts
 * import { HttpDeadline } from "@bulwark/node"
 * import { Deadline } from "@bulwark/core"
 * import { HttpClient } from "@effect/platform"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const client = (yield* HttpClient.HttpClient).pipe(HttpDeadline.client())
 *   return yield* client.get("http://inventory.internal/stock/42")
 * }).pipe(Deadline.within("2 seconds"))
 * ```
 *
 * @since 0.1.0
 * @category middleware
 */
export const client = (options: Options = {}) => {
  check(options, "HttpDeadline.client")
  const header = headerOf(options)
  const encoding = options.encoding ?? "millis"
  return <E, R>(self: HttpClient.HttpClient.With<E, R>): HttpClient.HttpClient.With<E, R> =>
    HttpClient.mapRequestEffect(
      self,
      (request) =>
        Effect.map(Deadline.remainingMillis, (left) =>
          left === Number.POSITIVE_INFINITY
            ? request
            : HttpClientRequest.setHeader(request, header, encode(encoding, left)))
    )
}

/**
 * A server middleware: a request that carries the header runs its handler with the deadline
 * it names, minus `networkAllowanceMillis` (an earlier deadline already set stays). A missing
 * or malformed header leaves the handler without one.
 *
 * @example
 * ```ts
 * import { HttpDeadline } from "@bulwark/node"
 * import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
 *
 * const app = HttpRouter.empty.pipe(
 *   HttpRouter.get("/stock/:id", HttpServerResponse.text("42")),
 *   HttpDeadline.server({ networkAllowanceMillis: 20 }),
 *   HttpServer.serve()
 * )
 * ```
 *
 * @since 0.1.0
 * @category middleware
 */
export const server = (options: ServerOptions = {}) => {
  check(options, "HttpDeadline.server")
  const header = headerOf(options)
  const encoding = options.encoding ?? "millis"
  const allowance = options.networkAllowanceMillis ?? 0
  return <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
      const value = request.headers[header]
      const millis = value === undefined ? undefined : decode(encoding, value)
      if (millis === undefined) return app
      return Effect.flatMap(Clock.currentTimeMillis, (now) => Deadline.at(app, now + millis - allowance))
    })
}
