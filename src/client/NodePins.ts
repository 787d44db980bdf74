/**
 * The ML-DSA key of each node a client talks to, pinned on first use (the first batch signature that
 * verifies) so that later inclusion proofs are checked against it (SECURITY.md 15). `open` keeps them
 * in `node-keys.json` of a `HomeStorage` sealed with the identity's secrets (`SealedJson`), one key per server URL.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type { HomeStorage } from "./HomeStorage.ts"
import type { Identity } from "./L2psCrypto.ts"
import { keyFor, openJson, sealJson } from "./SealedJson.ts"

export const PINS_FILE = "node-keys.json"
const PURPOSE = "node-keys"
const KEY = /^[0-9a-f]+$/

export interface NodePinsShape {
  readonly get: (server: string) => Effect.Effect<string | undefined>
  /** Pins `key` for `server` unless one is pinned already (the first stays). */
  readonly pin: (server: string, key: string) => Effect.Effect<void>
}

const make = (initial: Record<string, string>, persist: (all: Record<string, string>) => Effect.Effect<void>): NodePinsShape => {
  const pins = { ...initial }
  return {
    get: (server) => Effect.sync(() => pins[server]),
    pin: (server, key) =>
      Effect.suspend(() => {
        if (pins[server] !== undefined) return Effect.void
        pins[server] = key.toLowerCase()
        return persist({ ...pins })
      })
  }
}

export const memory = (): NodePinsShape => make({}, () => Effect.void)

/**
 * The pins in `storage`; `problem` says why a file there was not used (changed or damaged: the node
 * keys are then pinned again on first use). A pin that cannot be written is kept in memory.
 */
export const open = (storage: HomeStorage, identity: Identity): Effect.Effect<{ readonly pins: NodePinsShape; readonly problem?: string }> =>
  Effect.gen(function*() {
    const key = keyFor(identity, PURPOSE)
    const persist = (all: Record<string, string>) => storage.write(PINS_FILE, sealJson(key, PURPOSE, all)).pipe(Effect.ignore)
    const text = yield* storage.read(PINS_FILE).pipe(Effect.orElseSucceed(() => ""))
    if (text === undefined) return { pins: make({}, persist) }
    const opened = openJson(key, PURPOSE, text)
    const valid = Either.isRight(opened) && typeof opened.right === "object" && opened.right !== null &&
      Object.values(opened.right).every((v) => typeof v === "string" && KEY.test(v))
    if (valid) return { pins: make(opened.right as Record<string, string>, persist) }
    return {
      pins: make({}, persist),
      problem: `${storage.describe(PINS_FILE)} does not open with your identity (changed or damaged): node keys will be pinned again`
    }
  })
