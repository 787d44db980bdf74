/**
 * The SDK's `L2PSMessagingPeer` (PROTOCOL-REFERENCE.md §3.2): the same constructor, methods, events
 * and rejection texts, as a thin Promise wrapper over the Effect client `L2psPeer`, run on its own
 * `ManagedRuntime`. Extensions (docs/PROTOCOL.md rule 10 and inclusion proofs): `capabilities` / `autoAck`, `ack()`,
 * `onMessageDelivered`, `proofRequest()`.
 */
import * as Effect from "effect/Effect"
import * as ManagedRuntime from "effect/ManagedRuntime"
import { runPromise } from "./internal/run.ts"
import * as L2psPeer from "./L2psPeer.ts"
import type {
  AckResponsePayload,
  ConnectionState,
  ErrorPayload,
  HistoryPayload,
  IncomingMessagePayload,
  ProofResponsePayload,
  ReceiptPayload,
  RegisteredPayload,
  SendResult,
  SerializedEncryptedMessage
} from "./Wire.ts"

export type L2PSMessagingPeerConfig = Omit<L2psPeer.L2psPeerConfig, "onEvent">

export type MessageHandler = (message: IncomingMessagePayload) => void
export type ErrorHandler = (error: ErrorPayload) => void
export type PeerHandler = (publicKey: string) => void
export type ConnectionStateHandler = (state: ConnectionState) => void
export type DeliveredHandler = (receipt: ReceiptPayload) => void

const CONNECT_FAILURES = new Set(["CONNECTION_REFUSED", "CONNECT_TIMEOUT", "CONNECTION_CLOSED"])

export class L2PSMessagingPeer {
  private readonly runtime: ManagedRuntime.ManagedRuntime<L2psPeer.L2psPeer, never>
  private readonly messageHandlers = new Set<MessageHandler>()
  private readonly errorHandlers = new Set<ErrorHandler>()
  private readonly peerJoinedHandlers = new Set<PeerHandler>()
  private readonly peerLeftHandlers = new Set<PeerHandler>()
  private readonly connectionStateHandlers = new Set<ConnectionStateHandler>()
  private readonly deliveredHandlers = new Set<DeliveredHandler>()
  private state: L2psPeer.Snapshot = { connected: false, registered: false, peers: [] }

  private readonly connectTimeout: number

  constructor(config: L2PSMessagingPeerConfig) {
    this.connectTimeout = config.timeouts?.connect ?? 10_000
    this.runtime = ManagedRuntime.make(L2psPeer.layer({ ...config, onEvent: (e, s) => this.observe(e, s) }))
  }

  get isConnected(): boolean {
    return this.state.connected
  }

  get isRegistered(): boolean {
    return this.state.registered
  }

  get peers(): string[] {
    return [...this.state.peers]
  }

  connect(): Promise<RegisteredPayload> {
    // The SDK's text, whatever went wrong (its callers may match it); our clients say what did.
    const sdkText = `Connection timeout (${this.connectTimeout / 1000}s)`
    return this.run((p) =>
      p.connect.pipe(Effect.mapError((e) => (CONNECT_FAILURES.has(e.code) ? new L2psPeer.L2psError({ code: "CONNECT_TIMEOUT", message: sdkText }) : e)))
    )
  }

  disconnect(): void {
    this.state = { connected: false, registered: false, peers: [] }
    void this.run((p) => p.disconnect).catch(() => undefined)
  }

  /** Disconnects and releases the runtime; the instance cannot be used afterwards. */
  dispose(): Promise<void> {
    return this.runtime.dispose()
  }

  send(to: string, encrypted: SerializedEncryptedMessage, messageHash: string): Promise<SendResult> {
    return this.run((p) => p.send(to, encrypted, messageHash))
  }

  history(peerKey: string, options: { before?: number; limit?: number } = {}): Promise<HistoryPayload> {
    return this.run((p) => p.history(peerKey, options))
  }

  async discover(): Promise<string[]> {
    const peers = await this.run((p) => p.discover)
    this.state = { ...this.state, peers }
    return [...peers]
  }

  requestPublicKey(targetId: string): Promise<string | null> {
    return this.run((p) => p.requestPublicKey(targetId))
  }

  /** Extension (docs/PROTOCOL.md rule 10). */
  ack(messageHashes: ReadonlyArray<string>): Promise<AckResponsePayload> {
    return this.run((p) => p.ack(messageHashes))
  }

  /**
   * Extension (docs/PROTOCOL.md, inclusion proofs); check the answer offline with `verifyProof`. A hash is unique per sender
   * only: `from` names the sender of a received message.
   */
  proofRequest(messageHash: string, from?: string): Promise<ProofResponsePayload> {
    return this.run((p) => p.proofRequest(messageHash, from))
  }

  onMessage(handler: MessageHandler): void {
    this.messageHandlers.add(handler)
  }
  onError(handler: ErrorHandler): void {
    this.errorHandlers.add(handler)
  }
  onPeerJoined(handler: PeerHandler): void {
    this.peerJoinedHandlers.add(handler)
  }
  onPeerLeft(handler: PeerHandler): void {
    this.peerLeftHandlers.add(handler)
  }
  onConnectionStateChange(handler: ConnectionStateHandler): void {
    this.connectionStateHandlers.add(handler)
  }
  /** Extension: `message_delivered` receipts for the messages this key sent. */
  onMessageDelivered(handler: DeliveredHandler): void {
    this.deliveredHandlers.add(handler)
  }
  removeMessageHandler(handler: MessageHandler): void {
    this.messageHandlers.delete(handler)
  }
  removeErrorHandler(handler: ErrorHandler): void {
    this.errorHandlers.delete(handler)
  }
  removePeerJoinedHandler(handler: PeerHandler): void {
    this.peerJoinedHandlers.delete(handler)
  }
  removePeerLeftHandler(handler: PeerHandler): void {
    this.peerLeftHandlers.delete(handler)
  }
  removeConnectionStateHandler(handler: ConnectionStateHandler): void {
    this.connectionStateHandlers.delete(handler)
  }
  removeMessageDeliveredHandler(handler: DeliveredHandler): void {
    this.deliveredHandlers.delete(handler)
  }

  private run<A, E>(f: (peer: L2psPeer.L2psPeerShape) => Effect.Effect<A, E>): Promise<A> {
    return runPromise(this.runtime, Effect.flatMap(L2psPeer.L2psPeer, f))
  }

  private observe(event: L2psPeer.PeerEvent, state: L2psPeer.Snapshot): void {
    this.state = state
    const call = <H extends (...args: Array<never>) => void>(handlers: Set<H>, ...args: Parameters<H>) => {
      for (const h of handlers) {
        try {
          h(...args)
        } catch {
          // a throwing handler must not break the client or the other handlers
        }
      }
    }
    switch (event._tag) {
      case "Message":
        return call(this.messageHandlers, event.message)
      case "Error":
        return call(this.errorHandlers, event.error)
      case "PeerJoined":
        return call(this.peerJoinedHandlers, event.publicKey)
      case "PeerLeft":
        return call(this.peerLeftHandlers, event.publicKey)
      case "ConnectionState":
        return call(this.connectionStateHandlers, event.state)
      case "Delivered":
        return call(this.deliveredHandlers, event.receipt)
      default:
        return
    }
  }
}
