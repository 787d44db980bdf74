/**
 * Load clients for the fault tests: a registered L2PS session over a plain WebSocket that can keep
 * several sends in flight (replies matched by requestId), records every live `message` it receives
 * with its arrival time, and reads whole conversations from history. No reconnection: a fault test
 * decides itself when a client comes back.
 */
import { encryptedFor, type Identity, makeIdentity, randomHash } from "../support/L2psClient.ts"
import { freshTimestamp } from "../e2e/helpers.ts"

export type Frame = {
  readonly type: string
  readonly payload?: any
  readonly timestamp?: number
  readonly requestId?: string
}

export interface Received {
  readonly from: string
  readonly messageHash: string
  readonly offline: boolean
  readonly at: number
}

export interface SendOutcome {
  readonly messageHash: string
  readonly to: string
  readonly startedAt: number
  readonly at: number
  /** the reply frame, or undefined when the socket closed or the reply timed out */
  readonly reply: Frame | undefined
  readonly failure?: string
}

export const isAck = (o: SendOutcome): boolean => o.reply?.type === "message_sent" || o.reply?.type === "message_queued"

export interface LoadClient {
  readonly id: Identity
  readonly key: string
  readonly ws: WebSocket
  readonly received: Received[]
  /** every frame received, parsed */
  readonly frames: Frame[]
  /** hashes the node confirmed in an `ack_response` (autoAck) */
  readonly ackConfirmed: Set<string>
  readonly closed: Promise<{ code: number; reason: string }>
  isOpen(): boolean
  /** Sends a frame and resolves with the reply carrying its requestId (rejects on timeout or close). */
  request(type: string, payload: unknown, options?: { timeoutMs?: number; timestamp?: number }): Promise<Frame>
  /** One send; never rejects: the outcome says what happened. */
  send(to: string, messageHash?: string, timeoutMs?: number): Promise<SendOutcome>
  /** One signed history request (200 messages, before `before`); resolves with the reply frame. */
  history(peer: string, before?: number): Promise<Frame>
  /** Every stored message of the conversation with `peer`, newest first, paging with `before`. */
  conversation(peer: string): Promise<Array<Record<string, any>>>
  /** A request round trip: every frame the node queued for this socket before it is received by now. */
  barrier(): Promise<void>
  close(): void
}

let rid = 0

export interface ConnectOptions {
  readonly identity?: Identity
  readonly l2psUid?: string
  readonly capabilities?: ReadonlyArray<string>
  /** ack every received message at once (needs `capabilities: ["ack"]`) */
  readonly autoAck?: boolean
  readonly timeoutMs?: number
}

export const connect = (url: string, options: ConnectOptions = {}): Promise<LoadClient> =>
  new Promise<LoadClient>((resolve, reject) => {
    const id = options.identity ?? makeIdentity()
    const uid = options.l2psUid ?? "default"
    const ws = new WebSocket(url)
    const received: Received[] = []
    const frames: Frame[] = []
    const ackConfirmed = new Set<string>()
    const toAck: string[] = []
    let ackTimer: ReturnType<typeof setTimeout> | undefined
    const pending = new Map<string, { resolve: (f: Frame) => void; reject: (e: Error) => void; timer: ReturnType<typeof setTimeout> }>()
    let open = false
    let resolveClosed!: (c: { code: number; reason: string }) => void
    const closed = new Promise<{ code: number; reason: string }>((r) => (resolveClosed = r))
    const openTimer = setTimeout(() => {
      reject(new Error(`LoadClient: ${url} did not open`))
      ws.close()
    }, options.timeoutMs ?? 10_000)

    const request: LoadClient["request"] = (type, payload, opts = {}) =>
      new Promise<Frame>((res, rej) => {
        if (!open) return rej(new Error("socket closed"))
        const requestId = `f${++rid}`
        const timeoutMs = opts.timeoutMs ?? 10_000
        const timer = setTimeout(() => {
          pending.delete(requestId)
          rej(new Error(`no reply to ${type} within ${timeoutMs} ms`))
        }, timeoutMs)
        pending.set(requestId, { resolve: res, reject: rej, timer })
        ws.send(JSON.stringify({ type, payload, timestamp: opts.timestamp ?? Date.now(), requestId }))
      })

    ws.onmessage = (event: MessageEvent) => {
      const f = JSON.parse(String(event.data)) as Frame
      frames.push(f)
      if (f.type === "message") {
        received.push({ from: f.payload.from, messageHash: f.payload.messageHash, offline: f.payload.offline === true, at: Date.now() })
        if (options.autoAck) {
          toAck.push(f.payload.messageHash)
          // acks go out in batches (a frame per message would hit the per-connection frame limit)
          ackTimer ??= setTimeout(() => {
            ackTimer = undefined
            const messageHashes = toAck.splice(0, 500)
            request("ack", { messageHashes }).then(
              (r) => {
                if (r.type === "ack_response") for (const h of r.payload.messageHashes as string[]) ackConfirmed.add(h)
              },
              () => undefined
            )
          }, 20)
        }
      }
      if (f.requestId !== undefined) {
        const p = pending.get(f.requestId)
        if (p) {
          pending.delete(f.requestId)
          clearTimeout(p.timer)
          p.resolve(f)
        }
      }
    }
    ws.onclose = (event: CloseEvent) => {
      open = false
      for (const p of pending.values()) {
        clearTimeout(p.timer)
        p.reject(new Error(`socket closed (${event.code})`))
      }
      pending.clear()
      resolveClosed({ code: event.code, reason: event.reason })
      clearTimeout(openTimer)
      reject(new Error(`LoadClient: closed before registration (${event.code})`))
    }
    ws.onerror = () => {}

    const client: LoadClient = {
      id,
      key: id.publicKey,
      ws,
      received,
      frames,
      ackConfirmed,
      closed,
      isOpen: () => open,
      request,
      async send(to, messageHash = randomHash(), timeoutMs = 10_000) {
        const startedAt = Date.now()
        try {
          const reply = await request("send", { to, encrypted: encryptedFor("load"), messageHash }, { timeoutMs })
          return { messageHash, to, startedAt, at: Date.now(), reply }
        } catch (e) {
          return { messageHash, to, startedAt, at: Date.now(), reply: undefined, failure: String(e) }
        }
      },
      history(peer, before) {
        const timestamp = freshTimestamp()
        const payload: Record<string, unknown> = { peerKey: peer, proof: id.signFn(`history:${peer}:${timestamp}`), limit: 200 }
        if (before !== undefined) payload["before"] = before
        return request("history", payload, { timestamp, timeoutMs: 15_000 })
      },
      async conversation(peer) {
        const all: Array<Record<string, any>> = []
        let before: number | undefined
        for (;;) {
          const r = await client.history(peer, before)
          if (r.type !== "history_response") throw new Error(`history: ${JSON.stringify(r)}`)
          all.push(...r.payload.messages)
          if (!r.payload.hasMore) return all
          before = all.at(-1)!["timestamp"]
        }
      },
      async barrier() {
        const r = await request("discover", {})
        if (r.type !== "discover_response") throw new Error(`discover: ${JSON.stringify(r)}`)
      },
      close: () => ws.close()
    }

    ws.onopen = () => {
      open = true
      const timestamp = freshTimestamp()
      const payload: Record<string, unknown> = { publicKey: id.publicKey, l2psUid: uid, proof: id.signFn(`register:${id.publicKey}:${timestamp}`) }
      if (options.capabilities) payload["capabilities"] = [...options.capabilities]
      request("register", payload, { timestamp }).then((f) => {
        clearTimeout(openTimer)
        if (f.type === "registered") resolve(client)
        else {
          reject(new Error(`register: ${JSON.stringify(f)}`))
          ws.close()
        }
      }, (e) => {
        clearTimeout(openTimer)
        reject(e)
      })
    }
  })

/**
 * Keeps `inFlight` sends outstanding from `from` to the recipients (round robin) until `stop()`;
 * every outcome is recorded, in completion order.
 */
export const sendLoop = (from: LoadClient, recipients: ReadonlyArray<string>, inFlight: number, timeoutMs = 10_000) => {
  const outcomes: SendOutcome[] = []
  let running = true
  let n = 0
  const lane = async (): Promise<void> => {
    while (running && from.isOpen()) {
      const to = recipients[n++ % recipients.length]!
      const o = await from.send(to, randomHash(), timeoutMs)
      outcomes.push(o)
      // a refused send is answered at once: pace the loop a little so an outage is not a busy loop
      if (!isAck(o)) await new Promise((r) => setTimeout(r, 20))
    }
  }
  const done = Promise.all(Array.from({ length: inFlight }, lane))
  return {
    outcomes,
    stop: async () => {
      running = false
      await done
    }
  }
}

/** Clients a test opens, so that its teardown closes them all. */
export const clientPool = () => {
  const clients: Array<LoadClient> = []
  return {
    clients: clients as ReadonlyArray<LoadClient>,
    open: async (url: string, options: Parameters<typeof connect>[1] = {}): Promise<LoadClient> => {
      const c = await connect(url, options)
      clients.push(c)
      return c
    },
    closeAll: (): void => {
      for (const c of clients.splice(0)) c.close()
    }
  }
}
