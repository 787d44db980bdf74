import * as Effect from "effect/Effect"
import { refuse, type RequestError } from "../../domain/ErrorCode.ts"
import { proofTimestamp } from "../../domain/Frames.ts"
import { hexToBytes } from "../../domain/Keys.ts"
import { BOUND, boundProofString } from "../BoundProof.ts"
import type { RelayDeps } from "../RelayDeps.ts"

const SIGNATURE_HEX = /^[0-9a-fA-F]{128}$/

/**
 * Checks an ed25519 proof over `${kind}:${subject}:${timestamp}` (the reference's string) or, with
 * `proofVersion` 2, over the bound string naming the network and this node (SECURITY.md 6): inside the
 * window of the node's clock, valid for `keyBytes`, and never seen before for this (kind, key, timestamp).
 */
export const verifyProof = (
  deps: RelayDeps,
  kind: "register" | "history",
  subject: string,
  rawTimestamp: unknown,
  key: string,
  keyBytes: Uint8Array,
  proof: string,
  address: string,
  l2psUid: string,
  proofVersion: unknown
): Effect.Effect<void, RequestError> =>
  Effect.gen(function*() {
    const bound = proofVersion === BOUND
    if (proofVersion !== undefined && !bound) return yield* refuse("INVALID_PROOF", `Unknown proofVersion (this node knows ${BOUND})`)
    if (!bound && deps.cfg.requireBoundProofs) {
      return yield* refuse(
        "INVALID_PROOF",
        `This node requires bound proofs: proofVersion ${BOUND}, signing ${kind}:v${BOUND}:{l2psUid}:{nodeId}:{${
          kind === "register" ? "publicKey" : "peerKey"
        }}:{timestamp} (nodeId from node_info)`
      )
    }
    const failed = kind === "register" ? "Signature verification failed" : "History proof failed"
    const timestamp = proofTimestamp(rawTimestamp)
    if (timestamp === undefined) {
      return yield* refuse("INVALID_PROOF", "Proof verification error: frame timestamp must be an integer (ms)")
    }
    if (!(yield* deps.replay.inWindow(timestamp))) {
      return yield* refuse(
        "INVALID_PROOF",
        `Proof expired: timestamp must be within ${deps.cfg.proofWindowMillis / 1000} s of the node's clock, at most ${
          Math.min(deps.cfg.proofFutureSkewMillis, deps.cfg.proofWindowMillis) / 1000
        } s ahead`
      )
    }
    if (!SIGNATURE_HEX.test(proof)) {
      return yield* refuse("INVALID_PROOF", "Proof verification error: signature must be 128 hex characters")
    }
    const ok = yield* deps.validators.verify({
      algorithm: "ed25519",
      publicKey: keyBytes,
      message: new TextEncoder().encode(
        bound ? boundProofString(kind, l2psUid, deps.nodeId, subject, timestamp) : `${kind}:${subject}:${timestamp}`
      ),
      signature: hexToBytes(proof)
    })
    if (!ok) return yield* refuse("INVALID_PROOF", failed)
    // A history proof names its peer, so two pages of different conversations in one ms are not replays.
    const claim = yield* deps.replay.claim(kind === "register" ? kind : `${kind}:${subject}`, key, timestamp, address)
    if (claim === "replayed") return yield* refuse("INVALID_PROOF", "Proof already used")
    if (claim === "expired") return yield* refuse("INVALID_PROOF", "Proof expired")
    if (claim === "key") return yield* refuse("RATE_LIMITED", "Too many proofs for this key, try again shortly")
    if (claim === "address") return yield* refuse("RATE_LIMITED", "Too many proofs from this address, try again shortly")
    if (claim === "busy") return yield* refuse("RATE_LIMITED", "Too many proofs, try again shortly")
  })
