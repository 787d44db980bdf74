/**
 * ed25519 identities for load generators, on node:crypto (about 13 µs a signature, so proofs can be
 * made up front in bulk and the timed part only writes pre-built frames).
 */
import * as crypto from "node:crypto"

export interface Identity {
  /** 64 lower-case hex characters, as the node expects. */
  readonly publicKey: string
  readonly sign: (message: string) => string
}

// PKCS#8 wrapping of a raw 32-byte ed25519 seed (RFC 8410).
const PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex")

/** A deterministic identity per (run, index), so processes can name each other's keys without talking. */
export const identity = (run: string, index: number): Identity => {
  const seed = crypto.createHash("sha256").update(`${run}:${index}`).digest()
  const privateKey = crypto.createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: "der", type: "pkcs8" })
  const spki = crypto.createPublicKey(privateKey).export({ type: "spki", format: "der" })
  const publicKey = spki.subarray(spki.length - 32).toString("hex")
  return { publicKey, sign: (message) => crypto.sign(null, Buffer.from(message, "utf8"), privateKey).toString("hex") }
}

/** The register frame of PROTOCOL-REFERENCE.md §2.4, with its proof over `register:{key}:{timestamp}`. */
export const registerFrame = (id: Identity, l2psUid: string, timestamp: number, requestId: string): string =>
  JSON.stringify({
    type: "register",
    payload: { publicKey: id.publicKey, l2psUid, proof: id.sign(`register:${id.publicKey}:${timestamp}`) },
    timestamp,
    requestId
  })

/** A history request (§2.6) with its proof over `history:{peerKey}:{timestamp}`. */
export const historyFrame = (
  id: Identity,
  peerKey: string,
  timestamp: number,
  before: number | undefined,
  limit: number,
  requestId: string
): string =>
  JSON.stringify({
    type: "history",
    payload: { peerKey, proof: id.sign(`history:${peerKey}:${timestamp}`), limit, ...(before === undefined ? {} : { before }) },
    timestamp,
    requestId
  })
