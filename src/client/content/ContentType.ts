/**
 * The kinds of payload a message carries (docs/PROTOCOL.md, "Payload types"): a name, a version and
 * a body codec. The built-in types have a one-byte code and a hand-made body; an application's own
 * types (`defineType`) are named on the wire and their body is the JSON of the schema's encoded form,
 * so a field added as optional keeps the version (readers drop what they do not know) and anything
 * else is a new version.
 */
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"

export interface ContentType<A> {
  readonly name: string
  readonly version: number
  /** 1..255 for the built-in types; 0 for a type named on the wire */
  readonly code: number
  readonly encodeBody: (body: A) => Uint8Array
  /** the body, or why it does not read */
  readonly decodeBody: (bytes: Uint8Array) => Either.Either<A, string>
}

export const MAX_NAME_BYTES = 64
const NAME = /^[a-z0-9][a-z0-9._/-]*$/

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { fatal: true })

/**
 * An application's type: `name` (lower case, say "acme.poll"), a version from 1, and the schema of
 * its body. The built-in names are reserved. Throws on a bad definition: it is a programming error,
 * found when the module loads.
 */
export const defineType = <A, I>(name: string, version: number, schema: Schema.Schema<A, I, never>): ContentType<A> => {
  if (!NAME.test(name) || encoder.encode(name).length > MAX_NAME_BYTES) throw new Error(`a content type's name is lower case, up to ${MAX_NAME_BYTES} bytes: ${name}`)
  if (BUILT_IN_NAMES.has(name)) throw new Error(`"${name}" is a built-in content type`)
  if (!Number.isInteger(version) || version < 1 || version > 0xffff) throw new Error(`a content type's version is 1..65535: ${version}`)
  const encode = Schema.encodeEither(schema)
  const decode = Schema.decodeUnknownEither(schema)
  return {
    name,
    version,
    code: 0,
    encodeBody: (body) =>
      Either.match(encode(body), {
        onLeft: (e) => {
          throw new Error(`${name} v${version}: ${ParseResult.TreeFormatter.formatErrorSync(e)}`)
        },
        onRight: (encoded) => encoder.encode(JSON.stringify(encoded))
      }),
    decodeBody: (bytes) => {
      let json: unknown
      try {
        json = JSON.parse(decoder.decode(bytes))
      } catch {
        return Either.left("the body is not JSON")
      }
      return Either.mapLeft(decode(json), (e) => ParseResult.TreeFormatter.formatErrorSync(e))
    }
  }
}

const utf8Body = (bytes: Uint8Array): Either.Either<string, string> => {
  try {
    return Either.right(decoder.decode(bytes))
  } catch {
    return Either.left("not UTF-8")
  }
}

export interface Text {
  readonly text: string
}
export interface Receipt {
  /** the `messageHash`es (lower-case hex) of the messages it acknowledges */
  readonly messageHashes: ReadonlyArray<string>
}
export interface Typing {
  readonly typing: boolean
}

export const MAX_RECEIPT_HASHES = 256
const HEX = /^(?:[0-9a-f]{2}){1,64}$/

const receiptBody = (body: Receipt): Uint8Array => {
  if (body.messageHashes.length > MAX_RECEIPT_HASHES) throw new Error(`a receipt names ${MAX_RECEIPT_HASHES} messages at most`)
  const parts: Array<number> = [body.messageHashes.length]
  for (const h of body.messageHashes) {
    if (!HEX.test(h)) throw new Error(`not a lower-case hex hash: ${h}`)
    parts.push(h.length / 2)
    for (let i = 0; i < h.length; i += 2) parts.push(parseInt(h.slice(i, i + 2), 16))
  }
  return Uint8Array.from(parts)
}

const readReceipt = (bytes: Uint8Array): Either.Either<Receipt, string> => {
  const count = bytes[0]
  if (count === undefined || count > MAX_RECEIPT_HASHES) return Either.left("bad receipt count")
  const messageHashes: Array<string> = []
  let at = 1
  for (let i = 0; i < count; i++) {
    const n = bytes[at++]
    if (n === undefined || n === 0 || n > 64 || at + n > bytes.length) return Either.left("truncated receipt")
    let hex = ""
    for (let j = 0; j < n; j++) hex += bytes[at + j]!.toString(16).padStart(2, "0")
    messageHashes.push(hex)
    at += n
  }
  return at === bytes.length ? Either.right({ messageHashes }) : Either.left("trailing bytes in a receipt")
}

export const text: ContentType<Text> = {
  name: "text",
  version: 1,
  code: 1,
  encodeBody: (body) => encoder.encode(body.text),
  decodeBody: (bytes) => Either.map(utf8Body(bytes), (text) => ({ text }))
}

/** A device has the messages (sent end to end, so it names the device that has them). */
export const delivered: ContentType<Receipt> = { name: "delivered", version: 1, code: 2, encodeBody: receiptBody, decodeBody: readReceipt }

/** A person has seen the messages. */
export const read: ContentType<Receipt> = { name: "read", version: 1, code: 3, encodeBody: receiptBody, decodeBody: readReceipt }

export const typing: ContentType<Typing> = {
  name: "typing",
  version: 1,
  code: 4,
  encodeBody: (body) => Uint8Array.of(body.typing ? 1 : 0),
  decodeBody: (bytes) =>
    bytes.length === 1 && bytes[0]! <= 1 ? Either.right({ typing: bytes[0] === 1 }) : Either.left("bad typing body")
}

export const BUILT_IN: ReadonlyArray<ContentType<any>> = [text, delivered, read, typing]
const BUILT_IN_NAMES = new Set(BUILT_IN.map((t) => t.name))
