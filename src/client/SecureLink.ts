/**
 * Secure sessions on a messenger's connection (docs/PROTOCOL.md, "Secure sessions" and "Several
 * devices"): this device's bundle published when it registers, its one-time pools refilled when the
 * node holds fewer than `REFILL_BELOW`, its signed prekeys rotated on a schedule; messages sealed for
 * every device of the recipient in one parcel, and opened with the states stored before the ack.
 *
 * Which scheme a recipient gets: the secure one when `bundle_fetch` lists at least one device of its
 * key, today's `x25519-aes-256-gcm/v1` when it lists none (a peer that never published, such as the SDK's
 * `L2PSMessagingPeer`, or a node without the prekey frames). The answer is kept `deviceListTtlMs`, and
 * used past it while the node cannot be asked (a message typed then waits in the outbox, sealed).
 */
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { MAX_PUBLISH_ONE_TIME_KEMS, MAX_PUBLISH_ONE_TIME_PREKEYS } from "../domain/Prekeys.ts"
import { messageHashOf } from "./L2psCrypto.ts"
import type { Identity } from "./L2psCrypto.ts"
import type { L2psError, L2psPeerShape } from "./L2psPeer.ts"
import { fromBase64, toBase64 } from "./MlKemAes.ts"
import {
  addOneTimeKeys,
  type BundleData,
  DEFAULT_ONE_TIME_KEMS,
  DEFAULT_ONE_TIME_PREKEYS,
  type OwnPreKey,
  publishPayload,
  refillCounts,
  rotateSignedPreKeys,
  rotationDue
} from "./secure/DeviceKeys.ts"
import { decodeEnvelope } from "./secure/Envelope.ts"
import { decodeParcel, encodeParcel, PARCEL_VERSION } from "./secure/Parcel.ts"
import { SecureError } from "./secure/SecureError.ts"
import { wipeSession } from "./secure/Ratchet.ts"
import * as SecureSessions from "./secure/SecureSessions.ts"
import type { SerializedEncryptedMessage } from "./Wire.ts"

/** Failures of a request that say nothing of the recipient: the node was not there to answer. */
const UNREACHABLE: ReadonlySet<string> = new Set(["NOT_REGISTERED", "TIMEOUT", "DISCONNECTED"])

/** What a parcel's `encrypted.nonce` holds: the member must not be empty; the parcel carries its own nonces. */
export const SECURE_NONCE = "secure"

const WEEK = 7 * 24 * 3_600_000

export interface SecureLinkOptions {
  /** How long a recipient's device list is used before it is fetched again (default 10 minutes). */
  readonly deviceListTtlMs?: number
  /** How often the signed prekeys are replaced (default one week). */
  readonly rotateEveryMs?: number
}

export class SecureLinkError extends Data.TaggedError("SecureLinkError")<{ readonly message: string }> {}

/**
 * The first byte of a secure message's plaintext says its form. 0x00: written before the envelope,
 * `sentAt (u64) ‖ UTF-8 text` (a millisecond clock's top byte is 0 until the year 2,280,000). 0x01:
 * `0x01 ‖ sentAt (u64) ‖ envelope` (content/Content.ts: type, version, body, position, previous).
 */
export const PLAINTEXT_ENVELOPE = 0x01

/** What a part opened to: a text of the form before the envelope, or an envelope. */
export type OpenedBody =
  | { readonly _tag: "Text"; readonly text: string }
  | { readonly _tag: "Envelope"; readonly envelope: Uint8Array }

export interface OpenedSecure {
  readonly sentAt: number
  /** the sender's device, from the session header */
  readonly senderDevice: number
  readonly body: OpenedBody
}

export const isParcel = (encrypted: SerializedEncryptedMessage): boolean =>
  encrypted.ephemeralKey === undefined && encrypted.nonce === SECURE_NONCE

const u64 = (n: number) => {
  const b = new Uint8Array(8)
  new DataView(b.buffer).setBigUint64(0, BigInt(n))
  return b
}

/** Why a message was refused, as the user is told (the core's reason, then its detail). */
const REASONS: Partial<Record<SecureError["reason"], string>> = {
  Replay: "it was opened before: a replay",
  WrongDevice: "it was not sealed for this device",
  NoSession: "no session with the sender's device (it may predate this installation)",
  UnknownPrekey: "it names prekeys this device does not have (used, rotated away, or another installation's)",
  DecryptFailed: "it could not be decrypted",
  CounterJump: "it skips too many messages",
  BadSignature: "a signature does not verify",
  Malformed: "it is malformed"
}

const messageError = (e: unknown) =>
  new SecureLinkError({
    message: e instanceof SecureError ? `${REASONS[e.reason] ?? e.reason} (${e.message})` : e instanceof Error ? e.message : String(e)
  })

export const make = (identity: Identity, peer: L2psPeerShape, store: SecureSessions.SecureStore, options: SecureLinkOptions = {}) =>
  Effect.gen(function*() {
    const sessions = SecureSessions.make(identity, store)
    const ttl = options.deviceListTtlMs ?? 10 * 60_000
    const rotateEvery = options.rotateEveryMs ?? WEEK
    const known = new Map<string, { readonly at: number; readonly bundles: ReadonlyArray<BundleData> }>()
    const deviceId = (yield* store.loadDevice).deviceId
    const me = identity.publicKey.toLowerCase()

    /** Erases retired private keys, once the state without them is stored. */
    const wipeKeys = (keys: ReadonlyArray<OwnPreKey>) => Effect.sync(() => keys.forEach((k) => k.secretKey.fill(0)))

    /**
     * Brings the node's copy of this device up to date: the whole bundle when the node has none (or another
     * installation's), fresh one-time keys below the threshold, new signed prekeys when due.
     */
    const maintain: Effect.Effect<void, L2psError | SecureSessions.SecureStoreError> = sessions.exclusive(Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      let device = yield* store.loadDevice
      if (rotationDue(device, now, rotateEvery)) {
        const rotated = rotateSignedPreKeys(device, identity, now)
        yield* store.commit({ device: rotated.device, sessions: [] })
        yield* wipeKeys(rotated.retired)
        device = rotated.device
      }
      const listed = (yield* peer.devices).devices.find((d) => d.deviceId === device.deviceId)
      if (listed === undefined || listed.registrationId !== device.registrationId) {
        // A first publish carries at most a frame's batch of one-time keys; the rest come as refills.
        const full = publishPayload(device)
        yield* peer.prekeysPublish({ ...full, oneTimePreKeys: (full.oneTimePreKeys ?? []).slice(0, MAX_PUBLISH_ONE_TIME_PREKEYS), oneTimeKems: (full.oneTimeKems ?? []).slice(0, MAX_PUBLISH_ONE_TIME_KEMS) })
        return
      }
      // Signed keys the node does not hold yet (a rotation since the last publish) are sent again; a
      // publish that replaces them with the same keys changes nothing.
      yield* peer.prekeysPublish({
        deviceId: device.deviceId,
        registrationId: device.registrationId,
        signedPreKey: publishPayload(device).signedPreKey!,
        lastResortKem: publishPayload(device).lastResortKem!
      }).pipe(Effect.when(() => device.signedPreKey.createdAt > listed.updatedAt))
      const counts = refillCounts(listed, { preKeys: DEFAULT_ONE_TIME_PREKEYS, kems: DEFAULT_ONE_TIME_KEMS })
      if (counts.preKeys === 0 && counts.kems === 0) return
      const added = addOneTimeKeys(device, identity, { preKeys: Math.min(counts.preKeys, MAX_PUBLISH_ONE_TIME_PREKEYS), kems: Math.min(counts.kems, MAX_PUBLISH_ONE_TIME_KEMS), now })
      // Stored before publishing: a key the node hands out must be one this device can open.
      yield* store.commit({ device: added.device, sessions: [] })
      yield* wipeKeys(added.retired)
      yield* peer.prekeysPublish({
        deviceId: device.deviceId,
        registrationId: device.registrationId,
        oneTimePreKeys: [...added.oneTimePreKeys],
        oneTimeKems: [...added.oneTimeKems]
      })
    }))

    const dropSessions = (peerKey: string, deviceIds: ReadonlyArray<number>) =>
      Effect.gen(function*() {
        const records = yield* Effect.forEach(deviceIds, (id) => store.loadSession(peerKey, id))
        yield* store.commit({ sessions: deviceIds.map((id) => ({ peer: peerKey, deviceId: id, record: undefined })) })
        for (const r of records) if (r !== undefined) for (const st of [r.active, ...r.archived]) wipeSession(st)
      }).pipe(Effect.ignore)

    const bundlesOf = (to: string, now: number) =>
      Effect.gen(function*() {
        const hit = known.get(to)
        if (hit !== undefined && now - hit.at < ttl) return hit.bundles
        // Not connected: sealed with the last list at once, rather than after a request's timeout.
        if (hit !== undefined && !(yield* peer.snapshot).registered) return hit.bundles
        const fetched = yield* peer.bundleFetch(to).pipe(
          // The node away: the last list still seals (a device added meanwhile gets the next message),
          // instead of failing what the person typed. Only the node's own answer replaces it.
          Effect.catchIf((e) => hit !== undefined && UNREACHABLE.has(e.code), () => Effect.succeed(undefined))
        )
        if (fetched === undefined) return hit!.bundles
        const answer = fetched
        known.set(to, { at: now, bundles: answer.devices })
        // A device listed before and gone now was removed (or its account banned): its sessions are
        // dropped and erased, so nothing more is sealed for it and its keys do not linger.
        const listed = new Set<number>(answer.devices.map((b) => b.deviceId))
        const gone = (hit?.bundles ?? []).filter((b) => !listed.has(b.deviceId)).map((b) => b.deviceId)
        if (gone.length > 0) yield* sessions.exclusive(dropSessions(to, gone))
        return answer.devices
      })

    /**
     * Seals `envelope` for every device of `to` with a bundle; undefined when it has none (today's scheme
     * then). A device whose registration id changed gets a new session (encryptFor sees the new bundle).
     */
    const seal = (to: string, envelope: Uint8Array, sentAt: number, ownDevices = true) =>
      Effect.gen(function*() {
        const bundles = yield* bundlesOf(to, sentAt)
        if (bundles.length === 0) return undefined
        // This account's other devices get a part too: they read it from the history (`openOwn`).
        // Not for receipts (`ownDevices` false): nothing there for them to show.
        const mine = ownDevices ? (yield* bundlesOf(me, sentAt).pipe(Effect.orElseSucceed(() => []))).filter((b) => b.deviceId !== deviceId) : []
        const data = new Uint8Array(9 + envelope.length)
        data[0] = PLAINTEXT_ENVELOPE
        data.set(u64(sentAt), 1)
        data.set(envelope, 9)
        const targets = [
          ...bundles.map((b) => ({ peer: to, deviceId: b.deviceId, bundle: b })),
          ...mine.map((b) => ({ peer: me, deviceId: b.deviceId, bundle: b }))
        ]
        const sealed = yield* sessions.encryptFor(targets, data).pipe(Effect.mapError(messageError))
        const encrypted: SerializedEncryptedMessage = {
          ciphertext: toBase64(encodeParcel(sealed.map((s, i) => ({ owner: i < bundles.length ? "recipient" : "sender", deviceId: s.deviceId, envelope: s.bytes })))),
          nonce: SECURE_NONCE
        }
        return { encrypted, messageHash: messageHashOf(identity.publicKey, to, encrypted, sentAt) }
      })

    /**
     * A receipt rides on the ack (capability "receipts"): sealed for the one device that sent the message
     * (it has a session with this device, so no prekey header makes it large), and bound by what it
     * names rather than by a message hash. Undefined when that device has no bundle any more.
     */
    const sealReceipt = (to: string, device: number, envelope: Uint8Array, sentAt: number) =>
      Effect.gen(function*() {
        const bundle = (yield* bundlesOf(to, sentAt)).find((b) => b.deviceId === device)
        if (bundle === undefined) return undefined
        const data = new Uint8Array(9 + envelope.length)
        data[0] = PLAINTEXT_ENVELOPE
        data.set(u64(sentAt), 1)
        data.set(envelope, 9)
        const sealed = yield* sessions.encryptFor([{ peer: to, deviceId: device, bundle }], data).pipe(Effect.mapError(messageError))
        return toBase64(encodeParcel(sealed.map((s) => ({ owner: "recipient" as const, deviceId: s.deviceId, envelope: s.bytes }))))
      })

    /**
     * Opens a parcel's part for this device. Runs `store` (which keeps the message) and then commits the
     * states, all while no other operation of the sessions runs; a refusal changes no state.
     */
    const open = <E>(
      from: string,
      to: string,
      encrypted: SerializedEncryptedMessage,
      /** undefined for a receipt riding on `message_delivered`: it has no hash of its own */
      messageHash: string | undefined,
      keep: (opened: OpenedSecure) => Effect.Effect<void, E>
    ) =>
      sessions.exclusive(Effect.gen(function*() {
        const parsed = yield* Effect.try({
          try: () => {
            const bytes = fromBase64(encrypted.ciphertext)
            if (bytes[0] !== PARCEL_VERSION) throw new SecureError({ reason: "Malformed", message: `unknown secure message version ${bytes[0]}` })
            const owner = from.toLowerCase() === me ? "sender" : "recipient"
            const part = decodeParcel(bytes).find((p) => p.owner === owner && p.deviceId === deviceId)
            if (part === undefined) throw new SecureError({ reason: "WrongDevice", message: `no part for device ${deviceId}` })
            return { part, sender: decodeEnvelope(part.envelope).header.senderDevice }
          },
          catch: messageError
        })
        const opened = yield* sessions.prepareDecrypt(from, parsed.sender, parsed.part.envelope).pipe(Effect.mapError(messageError))
        const plain = opened.plaintext
        const form = plain[0]
        const at = form === PLAINTEXT_ENVELOPE ? 1 : 0
        if ((form !== 0 && form !== PLAINTEXT_ENVELOPE) || plain.length < at + 8) {
          return yield* new SecureLinkError({ message: `it is malformed (plaintext form ${form ?? "missing"})` })
        }
        const sentAt = Number(new DataView(plain.buffer, plain.byteOffset + at, 8).getBigUint64(0))
        // Bound to its hash as today's messages are: the same ciphertext under another hash is a replay.
        const canonical = { ciphertext: encrypted.ciphertext, nonce: encrypted.nonce }
        if (messageHash !== undefined && messageHashOf(from.toLowerCase(), to.toLowerCase(), canonical, sentAt) !== messageHash.toLowerCase()) {
          return yield* new SecureLinkError({ message: "it is an earlier message of the sender's sent again under a new hash (a replay)" })
        }
        const body: OpenedBody = form === PLAINTEXT_ENVELOPE
          ? { _tag: "Envelope", envelope: plain.slice(9) }
          : { _tag: "Text", text: yield* Effect.try({ try: () => new TextDecoder("utf-8", { fatal: true }).decode(plain.subarray(8)), catch: messageError }) }
        yield* keep({ sentAt, senderDevice: parsed.sender, body })
        yield* store.commit(opened.change)
        opened.release()
      }))

    /**
     * `maintain` every `everyMs` while `registered` says so, on the Clock (so TestClock drives rotation
     * and refills); failures wait for the next turn (the node is asked again on each registration too).
     */
    const maintainEvery = (everyMs: number, registered: Effect.Effect<boolean>) =>
      Effect.sleep(Duration.millis(everyMs)).pipe(
        Effect.zipRight(Effect.ignore(maintain).pipe(Effect.whenEffect(registered))),
        Effect.forever
      )

    return {
      deviceId,
      maintain,
      maintainEvery,
      seal,
      sealReceipt,
      open,
      /** Forget a recipient's device list (a send failed, or a device was seen to go). */
      forget: (to: string) => Effect.sync(() => known.delete(to)),
      safetyNumber: sessions.safetyNumber
    }
  })

export type SecureLink = Effect.Effect.Success<ReturnType<typeof make>>
