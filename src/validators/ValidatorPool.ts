import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import { availableParallelism } from "node:os"
import { Crypto, makeNative } from "../crypto/Crypto.ts"
import { verifier, type VerifyRequest } from "./Verify.ts"
import * as MlDsa from "../crypto/MlDsa.ts"
import type { WorkerInit, WorkerJob, WorkerResult } from "./VerifyWorker.ts"
import { supervise } from "../internal/supervise.ts"

export type { VerifyRequest } from "./Verify.ts"

/** Signature verification, where a host may run it on its own worker pool. */
export interface ValidatorPoolShape {
  readonly verify: (request: VerifyRequest) => Effect.Effect<boolean>
}

export class ValidatorPool extends Context.Tag("im/ValidatorPool")<ValidatorPool, ValidatorPoolShape>() {}

/** Verifies on the calling fiber: proofs are checked at registration and history only, never per message. */
export const layerInline: Layer.Layer<ValidatorPool, never, Crypto> = Layer.effect(
  ValidatorPool,
  Effect.map(Crypto, (crypto) => {
    const verify = verifier(crypto)
    return { verify: (r) => Effect.sync(() => verify(r)) }
  })
)

export interface WorkersOptions {
  /** Worker threads (default: the machine's cores). */
  readonly workers?: number
  /** Jobs waiting for a worker; callers wait for room past it. */
  readonly queueCapacity?: number
  /** Most jobs one worker takes in one message. */
  readonly batchMax?: number
  /** ML-DSA in the workers: the fastest the runtime has (default), or the portable noble code. */
  readonly mlDsa?: "preferred" | "noble"
  /** Also ed25519 in the workers (default: on the calling thread, see `layerWorkers`). */
  readonly ed25519InWorkers?: boolean
}

interface Job {
  readonly request: VerifyRequest
  readonly done: Deferred.Deferred<boolean>
}

const WORKER_URL = new URL("./VerifyWorker.ts", import.meta.url).href

/**
 * A pool of Bun Workers fed from one bounded queue: each worker takes up to `batchMax` waiting jobs per
 * round trip, so a burst of ML-DSA proofs keeps every core busy. A worker that fails is replaced, and
 * its batch verified on the calling thread instead.
 *
 * ed25519 is verified on the calling thread: natively it costs less than the trip to a worker. On 2
 * cores, 10,000 registrations took 3.3 s that way against 5.5 s through the workers, whose queue, copies
 * and heaps also held 9 KB more per session afterwards (`bench/throughput.ts --sessions 10000`).
 */
export const layerWorkers = (options: WorkersOptions = {}): Layer.Layer<ValidatorPool> =>
  Layer.scoped(
    ValidatorPool,
    Effect.gen(function*() {
      const workers = Math.max(1, options.workers ?? availableParallelism())
      const batchMax = Math.max(1, options.batchMax ?? 32)
      const jobs = yield* Queue.bounded<Job>(Math.max(1, options.queueCapacity ?? 1024))
      const mlDsa = options.mlDsa ?? "preferred"
      const inline = verifier(makeNative(), mlDsa === "noble" ? MlDsa.noble : MlDsa.preferred().verify)
      const spawn = () => {
        const w = new Worker(WORKER_URL)
        w.postMessage({ init: { mlDsa } } satisfies WorkerInit)
        return w
      }
      let nextId = 0

      const roundTrip = (worker: Worker, requests: ReadonlyArray<VerifyRequest>) =>
        Effect.async<ReadonlyArray<boolean>, Error>((resume) => {
          const id = ++nextId
          worker.onmessage = (event: MessageEvent<WorkerResult>) => {
            if (event.data.id === id) resume(Effect.succeed(event.data.results))
          }
          worker.onerror = (event) => resume(Effect.fail(new Error(event.message)))
          worker.postMessage({ id, requests } satisfies WorkerJob)
        })

      // In its own scope, so that a server restarted after a defect terminates the thread it had.
      const serve = Effect.gen(function*() {
        let worker = spawn()
        yield* Effect.addFinalizer(() => Effect.sync(() => worker.terminate()))
        while (true) {
          const batch = Chunk.toReadonlyArray(yield* Queue.takeBetween(jobs, 1, batchMax))
          const requests = batch.map((j) => j.request)
          const results = yield* roundTrip(worker, requests).pipe(
            Effect.catchAll((e) =>
              Effect.logWarning(`validator worker failed, replacing it: ${e.message}`).pipe(
                Effect.zipRight(Effect.sync(() => {
                  worker.terminate()
                  worker = spawn()
                  return requests.map(inline)
                }))
              )
            ),
            Effect.onInterrupt(() => Effect.forEach(batch, (j) => Deferred.interrupt(j.done), { discard: true }))
          )
          yield* Effect.forEach(batch, (j, i) => Deferred.succeed(j.done, results[i] === true), { discard: true })
        }
      }).pipe(Effect.scoped)
      // Callers still waiting when the pool stops are interrupted, never left hanging.
      yield* Effect.addFinalizer(() =>
        Queue.takeAll(jobs).pipe(
          Effect.flatMap((rest) => Effect.forEach(rest, (j) => Deferred.interrupt(j.done), { discard: true })),
          Effect.zipRight(Queue.shutdown(jobs))
        )
      )
      for (let i = 0; i < workers; i++) yield* supervise(`validator-worker-${i}`, serve)

      const queued = (request: VerifyRequest) =>
        Effect.flatMap(Deferred.make<boolean>(), (done) =>
          Queue.offer(jobs, { request, done }).pipe(Effect.zipRight(Deferred.await(done))))
      return {
        verify: options.ed25519InWorkers === true
          ? queued
          : (request) => request.algorithm === "ed25519" ? Effect.sync(() => inline(request)) : queued(request)
      }
    })
  )
