/**
 * Test double for the SDK's `L2PSMessagingPeer` (@kynesyslabs/demosdk ≥ 2.11.5; no npm release
 * reachable here ships it). It follows PROTOCOL-REFERENCE.md §3.2 line by line, quirks included,
 * so an end-to-end test that passes with this client passes with the real one:
 *
 * - replies match ONLY by `requestId` + expected reply types (§3.2.3); an error frame with a
 *   matching `requestId` rejects with `payload.message || "Server error"`;
 * - pending requests are NOT rejected when the socket closes (they run to their timeouts);
 * - `connect()` polls every 50 ms under a 10 s overall timer; a register error does not close
 *   the socket or stop reconnects;
 * - reconnection: 1000 ms doubling to 30000 ms, 10 attempts, re-register with a fresh proof,
 *   frames created while the socket is down are queued and flushed on open.
 *
 * Everything marked `EXTENSION` is not in the SDK: tests opt into it (DECISIONS.md 9 and 13), or it
 * only observes (raw frame log).
 */
import { ed25519 } from "@noble/curves/ed25519.js"
import { gcm } from "@noble/ciphers/aes.js"
import { randomBytes } from "@noble/ciphers/utils.js"

// ─── Wire types (mirror of the SDK's l2ps_types.ts) ─────────────────────────

export interface SerializedEncryptedMessage {
  /** base64 */
  ciphertext: string
  /** base64 AES-GCM nonce */
  nonce: string
  /** hex, optional, opaque */
  ephemeralKey?: string
}

export type ClientMessageType =
  | "register"
  | "send"
  | "history"
  | "discover"
  | "request_public_key"
  | "ack"
  // EXTENSION (DECISIONS.md 13)
  | "proof_request"

export type ServerMessageType =
  | "registered"
  | "message"
  | "message_sent"
  | "message_queued"
  | "history_response"
  | "discover_response"
  | "public_key_response"
  | "peer_joined"
  | "peer_left"
  | "error"
  // EXTENSIONS (DECISIONS.md 9 and 13)
  | "ack_response"
  | "message_delivered"
  | "proof_response"

export type ErrorCode =
  | "INVALID_MESSAGE"
  | "REGISTRATION_REQUIRED"
  | "INVALID_PROOF"
  | "PEER_NOT_FOUND"
  | "L2PS_NOT_FOUND"
  | "L2PS_SUBMIT_FAILED"
  | "RATE_LIMITED"
  | "INTERNAL_ERROR"

export interface RegisteredPayload {
  success: boolean
  publicKey: string
  l2psUid: string
  onlinePeers: string[]
}

export interface IncomingMessagePayload {
  from: string
  encrypted: SerializedEncryptedMessage
  messageHash: string
  offline?: boolean
}

export interface MessageSentPayload {
  messageHash: string
  l2psStatus: "submitted" | "failed"
}

export interface MessageQueuedPayload {
  messageHash: string
  status: "queued"
}

export type MessageStatus =
  | "delivered"
  | "queued"
  | "sent"
  | "failed"
  | "l2ps_pending"
  | "l2ps_batched"
  | "l2ps_confirmed"

export interface StoredMessage {
  id: string
  from: string
  to: string
  messageHash: string
  encrypted: SerializedEncryptedMessage
  l2psUid: string
  l2psTxHash: string | null
  timestamp: number
  status: MessageStatus
  /** this node only (DECISIONS.md 12) */
  deliveryStatus?: "queued" | "delivered" | "sent" | "failed"
  /** this node only (DECISIONS.md 12) */
  l2psStatus?: "l2ps_pending" | "l2ps_batched" | "l2ps_confirmed"
}

export interface HistoryPayload {
  messages: StoredMessage[]
  hasMore: boolean
}

export interface DiscoverPayload {
  peers: string[]
}

export interface PublicKeyPayload {
  targetId: string
  publicKey: string | null
}

export interface ErrorPayload {
  code: ErrorCode
  message: string
  details?: string
}

/** EXTENSION (DECISIONS.md 9): unsolicited `message_delivered`. */
export interface ReceiptPayload {
  messageHash: string
  at: number
}

/** EXTENSION (DECISIONS.md 9): shape not fixed by the decisions, passed through untouched. */
export type AckResponsePayload = Record<string, unknown>

/** EXTENSION (DECISIONS.md 13). */
export interface ProofResponsePayload {
  messageHash: string
  leaf: string
  batch: {
    id: string
    l2psUid: string
    root: string
    size: number
    prevBatchHash: string | null
    l2psTxHash: string | null
    status: string
    blockNumber?: number
    blockHash?: string
  }
  path: Array<{ hash: string; side: "left" | "right" }>
}

export interface L2psClientConfig {
  /** ws URL of the L2PS messaging server */
  serverUrl: string
  /** ed25519 public key hex, sent verbatim */
  publicKey: string
  /** L2PS network to join */
  l2psUid: string
  /** returns the hex ed25519 signature of the UTF-8 bytes of `message` */
  signFn: (message: string) => Promise<string> | string
  /** EXTENSION (DECISIONS.md 9): put in the `register` payload when set, e.g. `["ack"]`. */
  capabilities?: ReadonlyArray<string> | undefined
}

export type ConnectionState = "connected" | "disconnected" | "reconnecting"
export type L2psMessageHandler = (message: IncomingMessagePayload) => void
export type L2psErrorHandler = (error: ErrorPayload) => void
export type L2psPeerHandler = (publicKey: string) => void
export type L2psConnectionStateHandler = (state: ConnectionState) => void
/** EXTENSION */
export type L2psReceiptHandler = (receipt: ReceiptPayload) => void

/** EXTENSION: one entry per raw frame received, in arrival order. */
export interface RawFrame {
  /** the frame as text (binary frames decoded as UTF-8) */
  readonly raw: string
  /** `JSON.parse(raw)`, or `undefined` when it does not parse */
  readonly parsed: unknown
  /** local receive time (ms) */
  readonly at: number
  /** 1 for the first socket, incremented on every (re)connect */
  readonly socket: number
}
export type RawFrameHandler = (frame: RawFrame) => void

export interface OutgoingFrame {
  type: ClientMessageType
  payload: Record<string, unknown>
  timestamp: number
  requestId?: string
}

interface IncomingFrame {
  type: ServerMessageType
  payload: unknown
  timestamp: number
  requestId?: string
}

interface Pending {
  resolve: (value: unknown) => void
  reject: (error: Error) => void
  timer: ReturnType<typeof setTimeout>
  types: ReadonlyArray<ServerMessageType>
}

const decoder = new TextDecoder()

// ─── Client ─────────────────────────────────────────────────────────────────

export class L2psClient {
  private ws: WebSocket | null = null
  private readonly config: L2psClientConfig

  private readonly messageHandlers = new Set<L2psMessageHandler>()
  private readonly errorHandlers = new Set<L2psErrorHandler>()
  private readonly peerJoinedHandlers = new Set<L2psPeerHandler>()
  private readonly peerLeftHandlers = new Set<L2psPeerHandler>()
  private readonly connectionStateHandlers = new Set<L2psConnectionStateHandler>()
  private readonly receiptHandlers = new Set<L2psReceiptHandler>()
  private readonly rawFrameHandlers = new Set<RawFrameHandler>()

  private readonly pendingResponses = new Map<string, Pending>()

  private _isConnected = false
  private _isRegistered = false
  private onlinePeers = new Set<string>()
  private messageQueue: OutgoingFrame[] = []

  private reconnectAttempts = 0
  private readonly maxReconnectAttempts = 10
  private readonly baseReconnectDelay = 1000
  private reconnectTimeout: ReturnType<typeof setTimeout> | null = null
  private shouldReconnect = true
  private isReconnecting = false

  private socketCount = 0

  /** EXTENSION: every raw frame received, across reconnects. */
  readonly rawFrames: RawFrame[] = []
  /** EXTENSION: every frame actually written to a socket (after queueing), with its socket number. */
  readonly sentFrames: Array<{ readonly frame: OutgoingFrame; readonly at: number; readonly socket: number }> = []

  constructor(config: L2psClientConfig) {
    this.config = config
  }

  get isConnected(): boolean {
    return this._isConnected
  }

  get isRegistered(): boolean {
    return this._isRegistered
  }

  get peers(): string[] {
    return Array.from(this.onlinePeers)
  }

  /** EXTENSION: request ids still waiting for a reply. */
  get pendingRequestIds(): string[] {
    return Array.from(this.pendingResponses.keys())
  }

  /** EXTENSION: frames waiting in the outgoing queue. */
  get queuedFrames(): ReadonlyArray<OutgoingFrame> {
    return this.messageQueue
  }

  /** EXTENSION: the number of sockets opened so far (1 after the first connect). */
  get socketsOpened(): number {
    return this.socketCount
  }

  // ─── Lifecycle ────────────────────────────────────────────────────────────

  connect(): Promise<RegisteredPayload> {
    return new Promise((resolve, reject) => {
      let checkOpen: ReturnType<typeof setInterval> | null = null

      const timeout = setTimeout(() => {
        if (checkOpen) clearInterval(checkOpen)
        this.shouldReconnect = false
        if (this.ws) this.ws.close()
        reject(new Error("Connection timeout (10s)"))
      }, 10000)

      this.shouldReconnect = true
      this.connectWebSocket()

      checkOpen = setInterval(() => {
        if (this._isConnected) {
          if (checkOpen) clearInterval(checkOpen)
          this.register()
            .then((response) => {
              clearTimeout(timeout)
              resolve(response)
            })
            .catch((err: unknown) => {
              clearTimeout(timeout)
              reject(err)
            })
        }
      }, 50)
    })
  }

  disconnect(): void {
    this.shouldReconnect = false
    if (this.reconnectTimeout) {
      clearTimeout(this.reconnectTimeout)
      this.reconnectTimeout = null
    }
    for (const pending of this.pendingResponses.values()) {
      clearTimeout(pending.timer)
      pending.reject(new Error("Disconnected"))
    }
    this.pendingResponses.clear()

    if (this.ws) {
      this.ws.close()
      this.ws = null
    }
    this._isConnected = false
    this._isRegistered = false
    this.onlinePeers.clear()
    this.notifyConnectionState("disconnected")
  }

  // ─── Messaging API ────────────────────────────────────────────────────────

  async send(
    to: string,
    encrypted: SerializedEncryptedMessage,
    messageHash: string,
  ): Promise<MessageSentPayload | MessageQueuedPayload> {
    this.ensureRegistered()
    const requestId = this.generateRequestId()
    this.sendFrame({ type: "send", payload: { to, encrypted, messageHash }, timestamp: Date.now(), requestId })
    return this.waitForResponse<MessageSentPayload | MessageQueuedPayload>(
      requestId,
      ["message_sent", "message_queued"],
      15000,
    )
  }

  async history(peerKey: string, options: { before?: number; limit?: number } = {}): Promise<HistoryPayload> {
    this.ensureRegistered()
    const timestamp = Date.now()
    const proof = await this.config.signFn(`history:${peerKey}:${timestamp}`)
    const requestId = this.generateRequestId()
    this.sendFrame({
      type: "history",
      // `undefined` values are dropped by JSON.stringify, as in the SDK
      payload: { peerKey, before: options.before, limit: options.limit, proof },
      timestamp,
      requestId,
    })
    return this.waitForResponse<HistoryPayload>(requestId, ["history_response"], 10000)
  }

  async discover(): Promise<string[]> {
    this.ensureRegistered()
    const requestId = this.generateRequestId()
    this.sendFrame({ type: "discover", payload: {}, timestamp: Date.now(), requestId })
    const response = await this.waitForResponse<DiscoverPayload>(requestId, ["discover_response"], 10000)
    this.onlinePeers = new Set(response.peers)
    return response.peers
  }

  async requestPublicKey(targetId: string): Promise<string | null> {
    this.ensureRegistered()
    const requestId = this.generateRequestId()
    this.sendFrame({ type: "request_public_key", payload: { targetId }, timestamp: Date.now(), requestId })
    const response = await this.waitForResponse<PublicKeyPayload>(requestId, ["public_key_response"], 10000)
    return response.publicKey
  }

  /** EXTENSION (DECISIONS.md 9): acknowledge delivered messages. */
  async ack(messageHashes: ReadonlyArray<string>, receipts?: Readonly<Record<string, string>>): Promise<AckResponsePayload> {
    this.ensureRegistered()
    const requestId = this.generateRequestId()
    const payload = receipts === undefined ? { messageHashes: [...messageHashes] } : { messageHashes: [...messageHashes], receipts }
    this.sendFrame({ type: "ack", payload, timestamp: Date.now(), requestId })
    return this.waitForResponse<AckResponsePayload>(requestId, ["ack_response"], 10000)
  }

  /** EXTENSION (DECISIONS.md 13): ask for the inclusion proof of a message. */
  async proofRequest(messageHash: string): Promise<ProofResponsePayload> {
    this.ensureRegistered()
    const requestId = this.generateRequestId()
    this.sendFrame({ type: "proof_request", payload: { messageHash }, timestamp: Date.now(), requestId })
    return this.waitForResponse<ProofResponsePayload>(requestId, ["proof_response"], 10000)
  }

  // ─── Event handlers ───────────────────────────────────────────────────────

  onMessage(handler: L2psMessageHandler): void {
    this.messageHandlers.add(handler)
  }
  onError(handler: L2psErrorHandler): void {
    this.errorHandlers.add(handler)
  }
  onPeerJoined(handler: L2psPeerHandler): void {
    this.peerJoinedHandlers.add(handler)
  }
  onPeerLeft(handler: L2psPeerHandler): void {
    this.peerLeftHandlers.add(handler)
  }
  onConnectionStateChange(handler: L2psConnectionStateHandler): void {
    this.connectionStateHandlers.add(handler)
  }
  removeMessageHandler(handler: L2psMessageHandler): void {
    this.messageHandlers.delete(handler)
  }
  removeErrorHandler(handler: L2psErrorHandler): void {
    this.errorHandlers.delete(handler)
  }
  removePeerJoinedHandler(handler: L2psPeerHandler): void {
    this.peerJoinedHandlers.delete(handler)
  }
  removePeerLeftHandler(handler: L2psPeerHandler): void {
    this.peerLeftHandlers.delete(handler)
  }
  removeConnectionStateHandler(handler: L2psConnectionStateHandler): void {
    this.connectionStateHandlers.delete(handler)
  }

  /** EXTENSION (DECISIONS.md 9): unsolicited `message_delivered` frames. */
  onReceipt(handler: L2psReceiptHandler): void {
    this.receiptHandlers.add(handler)
  }
  /** EXTENSION */
  removeReceiptHandler(handler: L2psReceiptHandler): void {
    this.receiptHandlers.delete(handler)
  }
  /** EXTENSION: called for every raw frame received, before any matching. */
  onRawFrame(handler: RawFrameHandler): void {
    this.rawFrameHandlers.add(handler)
  }
  /** EXTENSION */
  removeRawFrameHandler(handler: RawFrameHandler): void {
    this.rawFrameHandlers.delete(handler)
  }

  // ─── Private: socket ──────────────────────────────────────────────────────

  private connectWebSocket(): void {
    if (this.ws) this.ws.close()

    const ws = new WebSocket(this.config.serverUrl)
    const socketNo = ++this.socketCount
    this.ws = ws
    this.notifyConnectionState("reconnecting")

    ws.onopen = async () => {
      this._isConnected = true
      this.reconnectAttempts = 0

      if (this.isReconnecting) {
        try {
          await this.register()
          this.notifyConnectionState("connected")
          this.flushQueue()
          this.isReconnecting = false
        } catch (err) {
          this.errorHandlers.forEach((h) =>
            h({
              code: "INTERNAL_ERROR",
              message: "Re-registration failed after reconnect",
              details: err instanceof Error ? err.message : "unknown",
            }),
          )
          this._isConnected = false
          this._isRegistered = false
          this.notifyConnectionState("disconnected")
          if (this.ws) this.ws.close()
          if (this.shouldReconnect) this.attemptReconnect()
        }
      } else {
        // initial connection: registration is done by connect()
        this.notifyConnectionState("connected")
        this.flushQueue()
      }
    }

    ws.onclose = () => {
      this._isConnected = false
      this._isRegistered = false
      this.onlinePeers.clear()
      this.notifyConnectionState("disconnected")
      // SDK quirk: pending requests are NOT rejected here
      if (this.shouldReconnect) this.attemptReconnect()
    }

    ws.onerror = (event) => {
      this.errorHandlers.forEach((h) =>
        h({
          code: "INTERNAL_ERROR",
          message: "WebSocket error",
          details: (event as unknown) instanceof Error ? (event as unknown as Error).message : "unknown",
        }),
      )
    }

    ws.onmessage = (event: MessageEvent) => {
      const data: unknown = event.data
      let raw: string | undefined
      try {
        raw = typeof data === "string" ? data : decoder.decode(data as ArrayBuffer)
      } catch {
        raw = undefined
      }
      let parsed: unknown = undefined
      if (raw !== undefined) {
        try {
          parsed = JSON.parse(raw)
        } catch {
          parsed = undefined
        }
        this.recordRaw({ raw, parsed, at: Date.now(), socket: socketNo })
      }
      try {
        if (raw === undefined) throw new Error("undecodable")
        const frame = JSON.parse(raw) as IncomingFrame
        this.handleFrame(frame)
      } catch {
        // SDK: unparseable frames are silently ignored
      }
    }
  }

  private recordRaw(frame: RawFrame): void {
    this.rawFrames.push(frame)
    for (const h of this.rawFrameHandlers) {
      try {
        h(frame)
      } catch {
        // observers never break the client
      }
    }
  }

  private attemptReconnect(): void {
    if (this.reconnectAttempts >= this.maxReconnectAttempts) return
    this.isReconnecting = true
    const delay = Math.min(this.baseReconnectDelay * Math.pow(2, this.reconnectAttempts), 30000)
    this.reconnectTimeout = setTimeout(() => {
      this.reconnectAttempts++
      this.connectWebSocket()
    }, delay)
  }

  // ─── Private: registration ────────────────────────────────────────────────

  private async register(): Promise<RegisteredPayload> {
    const timestamp = Date.now()
    const proof = await this.config.signFn(`register:${this.config.publicKey}:${timestamp}`)
    const requestId = this.generateRequestId()
    const payload: Record<string, unknown> = {
      publicKey: this.config.publicKey,
      l2psUid: this.config.l2psUid,
      proof,
    }
    // EXTENSION (DECISIONS.md 9)
    if (this.config.capabilities !== undefined) payload["capabilities"] = [...this.config.capabilities]
    this.sendFrame({ type: "register", payload, timestamp, requestId })

    const response = await this.waitForResponse<RegisteredPayload>(requestId, ["registered"], 10000)
    this._isRegistered = true
    this.onlinePeers = new Set(response.onlinePeers)
    return response
  }

  // ─── Private: frames ──────────────────────────────────────────────────────

  private handleFrame(frame: IncomingFrame): void {
    if (frame.requestId && this.pendingResponses.has(frame.requestId)) {
      const pending = this.pendingResponses.get(frame.requestId)!
      if (pending.types.includes(frame.type)) {
        clearTimeout(pending.timer)
        this.pendingResponses.delete(frame.requestId)
        pending.resolve(frame.payload)
        return
      }
    }

    if (frame.type === "error" && frame.requestId && this.pendingResponses.has(frame.requestId)) {
      const pending = this.pendingResponses.get(frame.requestId)!
      clearTimeout(pending.timer)
      this.pendingResponses.delete(frame.requestId)
      pending.reject(new Error((frame.payload as ErrorPayload | undefined)?.message || "Server error"))
      return
    }

    switch (frame.type) {
      case "message": {
        const p = frame.payload as IncomingMessagePayload
        this.messageHandlers.forEach((h) => h(p))
        break
      }
      case "peer_joined": {
        const p = frame.payload as { publicKey: string }
        this.onlinePeers.add(p.publicKey)
        this.peerJoinedHandlers.forEach((h) => h(p.publicKey))
        break
      }
      case "peer_left": {
        const p = frame.payload as { publicKey: string }
        this.onlinePeers.delete(p.publicKey)
        this.peerLeftHandlers.forEach((h) => h(p.publicKey))
        break
      }
      case "error": {
        const p = frame.payload as ErrorPayload
        this.errorHandlers.forEach((h) => h(p))
        break
      }
      // EXTENSION (DECISIONS.md 9)
      case "message_delivered": {
        const p = frame.payload as ReceiptPayload
        this.receiptHandlers.forEach((h) => h(p))
        break
      }
      default:
        // message_sent, message_queued … without a waiter: dropped, as in the SDK
        break
    }
  }

  private waitForResponse<T>(
    requestId: string,
    expectedTypes: ReadonlyArray<ServerMessageType>,
    timeoutMs: number,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pendingResponses.delete(requestId)
        reject(new Error(`Timeout waiting for ${expectedTypes.join("|")} (${timeoutMs}ms)`))
      }, timeoutMs)
      this.pendingResponses.set(requestId, {
        resolve: resolve as (value: unknown) => void,
        reject,
        timer,
        types: expectedTypes,
      })
    })
  }

  private sendFrame(frame: OutgoingFrame): void {
    if (!this.ws || !this._isConnected) {
      this.messageQueue.push(frame)
      return
    }
    try {
      this.ws.send(JSON.stringify(frame))
      this.sentFrames.push({ frame, at: Date.now(), socket: this.socketCount })
    } catch {
      this.messageQueue.push(frame)
    }
  }

  private flushQueue(): void {
    while (this.messageQueue.length > 0) {
      const frame = this.messageQueue.shift()
      if (frame) this.sendFrame(frame)
    }
  }

  private ensureRegistered(): void {
    if (!this._isRegistered) throw new Error("Not registered. Call connect() first.")
  }

  private notifyConnectionState(state: ConnectionState): void {
    this.connectionStateHandlers.forEach((h) => h(state))
  }

  private generateRequestId(): string {
    const buf = new Uint8Array(5)
    crypto.getRandomValues(buf)
    const rand = Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("")
    return `req_${Date.now()}_${rand}`
  }
}

// ─── Identities and payload helpers ─────────────────────────────────────────

const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex")
const toBase64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64")
const encoder = new TextEncoder()

export interface Identity {
  /** 64 lower-case hex chars */
  readonly publicKey: string
  readonly secretKey: Uint8Array
  /** hex ed25519 signature of the UTF-8 bytes of `message` (what the SDK's signFn must return) */
  readonly signFn: (message: string) => string
}

/** A fresh random ed25519 identity. */
export const makeIdentity = (): Identity => {
  const secretKey = ed25519.utils.randomSecretKey()
  const publicKey = toHex(ed25519.getPublicKey(secretKey))
  return {
    publicKey,
    secretKey,
    signFn: (message: string) => toHex(ed25519.sign(encoder.encode(message), secretKey)),
  }
}

/** Verify a hex signature over the UTF-8 of `message` (for fake servers and assertions). */
export const verifyProof = (publicKeyHex: string, message: string, signatureHex: string): boolean => {
  try {
    return ed25519.verify(Buffer.from(signatureHex, "hex"), encoder.encode(message), Buffer.from(publicKeyHex, "hex"))
  } catch {
    return false
  }
}

/**
 * A `SerializedEncryptedMessage` as the SDK's DACS transport builds it: AES-256-GCM, 12-byte
 * random nonce, base64(ciphertext ‖ tag). The key is random unless given; the server never decrypts.
 */
export const encryptedFor = (text: string, key: Uint8Array = randomBytes(32)): SerializedEncryptedMessage => {
  const nonce = randomBytes(12)
  const ciphertext = gcm(key, nonce).encrypt(encoder.encode(text))
  return { ciphertext: toBase64(ciphertext), nonce: toBase64(nonce) }
}

/** 64 random lower-case hex chars (a unique `messageHash`). */
export const randomHash = (): string => toHex(randomBytes(32))
