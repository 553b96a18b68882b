/**
 * Turns any failure value into text without ever throwing. Failures come from user code and can
 * be anything: `Object.create(null)`, an error whose `message` getter or `toString` throws, a
 * `_tag` getter that throws, a revoked proxy. Every place that turns a failure into a log line,
 * an `ExecutionError` message or a report goes through here, so one odd value can never turn a
 * typed failure into a defect or stop a run-all cleanup half way.
 */

const read = (u: object, key: string): unknown => {
  try {
    return (u as Record<string, unknown>)[key]
  } catch {
    return undefined
  }
}

/** A property of an object if reading it works and gives a string, else `undefined`. */
export const stringProperty = (u: unknown, key: string): string | undefined => {
  if ((typeof u !== "object" && typeof u !== "function") || u === null) return undefined
  const value = read(u, key)
  return typeof value === "string" ? value : undefined
}

const primitive = (u: unknown): string | undefined => {
  switch (typeof u) {
    case "string":
      return u
    case "number":
    case "boolean":
    case "bigint":
    case "undefined":
      return String(u)
    case "symbol":
      return u.description !== undefined ? `Symbol(${u.description})` : "Symbol()"
    default:
      return u === null ? "null" : undefined
  }
}

const fieldsOf = (u: object): string | undefined => {
  try {
    const parts: Array<string> = []
    for (const key of Object.keys(u)) {
      if (key === "_tag" || key === "message" || key === "stack" || key === "cause") continue
      const value = read(u, key)
      const text = primitive(value)
      if (text !== undefined) parts.push(`${key}: ${typeof value === "string" ? JSON.stringify(text) : text}`)
      else if (typeof value === "object" && value !== null) parts.push(`${key}: {…}`)
      if (parts.length >= 8) break
    }
    return parts.length > 0 ? parts.join(", ") : undefined
  } catch {
    return undefined
  }
}

/**
 * A one-line description of a failure value: its `message` when it has a non-empty one;
 * otherwise, for a tagged value, the tag followed by its fields (`BadRequest { reason: "empty" }`);
 * otherwise `String(u)`; and a fixed placeholder when even that throws.
 */
export const describe = (u: unknown): string => {
  const text = primitive(u)
  if (text !== undefined) return text
  const message = stringProperty(u, "message")
  if (message !== undefined && message.length > 0) return message
  const tag = stringProperty(u, "_tag")
  const fields = fieldsOf(u as object)
  if (tag !== undefined) return fields !== undefined ? `${tag} { ${fields} }` : tag
  try {
    const s = String(u)
    if (s !== "[object Object]") return s
  } catch {
    // fall through: a value that cannot be turned into a string
  }
  return fields !== undefined ? `{ ${fields} }` : "an object that cannot be described"
}

/** The `_tag` of a value, when reading it works and gives a string. Never throws. */
export const tagOf = (u: unknown): string | undefined => stringProperty(u, "_tag")
