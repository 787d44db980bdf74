/**
 * Shared helpers for the end-to-end tests: SDK-like peers (L2psClient) that record what they receive,
 * signed raw frames for RawSocket, and assertions on error frames.
 */
import { expect } from "bun:test"
import {
  type ConnectionState,
  type ErrorPayload,
  type Identity,
  type IncomingMessagePayload,
  L2psClient,
  makeIdentity,
  type ReceiptPayload,
  type RegisteredPayload,
} from "../support/L2psClient.ts"
import { type NodeProcess, startNode, type StartNodeOptions } from "../support/NodeProcess.ts"
import type { Frame, RawSocket } from "../support/RawSocket.ts"

/**
 * `startNode` for these tests: every client connects from 127.0.0.1, so the per-address registration
 * bucket is opened wide; the admin endpoint is off and the legacy server gets a free port, so nodes
 * never compete for fixed ports with one another or with other runs on the machine.
 */
export const startE2eNode = (env: Readonly<Record<string, string>> = {}, options: Omit<StartNodeOptions, "env"> = {}): Promise<NodeProcess> =>
  startNode({
    ...options,
    env: { ADMIN_PORT: "0", REGISTRATION_BURST_PER_ADDRESS: "100000", ...env },
    freePortEnv: ["SIGNALING_PORT", ...(options.freePortEnv ?? [])],
  })

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Polls `check` every 10 ms until it returns true; throws `what` after `timeoutMs`. */
export const waitUntil = async (check: () => boolean, what: string, timeoutMs = 3000): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timeout after ${timeoutMs} ms waiting for ${what}`)
    await sleep(10)
  }
}

// ─── SDK-like peers ─────────────────────────────────────────────────────────

export interface Peer {
  readonly id: Identity
  readonly key: string
  readonly client: L2psClient
  readonly registered: RegisteredPayload
  readonly inbox: IncomingMessagePayload[]
  readonly joined: string[]
  readonly left: string[]
  readonly receipts: ReceiptPayload[]
  readonly errors: ErrorPayload[]
  /** connection states with their local time, in order */
  readonly states: Array<{ readonly state: ConnectionState; readonly at: number }>
  /** Waits until the inbox holds at least `n` messages; returns the inbox. */
  waitInbox(n: number, timeoutMs?: number): Promise<IncomingMessagePayload[]>
  /** Parsed raw frames of a given type received so far. */
  framesOfType(type: string): Array<Record<string, unknown>>
}

export interface PeerOptions {
  readonly identity?: Identity
  readonly capabilities?: ReadonlyArray<string>
}

/** Tracks every peer so a test file can disconnect them all. */
export class PeerPool {
  private readonly peers: Peer[] = []

  async connect(url: string, l2psUid: string, options: PeerOptions = {}): Promise<Peer> {
    const id = options.identity ?? makeIdentity()
    const client = new L2psClient({
      serverUrl: url,
      publicKey: id.publicKey,
      l2psUid,
      signFn: id.signFn,
      capabilities: options.capabilities,
    })
    const inbox: IncomingMessagePayload[] = []
    const joined: string[] = []
    const left: string[] = []
    const receipts: ReceiptPayload[] = []
    const errors: ErrorPayload[] = []
    const states: Array<{ state: ConnectionState; at: number }> = []
    client.onMessage((m) => inbox.push(m))
    client.onPeerJoined((k) => joined.push(k))
    client.onPeerLeft((k) => left.push(k))
    client.onReceipt((r) => receipts.push(r))
    client.onError((e) => errors.push(e))
    client.onConnectionStateChange((state) => states.push({ state, at: Date.now() }))
    let registered: RegisteredPayload
    try {
      registered = await client.connect()
    } catch (e) {
      client.disconnect()
      throw e
    }
    const peer: Peer = {
      id,
      key: id.publicKey,
      client,
      registered,
      inbox,
      joined,
      left,
      receipts,
      errors,
      states,
      async waitInbox(n, timeoutMs = 3000) {
        await waitUntil(() => inbox.length >= n, `${n} message(s) for ${id.publicKey.slice(0, 8)} (have ${inbox.length})`, timeoutMs)
        return inbox
      },
      framesOfType(type) {
        return client.rawFrames
          .map((f) => f.parsed as Record<string, unknown> | undefined)
          .filter((f): f is Record<string, unknown> => f !== undefined && f["type"] === type)
      },
    }
    this.peers.push(peer)
    return peer
  }

  /** Disconnects every peer still connected (idempotent). */
  disconnectAll(): void {
    for (const p of this.peers.splice(0)) p.client.disconnect()
  }
}

// ─── Raw frames ─────────────────────────────────────────────────────────────

let lastTimestamp = 0
/** A fresh ms timestamp, distinct from every earlier one in this process (proofs are single-use). */
export const freshTimestamp = (): number => {
  lastTimestamp = Math.max(Date.now(), lastTimestamp + 1)
  return lastTimestamp
}

export const registerFrame = (
  id: Identity,
  l2psUid: string,
  options: {
    readonly requestId?: string
    readonly timestamp?: number
    readonly publicKey?: string
    readonly capabilities?: ReadonlyArray<string>
  } = {},
): Record<string, unknown> => {
  const timestamp = options.timestamp ?? freshTimestamp()
  const publicKey = options.publicKey ?? id.publicKey
  const payload: Record<string, unknown> = { publicKey, l2psUid, proof: id.signFn(`register:${publicKey}:${timestamp}`) }
  if (options.capabilities !== undefined) payload["capabilities"] = [...options.capabilities]
  return withRequestId({ type: "register", payload, timestamp }, options.requestId)
}

export const historyFrame = (
  id: Identity,
  peerKey: string,
  options: { readonly requestId?: string; readonly timestamp?: number; readonly limit?: unknown; readonly before?: unknown } = {},
): Record<string, unknown> => {
  const timestamp = options.timestamp ?? freshTimestamp()
  const payload: Record<string, unknown> = { peerKey, proof: id.signFn(`history:${peerKey}:${timestamp}`) }
  if ("limit" in options) payload["limit"] = options.limit
  if ("before" in options) payload["before"] = options.before
  return withRequestId({ type: "history", payload, timestamp }, options.requestId)
}

export const requestFrame = (type: string, payload: unknown, requestId?: string): Record<string, unknown> =>
  withRequestId({ type, payload, timestamp: Date.now() }, requestId)

const withRequestId = (frame: Record<string, unknown>, requestId: string | undefined): Record<string, unknown> =>
  requestId === undefined ? frame : { ...frame, requestId }

let rid = 0
/** A unique request id in the SDK's format. */
export const newRequestId = (): string => `req_${Date.now()}_${(++rid).toString(16).padStart(10, "0")}`

const UNSOLICITED = new Set(["peer_joined", "peer_left", "message_delivered"])

/** The next frame that is not presence or a receipt (other tests' peers may come and go on a shared network). */
export const nextReply = async (sock: RawSocket, timeoutMs = 3000): Promise<Frame> => {
  for (;;) {
    const f = await sock.next(timeoutMs)
    if (!UNSOLICITED.has(String(f.type))) return f
  }
}

/** Sends a frame and returns the next reply. */
export const ask = async (sock: RawSocket, frame: unknown, timeoutMs = 3000): Promise<Frame> => {
  sock.sendJson(frame)
  return nextReply(sock, timeoutMs)
}

/** `{type:"error", payload:{code, message}, timestamp, requestId?}`, exactly; no requestId when `requestId` is undefined. */
export const expectError = (f: Frame, code: string, message: string, requestId: string | undefined): void => {
  expect({ type: f.type, payload: f.payload }).toEqual({ type: "error", payload: { code, message } })
  expect(typeof f.timestamp).toBe("number")
  if (requestId === undefined) {
    expect(Object.keys(f).sort()).toEqual(["payload", "timestamp", "type"])
  } else {
    expect(f.requestId).toBe(requestId)
    expect(Object.keys(f).sort()).toEqual(["payload", "requestId", "timestamp", "type"])
  }
}

/** Registers a raw socket and checks the reply. */
export const registerRaw = async (sock: RawSocket, id: Identity, l2psUid: string): Promise<Frame> => {
  const requestId = newRequestId()
  const reply = await ask(sock, registerFrame(id, l2psUid, { requestId }))
  expect(reply.type).toBe("registered")
  expect(reply.requestId).toBe(requestId)
  return reply
}

/**
 * The socket still answers: a `discover` gets `discover_response` (registered) or
 * `REGISTRATION_REQUIRED` (not registered), with its requestId.
 */
export const expectAlive = async (sock: RawSocket, registered: boolean): Promise<void> => {
  const requestId = newRequestId()
  const f = await ask(sock, requestFrame("discover", {}, requestId))
  if (registered) {
    expect(f.type).toBe("discover_response")
    expect(f.requestId).toBe(requestId)
    expect(Array.isArray(f.payload?.peers)).toBe(true)
  } else {
    expectError(f, "REGISTRATION_REQUIRED", "Register before discovering peers", requestId)
  }
}

/** Sends `frame` (with a fresh requestId) and checks the error, then that the socket still works. */
export const expectRequestError = async (
  sock: RawSocket,
  frame: Record<string, unknown>,
  code: string,
  message: string,
  registered: boolean,
): Promise<void> => {
  const requestId = newRequestId()
  const f = await ask(sock, { ...frame, requestId })
  expectError(f, code, message, requestId)
  await expectAlive(sock, registered)
}

export const encrypted = (ciphertext = "Y2lwaGVy", nonce = "bm9uY2Vub25jZW5v"): Record<string, unknown> => ({ ciphertext, nonce })

export { makeIdentity }
export type { Identity }
