import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import { Crypto } from "../crypto/Crypto.ts"
import { NodeKey } from "../crypto/NodeKey.ts"
import type { Fence } from "../internal/Ownership.ts"
import { supervise } from "../internal/supervise.ts"
import { L1 } from "../l1/L1.ts"
import { NodeConfig } from "../config/NodeConfig.ts"
import * as Anchoring from "./Anchoring.ts"
import * as Batcher from "./Batcher.ts"
import { BatchWakeups } from "./BatchWakeups.ts"
import type { Batch } from "./PipelineStore.ts"
import { PipelineStore } from "./PipelineStore.ts"
import * as Prover from "./Prover.ts"

/** Queued proven batches before the prover waits for L1 (and with it the batcher). */
const PROVEN_QUEUE = 16

/**
 * One network's pipeline: batcher → prover → L1 submitter → finality, joined by bounded queues. The
 * fence, when the node shares its database, is checked as each batch is saved.
 */
export const run = (uid: string, mempoolReads: Effect.Semaphore, fence?: Fence) =>
  Effect.gen(function*() {
    const cfg = yield* NodeConfig
    const store = yield* PipelineStore
    const wakeups = yield* BatchWakeups
    const crypto = yield* Crypto
    const key = yield* NodeKey
    const l1 = yield* L1
    const drafts = yield* Queue.bounded<Batcher.Draft>(1)
    const proven = yield* Queue.bounded<Batch>(PROVEN_QUEUE)
    const submitted = yield* Queue.sliding<void>(1)
    yield* supervise(`${uid}/batcher`, Batcher.run(uid, cfg, store, wakeups, drafts, mempoolReads))
    yield* supervise(`${uid}/prover`, Prover.run(uid, crypto, key, store, drafts, proven, fence))
    yield* supervise(`${uid}/submitter`, Anchoring.submitter(uid, crypto, key, l1, store, proven, submitted))
    yield* supervise(`${uid}/finality`, Anchoring.finality(uid, cfg, l1, store, submitted))
  }).pipe(Effect.annotateLogs({ l2psUid: uid }))
