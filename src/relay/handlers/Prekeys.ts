import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Metric from "effect/Metric"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { invalid, refuse } from "../../domain/ErrorCode.ts"
import type { Envelope } from "../../domain/Frames.ts"
import { hexToBytes, normalizeKey } from "../../domain/Keys.ts"
import {
  BundleFetchPayload,
  BundleResponse,
  DevicesResponse,
  DevicePayload,
  isMlKem768PublicKeyHex,
  MAX_ONE_TIME_KEYS_PER_KIND,
  type PrekeyKind,
  PrekeysPublishPayload,
  prekeySigningString,
  type SignedPreKey
} from "../../domain/Prekeys.ts"
import { encodePayload } from "../../domain/ServerFrames.ts"
import * as Metrics from "../../internal/Metrics.ts"
import type { RelayDeps } from "../RelayDeps.ts"
import type { ConnectionContext, Registration } from "../ConnectionContext.ts"

/** Decodes a payload, refusing with what is wrong and where (the first problem, for the developer). */
const decoder = <A, I>(schema: Schema.Schema<A, I>, frame: string) => {
  const decode = Schema.decodeUnknownEither(schema, { errors: "first", onExcessProperty: "ignore" })
  return (payload: unknown) =>
    Either.mapLeft(decode(payload), (e) => {
      const [issue] = ParseResult.ArrayFormatter.formatErrorSync(e)
      const where = issue === undefined || issue.path.length === 0 ? "" : ` at ${issue.path.join(".")}`
      // Without the value itself (`, actual …`): the frame's own content is not echoed back.
      const what = (issue?.message ?? "malformed").replace(/, actual [\s\S]*$/, "").slice(0, 200)
      return invalid(`Invalid ${frame} payload${where}: ${what}`)
    })
}

const decodePublish = decoder(PrekeysPublishPayload, "prekeys_publish")
const decodeDevice = (frame: string) => decoder(DevicePayload, frame)
const decodeCount = decodeDevice("prekeys_count")
const decodeRemove = decodeDevice("device_remove")
const decodeFetch = decoder(BundleFetchPayload, "bundle_fetch")

const registered = (session: ConnectionContext, what: string) =>
  session.registration === undefined
    ? Effect.fail(refuse("REGISTRATION_REQUIRED", `Register before ${what}`))
    : Effect.succeed(session.registration)

const NAMES: Record<PrekeyKind, string> = {
  spk: "signed prekey",
  lrk: "last-resort ML-KEM key",
  opk: "one-time X25519 prekey",
  okem: "one-time ML-KEM key"
}

const encoder = new TextEncoder()

/** Every signature of an upload checked against the account key; the first that fails refuses it all. */
const verifyAll = (
  deps: RelayDeps,
  reg: Registration,
  deviceId: number,
  registrationId: number,
  keys: ReadonlyArray<readonly [PrekeyKind, SignedPreKey]>
) =>
  Effect.forEach(keys, ([kind, k]) =>
    Effect.flatMap(
      deps.validators.verify({
        algorithm: "ed25519",
        publicKey: reg.keyBytes,
        message: encoder.encode(prekeySigningString(kind, deviceId, registrationId, k.keyId, k.publicKey)),
        signature: hexToBytes(k.signature)
      }),
      (ok) => ok ? Effect.void : Effect.fail(refuse("INVALID_SIGNATURE", `The ${NAMES[kind]} ${k.keyId} is not signed by this key`))
    ), { discard: true })

const requesterOf = (session: ConnectionContext, reg: Registration) => ({ l2psUid: reg.l2psUid, key: reg.key, address: session.remoteAddress })

const firstDuplicate = (keys: ReadonlyArray<SignedPreKey>): number | undefined => {
  const seen = new Set<number>()
  for (const k of keys) {
    if (seen.has(k.keyId)) return k.keyId
    seen.add(k.keyId)
  }
  return undefined
}

/**
 * A device's keys: the signed prekey and last-resort key replaced when present (both required for a new
 * device or registration id), one-time keys added to the pools. Stored only when every signature verifies
 * and the bounds hold; answered with what the pools hold then.
 */
export const prekeysPublish = (deps: RelayDeps) => (session: ConnectionContext, frame: Envelope) =>
  Effect.gen(function*() {
    const reg = yield* registered(session, "publishing prekeys")
    const p = yield* decodePublish(frame.payload)
    const opks = p.oneTimePreKeys ?? []
    const kems = p.oneTimeKems ?? []
    for (const [name, keys] of [["oneTimePreKeys", opks], ["oneTimeKems", kems]] as const) {
      const dup = firstDuplicate(keys)
      if (dup !== undefined) return yield* invalid(`${name} holds keyId ${dup} twice`)
    }
    for (const [name, k] of [["last-resort ML-KEM key", p.lastResortKem], ...kems.map((k) => ["one-time ML-KEM key", k] as const)] as const) {
      if (k !== undefined && !isMlKem768PublicKeyHex(k.publicKey)) {
        return yield* invalid(`The ${name} ${k.keyId} is not an ML-KEM-768 public key (a coefficient is not below 3329)`)
      }
    }
    if ((yield* deps.prekeyLimits.take("publish", requesterOf(session, reg))) !== "ok") {
      yield* Metric.increment(Metrics.prekeyRefused("prekeys_publish"))
      return yield* refuse("RATE_LIMITED", `Too many prekey uploads (${deps.cfg.prekeyPublishPerMinute} per minute)`)
    }
    const keys: Array<readonly [PrekeyKind, SignedPreKey]> = []
    if (p.signedPreKey !== undefined) keys.push(["spk", p.signedPreKey])
    if (p.lastResortKem !== undefined) keys.push(["lrk", p.lastResortKem])
    for (const k of opks) keys.push(["opk", k])
    for (const k of kems) keys.push(["okem", k])
    yield* verifyAll(deps, reg, p.deviceId, p.registrationId, keys)
    const result = yield* deps.prekeys.publish({
      l2psUid: reg.l2psUid,
      account: reg.key,
      deviceId: p.deviceId,
      registrationId: p.registrationId,
      signedPreKey: p.signedPreKey,
      lastResortKem: p.lastResortKem,
      oneTimePreKeys: opks,
      oneTimeKems: kems,
      at: deps.now(),
      maxDevices: reg.limits.maxSessionsPerKey,
      maxPerKind: MAX_ONE_TIME_KEYS_PER_KIND
    })
    switch (result._tag) {
      case "SignedKeysMissing":
        return yield* invalid("A new device or registrationId needs both signedPreKey and lastResortKem")
      case "DeviceLimit":
        return yield* refuse("PREKEY_LIMIT", `This key has the most devices allowed (${result.limit}): remove one first (device_remove)`)
      case "PoolFull":
        return yield* refuse("PREKEY_LIMIT", `Too many ${NAMES[result.kind]}s for device ${p.deviceId} (at most ${result.limit} waiting)`)
      case "Published":
        return yield* session.reply("prekeys_published", encodePayload("prekeys_published", {
          deviceId: p.deviceId,
          oneTimePreKeys: result.oneTimePreKeys,
          oneTimeKems: result.oneTimeKems
        }), frame.requestId)
    }
  })

/** How many one-time keys of each kind one of the session's own devices has left. */
export const prekeysCount = (deps: RelayDeps) => (session: ConnectionContext, frame: Envelope) =>
  Effect.gen(function*() {
    const reg = yield* registered(session, "counting prekeys")
    const { deviceId } = yield* decodeCount(frame.payload)
    const counts = yield* deps.prekeys.counts({ l2psUid: reg.l2psUid, account: reg.key, deviceId })
    if (counts === undefined) return yield* refuse("DEVICE_NOT_FOUND", `No prekeys published for device ${deviceId}`)
    yield* session.reply("prekeys_count_response", encodePayload("prekeys_count_response", { deviceId, ...counts }), frame.requestId)
  })

/**
 * The bundles of every device of a key in the caller's network, each with one one-time key of each kind
 * while its pools last (taken out as they are served), else the signed and last-resort keys alone; none
 * for a key the operator banned.
 */
export const bundleFetch = (deps: RelayDeps) => (session: ConnectionContext, frame: Envelope) =>
  Effect.gen(function*() {
    const reg = yield* registered(session, "fetching bundles")
    const p = yield* decodeFetch(frame.payload)
    const verdict = yield* deps.prekeyLimits.take("fetch", requesterOf(session, reg))
    if (verdict !== "ok") {
      yield* Metric.increment(Metrics.prekeyRefused("bundle_fetch"))
      return yield* refuse(
        "RATE_LIMITED",
        verdict === "key"
          ? `Too many bundle fetches (${deps.cfg.bundleFetchPerMinute} per minute)`
          : `Too many bundle fetches from this address (${deps.cfg.bundleFetchPerMinutePerAddress} per minute)`
      )
    }
    const account = normalizeKey(p.publicKey)
    // A banned key cannot register to read what a new session would bring: its keys are kept, unserved.
    const devices = deps.bans.isBanned(account) ? [] : yield* deps.prekeys.claim(reg.l2psUid, account)
    let opk = 0
    let okem = 0
    for (const d of devices) {
      if (d.oneTimePreKey !== undefined) opk++
      if (d.oneTimeKem !== undefined) okem++
    }
    yield* Metric.incrementBy(Metrics.oneTimePrekeysServed("opk"), opk)
    yield* Metric.incrementBy(Metrics.oneTimePrekeysServed("okem"), okem)
    yield* Metric.incrementBy(Metrics.lastResortFallbacks, devices.length - okem)
    const bundles = decodeBundles({
      publicKey: account,
      devices: devices.map((d) => ({
        deviceId: d.deviceId,
        registrationId: d.registrationId,
        signedPreKey: d.signedPreKey,
        lastResortKem: d.lastResortKem,
        ...(d.oneTimePreKey === undefined ? {} : { oneTimePreKey: d.oneTimePreKey }),
        ...(d.oneTimeKem === undefined ? {} : { oneTimeKem: d.oneTimeKem })
      }))
    })
    yield* session.reply("bundle_response", encodePayload("bundle_response", bundles), frame.requestId)
  })

// Stored rows typed through the replies' Schemas: a stored key the format refuses is a defect of the
// node, caught where the reply is built (as `encodePayload` does).
const decodeBundles = Schema.decodeUnknownSync(BundleResponse)
const decodeDevices = Schema.decodeUnknownSync(DevicesResponse)

/** The session's own devices with their pools. */
export const devices = (deps: RelayDeps) => (session: ConnectionContext, frame: Envelope) =>
  Effect.gen(function*() {
    const reg = yield* registered(session, "listing devices")
    const list = yield* deps.prekeys.devices(reg.l2psUid, reg.key)
    yield* session.reply("devices_response", encodePayload("devices_response", decodeDevices({ devices: list })), frame.requestId)
  })

/** Removes one of the session's own devices and its keys: its bundle is served no more. */
export const deviceRemove = (deps: RelayDeps) => (session: ConnectionContext, frame: Envelope) =>
  Effect.gen(function*() {
    const reg = yield* registered(session, "removing devices")
    const { deviceId } = yield* decodeRemove(frame.payload)
    const removed = yield* deps.prekeys.remove({ l2psUid: reg.l2psUid, account: reg.key, deviceId })
    yield* session.reply("device_removed", encodePayload("device_removed", { deviceId, removed }), frame.requestId)
  })
