import * as Effect from "effect/Effect"
import type { LegacyDeps } from "../LegacyDeps.ts"
import type { LegacyEnvelope } from "../LegacyFrames.ts"
import type { LegacyConnectionContext } from "../LegacyConnectionContext.ts"

const NONCE_BYTES = 32

/**
 * `challenge` (extension, issue 13 #4): a fresh nonce for this connection's next `register`, and the
 * node's identity (its ML-DSA public key, hex), both of which the client signs. One reply, as every
 * legacy request; a 2.9.1 client never sends it.
 */
export const challenge = (deps: LegacyDeps) => (session: LegacyConnectionContext, _frame: LegacyEnvelope) =>
  Effect.gen(function*() {
    // Unguessable, so from the CSPRNG rather than Effect's seedable Random.
    const nonce = Buffer.from(crypto.getRandomValues(new Uint8Array(NONCE_BYTES))).toString("base64")
    session.issueNonce(nonce)
    yield* session.reply("challenge", { nonce, node: deps.nodeKey.publicKeyHex })
  })
