/**
 * Where a messenger keeps its missed-message state (MissedTracker's snapshot: open gaps, reported ones,
 * recent links per peer device) across restarts: `missed.json` beside the history, sealed under a key
 * derived from the identity (SealedJson). Rewritten whole on each change; a file that does not open
 * starts afresh (the worst case is a gap reported again or not at all, never a lost message).
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type { HomeStorage } from "./HomeStorage.ts"
import type { Identity } from "./L2psCrypto.ts"
import type { MissedStore } from "./Messenger.ts"
import { keyFor, openJson, sealJson } from "./SealedJson.ts"

export const MISSED_FILE = "missed.json"
const PURPOSE = "missed"

export const open = (storage: HomeStorage, identity: Identity): MissedStore => {
  const key = keyFor(identity, PURPOSE)
  return {
    load: storage.read(MISSED_FILE).pipe(
      Effect.map((text) => {
        if (text === undefined) return undefined
        const opened = openJson(key, PURPOSE, text)
        return Either.isRight(opened) ? opened.right : undefined
      }),
      Effect.orElseSucceed(() => undefined)
    ),
    save: (snapshot) =>
      storage.write(MISSED_FILE, sealJson(key, PURPOSE, snapshot)).pipe(
        Effect.tapError((e) => Effect.logWarning(`the missed-message state was not saved: ${e.message}`)),
        Effect.ignore
      )
  }
}
