import type { CryptoShape } from "../crypto/Crypto.ts"
import * as MlDsa from "../crypto/MlDsa.ts"

/** One signature to check. */
export interface VerifyRequest {
  readonly algorithm: "ed25519" | "ml-dsa-65"
  readonly publicKey: Uint8Array
  readonly message: Uint8Array
  readonly signature: Uint8Array
}

/** Verifies on the calling thread: ed25519 through the Crypto port, ML-DSA-65 native where the runtime has it. */
export const verifier = (crypto: Pick<CryptoShape, "verifyEd25519">, mlDsa: MlDsa.Verify = MlDsa.preferred().verify) =>
(r: VerifyRequest): boolean => {
  switch (r.algorithm) {
    case "ed25519":
      return crypto.verifyEd25519(r.publicKey, r.message, r.signature)
    case "ml-dsa-65":
      return mlDsa(r.publicKey, r.message, r.signature)
    default:
      return false
  }
}
