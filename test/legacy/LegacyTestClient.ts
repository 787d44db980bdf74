/**
 * A scripted legacy client over a memory socket (the frames of PROTOCOL-REFERENCE §1, built by hand),
 * and legacy identities: an ML-DSA-65 signing key and an ML-KEM public key, as the 2.9.1 SDK has them.
 */
import { ml_dsa65 } from "@noble/post-quantum/ml-dsa.js"
import { Effect, type Layer, Queue, TestContext, TestServices } from "effect"
import { MemoryTransport, type MemorySocket } from "../../src/transport/MemoryTransport.ts"
import { testNode } from "../support/TestNode.ts"

export type LegacyFrame = { type: string; payload: any }

export interface LegacyIdentity {
  readonly signingPublicKey: Uint8Array
  readonly signingSecretKey: Uint8Array
  /** Stands for the ML-KEM-768 key: the server only checks its size and the proof over it. */
  readonly publicKey: Uint8Array
}

let seedCounter = 0
/** Deterministic per call order, distinct per identity. */
export const legacyIdentity = (): LegacyIdentity => {
  const seed = new Uint8Array(32)
  new DataView(seed.buffer).setUint32(0, ++seedCounter)
  const { publicKey, secretKey } = ml_dsa65.keygen(seed)
  const kem = new Uint8Array(1184)
  for (let i = 0; i < kem.length; i++) kem[i] = (i * 7 + seedCounter) & 0xff
  return { signingPublicKey: publicKey, signingSecretKey: secretKey, publicKey: kem }
}

const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64")

/** `register.verification` as `MessagingPeer.registerAndWait` builds it, over `signed` (default: the key). */
export const verification = (id: LegacyIdentity, signed: Uint8Array = id.publicKey) => ({
  algorithm: "ml-dsa",
  serializedSignedData: b64(ml_dsa65.sign(signed, id.signingSecretKey)),
  serializedPublicKey: b64(id.signingPublicKey),
  serializedMessage: b64(signed)
})

export const registerPayload = (clientId: string, id: LegacyIdentity) => ({
  clientId,
  publicKey: Array.from(id.publicKey),
  verification: verification(id)
})

/** An encrypted message object as the SDK sends it (opaque to the server). */
export const sealed = (text: string) => ({
  algorithm: "ml-kem-aes",
  serializedCipherText: Buffer.from(`ct:${text}`).toString("base64"),
  serializedEncryptedData: Buffer.from(`data:${text}`).toString("base64")
})

/** Waiting for a frame uses the live clock, so scenarios on TestClock do not hang. */
export const legacyClient = (id: LegacyIdentity = legacyIdentity(), remoteAddress?: string) =>
  Effect.gen(function*() {
    const socket: MemorySocket = yield* (yield* MemoryTransport).connectTo("legacy", remoteAddress)
    const next = (ms = 3000): Effect.Effect<LegacyFrame> =>
      TestServices.provideLive(Queue.take(socket.frames).pipe(
        Effect.timeoutFail({ duration: ms, onTimeout: () => new Error(`no frame within ${ms} ms`) }),
        Effect.map((t) => JSON.parse(t) as LegacyFrame),
        Effect.orDie
      ))
    const nextRaw = (ms = 3000): Effect.Effect<string> =>
      TestServices.provideLive(Queue.take(socket.frames).pipe(
        Effect.timeoutFail({ duration: ms, onTimeout: () => new Error(`no frame within ${ms} ms`) }),
        Effect.orDie
      ))
    /** Asserts that nothing arrives for a short while (live time). */
    const nothing = (ms = 100) =>
      TestServices.provideLive(Queue.take(socket.frames).pipe(
        Effect.timeout(ms),
        Effect.flatMap((t) => Effect.die(new Error("unexpected frame: " + t.slice(0, 300)))),
        Effect.catchTag("TimeoutException", () => Effect.void)
      ))
    const send = (type: string, payload: unknown) => socket.send(JSON.stringify({ type, payload }))
    /** Sends a request and returns the next frame, which the real client takes as its reply. */
    const request = (type: string, payload: unknown) => Effect.zipRight(send(type, payload), next())
    const register = (clientId: string) => request("register", registerPayload(clientId, id))
    const message = (targetId: string, text = "x") => send("message", { targetId, message: sealed(text) })
    return { id, socket, next, nextRaw, nothing, send, request, register, message }
  })

export type LegacyClient = Effect.Effect.Success<ReturnType<typeof legacyClient>>

/** A connected and registered client. */
export const registered = (clientId: string, id: LegacyIdentity = legacyIdentity()) =>
  Effect.gen(function*() {
    const c = yield* legacyClient(id)
    const reply = yield* c.register(clientId)
    if (reply.type !== "register") return yield* Effect.die(new Error(`register ${clientId}: ${JSON.stringify(reply)}`))
    return c
  })

/** Runs a scenario on TestClock against a fresh NodeCore (memory connections, PGlite); any of its services. */
export const legacyScenario = <A, E>(
  config: Parameters<typeof testNode>[0],
  body: Effect.Effect<A, E, Layer.Layer.Success<ReturnType<typeof testNode>>>,
  sql?: Parameters<typeof testNode>[2]
): Promise<A> =>
  Effect.runPromise(
    body.pipe(
      Effect.provide(testNode(config, undefined, sql)),
      Effect.scoped,
      Effect.provide(TestContext.TestContext)
    ) as Effect.Effect<A, E>
  )
