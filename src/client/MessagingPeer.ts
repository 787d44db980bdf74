/**
 * The 2.9.1 SDK's `MessagingPeer` (PROTOCOL-REFERENCE.md §3.3) for the legacy signaling server: the
 * same methods, handler signatures and frames, as a thin Promise wrapper over `LegacyPeer`. The SDK
 * reads its keys from a process-wide singleton; here they are given: a `masterSeed` (derived exactly
 * as the SDK does, so the same seed is the same identity) or `keys`.
 */
import * as Effect from "effect/Effect"
import * as ManagedRuntime from "effect/ManagedRuntime"
import { runPromise } from "./internal/run.ts"
import * as LegacyPeer from "./LegacyPeer.ts"
import { type LegacyKeys, legacyKeysFromSeed } from "./MlKemAes.ts"
import type { ReconnectOptions } from "./Reconnect.ts"
import type { ConnectionState } from "./Wire.ts"

export interface MessagingPeerConfig {
  readonly serverUrl: string
  readonly clientId: string
  /** The ML-KEM-768 public key to register; when given it must be the one of the keys below. */
  readonly publicKey?: Uint8Array
  /** The SDK's master seed (`unifiedCrypto.generateIdentity(…, masterSeed)`). */
  readonly masterSeed?: Uint8Array
  readonly keys?: LegacyKeys
  readonly reconnect?: Partial<ReconnectOptions>
  readonly timeouts?: Partial<{ readonly connect: number; readonly request: number }>
  /** The node's ML-DSA public key (hex), pinned: a registration challenge from another node is refused. */
  readonly nodeKeyHex?: string
}

/** `message` is the decrypted bytes for a relayed message, or the raw frame (`fromId` "") otherwise. */
export type MessageHandler = (message: any, fromId: string) => void
export type ErrorHandler = (error: { type: string; details: string }) => void
export type PeerDisconnectedHandler = (peerId: string) => void
export type ConnectionStateHandler = (state: ConnectionState) => void
export type ServerQuestionHandler = (question: any, questionId: string) => void

const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i])

export class MessagingPeer {
  readonly keys: LegacyKeys
  private readonly runtime: ManagedRuntime.ManagedRuntime<LegacyPeer.LegacyPeer, never>
  private readonly messageHandlers = new Set<MessageHandler>()
  private readonly errorHandlers = new Set<ErrorHandler>()
  private readonly peerDisconnectedHandlers = new Set<PeerDisconnectedHandler>()
  private readonly connectionStateHandlers = new Set<ConnectionStateHandler>()
  private readonly serverQuestionHandlers = new Set<ServerQuestionHandler>()
  private connected = false

  constructor(private readonly config: MessagingPeerConfig) {
    const keys = config.keys ?? (config.masterSeed === undefined ? undefined : legacyKeysFromSeed(config.masterSeed))
    if (keys === undefined) throw new Error("MessagingPeer: give `masterSeed` or `keys` (the ML-KEM and ML-DSA key pairs)")
    if (config.publicKey !== undefined && !sameBytes(config.publicKey, keys.kem.publicKey)) {
      throw new Error("MessagingPeer: `publicKey` is not the ML-KEM public key of the given keys")
    }
    this.keys = keys
    this.runtime = ManagedRuntime.make(LegacyPeer.layer({
      serverUrl: config.serverUrl,
      clientId: config.clientId,
      keys,
      reconnect: config.reconnect,
      timeouts: config.timeouts,
      nodeKeyHex: config.nodeKeyHex,
      onEvent: (e, connected) => this.observe(e, connected)
    }))
  }

  get isConnected(): boolean {
    return this.connected
  }

  get clientId(): string {
    return this.config.clientId
  }

  /** Opens and registers; afterwards it reconnects and registers again by itself. */
  connect(): Promise<void> {
    return this.run((p) => p.connect)
  }

  registerAndWait(): Promise<void> {
    return this.run((p) => p.registerAndWait)
  }

  /** The SDK's bare `register` (no proof, no wait); this node answers it with an error frame. */
  register(): void {
    void this.run((p) => p.sendToServer({
      type: "register",
      payload: { clientId: this.config.clientId, publicKey: Array.from(this.keys.kem.publicKey) }
    })).catch(() => undefined)
  }

  discoverPeers(): Promise<string[]> {
    return this.run((p) => p.discoverPeers).then((peers) => [...peers])
  }

  requestPublicKey(peerId: string): Promise<Uint8Array> {
    return this.run((p) => p.requestPublicKey(peerId))
  }

  sendMessage(targetId: string, message: string | Uint8Array): Promise<void> {
    return this.run((p) => p.sendMessage(targetId, message))
  }

  respondToServer(questionId: string, response: unknown): void {
    void this.run((p) => p.sendToServer({ type: "peer_response", payload: { questionId, response } })).catch(() => undefined)
  }

  async sendToServerAndWait(
    message: { type: string; payload: unknown },
    expectedResponseType: string,
    options: { timeout?: number; retryCount?: number; filterFn?: (message: { type: string; payload: any }) => boolean; errorHandler?: (error: unknown) => void } = {}
  ): Promise<any> {
    const wait = options.timeout === undefined ? {} : { timeout: options.timeout }
    try {
      return await this.run((p) => p.sendToServerAndWait(message, expectedResponseType, { ...wait, ...(options.filterFn === undefined ? {} : { filterFn: options.filterFn }) }))
    } catch (error) {
      options.errorHandler?.(error)
      if ((options.retryCount ?? 0) > 0) {
        return this.sendToServerAndWait(message, expectedResponseType, { ...options, retryCount: (options.retryCount ?? 0) - 1 })
      }
      throw error
    }
  }

  disconnect(): void {
    this.connected = false
    void this.run((p) => p.disconnect).catch(() => undefined)
  }

  /** Disconnects and releases the runtime; the instance cannot be used afterwards. */
  dispose(): Promise<void> {
    return this.runtime.dispose()
  }

  onMessage(handler: MessageHandler): void {
    this.messageHandlers.add(handler)
  }
  onError(handler: ErrorHandler): void {
    this.errorHandlers.add(handler)
  }
  onPeerDisconnected(handler: PeerDisconnectedHandler): void {
    this.peerDisconnectedHandlers.add(handler)
  }
  onConnectionStateChange(handler: ConnectionStateHandler): void {
    this.connectionStateHandlers.add(handler)
  }
  onServerQuestion(handler: ServerQuestionHandler): void {
    this.serverQuestionHandlers.add(handler)
  }
  removeMessageHandler(handler: MessageHandler): void {
    this.messageHandlers.delete(handler)
  }
  removeErrorHandler(handler: ErrorHandler): void {
    this.errorHandlers.delete(handler)
  }
  removePeerDisconnectedHandler(handler: PeerDisconnectedHandler): void {
    this.peerDisconnectedHandlers.delete(handler)
  }
  removeConnectionStateHandler(handler: ConnectionStateHandler): void {
    this.connectionStateHandlers.delete(handler)
  }
  removeServerQuestionHandler(handler: ServerQuestionHandler): void {
    this.serverQuestionHandlers.delete(handler)
  }

  private run<A, E>(f: (peer: LegacyPeer.LegacyPeerShape) => Effect.Effect<A, E>): Promise<A> {
    return runPromise(this.runtime, Effect.flatMap(LegacyPeer.LegacyPeer, f))
  }

  private observe(event: LegacyPeer.LegacyEvent, connected: boolean): void {
    this.connected = connected
    const call = <H extends (...args: Array<never>) => void>(handlers: Set<H>, ...args: Parameters<H>) => {
      for (const h of [...handlers]) {
        try {
          h(...args)
        } catch {
          // a throwing handler must not break the client or the other handlers
        }
      }
    }
    switch (event._tag) {
      case "Message":
        return call(this.messageHandlers, event.bytes, event.fromId)
      case "Frame":
        return call(this.messageHandlers, event.frame, "")
      case "PeerDisconnected":
        return call(this.peerDisconnectedHandlers, event.peerId)
      case "ServerQuestion":
        return call(this.serverQuestionHandlers, event.question, event.questionId)
      case "Error":
        return call(this.errorHandlers, { type: event.type, details: event.details })
      case "ConnectionState":
        return call(this.connectionStateHandlers, event.state)
      default:
        return
    }
  }
}
