import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Metrics from "../../internal/Metrics.ts"
import { invalid, refuse } from "../../domain/ErrorCode.ts"
import { encodeFrame, type Envelope, payloadOf, RegisterPayload } from "../../domain/Frames.ts"
import { hexToBytes, isPublicKey, isStrictPublicKey, normalizeKey } from "../../domain/Keys.ts"
import type { PayloadEncoded } from "../../domain/ServerFrames.ts"
import type { RelayDeps } from "../RelayDeps.ts"
import type { ConnectionContext } from "../ConnectionContext.ts"
import { flushPending } from "./Delivery.ts"
import { verifyProof } from "./Proofs.ts"
import { unregister } from "./Unregister.ts"

const decode = payloadOf(RegisterPayload, "Missing publicKey, l2psUid, or proof")

export const EVICTED_CODE = 4001
export const BANNED_MESSAGE = "This key is banned on this node"

export const register = (deps: RelayDeps) => (session: ConnectionContext, frame: Envelope) =>
  Effect.gen(function*() {
    const p = yield* decode(frame.payload)
    if (!isPublicKey(p.publicKey)) return yield* invalid("Invalid publicKey format (expected 64 hex characters)")
    const limits = deps.cfg.networks.get(p.l2psUid)
    if (limits === undefined) return yield* refuse("L2PS_NOT_FOUND", `L2PS network ${p.l2psUid} not found`)
    if (!(yield* deps.addressLimits.register(session.remoteAddress))) {
      return yield* refuse("RATE_LIMITED", "Too many registrations from this address")
    }
    const key = normalizeKey(p.publicKey)
    const keyBytes = hexToBytes(key)
    if (!isStrictPublicKey(keyBytes)) {
      return yield* invalid("Invalid publicKey: not the canonical encoding of an ed25519 key of full order")
    }
    yield* verifyProof(deps, "register", p.publicKey, frame.timestamp, key, keyBytes, p.proof, session.remoteAddress, p.l2psUid, p.proofVersion)
    // After the proof: whether a key is banned is told only to who holds it.
    if (deps.bans.isBanned(key)) return yield* refuse("KEY_BANNED", BANNED_MESSAGE)

    if (session.registration !== undefined) yield* unregister(deps, session)
    const base = {
      key,
      keyAsSent: p.publicKey,
      keyBytes,
      l2psUid: p.l2psUid,
      limits,
      ackCapable: p.capabilities?.includes("ack") ?? false,
      copies: p.capabilities?.includes("copies") ?? false,
      receipts: p.capabilities?.includes("receipts") ?? false,
      binaryFrames: p.capabilities?.includes("binary") ?? false,
      quietAcks: p.capabilities?.includes("quiet_acks") ?? false
    }
    const reg = { ...base, peer: session.asPeer(base) }
    session.registration = reg
    session.registered()
    const { first, evicted } = yield* deps.roster.add(reg.peer, limits.maxSessionsPerKey)
    yield* Metric.incrementBy(Metrics.sessions, 1 - evicted.length)
    for (const old of evicted) old.close(EVICTED_CODE, "Replaced by a newer session of the same key")
    // Before storage is read below: a message committed on another node after that read is pushed here.
    // Every session, not only on `first`: in a cluster `first` is the cluster's, the subject follows this
    // node's own sessions, and every session waits for its key's subscription (alone it does nothing).
    yield* deps.router.track(reg.l2psUid, key)

    // Bounded as a discover page is (the rest through `discover`'s cursor).
    const max = deps.cfg.discoverMaxPeers
    const onlinePeers = (yield* deps.roster.keysPage(reg.l2psUid, 0, max + 1)).keys.filter((k) => k !== key).slice(0, max)
    // Typed by its Schema, not encoded through it: a check per peer key would cost up to 0.7 ms a
    // registration (ServerFrames.ts); the tests decode what the node sends.
    const registered: PayloadEncoded<"registered"> = {
      success: true,
      publicKey: p.publicKey,
      l2psUid: p.l2psUid,
      onlinePeers,
      ...grantedOf(p.capabilities)
    }
    yield* session.reply("registered", registered, frame.requestId)
    if (first) yield* deps.presence.changed(reg.l2psUid, key, true)
    // Most keys have nothing waiting; a message committed after the probe is pushed live to this session.
    if (yield* deps.pendingProbe.hasWaiting(reg.l2psUid, key)) yield* flushPending(deps, session, reg, true)
  })

/** Capabilities the node names back in `registered`: every one it knows, from a session that asked for one of the wire's. */
const KNOWN_CAPABILITIES = ["ack", "copies", "binary", "quiet_acks", "receipts"]

/**
 * The `capabilities` member of `registered`: what the session asked for and the node grants, so that a
 * client knows the node reads binary frames (or forwards receipts) before it writes one. Only for
 * sessions that asked for `binary`, `quiet_acks` or `receipts`: the others get `registered` as the
 * reference writes it.
 */
const grantedOf = (asked: ReadonlyArray<string> | undefined): { capabilities?: Array<string> } =>
  asked !== undefined && (asked.includes("binary") || asked.includes("quiet_acks") || asked.includes("receipts"))
    ? { capabilities: KNOWN_CAPABILITIES.filter((c) => asked.includes(c)) }
    : {}
