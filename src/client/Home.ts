/**
 * A messenger whose keys and history live in a folder (Node and Bun), encrypted under a passphrase:
 * `identity.json`, `messages.log`, `node-keys.json` (see `OpenMessenger`). `fromHome` for Effect
 * code, `openMessenger` for Promise code.
 */
import * as FolderStorage from "./FolderStorage.ts"
import type { ChatEvent } from "./Messenger.ts"
import { fromStorage, type MessengerHandle, type MessengerOptions, openWith } from "./OpenMessenger.ts"

export { HISTORY_FILE, type MessengerHandle, storeKeyOf } from "./OpenMessenger.ts"

export interface OpenOptions extends MessengerOptions {
  /** where keys (`identity.json`) and history (`messages.log`) live; created on first use */
  readonly home: string
}

/** Loads (or creates) the identity and history in `home`, then builds the messenger. */
export const fromHome = (o: Omit<OpenOptions, "connect"> & { readonly onEvent?: (event: ChatEvent) => void }) =>
  fromStorage(FolderStorage.make(o.home), o)

export const openMessenger = (o: OpenOptions): Promise<MessengerHandle> => openWith(FolderStorage.make(o.home), o)
