/**
 * Where a messenger keeps its secure-session secrets: this device's prekeys (and so its device id, chosen
 * once) and every ratchet state, in `secure-sessions.json` sealed under a key derived from the identity
 * (SealedJson), beside the identity file. Each `commit` rewrites the file at once (HomeStorage.write), so
 * after a crash it holds the states before or after an operation, never a mix.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type { HomeStorage } from "./HomeStorage.ts"
import type { Identity } from "./L2psCrypto.ts"
import { keyFor, openJson, sealJson } from "./SealedJson.ts"
import { createDevice, type DeviceState } from "./secure/DeviceKeys.ts"
import { memoryStore, type SecureStore, SecureStoreError, type SessionRecord } from "./secure/SecureSessions.ts"
import { decodeDevice, decodeSession, encodeDevice, encodeSession } from "./secure/StateCodec.ts"

export const SECURE_FILE = "secure-sessions.json"
const PURPOSE = "secure-sessions"

interface StoredRecord {
  readonly active: string
  readonly archived: ReadonlyArray<string>
}

interface Stored {
  readonly device: string
  readonly sessions: Readonly<Record<string, StoredRecord>>
}

const sessionKey = (peer: string, deviceId: number) => `${peer.toLowerCase()}/${deviceId}`

const encodeRecord = (r: SessionRecord): StoredRecord => ({ active: encodeSession(r.active), archived: r.archived.map(encodeSession) })
const decodeRecord = (r: StoredRecord): SessionRecord => ({ active: decodeSession(r.active), archived: r.archived.map(decodeSession) })

const storeError = (message: string) => new SecureStoreError({ message })

/** A store in memory with a new device (tests, throwaway clients). */
export const memory = (identity: Identity) =>
  Effect.map(Clock.currentTimeMillis, (now) => memoryStore(createDevice(identity, { now })) as SecureStore)

/**
 * Opens the sealed file in `storage`, or creates a new device there. States are decoded when first
 * used and kept in memory; the file holds them encoded and is rewritten whole on each commit.
 */
export const open = (storage: HomeStorage, identity: Identity): Effect.Effect<SecureStore, SecureStoreError> =>
  Effect.gen(function*() {
    const key = keyFor(identity, PURPOSE)
    const text = yield* storage.read(SECURE_FILE).pipe(Effect.mapError((e) => storeError(e.message)))
    let stored: { device: string; sessions: Record<string, StoredRecord> }
    if (text === undefined) {
      const device = createDevice(identity, { now: yield* Clock.currentTimeMillis })
      stored = { device: encodeDevice(device), sessions: {} }
      yield* storage.write(SECURE_FILE, sealJson(key, PURPOSE, stored)).pipe(Effect.mapError((e) => storeError(e.message)))
    } else {
      const opened = openJson(key, PURPOSE, text)
      // Never replaced by a new device silently: that would lose every session and the device's place.
      if (Either.isLeft(opened)) return yield* storeError(`${storage.describe(SECURE_FILE)} does not open (${opened.left})`)
      const value = opened.right as Partial<Stored>
      if (typeof value.device !== "string" || typeof value.sessions !== "object" || value.sessions === null) {
        return yield* storeError(`${storage.describe(SECURE_FILE)} is not a secure-sessions file`)
      }
      stored = { device: value.device, sessions: { ...value.sessions } }
    }
    const decode = <A>(f: () => A) => Effect.try({ try: f, catch: (e) => storeError(e instanceof Error ? e.message : String(e)) })
    let device: DeviceState = yield* decode(() => decodeDevice(stored.device))
    const cache = new Map<string, SessionRecord>()
    return {
      loadDevice: Effect.sync(() => device),
      loadSession: (peer, deviceId) =>
        Effect.suspend(() => {
          const k = sessionKey(peer, deviceId)
          const hit = cache.get(k)
          if (hit !== undefined) return Effect.succeed(hit)
          const raw = stored.sessions[k]
          if (raw === undefined) return Effect.succeed(undefined)
          return Effect.tap(decode(() => decodeRecord(raw)), (r) => Effect.sync(() => cache.set(k, r)))
        }),
      commit: (change) =>
        Effect.gen(function*() {
          const sessions = { ...stored.sessions }
          for (const s of change.sessions) {
            const k = sessionKey(s.peer, s.deviceId)
            if (s.record === undefined) delete sessions[k]
            else sessions[k] = encodeRecord(s.record)
          }
          const next = { device: change.device === undefined ? stored.device : encodeDevice(change.device), sessions }
          yield* storage.write(SECURE_FILE, sealJson(key, PURPOSE, next)).pipe(Effect.mapError((e) => storeError(e.message)))
          // Memory follows only once the file holds it, so a failed write changes nothing.
          stored = next
          if (change.device !== undefined) device = change.device
          for (const s of change.sessions) {
            const k = sessionKey(s.peer, s.deviceId)
            if (s.record === undefined) cache.delete(k)
            else cache.set(k, s.record)
          }
        })
    } satisfies SecureStore
  })
