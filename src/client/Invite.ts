/**
 * Invite links (docs/PROTOCOL.md, "Invites"): a string a person pastes or scans that lets a stranger
 * start a secure conversation with an account without it being online.
 *
 *     demos-im:<node URL>#<network>/<token>
 *
 * The token (75 base64url characters) holds a version and the one-time flag, the expiry (seconds), the
 * account's ed25519 key, a 16-byte secret and a 3-byte check over everything before it (typos are caught
 * before anything is asked of a node). From the secret come, one way, the record's id on the node and
 * the key that seals the record (the inviter's device bundle and display name); the account signs the
 * sealed record with the network, id, expiry and flag. So the node stores something it cannot read,
 * someone without the link cannot find it, and anyone who alters the link or the record is detected:
 * a changed key fails the signature, a changed secret finds nothing or fails to open.
 */
import { gcm } from "@noble/ciphers/aes.js"
import { ed25519 } from "@noble/curves/ed25519.js"
import { hkdf } from "@noble/hashes/hkdf.js"
import { sha256 } from "@noble/hashes/sha2.js"
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js"
import * as Data from "effect/Data"
import { inviteSigningString } from "../domain/Invites.ts"
import { concat, equal, utf8 } from "./secure/Bytes.ts"
import type { AccountIdentity, BundleData } from "./secure/DeviceKeys.ts"
import { verifyBundle } from "./secure/DeviceKeys.ts"
import { randomBytes } from "./secure/KeySource.ts"
import { fromBase64, toBase64 } from "./MlKemAes.ts"

export const SCHEME = "demos-im:"
const VERSION = 1
const SECRET_BYTES = 16
const CHECK_BYTES = 3
const TOKEN_BYTES = 1 + 4 + 32 + SECRET_BYTES + CHECK_BYTES
/** Longest display name a record carries (characters). */
export const MAX_NAME = 64

/**
 * Why a link cannot be joined, each with its own message: `Malformed` (not a link, or mistyped),
 * `Tampered` (the record does not open or is not signed by the link's key), `Expired`, `UsedUp` (a
 * one-time invite someone already used, or the inviter withdrew it), `NotFound` (a reusable invite the
 * node no longer has), `Foreign` (for another node or network than this client's), `Own` (this
 * account's own invite).
 */
export type InviteErrorReason = "Malformed" | "Tampered" | "Expired" | "UsedUp" | "NotFound" | "Foreign" | "Own"

export class InviteError extends Data.TaggedError("InviteError")<{
  readonly reason: InviteErrorReason
  readonly message: string
}> {}

const refuse = (reason: InviteErrorReason, message: string): never => {
  throw new InviteError({ reason, message })
}

/** What a link says. */
export interface InviteLink {
  readonly nodeUrl: string
  readonly l2psUid: string
  /** The inviter's account key, 64 lower-case hex characters. */
  readonly account: string
  readonly secret: Uint8Array
  /** ms since the epoch, whole seconds */
  readonly expiresAt: number
  readonly oneTime: boolean
}

/** What the record holds once opened. */
export interface InviteContent {
  readonly name: string
  readonly bundle: BundleData
}

// Through btoa/atob, which browsers have too (no Buffer there).
const base64url = (bytes: Uint8Array): string => toBase64(bytes).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "")
const fromBase64url = (text: string): Uint8Array => {
  try {
    return fromBase64(text.replaceAll("-", "+").replaceAll("_", "/").padEnd(Math.ceil(text.length / 4) * 4, "="))
  } catch {
    return new Uint8Array()
  }
}

const checkOf = (nodeUrl: string, l2psUid: string, body: Uint8Array): Uint8Array =>
  sha256(concat(utf8("demos-im invite link"), utf8(nodeUrl), new Uint8Array([0]), utf8(l2psUid), new Uint8Array([0]), body)).subarray(0, CHECK_BYTES)

const derive = (secret: Uint8Array, purpose: string, bytes: number): Uint8Array =>
  hkdf(sha256, secret, undefined, utf8(`demos-im invite v1 ${purpose}`), bytes)

/** The record's id on the node: 32 hex characters, from the secret alone and one way. */
export const inviteIdOf = (secret: Uint8Array): string => bytesToHex(derive(secret, "id", 16))

/** A new secret from the platform CSPRNG. */
export const newSecret = (): Uint8Array => randomBytes(SECRET_BYTES)

export const formatLink = (link: InviteLink): string => {
  const body = new Uint8Array(TOKEN_BYTES - CHECK_BYTES)
  body[0] = (VERSION << 4) | (link.oneTime ? 1 : 0)
  new DataView(body.buffer).setUint32(1, Math.floor(link.expiresAt / 1000))
  body.set(hexToBytes(link.account.toLowerCase()), 5)
  body.set(link.secret, 37)
  return `${SCHEME}${link.nodeUrl}#${encodeURIComponent(link.l2psUid)}/${base64url(concat(body, checkOf(link.nodeUrl, link.l2psUid, body)))}`
}

/** Reads a link (surrounding spaces and `<>` ignored); throws `InviteError` `Malformed`. */
export const parseLink = (text: string): InviteLink => {
  const link = text.trim().replace(/^<(.*)>$/, "$1")
  if (!link.startsWith(SCHEME)) refuse("Malformed", `Not an invite link: it should start with ${SCHEME}`)
  const hash = link.lastIndexOf("#")
  const slash = link.lastIndexOf("/")
  if (hash < 0 || slash < hash) refuse("Malformed", "Not an invite link: the part after # is missing")
  const nodeUrl = link.slice(SCHEME.length, hash)
  let l2psUid = ""
  try {
    l2psUid = decodeURIComponent(link.slice(hash + 1, slash))
  } catch {
    refuse("Malformed", "The invite link's network name is garbled")
  }
  const token = link.slice(slash + 1)
  if (!/^[A-Za-z0-9_-]+$/.test(token) || fromBase64url(token).length !== TOKEN_BYTES || !/^wss?:\/\/./.test(nodeUrl) || l2psUid === "") {
    refuse("Malformed", "The invite link is cut short or mistyped")
  }
  const bytes = fromBase64url(token)
  // Its last character has two spare bits: a link is read in its one spelling only.
  if (base64url(bytes) !== token) refuse("Malformed", "The invite link is mistyped or was altered")
  const body = bytes.subarray(0, TOKEN_BYTES - CHECK_BYTES)
  if (!equal(bytes.subarray(TOKEN_BYTES - CHECK_BYTES), checkOf(nodeUrl, l2psUid, body))) {
    refuse("Malformed", "The invite link is mistyped or was altered (its check does not match)")
  }
  if (body[0]! >> 4 !== VERSION) refuse("Malformed", `This invite link is of a newer version (${body[0]! >> 4}): update the client`)
  return {
    nodeUrl,
    l2psUid,
    account: bytesToHex(body.subarray(5, 37)),
    secret: body.slice(37, 37 + SECRET_BYTES),
    expiresAt: new DataView(body.buffer, body.byteOffset).getUint32(1) * 1000,
    oneTime: (body[0]! & 1) === 1
  }
}

const adOf = (link: InviteLink, inviteId: string): Uint8Array =>
  utf8(`demos-im invite v1:${link.l2psUid}:${link.account}:${inviteId}:${link.expiresAt}:${link.oneTime ? 1 : 0}`)

/** What `invite_store` carries. */
export interface SealedInvite {
  readonly inviteId: string
  readonly record: string
  readonly expiresAt: number
  readonly oneTime: boolean
  readonly signature: string
}

/** Seals `content` under the link's secret and signs it with the account (whose key the link names). */
export const sealInvite = (identity: AccountIdentity, link: InviteLink, content: InviteContent): SealedInvite => {
  if (identity.publicKey.toLowerCase() !== link.account) throw new Error("The link names another account than the identity signing it")
  const inviteId = inviteIdOf(link.secret)
  const key = derive(link.secret, "record key", 32)
  const nonce = randomBytes(12)
  const plaintext = utf8(JSON.stringify({ v: 1, name: content.name.slice(0, MAX_NAME), bundle: content.bundle }))
  const record = base64url(concat(nonce, gcm(key, nonce, adOf(link, inviteId)).encrypt(plaintext)))
  const signature = bytesToHex(ed25519.sign(utf8(inviteSigningString(link.l2psUid, inviteId, link.expiresAt, link.oneTime, record)), identity.secretKey))
  return { inviteId, record, expiresAt: link.expiresAt, oneTime: link.oneTime, signature }
}

/**
 * Opens what the node answered for a link: the account's signature, the expiry and flag the link
 * states, the seal, and every signature of the bundle. Anything off throws `InviteError` `Tampered`.
 */
export const openInvite = (link: InviteLink, answer: SealedInvite): InviteContent => {
  const inviteId = inviteIdOf(link.secret)
  const tampered = (why: string) => refuse("Tampered", `This invite was altered or is not from ${link.account.slice(0, 16)}…: ${why}`)
  if (answer.inviteId !== inviteId) tampered("the node answered for another invite")
  if (answer.expiresAt !== link.expiresAt || answer.oneTime !== link.oneTime) tampered("its expiry or use differs from the link's")
  let signed = false
  try {
    signed = ed25519.verify(hexToBytes(answer.signature.toLowerCase()), utf8(inviteSigningString(link.l2psUid, inviteId, answer.expiresAt, answer.oneTime, answer.record)), hexToBytes(link.account))
  } catch {
    signed = false
  }
  if (!signed) tampered("the record is not signed by the link's key")
  const sealed = fromBase64url(answer.record)
  let plain: Uint8Array = new Uint8Array()
  try {
    plain = gcm(derive(link.secret, "record key", 32), sealed.subarray(0, 12), adOf(link, inviteId)).decrypt(sealed.subarray(12))
  } catch {
    tampered("the record does not open with the link's secret")
  }
  let content: { v?: unknown; name?: unknown; bundle?: unknown } = {}
  try {
    content = JSON.parse(new TextDecoder().decode(plain)) as typeof content
  } catch {
    tampered("the record is not readable")
  }
  if (content.v !== 1 || typeof content.name !== "string" || typeof content.bundle !== "object" || content.bundle === null) tampered("the record is not readable")
  const bundle = content.bundle as BundleData
  try {
    verifyBundle(link.account, bundle)
  } catch {
    tampered("its device keys are not signed by the link's key")
  }
  return { name: (content.name as string).slice(0, MAX_NAME), bundle }
}

/** Same node: scheme, host and port (and path) alike, whatever the spelling of the URL. */
export const sameNode = (a: string, b: string): boolean => {
  try {
    const x = new URL(a)
    const y = new URL(b)
    return x.protocol === y.protocol && x.host === y.host && x.pathname.replace(/\/$/, "") === y.pathname.replace(/\/$/, "")
  } catch {
    return a === b
  }
}

/** Checks a link against where this client is, and its expiry against `now` (ms); throws `InviteError`. */
export const checkJoinable = (link: InviteLink, here: { readonly nodeUrl: string; readonly l2psUid: string; readonly account: string }, now: number): void => {
  if (link.l2psUid !== here.l2psUid || !sameNode(link.nodeUrl, here.nodeUrl)) {
    refuse("Foreign", `This invite is for network "${link.l2psUid}" on ${link.nodeUrl}; this client is on "${here.l2psUid}" at ${here.nodeUrl}`)
  }
  if (link.account === here.account.toLowerCase()) refuse("Own", "This is your own invite: give it to someone else")
  if (link.expiresAt <= now) refuse("Expired", `This invite expired on ${new Date(link.expiresAt).toISOString()}`)
}

/** What the node's `INVITE_NOT_FOUND` means for this link. */
export const notFound = (link: InviteLink): InviteError =>
  link.oneTime
    ? new InviteError({ reason: "UsedUp", message: "This one-time invite was used already (or withdrawn): ask for a new one" })
    : new InviteError({ reason: "NotFound", message: "This invite was withdrawn by its sender (or the node lost it): ask for a new one" })

/** Runs one of the throwing functions above, turning its `InviteError` into a value. */
export const attempt = <A>(f: () => A): A | InviteError => {
  try {
    return f()
  } catch (e) {
    if (e instanceof InviteError) return e
    throw e
  }
}
