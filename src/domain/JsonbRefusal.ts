import { stringEnd } from "./RawJson.ts"

/**
 * Why Postgres `jsonb` would refuse a JSON text that `JSON.parse` accepted, or undefined when it would
 * not: a `\u0000` escape (jsonb values are text, which has no NUL), an escaped surrogate without its
 * pair, or a number outside what `numeric` holds (`1e999999`). Checked before a payload reaches a
 * group commit, where one refused payload would fail every message committed with it.
 *
 * Only for texts `JSON.parse` accepted: every backslash is then inside a string and starts an escape.
 * Cheap on what clients send: one native search for a backslash, then a walk over what lies outside
 * strings (a few braces, colons and commas for an `encrypted` object), jumping over strings natively.
 */
export const jsonbRefusal = (text: string): string | undefined =>
  (text.indexOf("\\") < 0 ? undefined : escapeRefusal(text)) ?? numberRefusal(text)

/** Larger exponents or longer numbers than `numeric` is sure to take (it refuses 1e-20000, 1e999999). */
const MAX_EXPONENT = 1000
const MAX_NUMBER_CHARS = 1000

const hex4 = (text: string, i: number): number => {
  let v = 0
  for (let j = i; j < i + 4; j++) {
    const c = text.charCodeAt(j)
    const d = c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x57
    if (!(d >= 0 && d < 16)) return -1
    v = v * 16 + d
  }
  return v
}

const isLowSurrogate = (v: number) => v >= 0xdc00 && v <= 0xdfff
const isHighSurrogate = (v: number) => v >= 0xd800 && v <= 0xdbff

const escapeRefusal = (text: string): string | undefined => {
  let i = text.indexOf("\\")
  while (i >= 0) {
    if (text.charCodeAt(i + 1) !== 0x75 /* u */) {
      i = text.indexOf("\\", i + 2)
      continue
    }
    const v = hex4(text, i + 2)
    if (v === 0) return "a \\u0000 escape (NUL)"
    if (isLowSurrogate(v)) return "an unpaired surrogate escape"
    if (isHighSurrogate(v)) {
      if (text.charCodeAt(i + 6) !== 0x5c || text.charCodeAt(i + 7) !== 0x75 || !isLowSurrogate(hex4(text, i + 8))) {
        return "an unpaired surrogate escape"
      }
      i += 6
    }
    i = text.indexOf("\\", i + 6)
  }
  return undefined
}

const isNumberChar = (c: number) =>
  (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2b || c === 0x2e || c === 0x65 || c === 0x45

const numberRefusal = (text: string): string | undefined => {
  let i = 0
  while (i < text.length) {
    const c = text.charCodeAt(i)
    if (c === 0x22) {
      i = stringEnd(text, i)
      continue
    }
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      const start = i
      let exponentAt = -1
      while (i < text.length && isNumberChar(text.charCodeAt(i))) {
        if ((text.charCodeAt(i) | 0x20) === 0x65) exponentAt = i
        i++
      }
      if (i - start > MAX_NUMBER_CHARS) return `a number of more than ${MAX_NUMBER_CHARS} characters`
      if (exponentAt >= 0 && Math.abs(Number(text.slice(exponentAt + 1, i))) > MAX_EXPONENT) {
        return `a number with an exponent beyond ±${MAX_EXPONENT}`
      }
      continue
    }
    i++
  }
  return undefined
}

/** Whether Postgres `text` stores `s` as it is: it holds no NUL, and the driver would replace half a surrogate pair. */
export const isStorableText = (s: string): boolean =>
  // ES2024, in Bun; the faster of the native checks (an 8-bit string is well formed at once).
  (s as unknown as { isWellFormed(): boolean }).isWellFormed() && !s.includes("\u0000")
