/** A real HTTP GET for the server tests: status, headers and the whole body. */
import { Effect } from "effect"

export interface Fetched {
  readonly status: number
  readonly contentType: string
  readonly headers: Headers
  readonly body: string
}

export const get = (url: string, init?: RequestInit): Effect.Effect<Fetched> =>
  Effect.promise(async (signal) => {
    const response = await fetch(url, { ...init, signal })
    return {
      status: response.status,
      contentType: response.headers.get("content-type") ?? "",
      headers: response.headers,
      body: await response.text()
    }
  })
