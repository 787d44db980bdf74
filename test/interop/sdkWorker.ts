/**
 * Hosts one real `MessagingPeer` of @kynesyslabs/demosdk@2.9.1 in a Bun Worker. The SDK keeps its keys
 * in a process-wide `unifiedCrypto` singleton, so each client gets its own worker (its own module
 * graph, hence its own identity). Commands come as `{id, cmd, args}`; results go back as `{id, ok,
 * value | error}`, and what the client's handlers see as `{event, ...}`.
 */
declare const self: {
  onmessage: ((event: MessageEvent<{ id: number; cmd: string; args: Array<any> }>) => void) | null
  postMessage: (message: unknown) => void
}

const SDK_BUILD = new URL("./.sdk/demosdk/build/", import.meta.url).href
const logs: Array<string> = []
for (const level of ["log", "info", "warn", "error", "debug"] as const) {
  // The SDK logs every frame; keep it for debugging instead of flooding the test output.
  console[level] = (...args: Array<unknown>) => {
    logs.push(`[${level}] ${args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" ")}`.slice(0, 500))
  }
}

let peer: any
let sdk: { MessagingPeer: any; unifiedCrypto: any } | undefined

const load = async () => {
  if (sdk === undefined) {
    const im = await import(SDK_BUILD + "instant_messaging/index.js")
    const uc = await import(SDK_BUILD + "encryption/unifiedCrypto.js")
    sdk = { MessagingPeer: im.MessagingPeer, unifiedCrypto: uc.unifiedCrypto }
  }
  return sdk
}

const waitUntil = async (cond: () => boolean, ms: number) => {
  const until = performance.now() + ms
  while (!cond()) {
    if (performance.now() > until) throw new Error("timeout")
    await new Promise((r) => setTimeout(r, 10))
  }
}

const commands: Record<string, (...args: Array<any>) => unknown> = {
  async init(serverUrl: string, clientId: string, seed: Array<number>) {
    const { MessagingPeer, unifiedCrypto } = await load()
    const masterSeed = new Uint8Array(seed)
    await unifiedCrypto.generateIdentity("ml-dsa", masterSeed)
    await unifiedCrypto.generateIdentity("ml-kem-aes", masterSeed)
    const kem = (await unifiedCrypto.getIdentity("ml-kem-aes")).publicKey as Uint8Array
    peer = new MessagingPeer({ serverUrl, clientId, publicKey: kem })
    peer.onMessage((message: unknown, fromId: string) => {
      if (message instanceof Uint8Array) {
        self.postMessage({ event: "message", fromId, bytes: Array.from(message) })
      } else if (message !== null && typeof message === "object" && "type" in message) {
        self.postMessage({ event: "frame", frame: message })
      }
    })
    peer.onPeerDisconnected((peerId: string) => self.postMessage({ event: "peer_disconnected", peerId }))
    peer.onServerQuestion((question: unknown, questionId: string) =>
      self.postMessage({ event: "server_question", question, questionId }))
    return { publicKey: Array.from(kem) }
  },
  connect: () => peer.connect(),
  /** Opens the socket without registering (MessagingPeer.connect always registers). */
  async open() {
    peer.connectWebSocket()
    await waitUntil(() => peer.isConnected, 5000)
  },
  register: () => peer.register(),
  discover: () => peer.discoverPeers(),
  requestPublicKey: async (id: string) => Array.from(await peer.requestPublicKey(id)),
  sendMessage: (id: string, text: string) => peer.sendMessage(id, text),
  /**
   * Sends `count` messages back to back, as an application sending as fast as the client lets it (each
   * waits only for its key request's reply); returns how many were sent, and the error that stopped it.
   */
  async sendMany(id: string, prefix: string, count: number) {
    for (let i = 0; i < count; i++) {
      try {
        await peer.sendMessage(id, `${prefix}${i}`)
      } catch (e) {
        return { sent: i, error: e instanceof Error ? e.message : String(e) }
      }
    }
    return { sent: count }
  },
  ask: (type: string, payload: unknown, expected: string) => peer.sendToServerAndWait({ type, payload }, expected),
  respond: (questionId: string, response: unknown) => peer.respondToServer(questionId, response),
  disconnect: () => peer.disconnect(),
  logs: () => logs
}

self.onmessage = async ({ data: { id, cmd, args } }) => {
  try {
    const value = await commands[cmd]!(...args)
    self.postMessage({ id, ok: true, value })
  } catch (e) {
    self.postMessage({ id, ok: false, error: e instanceof Error ? e.message : String(e) })
  }
}
