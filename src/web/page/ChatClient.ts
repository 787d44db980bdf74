/**
 * The page's one use of the client library: its browser entry, which keeps the identity and history
 * in this browser's IndexedDB, sealed under the passphrase. Everything else in the page talks to the
 * `ChatHandle` only.
 */
import * as Effect from "effect/Effect"
import { type ChatEvent, type ChatRecord, IndexedDbStorage, type MessengerHandle, openMessenger, SecretStore } from "../../client/browser.ts"

export type ChatHandle = MessengerHandle
export type { ChatEvent, ChatRecord }

export interface ChatOptions {
  readonly serverUrl: string
  readonly l2psUid: string
  readonly passphrase: string
  /** the IndexedDB database of this identity */
  readonly database: string
  /** scrypt cost for an identity created now (an existing one keeps its own) */
  readonly kdf: SecretStore.KdfParams
}

/** Opens (or creates) the identity without connecting: the page subscribes to events first, then calls `connect()`. */
export const openChat = (o: ChatOptions): Promise<ChatHandle> =>
  openMessenger({ serverUrl: o.serverUrl, l2psUid: o.l2psUid, passphrase: o.passphrase, home: o.database, kdf: o.kdf, connect: false })

/** The public key of the identity this browser holds in `database`, read without the passphrase. */
export const storedKey = (database: string): Promise<string | undefined> =>
  Effect.runPromise(SecretStore.publicKeyIn(IndexedDbStorage.make(database)).pipe(Effect.orElseSucceed(() => undefined)))
