/**
 * The plaintext of a secure-session message (docs/PROTOCOL.md, "Payload types"): a versioned
 * envelope that also carries the missed-message link, all in a few bytes since it is inside the
 * ciphertext and counts toward the bandwidth budget:
 *
 *   format (1) ‖ position (varint) [‖ previous (8)] ‖ type code (1) [‖ name length (1) ‖ name] ‖ version (varint) ‖ body
 *
 * `position` counts the sender device's messages in this conversation from 1; `previous` is the
 * `digest` of that device's message before it (zeros for the first). Position 0 marks a message
 * outside the sequence (receipts, typing: `CONTROL`), which has no `previous`: losing one is no
 * missed message. Decoding never throws: an
 * unknown type, a newer version or a body that does not read is `Unsupported`, with what arrived.
 */
import { sha256 } from "@noble/hashes/sha2.js"
import * as Either from "effect/Either"
import { BUILT_IN, type ContentType, MAX_NAME_BYTES } from "./ContentType.ts"

export const FORMAT_1 = 0x01
export const LINK_BYTES = 8
export const NO_PREVIOUS: Uint8Array = new Uint8Array(LINK_BYTES)
/** The link of a message outside the sender's sequence. */
export const CONTROL: Link = { position: 0, previous: NO_PREVIOUS }

/** Where a message stands in its sender device's sequence. */
export interface Link {
  readonly position: number
  readonly previous: Uint8Array
}

export type Decoded =
  | {
    readonly _tag: "Content"
    readonly type: ContentType<unknown>
    readonly body: unknown
    readonly link: Link
    /** this message's digest: the `previous` of the sender's next one */
    readonly digest: Uint8Array
  }
  | {
    readonly _tag: "Unsupported"
    readonly name: string
    readonly version: number
    /** unknown-type, newer-version, older-version, bad-body or malformed */
    readonly reason: "unknown-type" | "newer-version" | "older-version" | "bad-body" | "malformed"
    readonly detail?: string
    /** the body as it arrived (the whole envelope when malformed) */
    readonly body: Uint8Array
    /** absent when even the link did not read */
    readonly link?: Link
    readonly digest: Uint8Array
  }

export const digest = (envelope: Uint8Array): Uint8Array => sha256(envelope).slice(0, LINK_BYTES)

export interface Registry {
  readonly encode: <A>(type: ContentType<A>, body: A, link: Link) => Uint8Array
  readonly decode: (envelope: Uint8Array) => Decoded
  readonly types: ReadonlyArray<ContentType<any>>
}

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { fatal: true })

const varint = (n: number, out: Array<number>) => {
  let v = n
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80)
    v = Math.floor(v / 0x80)
  }
  out.push(v)
}

const readVarint = (bytes: Uint8Array, at: number): [number, number] | undefined => {
  let value = 0
  let scale = 1
  for (let i = 0; i < 5; i++) {
    const b = bytes[at + i]
    if (b === undefined) return undefined
    value += (b & 0x7f) * scale
    if (b < 0x80) return value > 0xffff_ffff ? undefined : [value, at + i + 1]
    scale *= 0x80
  }
  return undefined
}

/** The built-in types and `types` (several versions of one name may be given: each is read as itself). */
export const make = (...types: ReadonlyArray<ContentType<any>>): Registry => {
  const all = [...BUILT_IN, ...types]
  const byCode = new Map<number, ContentType<any>>()
  const byName = new Map<string, Map<number, ContentType<any>>>()
  for (const t of all) {
    if (t.code !== 0) byCode.set(t.code, t)
    const versions = byName.get(t.name) ?? new Map()
    if (versions.has(t.version)) throw new Error(`${t.name} v${t.version} is registered twice`)
    byName.set(t.name, versions.set(t.version, t))
  }

  const encode = <A>(type: ContentType<A>, body: A, link: Link): Uint8Array => {
    if (!Number.isInteger(link.position) || link.position < 0 || link.position > 0xffff_ffff) throw new RangeError(`position out of range: ${link.position}`)
    if (link.previous.length !== LINK_BYTES) throw new RangeError(`previous is ${LINK_BYTES} bytes`)
    const head: Array<number> = [FORMAT_1]
    varint(link.position, head)
    if (link.position > 0) head.push(...link.previous)
    head.push(type.code)
    if (type.code === 0) {
      const name = encoder.encode(type.name)
      head.push(name.length, ...name)
    }
    varint(type.version, head)
    const payload = type.encodeBody(body)
    const out = new Uint8Array(head.length + payload.length)
    out.set(head, 0)
    out.set(payload, head.length)
    return out
  }

  const decode = (envelope: Uint8Array): Decoded => {
    const d = digest(envelope)
    const malformed = (detail: string): Decoded => ({ _tag: "Unsupported", name: "", version: 0, reason: "malformed", detail, body: envelope, digest: d })
    if (envelope[0] !== FORMAT_1) return malformed(`format ${envelope[0] ?? "missing"}`)
    const pos = readVarint(envelope, 1)
    if (pos === undefined) return malformed("bad position")
    let at = pos[1]
    const linkBytes = pos[0] === 0 ? 0 : LINK_BYTES
    if (at + linkBytes + 1 > envelope.length) return malformed("truncated")
    const link: Link = pos[0] === 0 ? CONTROL : { position: pos[0], previous: envelope.slice(at, at + LINK_BYTES) }
    at += linkBytes
    const code = envelope[at++]!
    let name: string
    if (code === 0) {
      const n = envelope[at++]
      if (n === undefined || n === 0 || n > MAX_NAME_BYTES || at + n > envelope.length) return malformed("bad type name")
      try {
        name = decoder.decode(envelope.subarray(at, at + n))
      } catch {
        return malformed("bad type name")
      }
      at += n
    } else {
      name = byCode.get(code)?.name ?? `#${code}`
    }
    const ver = readVarint(envelope, at)
    if (ver === undefined) return malformed("bad version")
    const version = ver[0]
    const body = envelope.slice(ver[1])
    const unsupported = (reason: "unknown-type" | "newer-version" | "older-version" | "bad-body", detail?: string): Decoded => ({
      _tag: "Unsupported", name, version, reason, body, link, digest: d, ...(detail === undefined ? {} : { detail })
    })
    const versions = byName.get(name)
    if (versions === undefined || (code !== 0 && byCode.get(code)?.name !== name)) return unsupported("unknown-type")
    const type = versions.get(version)
    if (type === undefined) return unsupported(version > Math.max(...versions.keys()) ? "newer-version" : "older-version")
    return Either.match(type.decodeBody(body), {
      onLeft: (why) => unsupported("bad-body", why),
      onRight: (value) => ({ _tag: "Content", type, body: value, link, digest: d })
    })
  }

  return { encode, decode, types: all }
}

/** Whether `decoded` is a message of `type` (its body is then an `A`). */
export const is = <A>(decoded: Decoded, type: ContentType<A>): decoded is Extract<Decoded, { _tag: "Content" }> & { readonly body: A } =>
  decoded._tag === "Content" && decoded.type === type
