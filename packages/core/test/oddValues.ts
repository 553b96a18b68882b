/** Failure values that are hard to classify or to turn into text. */
export const oddValues = (): Array<unknown> => {
  const throwing = (key: string) =>
    Object.defineProperty({}, key, {
      enumerable: true,
      get() {
        throw new Error(`${key} getter`)
      }
    })
  const values: Array<unknown> = [
    Object.create(null),
    Object.assign(Object.create(null), { _tag: "NoProto", field: 1 }),
    throwing("message"),
    throwing("_tag"),
    throwing("code"),
    {
      toString() {
        throw new Error("toString")
      }
    },
    Object.assign(Object.create(null), {
      [Symbol.toPrimitive]() {
        throw new Error("toPrimitive")
      }
    }),
    null,
    undefined,
    Symbol("odd"),
    42n
  ]
  for (const key of ["constructor", "__proto__", "toString", "hasOwnProperty", "valueOf"]) {
    values.push({ _tag: key }, { code: key }, { _tag: key, code: key, message: "" })
  }
  return values
}

/** The keys of `Object.prototype` that a naive lookup finds on every object. */
export const prototypeKeys = ["constructor", "__proto__", "toString", "hasOwnProperty", "valueOf"] as const
