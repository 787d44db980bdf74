import * as Effect from "effect/Effect"

/**
 * The service with each named method's calls in a span `${prefix}.${name}` (with `Effect.fn`, named Service.method), so that
 * a failure's trace names the call it came from. Cold paths only: a span costs an allocation per call,
 * which a method called per message must not pay.
 */
export const spanned = <S extends object>(prefix: string, service: S, names: ReadonlyArray<keyof S & string>): S => {
  const out: Record<string, unknown> = { ...service } as Record<string, unknown>
  for (const name of names) {
    const method = service[name] as unknown as (...args: Array<unknown>) => Effect.Effect<unknown, unknown, unknown>
    out[name] = Effect.fn(`${prefix}.${name}`)(function*(...args: Array<unknown>) {
      return yield* method(...args)
    })
  }
  return out as S
}
