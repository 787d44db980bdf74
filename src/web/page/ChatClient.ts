/**
 * The page's one use of the client library: open (or create) the identity kept in this browser under
 * a passphrase and get a messenger. Everything else in the page talks to the `ChatHandle` only.
 *
 * Until the client's browser entry lands, the sealed identity is kept in `localStorage` (the same
 * sealed `identity.json` text as on disk) and history in memory.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import type { MessengerHandle } from "../../client/Home.ts"
import { runPromise } from "../../client/internal/run.ts"
import * as MessageStore from "../../client/MessageStore.ts"
import { make, Messenger, type MessengerShape } from "../../client/Messenger.ts"
import type { ChatEvent } from "../../client/Messenger.ts"
import * as SecretStore from "../../client/SecretStore.ts"

export type ChatHandle = MessengerHandle
export type { ChatEvent }
export type ChatRecord = MessageStore.ChatRecord

export interface ChatOptions {
  readonly serverUrl: string
  readonly l2psUid: string
  readonly passphrase: string
  /** where this browser keeps the identity (one per identity) */
  readonly database: string
  readonly kdf: SecretStore.KdfParams
}

const loadOrCreate = (o: ChatOptions) =>
  Effect.gen(function*() {
    const key = `${o.database}/${SecretStore.IDENTITY_FILE}`
    const json = localStorage.getItem(key)
    if (json !== null) return { secrets: yield* SecretStore.unseal(json, o.passphrase), created: false }
    const secrets = SecretStore.generateSecrets()
    localStorage.setItem(key, yield* SecretStore.seal(secrets, o.passphrase, o.kdf))
    return { secrets, created: true }
  })

/** Opens the identity without connecting: the page subscribes to events first, then calls `connect()`. */
export const openChat = async (o: ChatOptions): Promise<ChatHandle> => {
  const messageHandlers = new Set<(record: ChatRecord) => void>()
  const eventHandlers = new Set<(event: ChatEvent) => void>()
  const onEvent = (e: ChatEvent) => {
    for (const h of eventHandlers) h(e)
    if (e._tag === "Received") for (const h of messageHandlers) h(e.record)
  }
  let created = false
  const built = Layer.scoped(
    Messenger,
    Effect.gen(function*() {
      const opened = yield* loadOrCreate(o)
      created = opened.created
      return yield* make({ serverUrl: o.serverUrl, l2psUid: o.l2psUid, identity: opened.secrets.identity, store: MessageStore.memory(), onEvent })
    })
  )
  const runtime = ManagedRuntime.make(built)
  const run = <A, E>(f: (m: MessengerShape) => Effect.Effect<A, E>) => runPromise(runtime, Effect.flatMap(Messenger, f))
  try {
    const m = await run((x) => Effect.succeed(x))
    return {
      publicKey: m.publicKey,
      created,
      notices: [],
      send: (to, text) => run((x) => x.send(to, text)),
      peers: () => run((x) => x.onlinePeers),
      conversation: (peer, limit) => run((x) => x.conversation(peer, limit)),
      refresh: (peer) => run((x) => x.refresh(peer)),
      confirm: (hash, from) => run((x) => x.confirm(hash, from)),
      connect: () => run((x) => x.connect),
      onMessage: (h) => void messageHandlers.add(h),
      onEvent: (h) => void eventHandlers.add(h),
      close: () => runtime.dispose()
    }
  } catch (e) {
    await runtime.dispose()
    throw e
  }
}
