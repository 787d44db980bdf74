/**
 * A messenger whose keys and history live in a `HomeStorage`, encrypted under a passphrase:
 * `identity.json` (SecretStore), `messages.log` (MessageStore, sealed with a key derived from the
 * identity) and `node-keys.json` (NodePins). `fromStorage` for Effect code, `openWith` for Promise
 * code; `Home` (a folder) and `Browser` (IndexedDB) choose the storage.
 */
import type { InviteOptions, Joined } from "./Invites.ts"
import { hkdf } from "@noble/hashes/hkdf.js"
import { sha256 } from "@noble/hashes/sha2.js"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import type { DeviceInfo } from "../domain/Prekeys.ts"
import type { HomeStorage } from "./HomeStorage.ts"
import { runPromise } from "./internal/run.ts"
import type { Identity } from "./L2psCrypto.ts"
import type * as L2psPeer from "./L2psPeer.ts"
import * as MessageStore from "./MessageStore.ts"
import { type ChatEvent, make, Messenger, type MessengerConfig, MessengerError, type MessengerShape, type Payload } from "./Messenger.ts"
import * as MissedState from "./MissedState.ts"
import * as NodePins from "./NodePins.ts"
import type { ProofCheck } from "./Proofs.ts"
import type { ReconnectOptions } from "./Reconnect.ts"
import * as SecretStore from "./SecretStore.ts"
import * as SecureState from "./SecureState.ts"
import type { RegisteredPayload } from "./Wire.ts"

/** The history key: derived from the identity's secret, so history opens with the same passphrase. */
export const storeKeyOf = (identity: Identity): Uint8Array =>
  hkdf(sha256, identity.secretKey, new TextEncoder().encode(identity.publicKey), new TextEncoder().encode("demos-im/history/v1"), 32)

export const HISTORY_FILE = "messages.log"

/** What every way of opening a messenger takes, whatever keeps its files. */
export interface MessengerOptions {
  readonly serverUrl: string
  readonly passphrase: string
  readonly l2psUid?: string
  readonly kdf?: SecretStore.KdfParams
  readonly reconnect?: Partial<ReconnectOptions>
  /** in ms (default: connect 10000, requests 10000, send 15000) */
  readonly timeouts?: L2psPeer.L2psPeerConfig["timeouts"]
  /** the node's ML-DSA public key (hex) when known; otherwise pinned on first use in `node-keys.json` */
  readonly nodeKey?: string
  /** refuse messages not bound to their hash (see `MessengerConfig.requireBound`) */
  readonly requireBound?: boolean
  /** secure sessions: how long a recipient's device list is kept, how often prekeys are checked and rotated */
  readonly secureOptions?: MessengerConfig["secureOptions"]
  /** connect right away (default true) */
  readonly connect?: boolean
  /** the application's own payload types (`defineType`), sent and received typed */
  readonly types?: MessengerConfig["types"]
  /** how long a gap in a peer's messages stays open before it is reported missed (default 10 s) */
  readonly missedGraceMs?: number
  /** confirm what arrives with receipts sealed to the sender, naming this device (default true) */
  readonly sealedReceipts?: boolean
  /** binary frames and quiet acks when the node grants them (default true; false: JSON frames only) */
  readonly binaryFrames?: boolean
}

/** Loads (or creates) the identity and history in `storage`, then builds the messenger. */
export const fromStorage = (
  storage: HomeStorage,
  o: Omit<MessengerOptions, "connect"> & { readonly onEvent?: (event: ChatEvent) => void }
) =>
  Effect.gen(function*() {
    if (storage.hold !== undefined) yield* storage.hold.pipe(Effect.mapError((e) => new MessengerError({ message: e.message })))
    const { secrets, created, migrated } = yield* SecretStore.loadOrCreate(storage, o.passphrase, o.kdf)
    const store = yield* MessageStore.open(storage, HISTORY_FILE, storeKeyOf(secrets.identity))
    const pinned = yield* NodePins.open(storage, secrets.identity)
    const secure = yield* SecureState.open(storage, secrets.identity).pipe(Effect.mapError((e) => new MessengerError({ message: e.message })))
    /** What the app should tell its user about the folder (files that did not open as they should). */
    const notices: Array<string> = pinned.problem === undefined ? [] : [pinned.problem]
    const log = store.report.problems
    if (log.length > 0) {
      const shown = log.slice(0, 5).map((p) => (p.line === 0 ? p.problem : `line ${p.line}: ${p.problem}`)).join("; ")
      notices.push(`your history (${HISTORY_FILE}) was changed or damaged, ${log.length} problem(s): ${shown}${log.length > 5 ? "; …" : ""}; what opened in order is shown`)
    }
    const messenger = yield* make({
      serverUrl: o.serverUrl,
      l2psUid: o.l2psUid,
      identity: secrets.identity,
      store,
      reconnect: o.reconnect,
      timeouts: o.timeouts,
      onEvent: o.onEvent,
      requireBound: o.requireBound,
      nodeKey: o.nodeKey,
      pins: pinned.pins,
      secure,
      secureOptions: o.secureOptions,
      types: o.types,
      missedGraceMs: o.missedGraceMs,
      sealedReceipts: o.sealedReceipts,
      binaryFrames: o.binaryFrames,
      missedStore: MissedState.open(storage, secrets.identity)
    })
    return { messenger, created, migrated, secrets, notices }
  })

/** A messenger for Promise code; `close()` when done. */
export interface MessengerHandle {
  readonly publicKey: string
  /** true when the storage had no identity yet */
  readonly created: boolean
  /** files that did not open as written (history, pinned node keys): to show the user */
  readonly notices: ReadonlyArray<string>
  /** A text, or a `Payload` of one of `types` (`payload(type, body)`; needs a secure session with `to`). */
  send<A>(to: string, message: string | Payload<A>): Promise<MessageStore.ChatRecord>
  peers(): Promise<ReadonlyArray<string>>
  conversation(peer: string, limit?: number): Promise<ReadonlyArray<MessageStore.ChatRecord>>
  refresh(peer: string): Promise<ReadonlyArray<MessageStore.ChatRecord>>
  confirm(messageHash: string, from?: string): Promise<ProofCheck>
  /** The safety number of this account and `peer`, to compare with theirs. */
  safetyNumber(peer: string): string
  /** This device's id in secure sessions. */
  readonly deviceId: number | undefined
  /** This account's devices with published prekeys, as the node lists them. */
  devices(): Promise<ReadonlyArray<DeviceInfo>>
  /** Removes a device of this account from the node: senders stop sealing for it once they fetch again. */
  removeDevice(deviceId: number): Promise<boolean>
  /** Publishes this device's prekeys now, refilling its pools (also done on each registration and hourly). */
  maintainPrekeys(): Promise<void>
  connect(): Promise<RegisteredPayload>
  /** A link that lets someone start a conversation with this account (docs/PROTOCOL.md, "Invite links"). */
  invite(options?: InviteOptions): Promise<string>
  /** Opens someone's invite link: their key, name and device bundle; rejects with an `InviteError`. */
  join(link: string): Promise<Joined>
  /** Received (decrypted, stored) messages. */
  onMessage(handler: (record: MessageStore.ChatRecord) => void): void
  onEvent(handler: (event: ChatEvent) => void): void
  close(): Promise<void>
}

/** Opens (or creates) the identity in `storage` and connects, unless `connect: false`. */
export const openWith = async (storage: HomeStorage, o: MessengerOptions): Promise<MessengerHandle> => {
  const messageHandlers = new Set<(record: MessageStore.ChatRecord) => void>()
  const eventHandlers = new Set<(event: ChatEvent) => void>()
  const onEvent = (e: ChatEvent) => {
    for (const h of eventHandlers) h(e)
    if (e._tag === "Received") for (const h of messageHandlers) h(e.record)
  }
  let created = false
  let notices: ReadonlyArray<string> = []
  const built = Layer.scoped(
    Messenger,
    Effect.map(fromStorage(storage, { ...o, onEvent }), (r) => {
      created = r.created
      notices = r.notices
      return r.messenger
    })
  )
  const runtime = ManagedRuntime.make(built)
  const run = <A, E>(f: (m: MessengerShape) => Effect.Effect<A, E>) => runPromise(runtime, Effect.flatMap(Messenger, f))
  try {
    const m = await run((x) => Effect.succeed(x))
    if (o.connect !== false) await run((x) => x.connect)
    return {
      publicKey: m.publicKey,
      created,
      notices,
      send: (to, message) => run((x) => x.send(to, message)),
      peers: () => run((x) => x.onlinePeers),
      conversation: (peer, limit) => run((x) => x.conversation(peer, limit)),
      refresh: (peer) => run((x) => x.refresh(peer)),
      confirm: (hash, from) => run((x) => x.confirm(hash, from)),
      safetyNumber: (peer) => m.safetyNumber(peer),
      deviceId: m.deviceId,
      devices: () => run((x) => Effect.map(x.peer.devices, (r) => r.devices)),
      removeDevice: (id) => run((x) => Effect.map(x.peer.deviceRemove(id), (r) => r.removed)),
      maintainPrekeys: () => run((x) => x.maintainPrekeys),
      connect: () => run((x) => x.connect),
      invite: (options) => run((x) => x.invite(options)),
      join: (link) => run((x) => x.join(link)),
      onMessage: (h) => void messageHandlers.add(h),
      onEvent: (h) => void eventHandlers.add(h),
      close: () => runtime.dispose()
    }
  } catch (e) {
    await runtime.dispose()
    throw e
  }
}
