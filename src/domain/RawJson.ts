/**
 * The source text of a member of a JSON document, found without building it again: the relay stores
 * and forwards a message's `encrypted` payload as the sender wrote it, rather than re-serialising what
 * it parsed. Only for texts `JSON.parse` has accepted (no validation here).
 */

const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09

const skipSpace = (text: string, i: number): number => {
  while (i < text.length && isSpace(text.charCodeAt(i))) i++
  return i
}

/** End (exclusive) of the string starting at `i` (its opening quote); `indexOf` crosses long ciphertexts fast. */
export const stringEnd = (text: string, i: number): number => {
  let from = i + 1
  while (true) {
    const quote = text.indexOf('"', from)
    if (quote < 0) return text.length
    let backslashes = 0
    while (text.charCodeAt(quote - 1 - backslashes) === 0x5c) backslashes++
    if (backslashes % 2 === 0) return quote + 1
    from = quote + 1
  }
}

/** End (exclusive) of the value starting at `i`. */
const valueEnd = (text: string, i: number): number => {
  const c = text.charCodeAt(i)
  if (c === 0x22) return stringEnd(text, i)
  if (c === 0x7b || c === 0x5b) {
    let depth = 0
    for (let j = i; j < text.length; j++) {
      const d = text.charCodeAt(j)
      if (d === 0x22) j = stringEnd(text, j) - 1
      else if (d === 0x7b || d === 0x5b) depth++
      else if (d === 0x7d || d === 0x5d) {
        if (--depth === 0) return j + 1
      }
    }
    return text.length
  }
  // A number, true, false or null.
  let j = i
  while (j < text.length) {
    const d = text.charCodeAt(j)
    if (d === 0x2c || d === 0x7d || d === 0x5d || isSpace(d)) break
    j++
  }
  return j
}

/** The span of member `key` of the object starting at `i`; the last one when repeated, as `JSON.parse`. */
const memberSpan = (text: string, i: number, key: string): readonly [number, number] | undefined => {
  let found: readonly [number, number] | undefined
  let j = skipSpace(text, i + 1)
  if (text.charCodeAt(j) === 0x7d) return undefined
  while (j < text.length) {
    const keyEnd = stringEnd(text, j)
    const raw = text.slice(j + 1, keyEnd - 1)
    const name = raw.includes("\\") ? (JSON.parse(text.slice(j, keyEnd)) as string) : raw
    const start = skipSpace(text, skipSpace(text, keyEnd) + 1) // past the colon
    const end = valueEnd(text, start)
    if (name === key) found = [start, end]
    j = skipSpace(text, end)
    if (text.charCodeAt(j) !== 0x2c) break
    j = skipSpace(text, j + 1)
  }
  return found
}

/** The text of `document[path[0]][path[1]]…`, or undefined when a step is missing or not an object. */
export const rawMember = (text: string, path: ReadonlyArray<string>): string | undefined => {
  let start = skipSpace(text, 0)
  let end = valueEnd(text, start)
  for (const key of path) {
    if (text.charCodeAt(start) !== 0x7b) return undefined
    const span = memberSpan(text, start, key)
    if (span === undefined) return undefined
    ;[start, end] = span
  }
  return text.slice(start, end)
}
