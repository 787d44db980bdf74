import { sha256 } from "@noble/hashes/sha2.js"

/**
 * The node's identity in bound proofs: SHA-256 of its ML-DSA-65 public key's bytes, as 64 lower-case hex
 * characters (the key itself is in `node_info` and `/health`).
 */
export const nodeIdOf = (nodeKeyHex: string): string => Buffer.from(sha256(Buffer.from(nodeKeyHex, "hex"))).toString("hex")

/** The proof version whose string names the network and the node. */
export const BOUND = 2

/**
 * The string a bound proof signs (ed25519 over its UTF-8 bytes): it names the network and the node, so a
 * proof seen on one node or network is worth nothing on another.
 * `register:v2:{l2psUid}:{nodeId}:{publicKey}:{timestamp}` / `history:v2:{l2psUid}:{nodeId}:{peerKey}:{timestamp}`.
 */
export const boundProofString = (
  kind: "register" | "history",
  l2psUid: string,
  nodeId: string,
  subject: string,
  timestamp: number
): string => `${kind}:v${BOUND}:${l2psUid}:${nodeId}:${subject}:${timestamp}`
