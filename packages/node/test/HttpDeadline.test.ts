import { Deadline } from "@bulwark/core"
import {
  HttpClient,
  HttpClientRequest,
  HttpRouter,
  HttpServer,
  HttpServerRequest,
  HttpServerResponse
} from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import * as HttpDeadline from "../src/HttpDeadline.js"

/** What the handler saw: the time left before its deadline, and the header as received. */
const Seen = Schema.Struct({ left: Schema.NullOr(Schema.Number), header: Schema.NullOr(Schema.String) })

const handler = (header: string) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const left = yield* Deadline.remainingMillis
    return yield* HttpServerResponse.json({
      left: left === Number.POSITIVE_INFINITY ? null : left,
      header: request.headers[header] ?? null
    })
  })

/** Serves the handler behind the server middleware on a real local HTTP server (port 0). */
const serve = (header: string, options: HttpDeadline.ServerOptions) =>
  HttpServer.serveEffect(
    HttpRouter.empty.pipe(HttpRouter.get("/", handler(header)), HttpDeadline.server(options))
  )

const fetchSeen = (client: HttpClient.HttpClient, request = HttpClientRequest.get("/")) =>
  client.execute(request).pipe(
    Effect.flatMap((response) => response.json),
    Effect.flatMap(Schema.decodeUnknown(Seen))
  )

describe("HttpDeadline", () => {
  it.scoped("the handler gets the caller's time left minus the network allowance, over a real HTTP server", () =>
    Effect.gen(function*() {
      yield* serve("bulwark-timeout-ms", { networkAllowanceMillis: 50 })
      const client = (yield* HttpClient.HttpClient).pipe(HttpDeadline.client())
      // TestClock stands still while the request travels, so the numbers are exact
      const seen = yield* fetchSeen(client).pipe(Deadline.within("2 seconds"))
      expect(seen).toEqual({ left: 1950, header: "2000" })
      // a nested, shorter deadline is the one sent
      const nested = yield* fetchSeen(client).pipe(Deadline.within("300 millis"), Deadline.within("2 seconds"))
      expect(nested).toEqual({ left: 250, header: "300" })
    }).pipe(Effect.provide(NodeHttpServer.layerTest)))

  it.scoped("without a deadline nothing is sent and the handler has none; a malformed header is ignored", () =>
    Effect.gen(function*() {
      yield* serve("bulwark-timeout-ms", {})
      const client = (yield* HttpClient.HttpClient).pipe(HttpDeadline.client())
      expect(yield* fetchSeen(client)).toEqual({ left: null, header: null })
      const malformed = HttpClientRequest.get("/").pipe(HttpClientRequest.setHeader("bulwark-timeout-ms", "soon"))
      expect(yield* fetchSeen(client, malformed)).toEqual({ left: null, header: "soon" })
    }).pipe(Effect.provide(NodeHttpServer.layerTest)))

  it.scoped("gRPC's grpc-timeout encoding, with a custom header name on the way", () =>
    Effect.gen(function*() {
      yield* serve("grpc-timeout", { encoding: "grpc", networkAllowanceMillis: 100 })
      const client = (yield* HttpClient.HttpClient).pipe(HttpDeadline.client({ encoding: "grpc" }))
      expect(yield* fetchSeen(client).pipe(Deadline.within("1500 millis"))).toEqual({ left: 1400, header: "1500m" })
    }).pipe(Effect.provide(NodeHttpServer.layerTest)))

  it.scoped("a custom header name", () =>
    Effect.gen(function*() {
      yield* serve("x-request-budget", { header: "X-Request-Budget" })
      const client = (yield* HttpClient.HttpClient).pipe(HttpDeadline.client({ header: "X-Request-Budget" }))
      expect(yield* fetchSeen(client).pipe(Deadline.within("5 seconds"))).toEqual({ left: 5000, header: "5000" })
    }).pipe(Effect.provide(NodeHttpServer.layerTest)))

  it("encodes and decodes grpc-timeout values", () => {
    expect(HttpDeadline.encodeGrpcTimeout(1500)).toBe("1500m")
    expect(HttpDeadline.encodeGrpcTimeout(1500.7)).toBe("1500m")
    expect(HttpDeadline.encodeGrpcTimeout(0.4)).toBe("400u")
    expect(HttpDeadline.encodeGrpcTimeout(200_000_000)).toBe("200000S")
    expect(HttpDeadline.encodeGrpcTimeout(1e12)).toBe("16666666M")
    expect(HttpDeadline.encodeGrpcTimeout(-5)).toBe("0m")
    expect(HttpDeadline.decodeGrpcTimeout("1500m")).toBe(1500)
    expect(HttpDeadline.decodeGrpcTimeout("2S")).toBe(2000)
    expect(HttpDeadline.decodeGrpcTimeout("1H")).toBe(3_600_000)
    expect(HttpDeadline.decodeGrpcTimeout("250u")).toBe(0.25)
    expect(HttpDeadline.decodeGrpcTimeout("123456789m")).toBeUndefined()
    expect(HttpDeadline.decodeGrpcTimeout("10x")).toBeUndefined()
  })

  it("grpc-timeout at the edges: a millisecond, the largest 8 digits, past every unit, nanoseconds, spaces", () => {
    expect(HttpDeadline.encodeGrpcTimeout(1)).toBe("1m")
    expect(HttpDeadline.encodeGrpcTimeout(99_999_999)).toBe("99999999m")
    expect(HttpDeadline.encodeGrpcTimeout(100_000_000)).toBe("100000S")
    expect(HttpDeadline.encodeGrpcTimeout(Number.POSITIVE_INFINITY)).toBe("99999999H")
    expect(HttpDeadline.decodeGrpcTimeout("5000n")).toBeCloseTo(0.005, 12)
    expect(HttpDeadline.decodeGrpcTimeout(" 5m ")).toBe(5)
    expect(HttpDeadline.decodeGrpcTimeout("5mx")).toBeUndefined()
    expect(HttpDeadline.decodeGrpcTimeout("x5m")).toBeUndefined()
  })

  it.scoped("a millis header with anything around the digits is ignored, even what Number reads", () =>
    Effect.gen(function*() {
      yield* serve("bulwark-timeout-ms", {})
      const client = (yield* HttpClient.HttpClient).pipe(HttpDeadline.client())
      // `Number` reads "1e3" as 1000 and "0x10" as 16: only plain digits are a time left
      for (const value of ["1500x", "x1500", "1e3", "0x10"]) {
        const request = HttpClientRequest.get("/").pipe(HttpClientRequest.setHeader("bulwark-timeout-ms", value))
        expect(yield* fetchSeen(client, request)).toEqual({ left: null, header: value })
      }
    }).pipe(Effect.provide(NodeHttpServer.layerTest)))

  it("options that break a rule throw, naming the field", () => {
    expect(() => HttpDeadline.client({ header: "bad header" })).toThrow(
      /HttpDeadline.client: header must be a valid HTTP header name/
    )
    expect(() => HttpDeadline.server({ networkAllowanceMillis: -1 })).toThrow(
      /networkAllowanceMillis must be a number >= 0, got -1/
    )
    expect(() => HttpDeadline.client({ encoding: "json" as HttpDeadline.Encoding })).toThrow(
      /encoding must be "millis" or "grpc"/
    )
    expect(() => HttpDeadline.server({ header: "bad header" })).toThrow(
      /^HttpDeadline.server: header must be a valid HTTP header name, got "bad header"$/
    )
    // the bounds themselves are allowed
    expect(() => HttpDeadline.client({ encoding: "millis" })).not.toThrow()
    expect(() => HttpDeadline.server({ encoding: "millis", networkAllowanceMillis: 0 })).not.toThrow()
  })
})
