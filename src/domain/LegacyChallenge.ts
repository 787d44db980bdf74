/**
 * The legacy registration extension (issue 13, #4). The 2.9.1 client's proof signs only its ML-KEM key,
 * so a captured `register` frame registers anywhere, forever. A client that can asks `challenge` first
 * and signs, with the same ML-DSA key, the server's single-use nonce, the clientId, the node's identity
 * and the ML-KEM key: the proof is then good once, on this connection of this node, for this id and key.
 */
export const LEGACY_CHALLENGE_CONTEXT = "demos-im/legacy-register/v1"

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("")

/** The bytes the client signs: every part on its own line, none of which can hold a newline. */
export const legacyChallengeMessage = (p: {
  readonly nodeKeyHex: string
  readonly clientId: string
  readonly nonce: string
  readonly publicKey: Uint8Array
}): Uint8Array =>
  new TextEncoder().encode([LEGACY_CHALLENGE_CONTEXT, p.nodeKeyHex, p.clientId, p.nonce, hex(p.publicKey)].join("\n"))
