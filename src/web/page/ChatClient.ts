/**
 * The page's one use of the client library: its browser entry, which keeps the identity and history
 * in this browser's IndexedDB, sealed under the passphrase. Everything else in the page talks to the
 * `ChatHandle` only.
 */
import { type ChatEvent, type ChatRecord, type MessengerHandle, openMessenger } from "../../client/browser.ts"
import type { KdfParams } from "../../client/SecretStore.ts"

export type ChatHandle = MessengerHandle
export type { ChatEvent, ChatRecord }

export interface ChatOptions {
  readonly serverUrl: string
  readonly l2psUid: string
  readonly passphrase: string
  /** the IndexedDB database of this identity */
  readonly database: string
  /** scrypt cost for an identity created now (an existing one keeps its own) */
  readonly kdf: KdfParams
}

/** Opens (or creates) the identity without connecting: the page subscribes to events first, then calls `connect()`. */
export const openChat = (o: ChatOptions): Promise<ChatHandle> =>
  openMessenger({ serverUrl: o.serverUrl, l2psUid: o.l2psUid, passphrase: o.passphrase, home: o.database, kdf: o.kdf, connect: false })
