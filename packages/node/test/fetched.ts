/** Real HTTP requests for the server tests. */
import { expect } from "@effect/vitest"
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

/**
 * Checks a problem-details answer whole: its status (the body's), its media type, that it is not
 * cached, and its body exactly.
 */
export const expectProblem = (
  response: Fetched,
  body: { readonly status: number; readonly [key: string]: unknown }
): void => {
  expect(response.status).toBe(body.status)
  expect(response.contentType).toBe("application/problem+json")
  expect(response.headers.get("cache-control")).toBe("no-store")
  expect(JSON.parse(response.body)).toEqual(body)
}

/** The headers of an event stream, and its first event; the stream is then cancelled. */
export const firstEvent = (
  url: string
): Effect.Effect<{ readonly status: number; readonly headers: Headers; readonly text: string }> =>
  Effect.promise(async (signal) => {
    const response = await fetch(url, { signal })
    const reader = response.body!.getReader()
    let text = ""
    while (!text.includes("\n\n")) {
      const { done, value } = await reader.read()
      if (done) break
      text += new TextDecoder().decode(value)
    }
    await reader.cancel()
    return { status: response.status, headers: response.headers, text }
  })
