/**
 * Secure sessions of one device over a state store: `encryptFor` a list of devices (the recipient's,
 * and this account's other devices), `decrypt` what one device sent. Sessions are keyed by (peer
 * account, peer device); each key holds the active session and a few archived ones, because two
 * devices that start sessions with each other at once each get one, and messages of both may be in
 * flight: the one that opens a message becomes active. Every change (device prekeys and sessions) is
 * one `commit` of the store, made only after the operation succeeded; secrets of the replaced states
 * are overwritten after it.
 */
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { equal, utf8, wipe } from "./Bytes.ts"
import type { AccountIdentity, BundleData, DeviceState, OwnPreKey } from "./DeviceKeys.ts"
import { decodeEnvelope, type Envelope } from "./Envelope.ts"
import { type Cadence, defaultCadence, initiate, respond } from "./Pqxdh.ts"
import { decryptEnvelope, encrypt, type SessionState, wipeSession } from "./Ratchet.ts"
import { safetyNumber } from "./SafetyNumber.ts"
import { SecureError } from "./SecureError.ts"

/** Archived sessions kept per peer device, besides the active one. */
export const MAX_ARCHIVED_SESSIONS = 4

export interface SessionRecord {
  readonly active: SessionState
  readonly archived: ReadonlyArray<SessionState>
}

export class SecureStoreError extends Data.TaggedError("SecureStoreError")<{ readonly message: string }> {}

export interface SessionChange {
  readonly peer: string
  readonly deviceId: number
  /** undefined removes the peer device's sessions */
  readonly record: SessionRecord | undefined
}

/** Where the states live (the encrypted secrets store); `commit` applies all of its changes or none. */
export interface SecureStore {
  readonly loadDevice: Effect.Effect<DeviceState, SecureStoreError>
  readonly loadSession: (peer: string, deviceId: number) => Effect.Effect<SessionRecord | undefined, SecureStoreError>
  readonly commit: (change: { readonly device?: DeviceState; readonly sessions: ReadonlyArray<SessionChange> }) => Effect.Effect<void, SecureStoreError>
}

const sessionKey = (peer: string, deviceId: number) => `${peer.toLowerCase()}/${deviceId}`

/** A store in memory (tests, and a base for others): states are kept as given, never copied. */
export const memoryStore = (device: DeviceState): SecureStore & { readonly sessions: Map<string, SessionRecord>; current: () => DeviceState } => {
  let current = device
  const sessions = new Map<string, SessionRecord>()
  return {
    sessions,
    current: () => current,
    loadDevice: Effect.sync(() => current),
    loadSession: (peer, deviceId) => Effect.sync(() => sessions.get(sessionKey(peer, deviceId))),
    commit: (change) =>
      Effect.sync(() => {
        if (change.device !== undefined) current = change.device
        for (const s of change.sessions) {
          if (s.record === undefined) sessions.delete(sessionKey(s.peer, s.deviceId))
          else sessions.set(sessionKey(s.peer, s.deviceId), s.record)
        }
      })
  }
}

/** One device of a peer (or of this account) to encrypt for: its fetched bundle is needed when no session exists yet. */
export interface Target {
  readonly peer: string
  readonly deviceId: number
  readonly bundle?: BundleData
}

export interface Sealed {
  readonly peer: string
  readonly deviceId: number
  readonly bytes: Uint8Array
}

const attempt = <A>(f: () => A): Effect.Effect<A, SecureError> =>
  Effect.try({
    try: f,
    catch: (e) => e instanceof SecureError ? e : new SecureError({ reason: "Malformed", message: e instanceof Error ? e.message : String(e) })
  })

const toBytes = (plaintext: Uint8Array | string) => typeof plaintext === "string" ? utf8(plaintext) : plaintext

/**
 * An opened message whose new states are not stored yet: the caller stores `change` (with the message,
 * in one transaction, before acknowledging it), then calls `release` to erase what it replaced.
 */
export interface Opened {
  readonly plaintext: Uint8Array
  readonly change: { readonly device?: DeviceState; readonly sessions: ReadonlyArray<SessionChange> }
  readonly release: () => void
}

export interface SecureSessions {
  readonly encryptFor: (targets: ReadonlyArray<Target>, plaintext: Uint8Array | string) => Effect.Effect<ReadonlyArray<Sealed>, SecureError | SecureStoreError>
  /** Opens a message and commits the new states; a refused message changes nothing. */
  readonly decrypt: (from: string, deviceId: number, bytes: Uint8Array) => Effect.Effect<Uint8Array, SecureError | SecureStoreError>
  /**
   * Opens a message without storing anything: for a caller that stores the states together with the
   * message. Run it and that commit inside `exclusive`, so that no other operation reads the states
   * in between.
   */
  readonly prepareDecrypt: (from: string, deviceId: number, bytes: Uint8Array) => Effect.Effect<Opened, SecureError | SecureStoreError>
  /**
   * Runs `effect` while no other operation of these sessions runs: two encryptions from one state
   * would use one message key twice. `encryptFor` and `decrypt` take it themselves.
   */
  readonly exclusive: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** The safety number of this account and `peer` (SafetyNumber.ts). */
  readonly safetyNumber: (peer: string) => string
}

export const make = (identity: AccountIdentity, store: SecureStore, cadence: Cadence = defaultCadence): SecureSessions => {
  const lock = Effect.unsafeMakeSemaphore(1)
  const exclusive = <A, E, R>(effect: Effect.Effect<A, E, R>) => lock.withPermits(1)(effect)

  const encryptFor: SecureSessions["encryptFor"] = (targets, plaintext) =>
    exclusive(Effect.gen(function*() {
      const data = toBytes(plaintext)
      const now = yield* Clock.currentTimeMillis
      const device = yield* store.loadDevice
      const sealed: Array<Sealed> = []
      const changes: Array<SessionChange> = []
      const replaced: Array<SessionState> = []
      // A device named twice gets one message per naming from successive states, never one key twice.
      const pending = new Map<string, SessionRecord>()
      for (const t of targets) {
        if (t.bundle !== undefined && t.bundle.deviceId !== t.deviceId) {
          return yield* new SecureError({ reason: "Malformed", message: `a bundle of device ${t.bundle.deviceId} given for device ${t.deviceId}` })
        }
        const key = sessionKey(t.peer, t.deviceId)
        const record = pending.get(key) ?? (yield* store.loadSession(t.peer, t.deviceId))
        // A bundle of another installation than the session's means the device was reinstalled: start over.
        const fresh = t.bundle !== undefined && (record === undefined || record.active.peerRegistrationId !== t.bundle.registrationId)
        if (!fresh && record === undefined) {
          return yield* new SecureError({ reason: "NoSession", message: `no session with ${t.peer} device ${t.deviceId} and no bundle to start one` })
        }
        const session = fresh ? yield* attempt(() => initiate(identity, device, t.peer, t.bundle!, now, cadence)) : record!.active
        const out = yield* attempt(() => encrypt(session, data, now))
        sealed.push({ peer: t.peer.toLowerCase(), deviceId: t.deviceId, bytes: out.bytes })
        const archived = record === undefined ? [] : fresh ? [record.active, ...record.archived] : record.archived
        const next = { active: out.state, archived: archived.slice(0, MAX_ARCHIVED_SESSIONS) }
        if (!pending.has(key)) changes.push({ peer: t.peer, deviceId: t.deviceId, record: next })
        else changes[changes.findIndex((c) => sessionKey(c.peer, c.deviceId) === key)] = { peer: t.peer, deviceId: t.deviceId, record: next }
        pending.set(key, next)
        replaced.push(session)
        for (const old of archived.slice(MAX_ARCHIVED_SESSIONS)) replaced.push(old)
      }
      yield* store.commit({ sessions: changes })
      for (const old of replaced) wipeSession(old)
      return sealed
    }))

  const openWith = (session: SessionState, envelope: Envelope, now: number) => attempt(() => decryptEnvelope(session, envelope, now))

  const prepareDecrypt: SecureSessions["prepareDecrypt"] = (from, deviceId, bytes) =>
    Effect.gen(function*() {
      const envelope = yield* attempt(() => decodeEnvelope(bytes))
      const h = envelope.header
      if (h.senderDevice !== deviceId) {
        return yield* new SecureError({ reason: "WrongDevice", message: `the message names device ${h.senderDevice}, not ${deviceId}` })
      }
      const now = yield* Clock.currentTimeMillis
      const record = yield* store.loadSession(from, deviceId)
      const all = record === undefined ? [] : [record.active, ...record.archived]
      const opened = (plaintext: Uint8Array, state: SessionState, used: SessionState, device?: DeviceState, consumed: ReadonlyArray<OwnPreKey> = []): Opened => {
        const others = all.filter((s) => s !== used)
        return {
          plaintext,
          change: {
            ...(device === undefined ? {} : { device }),
            sessions: [{ peer: from, deviceId, record: { active: state, archived: others.slice(0, MAX_ARCHIVED_SESSIONS) } }]
          },
          release: () => {
            wipeSession(used)
            for (const old of others.slice(MAX_ARCHIVED_SESSIONS)) wipeSession(old)
            for (const k of consumed) wipe(k.secretKey)
          }
        }
      }
      const p = h.prekey
      if (p !== undefined) {
        const same = all.find((s) => !s.initiator && s.baseKey !== undefined && equal(s.baseKey, p.baseKey))
        if (same !== undefined) {
          const out = yield* openWith(same, envelope, now)
          return opened(out.plaintext, out.state, same)
        }
        const device = yield* store.loadDevice
        const started = yield* attempt(() => respond(identity, device, from, envelope, now, cadence))
        const out = yield* openWith(started.session, envelope, now).pipe(Effect.tapError(() => Effect.sync(() => wipeSession(started.session))))
        return opened(out.plaintext, out.state, started.session, started.device, started.consumed)
      }
      if (all.length === 0) return yield* new SecureError({ reason: "NoSession", message: `no session with ${from} device ${deviceId}` })
      let firstError: SecureError | undefined
      for (const session of all) {
        const out = yield* Effect.either(openWith(session, envelope, now))
        if (out._tag === "Right") return opened(out.right.plaintext, out.right.state, session)
        firstError ??= out.left
      }
      return yield* firstError!
    })

  const decrypt: SecureSessions["decrypt"] = (from, deviceId, bytes) =>
    exclusive(Effect.gen(function*() {
      const out = yield* prepareDecrypt(from, deviceId, bytes)
      yield* store.commit(out.change)
      out.release()
      return out.plaintext
    }))

  return { encryptFor, decrypt, prepareDecrypt, exclusive, safetyNumber: (peer) => safetyNumber(identity.publicKey, peer) }
}
