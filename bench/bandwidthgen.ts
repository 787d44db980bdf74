/**
 * A process of simulated chat users for `bench/bandwidth.ts` (driven over Bun IPC, as `loadgen.ts`).
 * Each user is one socket registered with the `ack` capability (`json`), or as the messenger now
 * registers, with `binary` and `quiet_acks` too (`binary`: binary `send`/`ack`, no `ack_response`), and does
 * what the client does by default: sends secure-session messages, acknowledges each message it gets
 * (one `ack` frame per message: at a few messages a minute the client's ack batching finds one),
 * and answers the server's pings (the WebSocket does). With `receipt` > 0 each ack carries a sealed
 * receipt of that size for its message (capability "receipts"), as the messenger does with a secure
 * session, and the node forwards it in the sender's `message_delivered`. With `receiptMessages` the
 * receipt is instead a message of its own, as before the capability (marked by a hash starting "ff",
 * messages never start so). Frames are counted by type, in characters
 * before any compression; the bytes on the wire are read from the kernel by the driver.
 */
import * as nodeCrypto from "node:crypto"
import { identity } from "./Keys.ts"
import { field } from "./Field.ts"
import { decodeBinary, encodeBinary } from "../src/domain/BinaryFrames.ts"

type Command =
  | { cmd: "setup"; url: string; run: string; users: ReadonlyArray<number>; total: number; group: number; networks: ReadonlyArray<string>; encoding: "json" | "binary" }
  | { cmd: "go"; perMinute: number; pqEvery: number; plaintext: number; overhead: number; pqExtra: number; receipt: number; receiptMessages?: boolean }
  | { cmd: "mark" }
  | { cmd: "close" }

const send = (m: unknown) => process.send!(m)

interface User {
  readonly ws: WebSocket
  readonly key: string
  readonly contacts: ReadonlyArray<string>
  sent: number
  next: number
}

const users: Array<User> = []
/** Characters and frames by direction and type, since the last `mark`. */
let counts: Record<string, { frames: number; chars: number }> = {}
const count = (kind: string, frame: string | Uint8Array) => {
  const c = (counts[kind] ??= { frames: 0, chars: 0 })
  c.frames++
  c.chars += typeof frame === "string" ? Buffer.byteLength(frame) : frame.byteLength
}
/** As our client writes: binary frames once the node granted them (capability "binary"), else JSON. */
let binary = false
let errors = 0
let firstError = ""
let closed = 0

// What the messenger puts in `encrypted.nonce` for a secure message (SECURE_NONCE): the node needs
// the member non-empty, the parcel carries its own nonces.
const NONCE = "secure"

let lastRequest = 0
// Our client's request ids: the SDK's format in JSON, a short counter with binary frames (src/client/L2psPeer.ts).
const reqId = () => binary ? `r${(++lastRequest).toString(36)}` : `req_${Date.now()}_${nodeCrypto.randomBytes(5).toString("hex")}`

const setup = async (c: Extract<Command, { cmd: "setup" }>) => {
  binary = c.encoding === "binary"
  // The messenger's capabilities: binary frames and no ack_response come with "binary" and "quiet_acks".
  const capabilities = binary ? ["ack", "copies", "binary", "quiet_acks", "receipts"] : ["ack", "receipts"]
  const ids = c.users.map((u) => identity(c.run, u))
  let registered = 0
  let resolveAll: () => void = () => {}
  const all = new Promise<void>((r) => (resolveAll = r))
  for (let i = 0; i < ids.length; i += 200) {
    const batch = ids.slice(i, i + 200).map((id, j) =>
      new Promise<void>((resolve, reject) => {
        const u = c.users[i + j]!
        const base = u - (u % c.group)
        // Five contacts in the user's own group (its network): presence and delivery stay within it.
        const contacts = [1, 2, 3, 4, 5].map((k) => identity(c.run, base + ((u - base + k) % c.group)).publicKey)
        const ws = new WebSocket(c.url)
        ws.binaryType = "arraybuffer"
        const user: User = { ws, key: id.publicKey, contacts, sent: 0, next: Infinity }
        ws.onopen = () => {
          const timestamp = Date.now()
          const network = c.networks[Math.floor(u / c.group) % c.networks.length]!
          ws.send(JSON.stringify({
            type: "register",
            payload: { publicKey: id.publicKey, l2psUid: network, proof: id.sign(`register:${id.publicKey}:${timestamp}`), capabilities },
            timestamp,
            requestId: reqId()
          }))
          resolve()
        }
        ws.onerror = () => reject(new Error(`cannot connect to ${c.url}`))
        ws.onclose = () => closed++
        ws.onmessage = (ev) => {
          let text: string
          let type: string
          let messageHash = () => field(text, "messageHash")
          let decoded: Extract<ReturnType<typeof decodeBinary>, { _tag: "Frame" }> | undefined
          if (typeof ev.data === "string") {
            text = ev.data
            type = field(text, "type")
            count(`in:${type}`, text)
          } else {
            const bytes = new Uint8Array(ev.data as ArrayBuffer)
            const d = decodeBinary(bytes)
            if (d._tag === "Bad") throw new Error(d.message)
            decoded = d
            type = d.frame.type
            text = ""
            messageHash = () => String(d.frame.payload.messageHash)
            count(`in:${type}`, bytes)
          }
          if (type === "registered" && ++registered === ids.length) resolveAll()
          else if (type === "message") {
            const hash = messageHash()
            if (receiptSize > 0 && receiptMessages && !hash.startsWith("ff")) {
              const from = typeof ev.data === "string" ? field(text, "from") : String(decoded!.frame.payload.from)
              const receipt = { to: from, encrypted: { ciphertext: nodeCrypto.randomBytes(receiptSize).toString("base64"), nonce: NONCE }, messageHash: `ff${nodeCrypto.randomBytes(31).toString("hex")}` }
              const r = binary
                ? encodeBinary({ type: "send", payload: receipt, timestamp: Date.now(), requestId: reqId() })!
                : `{"type":"send","payload":${JSON.stringify(receipt)},"timestamp":${Date.now()},"requestId":"${reqId()}"}`
              count("out:receipt", r)
              ws.send(r)
            }
            const payload = receiptSize > 0 && !receiptMessages
              ? { messageHashes: [hash], receipts: { [hash]: nodeCrypto.randomBytes(receiptSize).toString("base64") } }
              : { messageHashes: [hash] }
            const ack = binary
              ? encodeBinary({ type: "ack", payload, timestamp: Date.now(), requestId: reqId() })!
              : `{"type":"ack","payload":${JSON.stringify(payload)},"timestamp":${Date.now()},"requestId":"${reqId()}"}`
            count("out:ack", ack)
            ws.send(ack)
          } else if (type === "error") {
            errors++
            if (firstError === "") firstError = text.slice(0, 300)
            if (registered < ids.length && /register/i.test(text)) registered++ === ids.length - 1 && resolveAll()
          }
        }
        users.push(user)
      }))
    await Promise.all(batch)
  }
  await all
}

let timer: ReturnType<typeof setInterval> | undefined
/** bytes of a sealed receipt's ciphertext; 0: none (the node's `message_delivered` only) */
let receiptSize = 0
/** the receipt as a message of its own (before the capability "receipts") */
let receiptMessages = false

const go = (c: Extract<Command, { cmd: "go" }>) => {
  receiptSize = c.receipt
  receiptMessages = c.receiptMessages === true
  const period = 60_000 / c.perMinute
  const now = performance.now()
  // Spread over the period so the node sees a steady rate, not a beat.
  for (const u of users) u.next = now + Math.random() * period
  timer = setInterval(() => {
    const t = performance.now()
    for (const u of users) {
      if (u.next > t) continue
      u.next += period
      // A 100-character text: the secure session's ciphertext is the plaintext plus its steady
      // overhead, and every `pqEvery`-th message of a sender also carries the ML-KEM ratchet's key
      // or ciphertext. Random bytes: a ciphertext does not compress.
      const size = c.plaintext + c.overhead + (u.sent++ % c.pqEvery === c.pqEvery - 1 ? c.pqExtra : 0)
      const ciphertext = nodeCrypto.randomBytes(size).toString("base64")
      let hash = nodeCrypto.randomBytes(32).toString("hex")
      if (hash.startsWith("ff")) hash = `00${hash.slice(2)}`
      const to = u.contacts[Math.floor(Math.random() * u.contacts.length)]!
      const frame = binary
        ? encodeBinary({ type: "send", payload: { to, encrypted: { ciphertext, nonce: NONCE }, messageHash: hash }, timestamp: Date.now(), requestId: reqId() })!
        : `{"type":"send","payload":{"to":"${to}","encrypted":{"ciphertext":"${ciphertext}","nonce":"${NONCE}"},"messageHash":"${hash}"},"timestamp":${Date.now()},"requestId":"${reqId()}"}`
      count("out:send", frame)
      u.ws.send(frame)
    }
  }, 20)
}

process.on("message", async (c: Command) => {
  try {
    switch (c.cmd) {
      case "setup": await setup(c); return send({ ok: true })
      case "go": go(c); return send({ ok: true })
      case "mark": {
        const out = counts
        counts = {}
        return send({ ok: true, counts: out, errors, firstError, closed, cpu: process.cpuUsage() })
      }
      case "close":
        if (timer !== undefined) clearInterval(timer)
        for (const u of users) u.ws.close()
        return send({ ok: true })
    }
  } catch (e) {
    send({ ok: false, error: String(e) })
  }
})
send({ ok: true })
