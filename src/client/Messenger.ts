/**
 * A whole chat client in one service: an identity, end-to-end encryption (`L2psCrypto`), the L2PS
 * connection with delivery acknowledgements, and a history store. Received messages are stored
 * before they are acknowledged, so a crash never loses one (the node delivers it again and the
 * store drops the duplicate). `Home.ts` builds one from a folder, for Effect and Promise code.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js"
import * as Content from "./content/Content.ts"
import * as ContentType from "./content/ContentType.ts"
import * as MissedTracker from "./content/MissedTracker.ts"
import { fromBase64, toBase64 } from "./MlKemAes.ts"
import { safetyNumber } from "./secure/SafetyNumber.ts"
import { type Identity, openMessage, type Opened, sealBound, signFnOf } from "./L2psCrypto.ts"
import type { InviteError } from "./Invite.ts"
import * as Invites from "./Invites.ts"
import * as L2psPeer from "./L2psPeer.ts"
import * as MessageStore from "./MessageStore.ts"
import * as NodePins from "./NodePins.ts"
import * as Outbox from "./Outbox.ts"
import { batchSigner, type ProofCheck, verifyProof } from "./Proofs.ts"
import type { ReconnectOptions } from "./Reconnect.ts"
import { type BundleData, createDevice, bundleOf } from "./secure/DeviceKeys.ts"
import type { SecureStore } from "./secure/SecureSessions.ts"
import * as SecureLink from "./SecureLink.ts"
import * as SecureState from "./SecureState.ts"
import type { ConnectionState, ErrorPayload, IncomingMessagePayload, RegisteredPayload } from "./Wire.ts"
import { supervise } from "./internal/supervise.ts"
import { MAX_RECEIPT_CHARS } from "../domain/Frames.ts"

/** Acknowledgements waiting to be sent at once. */
const ACKS_MAX = 4096

export type ChatEvent =
  /** `content`: a payload of a type given in `types`, read (otherwise the record's `text`). */
  | { readonly _tag: "Received"; readonly record: MessageStore.ChatRecord; readonly content?: { readonly type: ContentType.ContentType<any>; readonly body: unknown } }
  /** `otherDevice`: sent by another device of this account (a copy, or read from history). */
  | { readonly _tag: "Sent"; readonly record: MessageStore.ChatRecord; readonly otherDevice?: true }
  /**
   * `device`: which of the recipient's devices has it, from its sealed receipt (one event per device);
   * without it, the node's word that one of them took it (peers without secure sessions).
   */
  | { readonly _tag: "Delivered"; readonly record: MessageStore.ChatRecord; readonly device?: number }
  /** A message of a type or version this client does not read: stored (`record.content`), never dropped. */
  | {
    readonly _tag: "Unsupported"
    readonly record: MessageStore.ChatRecord
    readonly name: string
    readonly version: number
    readonly reason: NonNullable<MessageStore.ChatRecord["unsupported"]>
    readonly body: Uint8Array
  }
  /** `count` messages of `peer`'s `device` have not arrived (dropped, deleted or withheld) for the grace period. */
  | { readonly _tag: "Missed"; readonly peer: string; readonly device?: number; readonly count: number }
  /** `count` messages reported missed have arrived after all. */
  | { readonly _tag: "Recovered"; readonly peer: string; readonly device?: number; readonly count: number }
  /** A message that does not follow the one before it at its position: not the sequence that device wrote. */
  | { readonly _tag: "Forked"; readonly peer: string; readonly device: number; readonly position: number }
  | { readonly _tag: "SendFailed"; readonly record: MessageStore.ChatRecord; readonly error: string }
  /** Not shown: it did not open, was a replay of an earlier message, or unbound while bound ones are required. */
  | { readonly _tag: "Undecryptable"; readonly from: string; readonly messageHash: string; readonly reason: string }
  | { readonly _tag: "Connection"; readonly state: ConnectionState }
  | { readonly _tag: "Retrying"; readonly attempt: number; readonly delayMillis: number }
  | { readonly _tag: "Registered"; readonly reconnect: boolean; readonly onlinePeers: ReadonlyArray<string> }
  | { readonly _tag: "PeerJoined" | "PeerLeft"; readonly publicKey: string }
  | { readonly _tag: "ServerError"; readonly error: ErrorPayload }

export class MessengerError extends Data.TaggedError("MessengerError")<{ readonly message: string }> {}

export interface MessengerConfig {
  readonly serverUrl: string
  /** default "default" */
  readonly l2psUid?: string | undefined
  readonly identity: Identity
  /** default: in memory */
  readonly store?: MessageStore.MessageStoreShape | undefined
  readonly reconnect?: Partial<ReconnectOptions> | undefined
  readonly timeouts?: L2psPeer.L2psPeerConfig["timeouts"]
  /**
   * Binary frames and acknowledgements the node does not answer (docs/PROTOCOL.md, "Binary frames"), when
   * the node grants them; true by default, false for JSON frames only (e.g. to read them in a debugger).
   */
  readonly binaryFrames?: boolean | undefined
  /** Called synchronously for every event, before the streams see it. */
  readonly onEvent?: ((event: ChatEvent) => void) | undefined
  /**
   * Refuse messages not bound to their hash (from SDK clients or `sealFor`) instead of showing them
   * marked `unbound` (SECURITY.md 18). Default false.
   */
  readonly requireBound?: boolean | undefined
  /** The node's ML-DSA public key (hex), when the app knows it: inclusion proofs must be signed by it. */
  readonly nodeKey?: string | undefined
  /** Where the node's key is pinned on first use when `nodeKey` is not given (default: in memory). */
  readonly pins?: NodePins.NodePinsShape | undefined
  /**
   * The device bundle invites carry. Secure sessions give their stored device's; without it a device
   * is made on the first `invite` and kept in memory only (its invites open no session after a restart).
   */
  readonly inviteBundle?: Effect.Effect<BundleData> | undefined
  /**
   * Called by `join` with the inviter's verified bundle: where secure sessions start the session (a
   * first message needs no answer from the inviter). Without it `join` only returns what it found.
   */
  readonly startSession?: ((joined: Invites.Joined) => Effect.Effect<void, MessengerError>) | undefined
  /**
   * This device's secure-session secrets (SecureState.open keeps them sealed in the client's storage;
   * default: a new device in memory). `false` sends today's static-key scheme only.
   */
  readonly secure?: SecureStore | false | undefined
  readonly secureOptions?: SecureLink.SecureLinkOptions & {
    /** How often the prekeys are checked (pools refilled, signed keys rotated) while connected; default one hour. */
    readonly maintainEveryMs?: number
  } | undefined
  /** The application's own payload types (`defineType`), sent and received typed. */
  readonly types?: ReadonlyArray<ContentType.ContentType<any>> | undefined
  /** How long a gap in a peer device's sequence stays open before it is reported `Missed` (default 10 s). */
  readonly missedGraceMs?: number | undefined
  /** Where the missed-message state is kept across restarts (default: in memory). */
  readonly missedStore?: MissedStore | undefined
  /**
   * Confirm each message received in a secure session with a receipt sealed to the device that sent it,
   * which tells it which device has it (default true). It rides on the ack (capability "receipts"); on a
   * node without the capability it is a small message of its own.
   */
  readonly sealedReceipts?: boolean | undefined
}

/** Keeps the missed-message state (MissedTracker's snapshot) across restarts. */
export interface MissedStore {
  readonly load: Effect.Effect<unknown>
  readonly save: (snapshot: MissedTracker.Snapshot) => Effect.Effect<void>
}

/** A payload of another type than text, for `send`. */
export interface Payload<A> {
  readonly type: ContentType.ContentType<A>
  readonly body: A
}

export const payload = <A>(type: ContentType.ContentType<A>, body: A): Payload<A> => ({ type, body })

/** A stored message's payload read as `type`: undefined when it is of another type, version, or does not read. */
export const contentOf = <A>(record: MessageStore.ChatRecord, type: ContentType.ContentType<A>): A | undefined => {
  if (record.content === undefined || record.content.type !== type.name || record.content.version !== type.version) return undefined
  const body = type.decodeBody(fromBase64(record.content.body))
  return body._tag === "Right" ? body.right : undefined
}

export interface MessengerShape {
  readonly publicKey: string
  readonly connect: Effect.Effect<RegisteredPayload, L2psPeer.L2psError>
  readonly disconnect: Effect.Effect<void>
  /**
   * Encrypts for `to`, stores, sends; the record says `sent` (delivered live) or `queued` (offline). A
   * `Payload` of an application's type needs a secure session with `to`.
   */
  readonly send: <A>(to: string, message: string | Payload<A>) => Effect.Effect<MessageStore.ChatRecord, L2psPeer.L2psError | MessengerError>
  /** The other keys online in the network. */
  readonly onlinePeers: Effect.Effect<ReadonlyArray<string>, L2psPeer.L2psError>
  readonly conversation: (peer: string, limit?: number) => Effect.Effect<ReadonlyArray<MessageStore.ChatRecord>>
  /** Reads the server's history with `peer` and records the pipeline status of the messages. */
  readonly refresh: (peer: string) => Effect.Effect<ReadonlyArray<MessageStore.ChatRecord>, L2psPeer.L2psError | MessengerError>
  /** Asks the inclusion proof of a message and checks it offline against what was sent. */
  /** Checks a message's inclusion proof: one we sent, or with `from` one received from that sender. */
  readonly confirm: (messageHash: string, from?: string) => Effect.Effect<ProofCheck, L2psPeer.L2psError | MessengerError>
  readonly events: Stream.Stream<ChatEvent>
  readonly subscribe: Effect.Effect<Queue.Dequeue<ChatEvent>, never, Scope.Scope>
  readonly snapshot: Effect.Effect<L2psPeer.Snapshot>
  /** Stores an invite on the node; returns the link to give out (docs/PROTOCOL.md, "Invites"). */
  readonly invite: (options?: Invites.InviteOptions) => Effect.Effect<string, L2psPeer.L2psError>
  /** Opens a link: the inviter's key, name and bundle, and the session started when secure sessions are on. */
  readonly join: (link: string) => Effect.Effect<Invites.Joined, InviteError | L2psPeer.L2psError | MessengerError>
  /** Deletes one of this account's invites from the node. */
  readonly withdrawInvite: (link: string) => Effect.Effect<boolean, InviteError | L2psPeer.L2psError>
  /** The 60 digits both people see for each other's keys (docs/PROTOCOL.md, "Safety numbers"). */
  readonly safetyNumber: (peer: string) => string
  /** This device's id in secure sessions; undefined when they are off. */
  readonly deviceId: number | undefined
  /** Publishes this device's prekeys, refills its one-time pools, rotates its signed keys when due. */
  readonly maintainPrekeys: Effect.Effect<void, L2psPeer.L2psError | MessengerError>
  /** The underlying connection, for anything else. */
  readonly peer: L2psPeer.L2psPeerShape
}

export class Messenger extends Context.Tag("im-client/Messenger")<Messenger, MessengerShape>() {}

const storeError = (e: { readonly message: string }) => new MessengerError({ message: e.message })

export const make = (config: MessengerConfig): Effect.Effect<MessengerShape, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const l2psUid = config.l2psUid ?? "default"
    const me = config.identity
    const store = config.store ?? MessageStore.memory()
    const pins = config.pins ?? NodePins.memory()
    const hub = yield* PubSub.bounded<ChatEvent>(4096)
    const emit = (event: ChatEvent) =>
      Effect.suspend(() => {
        config.onEvent?.(event)
        return PubSub.publish(hub, event)
      }).pipe(Effect.asVoid)
    const peer = yield* L2psPeer.make({
      serverUrl: config.serverUrl,
      publicKey: me.publicKey,
      l2psUid,
      signFn: signFnOf(me),
      // "copies": what this account's other devices send is shown here live (docs/PROTOCOL.md, "Copies").
      // "receipts": sealed receipts ride on acks and come back in `message_delivered` (docs/PROTOCOL.md).
      capabilities: ["ack", "copies", "receipts"],
      // Binary frames and no `ack_response`s: about half the bytes a message (bench/RESULTS.md, issue 16).
      binaryFrames: config.binaryFrames ?? true,
      quietAcks: config.binaryFrames ?? true,
      // Our own client: proofs bound to the node and network (SECURITY.md 6).
      boundProofs: true,
      reconnect: config.reconnect,
      timeouts: config.timeouts
    })
    const secureStore = config.secure === false ? undefined : config.secure ?? (yield* SecureState.memory(me))
    const link = secureStore === undefined ? undefined : yield* Effect.orDie(SecureLink.make(me, peer, secureStore, config.secureOptions))
    const maintain = link === undefined
      ? Effect.void
      : link.maintain.pipe(Effect.mapError((e) => e._tag === "SecureStoreError" ? new MessengerError({ message: e.message }) : e))
    // Bounded by dropping: an ack that does not fit only means the message is delivered again later,
    // and it is recognised by its hash; blocking here could stall the frame loop the acks wait on.
    const acks = yield* Queue.dropping<string>(ACKS_MAX)
    const registry = Content.make(...(config.types ?? []))
    const missedGraceMs = config.missedGraceMs ?? 10_000
    const missedStore = config.missedStore
    const stored = missedStore === undefined ? undefined : yield* missedStore.load
    // A few recent links per device are enough to check neighbours; the snapshot is rewritten on each change.
    const tracker = MissedTracker.make({ graceMs: missedGraceMs, recent: 16 }, MissedTracker.isSnapshot(stored) ? stored : undefined)
    const saveLock = yield* Effect.makeSemaphore(1)
    const saveMissed = missedStore === undefined ? Effect.void : saveLock.withPermits(1)(Effect.suspend(() => missedStore.save(tracker.snapshot())))
    const trackerEvent = (e: MissedTracker.Event): ChatEvent => e
    /** Messages received to confirm, sealed, to their sender's devices (dropped when full: a receipt is a courtesy). */
    const receipts = yield* Queue.dropping<{ readonly to: string; readonly messageHash: string; readonly device: number }>(ACKS_MAX)
    /** Whether the node forwards receipts riding on acks (said in `registered`, again on each registration). */
    let receiptsOnAck = false

    /** What a secure part opened to, as a record and what to tell the app. */
    const readEnvelope = (envelope: Uint8Array, senderDevice: number) => {
      const decoded = registry.decode(envelope)
      const link = decoded.link === undefined || decoded.link.position === 0 ? undefined : {
        device: senderDevice,
        position: decoded.link.position,
        digest: bytesToHex(decoded.digest),
        previous: bytesToHex(decoded.link.previous)
      }
      return { decoded, link, control: decoded.link?.position === 0 }
    }
    const recordContent = (decoded: Content.Decoded): Pick<MessageStore.ChatRecord, "text" | "content" | "unsupported"> => {
      if (Content.is(decoded, ContentType.text)) return { text: decoded.body.text }
      const name = decoded._tag === "Content" ? decoded.type.name : decoded.name
      const version = decoded._tag === "Content" ? decoded.type.version : decoded.version
      const body = decoded._tag === "Content" ? decoded.type.encodeBody(decoded.body) : decoded.body
      return {
        text: "",
        content: { type: name, version, body: toBase64(body) },
        ...(decoded._tag === "Unsupported" ? { unsupported: decoded.reason } : {})
      }
    }
    const contentEvent = (record: MessageStore.ChatRecord, decoded: Content.Decoded | undefined): ChatEvent =>
      decoded?._tag === "Unsupported"
        ? { _tag: "Unsupported", record, name: decoded.name, version: decoded.version, reason: decoded.reason, body: decoded.body }
        : decoded !== undefined && !Content.is(decoded, ContentType.text)
        ? { _tag: "Received", record, content: { type: decoded.type, body: decoded.body } }
        : { _tag: "Received", record }

    /** Takes in where a received message stands (again after a redelivery: the tracker ignores what it has seen). */
    const observe = (from: string, link: NonNullable<MessageStore.ChatRecord["link"]>) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const events = tracker.observe(from.toLowerCase(), link.device, { position: link.position, previous: hexToBytes(link.previous) }, hexToBytes(link.digest), now)
        yield* saveMissed
        for (const e of events) yield* emit(trackerEvent(e))
      })

    /** A sealed receipt: `device` of `from` has these messages of ours. */
    const deliveredBy = (from: string, device: number, hashes: ReadonlyArray<string>) =>
      Effect.forEach(hashes, (h) =>
        Effect.gen(function*() {
          const r = yield* store.get(h)
          if (r === undefined || r.direction !== "out" || r.peer !== from.toLowerCase() || (r.deliveredTo ?? []).includes(device)) return
          const at = yield* Clock.currentTimeMillis
          const updated = yield* store.update(h, { status: "delivered", deliveredTo: [...(r.deliveredTo ?? []), device], ...(r.deliveredAt === undefined ? { deliveredAt: at } : {}) })
          if (updated !== undefined) yield* emit({ _tag: "Delivered", record: updated, device })
        }).pipe(Effect.catchAll(() => Effect.void)), { discard: true })

    const open = (m: IncomingMessagePayload): { readonly text: string; readonly unbound?: boolean; readonly sentAt?: number } | string => {
      let opened: Opened
      try {
        opened = openMessage(me, m.from, m.encrypted, m.messageHash)
      } catch {
        return "it could not be decrypted"
      }
      switch (opened._tag) {
        case "Bound":
          return { text: opened.text, sentAt: opened.sentAt }
        case "Replayed":
          return "it is an earlier message of the sender's sent again under a new hash (a replay)"
        case "Unbound":
          return config.requireBound === true
            ? "it is not bound to its message hash (an older client), and bound messages are required"
            : { text: opened.text, unbound: true }
      }
    }

    /**
     * A secure message: the ratchet states are committed only after the message is stored, both before
     * the ack; killed in between, the message comes again and opens from the states before it.
     */
    const receivedSecure = (m: IncomingMessagePayload, l: SecureLink.SecureLink) =>
      Effect.gen(function*() {
        const at = yield* Clock.currentTimeMillis
        const before = yield* store.get(m.messageHash, m.from).pipe(Effect.catchAll(() => Effect.succeed(undefined)))
        // Stored, then the process stopped before the ack: where it stands is taken in again.
        if (before?.link !== undefined) yield* observe(before.peer, before.link)
        if (before === undefined) {
          const base = { messageHash: m.messageHash, peer: m.from, direction: "in" as const, at, l2psUid, ...(m.offline === true ? { offline: true } : {}) }
          let stored: MessageStore.ChatRecord | undefined
          let read: ReturnType<typeof readEnvelope> | undefined
          let device = 0
          const out = yield* Effect.either(l.open(m.from, me.publicKey, m.encrypted, m.messageHash, (o) => {
            device = o.senderDevice
            read = o.body._tag === "Envelope" ? readEnvelope(o.body.envelope, o.senderDevice) : undefined
            const record: MessageStore.ChatRecord = {
              ...base,
              status: "received",
              sentAt: o.sentAt,
              ...(o.body._tag === "Text" ? { text: o.body.text } : recordContent(read!.decoded)),
              ...(read?.link === undefined ? {} : { link: read.link }),
              ...(read?.control === true ? { control: true as const } : {})
            }
            return Effect.map(store.put(record), (fresh) => void (stored = fresh ? record : undefined))
          }))
          if (out._tag === "Right") {
            if (stored !== undefined) {
              if (read?.control === true) {
                // Outside the sequence and never confirmed: a receipt, or one of a kind this client does not read.
                if (Content.is(read.decoded, ContentType.delivered)) yield* deliveredBy(stored.peer, device, read.decoded.body.messageHashes)
                else if (read.decoded._tag === "Unsupported") yield* emit(contentEvent(stored, read.decoded))
              } else {
                yield* emit(contentEvent(stored, read?.decoded))
                if (stored.link !== undefined) yield* observe(stored.peer, stored.link)
                // Confirmed to the sender's device, sealed, naming this device; never for a receipt (no
                // loops). Acknowledged by the receipts fiber, with the receipt riding on the ack.
                if (config.sealedReceipts !== false) {
                  yield* Queue.offer(receipts, { to: stored.peer, messageHash: stored.messageHash, device })
                  return
                }
              }
            }
          } else if (out.left._tag === "SecureLinkError") {
            // Refused: kept as undecryptable so it is not asked again; a store failure leaves it unacknowledged.
            const reason = out.left.message
            const record: MessageStore.ChatRecord = { ...base, text: "", status: "undecryptable", error: reason }
            const fresh = yield* store.put(record).pipe(Effect.catchAll(() => Effect.succeed(false)))
            if (fresh) yield* emit({ _tag: "Undecryptable", from: m.from, messageHash: m.messageHash, reason })
          } else {
            return
          }
        }
        yield* Queue.offer(acks, m.messageHash)
      })

    /**
     * A message another device of this account sent, live (a copy) or from history: its parcel has a
     * part for this device. Stored and shown as sent; never acknowledged, it was no delivery to us.
     */
    const sentByOtherDevice = (m: { readonly from: string; readonly to: string; readonly encrypted: IncomingMessagePayload["encrypted"]; readonly messageHash: string }) =>
      Effect.gen(function*() {
        if (link === undefined || m.from.toLowerCase() !== me.publicKey || !SecureLink.isParcel(m.encrypted)) return
        if ((yield* store.get(m.messageHash).pipe(Effect.orElseSucceed(() => undefined))) !== undefined) return
        const at = yield* Clock.currentTimeMillis
        let record: MessageStore.ChatRecord | undefined
        yield* link.open(me.publicKey, m.to, m.encrypted, m.messageHash, (o) => {
          const read = o.body._tag === "Envelope" ? readEnvelope(o.body.envelope, o.senderDevice) : undefined
          // A receipt another device of ours sent: nothing to show.
          if (read?.control === true) return Effect.void
          const r: MessageStore.ChatRecord = {
            messageHash: m.messageHash,
            peer: m.to.toLowerCase(),
            direction: "out",
            at,
            l2psUid,
            status: "sent",
            sentAt: o.sentAt,
            encrypted: m.encrypted,
            ...(o.body._tag === "Text" ? { text: o.body.text } : recordContent(read!.decoded)),
            ...(read?.link === undefined ? {} : { link: read.link })
          }
          return Effect.map(store.put(r), (fresh) => void (record = fresh ? r : undefined))
        }).pipe(Effect.ignore)
        if (record !== undefined) yield* emit({ _tag: "Sent", record, otherDevice: true })
      })

    const received = (m: IncomingMessagePayload) =>
      Effect.gen(function*() {
        if (m.to !== undefined) return yield* sentByOtherDevice({ ...m, to: m.to })
        if (link !== undefined && SecureLink.isParcel(m.encrypted)) return yield* receivedSecure(m, link)
        const at = yield* Clock.currentTimeMillis
        const opened = open(m)
        const ok = typeof opened !== "string"
        const record: MessageStore.ChatRecord = {
          messageHash: m.messageHash,
          peer: m.from,
          direction: "in",
          text: ok ? opened.text : "",
          at,
          l2psUid,
          status: ok ? "received" : "undecryptable",
          ...(m.offline === true ? { offline: true } : {}),
          ...(!ok ? { error: opened } : opened.unbound === true ? { unbound: true } : opened.sentAt === undefined ? {} : { sentAt: opened.sentAt })
        }
        const fresh = yield* store.put(record).pipe(Effect.catchAll(() => Effect.succeed(false)))
        if (fresh) {
          yield* emit(ok ? { _tag: "Received", record } : { _tag: "Undecryptable", from: m.from, messageHash: m.messageHash, reason: opened })
        }
        // Stored (or a duplicate): safe to acknowledge; a refused message would only come back.
        yield* Queue.offer(acks, m.messageHash)
      })

    /**
     * A receipt from `message_delivered`: opened in the session with the recipient of our message. One
     * sealed for another device of ours is not for us; one that does not open is only logged (the plain
     * confirmation has counted already).
     */
    const openReceipt = (messageHash: string, receipt: string): Effect.Effect<void> =>
      Effect.gen(function*() {
        if (link === undefined) return
        const r = yield* store.get(messageHash)
        if (r === undefined || r.direction !== "out") return
        let named: { readonly device: number; readonly hashes: ReadonlyArray<string> } | undefined
        const out = yield* Effect.either(link.open(r.peer, me.publicKey, { ciphertext: receipt, nonce: SecureLink.SECURE_NONCE }, undefined, (o) =>
          Effect.sync(() => {
            const read = o.body._tag === "Envelope" ? readEnvelope(o.body.envelope, o.senderDevice) : undefined
            if (read?.control === true && Content.is(read.decoded, ContentType.delivered)) named = { device: o.senderDevice, hashes: read.decoded.body.messageHashes }
          })))
        if (out._tag === "Left") {
          if (!out.left.message.startsWith("it was not sealed for this device")) yield* Effect.logWarning(`a sealed receipt for ${messageHash} did not open: ${out.left.message}`)
          return
        }
        if (named === undefined) return yield* Effect.logWarning(`a sealed receipt for ${messageHash} is not a delivery receipt`)
        yield* deliveredBy(r.peer, named.device, named.hashes)
      }).pipe(Effect.catchAll(() => Effect.void))

    const onPeerEvent = (e: L2psPeer.PeerEvent): Effect.Effect<void> => {
      switch (e._tag) {
        case "Message":
          return received(e.message)
        case "Delivered":
          // The node's word, for every peer; once a device has said so sealed, it adds nothing.
          return store.get(e.receipt.messageHash).pipe(
            Effect.flatMap((r) =>
              r === undefined || r.direction !== "out" || r.status === "delivered"
                ? Effect.succeed(undefined)
                : store.update(e.receipt.messageHash, { status: "delivered", deliveredAt: e.receipt.at })
            ),
            Effect.catchAll(() => Effect.succeed(undefined)),
            Effect.flatMap((record) => (record === undefined ? Effect.void : emit({ _tag: "Delivered", record }))),
            Effect.zipRight(e.receipt.receipt === undefined ? Effect.void : openReceipt(e.receipt.messageHash, e.receipt.receipt))
          )
        case "ConnectionState":
          return emit({ _tag: "Connection", state: e.state })
        case "Retrying":
          return emit({ _tag: "Retrying", attempt: e.attempt, delayMillis: e.delayMillis })
        case "Registered":
          receiptsOnAck = e.registered.capabilities?.includes("receipts") === true
          // Published in the background: the frame loop must go on to read the answers.
          return emit({ _tag: "Registered", reconnect: e.reconnect, onlinePeers: e.registered.onlinePeers }).pipe(
            Effect.zipRight(Effect.forkIn(Effect.ignore(maintain), scope)),
            Effect.zipRight(outbox.kick)
          )
        case "PeerJoined":
        case "PeerLeft":
          return emit({ _tag: e._tag, publicKey: e.publicKey })
        case "Error":
          return emit({ _tag: "ServerError", error: e.error })
      }
    }

    if (link !== undefined) {
      const every = config.secureOptions?.maintainEveryMs ?? 3_600_000
      yield* Effect.forkScoped(link.maintainEvery(every, Effect.map(peer.snapshot, (s) => s.registered)))
    }
    const sendTimeout = config.timeouts?.send ?? 15_000
    /** sends waiting for their message's outcome, by messageHash (removed when it comes or they stop waiting) */
    const waiters = new Map<string, Deferred.Deferred<MessageStore.ChatRecord>>()
    const outbox = yield* Outbox.make({
      store,
      send: (r) =>
        r.encrypted === undefined
          ? Effect.fail({ kind: "permanent" as const, message: "nothing sealed to send" })
          : peer.send(r.peer, r.encrypted, r.messageHash).pipe(
            Effect.map((result) => ("status" in result ? "queued" as const : "sent" as const)),
            Effect.mapError(Outbox.classify)
          ),
      onChange: (r) =>
        Effect.gen(function*() {
          yield* emit(r.status === "failed" ? { _tag: "SendFailed", record: r, error: r.error ?? "not sent" } : { _tag: "Sent", record: r })
          const waiter = waiters.get(r.messageHash)
          if (waiter !== undefined) yield* Deferred.succeed(waiter, r)
        })
    })
    const events = yield* peer.subscribe
    yield* supervise("events", Queue.take(events).pipe(Effect.flatMap(onPeerEvent), Effect.forever))
    yield* supervise("acks", Stream.fromQueue(acks).pipe(
      Stream.groupedWithin(500, Duration.millis(20)),
      Stream.mapEffect((hashes) => peer.ack([...new Set(hashes)]).pipe(Effect.ignore)),
      Stream.runDrain
    ))
    if (link !== undefined) {
      // One sealed receipt per sender for what arrived together, outside the sequence (Content.CONTROL):
      // a receipt lost is no missed message, and none is ever confirmed in turn.
      const sendReceipt = (to: string, messageHashes: ReadonlyArray<string>) =>
        Effect.gen(function*() {
          const at = yield* Clock.currentTimeMillis
          const envelope = registry.encode(ContentType.delivered, { messageHashes }, Content.CONTROL)
          const sealed = yield* link.seal(to, envelope, at, false)
          if (sealed !== undefined) yield* peer.send(to, sealed.encrypted, sealed.messageHash)
        }).pipe(Effect.ignore)
      /** One message's receipt as it rides on the ack: sealed for the device that sent it, if small enough. */
      const receiptOnAck = (r: { readonly to: string; readonly messageHash: string; readonly device: number }) =>
        Effect.gen(function*() {
          const at = yield* Clock.currentTimeMillis
          const envelope = registry.encode(ContentType.delivered, { messageHashes: [r.messageHash] }, Content.CONTROL)
          const sealed = yield* link.sealReceipt(r.to, r.device, envelope, at)
          return sealed !== undefined && sealed.length <= MAX_RECEIPT_CHARS ? sealed : undefined
        }).pipe(Effect.orElseSucceed(() => undefined))
      yield* supervise("receipts", Stream.fromQueue(receipts).pipe(
        Stream.groupedWithin(ContentType.MAX_RECEIPT_HASHES, Duration.millis(20)),
        Stream.mapEffect((batch) =>
          Effect.gen(function*() {
            const onAck: Record<string, string> = {}
            // A node without the capability, or a receipt that came out too large: one message per sender.
            const byPeer = new Map<string, Array<string>>()
            for (const r of batch) {
              const sealed = receiptsOnAck ? yield* receiptOnAck(r) : undefined
              if (sealed !== undefined) onAck[r.messageHash] = sealed
              else byPeer.set(r.to, [...(byPeer.get(r.to) ?? []), r.messageHash])
            }
            yield* Effect.forEach(byPeer, ([to, hashes]) => sendReceipt(to, hashes), { discard: true })
            yield* peer.ack([...new Set(Array.from(batch, (r) => r.messageHash))], onAck).pipe(Effect.ignore)
          })
        ),
        Stream.runDrain
      ))
      // Gaps still open after the grace period are reported; the Clock drives it (TestClock in tests).
      const tick = Math.max(50, Math.floor(missedGraceMs / 4))
      yield* supervise("missed", Effect.sleep(Duration.millis(tick)).pipe(
        Effect.zipRight(Effect.gen(function*() {
          const events = tracker.settle(yield* Clock.currentTimeMillis)
          if (events.length === 0) return
          yield* saveMissed
          for (const e of events) yield* emit(trackerEvent(e))
        })),
        Effect.forever
      ))
    }

    /** Where this device's last message to each peer stands (read from the history on first use). */
    const lastSent = new Map<string, { readonly position: number; readonly digest: Uint8Array }>()
    const sendLock = yield* Effect.makeSemaphore(1)
    const lastSentTo = (to: string, device: number) =>
      Effect.gen(function*() {
        const hit = lastSent.get(to)
        if (hit !== undefined) return hit
        let last = { position: 0, digest: Content.NO_PREVIOUS }
        for (const r of yield* store.conversation(to, Number.MAX_SAFE_INTEGER)) {
          if (r.direction === "out" && r.link?.device === device && r.link.position > last.position) {
            last = { position: r.link.position, digest: hexToBytes(r.link.digest) }
          }
        }
        return last
      })
    const failed = (e: unknown) => new MessengerError({ message: e instanceof Error ? e.message : String(e) })

    /**
     * Seals the next message of this device to `to`: its position and the digest of the one before it go
     * inside (docs/PROTOCOL.md, "Missed messages"). One at a time, so positions follow the order of sends.
     */
    const sealNext = <A>(l: SecureLink.SecureLink, to: string, type: ContentType.ContentType<A>, body: A, at: number) =>
      sendLock.withPermits(1)(Effect.gen(function*() {
        const last = yield* lastSentTo(to, l.deviceId)
        const position = last.position + 1
        const envelope = yield* Effect.try({ try: () => registry.encode(type, body, { position, previous: last.digest }), catch: failed })
        const sealed = yield* l.seal(to, envelope, at).pipe(
          Effect.mapError((e) => e._tag === "L2psError" ? e : new MessengerError({ message: e.message }))
        )
        if (sealed === undefined) return undefined
        const digest = Content.digest(envelope)
        lastSent.set(to, { position, digest })
        return { ...sealed, link: { device: l.deviceId, position, digest: bytesToHex(digest), previous: bytesToHex(last.digest) } }
      }))

    const send = <A>(to: string, message: string | Payload<A>) =>
      Effect.gen(function*() {
        const to_ = to.toLowerCase()
        const at = yield* Clock.currentTimeMillis
        const text = typeof message === "string" ? message : undefined
        const typed: Payload<any> = typeof message === "string" ? { type: ContentType.text, body: { text: message } } : message
        const secure = link === undefined ? undefined : yield* sealNext(link, to_, typed.type, typed.body, at)
        if (secure === undefined && text === undefined) {
          return yield* new MessengerError({ message: `a ${typed.type.name} message needs a secure session, and ${to_} has published no device` })
        }
        const { encrypted, messageHash } = secure ?? (yield* Effect.try({ try: () => sealBound(me, to_, text!, at), catch: failed }))
        const record: MessageStore.ChatRecord = {
          messageHash,
          peer: to_,
          direction: "out",
          at,
          l2psUid,
          status: "sending",
          encrypted,
          ...(text !== undefined ? { text } : { text: "", content: { type: typed.type.name, version: typed.type.version, body: toBase64(typed.type.encodeBody(typed.body)) } }),
          ...(secure === undefined ? {} : { link: secure.link })
        }
        const outcome = yield* Deferred.make<MessageStore.ChatRecord>()
        waiters.set(messageHash, outcome)
        const queued = yield* outbox.enqueue(record).pipe(
          Effect.mapError(storeError),
          Effect.tapError(() => Effect.sync(() => waiters.delete(messageHash)))
        )
        // Not taken by the node within the send timeout: it stays in the outbox, sent once connected.
        const done = yield* Deferred.await(outcome).pipe(Effect.timeoutOption(Duration.millis(sendTimeout)))
        waiters.delete(messageHash)
        if (Option.isNone(done)) return queued
        if (done.value.status === "failed") return yield* Effect.fail(new MessengerError({ message: done.value.error ?? "not sent" }))
        return done.value
      })

    const refresh = (other: string) =>
      Effect.gen(function*() {
        const page = yield* peer.history(other.toLowerCase(), { limit: 200 })
        // What this account's other devices sent: their parcels carry a part for this device.
        for (const m of page.messages) yield* sentByOtherDevice(m)
        for (const m of page.messages) {
          const l2psStatus = m.l2psStatus ?? (m.status.startsWith("l2ps_") ? m.status : undefined)
          // A message of the other party's is kept under its sender too: hashes are unique per sender only.
          const from = m.from.toLowerCase() === other.toLowerCase() ? m.from : undefined
          yield* store.update(m.messageHash, { serverTimestamp: m.timestamp, ...(l2psStatus === undefined ? {} : { l2psStatus }) }, from).pipe(
            Effect.mapError(storeError)
          )
        }
        return yield* store.conversation(other.toLowerCase())
      })

    const confirm = (messageHash: string, from?: string) =>
      Effect.gen(function*() {
        const record = yield* store.get(messageHash, from)
        const proof = yield* peer.proofRequest(messageHash, record?.direction === "in" ? record.peer : undefined)
        const known = record?.encrypted !== undefined && record.serverTimestamp !== undefined
          ? { l2psUid: record.l2psUid, messageHash, encrypted: record.encrypted, timestamp: record.serverTimestamp }
          : undefined
        // Trust on first use: the first batch signature that verifies pins the node's key.
        let nodeKey = config.nodeKey ?? (yield* pins.get(config.serverUrl))
        if (nodeKey === undefined && proof.batch !== null) {
          const signed = batchSigner(proof.batch)
          if ("signer" in signed) {
            yield* pins.pin(config.serverUrl, signed.signer)
            nodeKey = signed.signer
          }
        }
        const checked = verifyProof(proof, known, nodeKey === undefined ? undefined : { nodeKey })
        // Unsigned, a root is only the node's word: never shown as a proof.
        const check: ProofCheck = checked.valid && proof.batch !== null && checked.signer === undefined
          ? { ...checked, valid: false, confirmed: false, reason: "the node sent no batch signature" }
          : checked
        yield* store.update(messageHash, {
          l2psStatus: check.status,
          proof: {
            valid: check.valid,
            confirmed: check.confirmed,
            ...(check.blockNumber === undefined ? {} : { blockNumber: check.blockNumber }),
            ...(check.root === undefined ? {} : { root: check.root }),
            ...(check.signer === undefined ? {} : { signer: check.signer }),
            ...(check.reason === undefined ? {} : { reason: check.reason })
          }
        }, from).pipe(Effect.mapError(storeError))
        return check
      })

    let device: BundleData | undefined
    const invites = Invites.make({
      peer,
      identity: me,
      nodeUrl: config.serverUrl,
      l2psUid,
      // With secure sessions, an invite carries this device's own signed keys (no one-time keys: a
      // reusable record is read by many), so a joiner's first message opens here after a restart too.
      bundle: config.inviteBundle ?? (secureStore !== undefined
        ? Effect.map(Effect.orDie(secureStore.loadDevice), (d) => bundleOf(d, { oneTimePreKey: false, oneTimeKem: false }))
        : undefined) ?? Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.sync(() => {
          device ??= bundleOf(createDevice(me, { now, oneTimePreKeys: 0, oneTimeKems: 0 }))
          return device
        }))
    })
    const join = (link: string) =>
      Effect.tap(invites.join(link), (joined) => config.startSession === undefined ? Effect.void : config.startSession(joined))

    return {
      publicKey: me.publicKey,
      connect: peer.connect,
      disconnect: peer.disconnect,
      send,
      onlinePeers: Effect.map(peer.discover, (peers) => peers.filter((k) => k.toLowerCase() !== me.publicKey)),
      conversation: (other, limit) => store.conversation(other.toLowerCase(), limit),
      refresh,
      confirm,
      events: Stream.fromPubSub(hub),
      subscribe: PubSub.subscribe(hub),
      snapshot: peer.snapshot,
      invite: invites.invite,
      join,
      withdrawInvite: invites.withdraw,
      safetyNumber: (other) => safetyNumber(me.publicKey, other.toLowerCase()),
      deviceId: link?.deviceId,
      maintainPrekeys: maintain,
      peer
    } satisfies MessengerShape
  })

export const layer = (config: MessengerConfig): Layer.Layer<Messenger> => Layer.scoped(Messenger, make(config))
