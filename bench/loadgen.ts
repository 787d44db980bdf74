/**
 * A load-generator process (started by `Generators.ts`, driven over Bun IPC). It speaks the real L2PS
 * protocol over raw WebSockets: ed25519-signed registrations, `send` frames with an opaque encrypted
 * payload, and it reads replies by string search rather than JSON parsing, so that one generator core
 * can drive far more traffic than the node can relay. Frames are pre-built; the timed parts only write.
 */
import { historyFrame, identity, registerFrame } from "./Keys.ts"
import { field } from "./Field.ts"
import { onLoopback } from "./FileLimits.ts"

type Command =
  | { cmd: "pairs"; url: string; run: string; uid: string; first: number; count: number; senderUrls?: ReadonlyArray<string>; receiverUrls?: ReadonlyArray<string> }
  | { cmd: "closed"; durationMs: number; warmupMs: number; window: number }
  | { cmd: "acked"; durationMs: number; warmupMs: number; window: number; graceMs: number }
  | { cmd: "rate"; rate: number; durationMs: number; warmupMs: number }
  | { cmd: "open"; url: string; count: number; loopbacks?: number }
  | { cmd: "register"; run: string; first: number; uids: ReadonlyArray<string> }
  | { cmd: "history"; url: string; run: string; uid: string; peers: ReadonlyArray<string>; requests: number; minTs: number; maxTs: number }
  | { cmd: "close" }

const send = (m: unknown) => process.send!(m)

// 256 bytes of "ciphertext": the node never opens it, so its content does not matter, only its size.
const CIPHERTEXT = Buffer.from(crypto.getRandomValues(new Uint8Array(256))).toString("base64")
const NONCE = Buffer.from(crypto.getRandomValues(new Uint8Array(12))).toString("base64")
const EPHEMERAL = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("hex")

let onFrame: (text: string, socket: number) => void = () => {}
let closedByServer = 0
let errors = 0
let firstError = ""
const sockets: Array<WebSocket> = []

/**
 * Opens `count` sockets, at most 200 handshakes in flight (a connect storm is not what is measured);
 * with several urls, socket i goes to `urls[i]`; with one, the sockets are spread over `loopbacks`
 * destination addresses (127.0.0.1, .2, …) when one pair of addresses has too few ephemeral ports.
 */
const openSockets = async (target: string | ReadonlyArray<string>, count: number, loopbacks = 1): Promise<Array<WebSocket>> => {
  const opened: Array<WebSocket> = []
  const urls = typeof target !== "string" ? target : loopbacks <= 1 ? [target] : Array.from({ length: loopbacks }, (_, i) => onLoopback(target, i))
  for (let i = 0; i < count; i += 200) {
    const batch = Array.from({ length: Math.min(200, count - i) }, (_, j) =>
      new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(urls[(i + j) % urls.length]!)
        const index = sockets.length
        sockets.push(ws)
        ws.onopen = () => resolve(ws)
        ws.onerror = () => reject(new Error(`cannot connect to ${ws.url}`))
        // Closed before it opened (the server's limit, its registration deadline): fails the batch
        // rather than leave it waiting.
        ws.onclose = (ev) => {
          closedByServer++
          reject(new Error(`closed by ${ws.url} (${ev.code} ${ev.reason})`))
        }
        ws.onmessage = (ev) => {
          const text = ev.data as string
          if (text.startsWith('{"type":"error"')) {
            errors++
            if (firstError === "") firstError = text.slice(0, 300)
          }
          onFrame(text, index)
        }
      }))
    opened.push(...(await Promise.all(batch)))
  }
  return opened
}

/** Sends one frame per socket and resolves once each got a reply of `type`. */
const registerAll = (socketList: ReadonlyArray<WebSocket>, frames: ReadonlyArray<string>) =>
  new Promise<void>((resolve) => {
    let left = frames.length
    // A refused registration (counted in `errors`) also ends that socket's wait.
    onFrame = (text) => {
      if ((text.startsWith('{"type":"registered"') || text.startsWith('{"type":"error"')) && --left === 0) resolve()
    }
    socketList.forEach((ws, i) => ws.send(frames[i]!))
  })

// ── pairs: sender 2i sends to receiver 2i+1 ─────────────────────────────────────────────────────
let senders: Array<WebSocket> = []
let receiverKeys: Array<string> = []
let prefix = ""

const sendFrame = (pair: number, hash: string) =>
  `{"type":"send","payload":{"to":"${receiverKeys[pair]}","encrypted":{"ciphertext":"${CIPHERTEXT}","nonce":"${NONCE}","ephemeralKey":"${EPHEMERAL}"},"messageHash":"${hash}"},"timestamp":${Date.now()},"requestId":"${hash}"}`

const setupPairs = async (c: Extract<Command, { cmd: "pairs" }>) => {
  prefix = `${c.run}-${c.first}-${Math.random().toString(36).slice(2, 8)}-`
  const ids = Array.from({ length: c.count * 2 }, (_, i) => identity(c.run, 2 * c.first + i))
  // Sender and receiver of a pair may sit on different nodes of a cluster (pair p on urls[p % n]).
  const at = (urls: ReadonlyArray<string> | undefined, pair: number) => urls === undefined ? c.url : urls[pair % urls.length]!
  const all = await openSockets(ids.map((_, i) => at(i % 2 === 0 ? c.senderUrls : c.receiverUrls, c.first + Math.floor(i / 2))), ids.length)
  const now = Date.now()
  await registerAll(all, ids.map((id, i) => registerFrame(id, c.uid, now - i, `r${i}`)))
  senders = all.filter((_, i) => i % 2 === 0)
  receiverKeys = ids.filter((_, i) => i % 2 === 1).map((id) => id.publicKey)
}

/** Per message: when it was (meant to be) sent, and which of ack (1) and delivery (2) arrived. */
interface Flight { readonly pair: number; readonly at: number; seen: number; readonly measured?: boolean }

const track = (flights: Map<string, Flight>, onAck: (f: Flight, now: number) => void, onDeliver: (f: Flight, now: number) => void, onDone: (f: Flight, ok: boolean) => void) => {
  onFrame = (text) => {
    const isAck = text.startsWith('{"type":"message_sent"') || text.startsWith('{"type":"message_queued"')
    // The baseline forwards the sender's frame verbatim: for it, a delivery is a `send` frame.
    const isMsg = !isAck && (text.startsWith('{"type":"message"') || text.startsWith('{"type":"send"'))
    const hash = isAck || isMsg ? field(text, "messageHash") : text.startsWith('{"type":"error"') ? field(text, "requestId") : ""
    const f = flights.get(hash)
    if (f === undefined) return
    const now = performance.now()
    if (isAck) onAck(f, now)
    else if (isMsg) onDeliver(f, now)
    f.seen |= isAck ? 1 : isMsg ? 2 : 7
    if (f.seen >= 3) {
      flights.delete(hash)
      onDone(f, f.seen === 3)
    }
  }
}

const closedLoop = async (c: Extract<Command, { cmd: "closed" }>) => {
  const flights = new Map<string, Flight>()
  let seq = 0
  let counting = false
  let done = 0
  let stopped = false
  const fire = (pair: number) => {
    const hash = `${prefix}${seq++}`
    flights.set(hash, { pair, at: performance.now(), seen: 0 })
    senders[pair]!.send(sendFrame(pair, hash))
  }
  track(flights, () => {}, () => {}, (f, ok) => {
    if (counting && ok) done++
    if (!stopped) fire(f.pair)
  })
  const cpu0 = process.cpuUsage()
  senders.forEach((_, pair) => { for (let i = 0; i < c.window; i++) fire(pair) })
  await Bun.sleep(c.warmupMs)
  counting = true
  const t0 = performance.now()
  await Bun.sleep(c.durationMs)
  counting = false
  const seconds = (performance.now() - t0) / 1000
  stopped = true
  const cpu = process.cpuUsage(cpu0)
  await Bun.sleep(300)
  return { completed: done, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, wallSeconds: seconds + c.warmupMs / 1000 }
}

/**
 * Closed loop on acknowledgements alone: each pair keeps `window` messages unacknowledged, so the rate
 * is the node's acknowledged throughput whether or not deliveries come. Deliveries of the messages
 * sent in the measured window are counted and timed apart, until `graceMs` after it.
 */
const ackedLoop = async (c: Extract<Command, { cmd: "acked" }>) => {
  const flights = new Map<string, Flight>()
  const ackLatencies: Array<number> = []
  const deliverLatencies: Array<number> = []
  let seq = 0
  let counting = false
  let stopped = false
  let acked = 0
  let sent = 0
  let deliveredInWindow = 0
  const fire = (pair: number) => {
    const hash = `${prefix}${seq++}`
    flights.set(hash, { pair, at: performance.now(), seen: 0, measured: counting })
    if (counting) sent++
    senders[pair]!.send(sendFrame(pair, hash))
  }
  track(flights, (f, now) => {
    if (f.measured) {
      acked++
      ackLatencies.push(now - f.at)
    }
    if (!stopped) fire(f.pair)
  }, (f, now) => {
    if (!f.measured) return
    deliverLatencies.push(now - f.at)
    if (!stopped) deliveredInWindow++
  }, (f, ok) => {
    // An error instead of an ack: the pair still keeps its window full.
    if (!ok && !stopped) fire(f.pair)
  })
  const cpu0 = process.cpuUsage()
  senders.forEach((_, pair) => { for (let i = 0; i < c.window; i++) fire(pair) })
  await Bun.sleep(c.warmupMs)
  counting = true
  const t0 = performance.now()
  await Bun.sleep(c.durationMs)
  counting = false
  stopped = true
  const seconds = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  // Late deliveries of the measured messages, for at most graceMs: the bench ends in bounded time.
  const graceEnd = performance.now() + c.graceMs
  while (deliverLatencies.length < acked && performance.now() < graceEnd) await Bun.sleep(20)
  return {
    acked,
    sent,
    seconds,
    deliveredInWindow,
    delivered: deliverLatencies.length,
    ackLatencies,
    deliverLatencies,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    wallSeconds: seconds + c.warmupMs / 1000
  }
}

const openLoop = async (c: Extract<Command, { cmd: "rate" }>) => {
  const flights = new Map<string, Flight>()
  const ack: Array<number> = []
  const deliver: Array<number> = []
  const measureFrom = performance.now() + c.warmupMs
  let completed = 0
  track(flights, (f, now) => f.at >= measureFrom && ack.push(now - f.at), (f, now) => f.at >= measureFrom && deliver.push(now - f.at), (f, ok) => {
    if (ok && f.at >= measureFrom) completed++
  })
  const cpu0 = process.cpuUsage()
  const start = performance.now()
  const end = start + c.warmupMs + c.durationMs
  const interval = 1000 / c.rate
  let k = 0
  let scheduled = 0
  // Latency counts from when a message was due, not when the (possibly late) timer sent it.
  while (true) {
    const now = performance.now()
    if (now >= end) break
    while (start + k * interval <= now) {
      const pair = k % senders.length
      const hash = `${prefix}${k}`
      const at = start + k * interval
      flights.set(hash, { pair, at, seen: 0 })
      senders[pair]!.send(sendFrame(pair, hash))
      if (at >= measureFrom) scheduled++
      k++
    }
    await Bun.sleep(1)
  }
  const cpu = process.cpuUsage(cpu0)
  const deadline = performance.now() + 3000
  while (completed < scheduled && performance.now() < deadline) await Bun.sleep(20)
  return { scheduled, completed, ack, deliver, cpuSeconds: (cpu.user + cpu.system) / 1e6, wallSeconds: (end - start) / 1000 }
}

const history = async (c: Extract<Command, { cmd: "history" }>) => {
  const me = identity(c.run, 0)
  const [ws] = await openSockets(c.url, 1)
  await registerAll([ws!], [registerFrame(me, c.uid, Date.now(), "reg")])
  // Proofs are signed up front; each (peer, timestamp) is fresh, as the replay guard requires.
  const base = Date.now() - 1000
  const frames = Array.from({ length: c.requests }, (_, i) => {
    const before = i % 2 === 0 ? undefined : c.minTs + Math.floor(Math.random() * (c.maxTs - c.minTs))
    return historyFrame(me, c.peers[i % c.peers.length]!, base - i, before, 50, `h${i}`)
  })
  const latencies: Array<number> = []
  let messages = 0
  let refused = 0
  // Paced under the node's per-connection frame budget (100 frames/s) so no request is refused for rate.
  const start = performance.now()
  for (const [i, frame] of frames.entries()) {
    const due = start + i * 11
    if (performance.now() < due) await Bun.sleep(due - performance.now())
    const t = performance.now()
    const reply = await new Promise<string>((resolve) => {
      onFrame = (text) => (text.startsWith('{"type":"history_response"') || text.startsWith('{"type":"error"')) && resolve(text)
      ws!.send(frame)
    })
    if (reply.startsWith('{"type":"history_response"')) {
      latencies.push(performance.now() - t)
      messages += (reply.match(/"messageHash"/g) ?? []).length
    } else refused++
  }
  return { latencies, messages, refused }
}

let go: () => void = () => {}

process.on("message", async (c: Command | { cmd: "go" }) => {
  if (c.cmd === "go") return go()
  try {
    errors = 0
    firstError = ""
    switch (c.cmd) {
      case "pairs": await setupPairs(c); return send({ ok: true })
      case "closed": return send({ ok: true, ...(await closedLoop(c)), errors, firstError, closedByServer })
      case "acked": return send({ ok: true, ...(await ackedLoop(c)), errors, firstError, closedByServer })
      case "rate": return send({ ok: true, ...(await openLoop(c)), errors, firstError, closedByServer })
      case "open": {
        const t = performance.now()
        await openSockets(c.url, c.count, c.loopbacks)
        return send({ ok: true, seconds: (performance.now() - t) / 1000 })
      }
      case "register": {
        const now = Date.now()
        const frames = sockets.map((_, i) => registerFrame(identity(c.run, c.first + i), c.uids[i % c.uids.length]!, now - (i % 1000), `r${i}`))
        // Ready to go: the parent starts every generator's storm at once.
        send({ ok: true, signed: frames.length })
        await new Promise<void>((resolve) => (go = resolve))
        const t = performance.now()
        await registerAll(sockets, frames)
        return send({ ok: true, seconds: (performance.now() - t) / 1000, errors, firstError })
      }
      case "history": return send({ ok: true, ...(await history(c)), errors, firstError })
      case "close":
        for (const ws of sockets) {
          ws.onclose = null
          ws.close()
        }
        sockets.length = 0
        closedByServer = 0
        return send({ ok: true })
    }
  } catch (e) {
    send({ ok: false, error: String(e) })
  }
})
send({ ok: true, hello: process.pid })
