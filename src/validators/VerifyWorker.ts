/**
 * Entry of one validator worker (a Bun Worker): verifies batches of signatures posted by
 * `ValidatorPool.layerWorkers` and posts back one boolean per request, in order.
 */
import { makeNative } from "../crypto/Crypto.ts"
import * as MlDsa from "../crypto/MlDsa.ts"
import { verifier, type VerifyRequest } from "./Verify.ts"

export interface WorkerJob {
  readonly id: number
  readonly requests: ReadonlyArray<VerifyRequest>
}

/** First message to a worker: which ML-DSA implementation it uses. */
export interface WorkerInit {
  readonly init: { readonly mlDsa: "preferred" | "noble" }
}

export interface WorkerResult {
  readonly id: number
  readonly results: ReadonlyArray<boolean>
}

declare const self: {
  onmessage: ((event: MessageEvent<WorkerJob | WorkerInit>) => void) | null
  postMessage: (message: WorkerResult) => void
}

const crypto = makeNative()
let verify = verifier(crypto)

self.onmessage = (event) => {
  const data = event.data
  if ("init" in data) {
    verify = verifier(crypto, data.init.mlDsa === "noble" ? MlDsa.noble : MlDsa.preferred().verify)
    return
  }
  self.postMessage({ id: data.id, results: data.requests.map(verify) })
}
