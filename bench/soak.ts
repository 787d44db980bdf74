/**
 * Soak run (a script, not a CI test): `bun run soak [--minutes 10] [--pairs 20] [--rate 2] [--report-seconds 30]
 * [--max-growth-mb 64] [--seed 1]`.
 *
 * Starts a node (embedded PGlite in a temp dir, or Postgres when DATABASE_URL is set) and runs mixed
 * traffic against it over real WebSockets: `pairs` pairs of ack-capable peers sending to each other
 * (`rate` messages/s each), peers dropping at random and reconnecting a few seconds later (their
 * messages are queued meanwhile and delivered on registration), history requests, short-lived clients
 * that register, discover and leave, and a socket sending malformed frames. Every `report-seconds` it
 * prints one line: node RSS, sessions and connections (from the node's /metrics), messages/s, ack
 * latency p50/p99 (send to message_sent/message_queued), and counters. At the end every peer
 * reconnects and the run checks that each acknowledged message reached its recipient, then compares
 * the node's RSS in the last third of the run with the first third (after a warm-up): exit 1 when
 * it grew more than `max-growth-mb`, or when a message was lost or a frame went unanswered.
 * (The node's JS heap is not exposed to other processes, so only RSS is reported.)
 */
import * as fs from "node:fs"
import { type Identity, makeIdentity, randomHash } from "../test/support/L2psClient.ts"
import { startNode } from "../test/support/NodeProcess.ts"
import { createDatabase } from "./Targets.ts"

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`)
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number`)
  return v
}
const MINUTES = arg("minutes", 10)
const PAIRS = arg("pairs", 20)
const RATE = arg("rate", 2)
const REPORT_S = arg("report-seconds", 30)
const MAX_GROWTH_MB = arg("max-growth-mb", 64)
const SEED = arg("seed", 1)
const UID = "default"

/** Seeded PRNG (mulberry32), so a run's traffic pattern is reproducible. */
let prng = SEED >>> 0
const random = (): number => {
  prng = (prng + 0x6d2b79f5) >>> 0
  let t = prng
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}
const pick = <A>(xs: ReadonlyArray<A>): A => xs[Math.floor(random() * xs.length)]!
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))
const percentile = (xs: number[], p: number): number => {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!
}
const median = (xs: number[]) => percentile(xs, 50)

// ─── Counters ───────────────────────────────────────────────────────────────

const stats = {
  sent: 0,
  acked: 0,
  received: 0,
  duplicates: 0,
  history: 0,
  reconnects: 0,
  ephemeral: 0,
  malformedSent: 0,
  malformedAnswered: 0,
  errors: new Map<string, number>(),
  latencies: [] as number[],
}
const countError = (code: string) => stats.errors.set(code, (stats.errors.get(code) ?? 0) + 1)
/** messageHash → recipient, for every message the node acknowledged */
const expected = new Map<string, Peer>()

// ─── A small SDK-like peer ──────────────────────────────────────────────────

let lastTimestamp = 0
const timestamp = () => (lastTimestamp = Math.max(Date.now(), lastTimestamp + 1))
let rid = 0

class Peer {
  ws: WebSocket | undefined
  online = false
  partner!: Peer
  readonly got = new Set<string>()
  private readonly waiting = new Map<string, { at: number; type: string; resolve: (f: any) => void }>()
  private toAck: string[] = []

  constructor(readonly id: Identity, readonly url: string) {}

  get key(): string {
    return this.id.publicKey
  }

  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url)
      this.ws = ws
      const timer = setTimeout(() => reject(new Error("register timeout")), 15_000)
      ws.onopen = () => {
        const ts = timestamp()
        const requestId = `r${++rid}`
        this.waiting.set(requestId, {
          at: Date.now(),
          type: "register",
          resolve: (f) => {
            clearTimeout(timer)
            if (f.type === "registered") {
              this.online = true
              resolve()
            } else reject(new Error(`register: ${JSON.stringify(f.payload)}`))
          },
        })
        ws.send(JSON.stringify({
          type: "register",
          payload: { publicKey: this.key, l2psUid: UID, proof: this.id.signFn(`register:${this.key}:${ts}`), capabilities: ["ack"] },
          timestamp: ts,
          requestId,
        }))
      }
      ws.onmessage = (e) => this.onFrame(JSON.parse(String(e.data)))
      ws.onclose = () => {
        if (this.ws === ws) this.online = false
        clearTimeout(timer)
        for (const w of this.waiting.values()) w.resolve({ type: "closed" })
        this.waiting.clear()
        reject(new Error("closed"))
      }
    })
  }

  drop(): void {
    this.online = false
    this.ws?.close()
  }

  private request(frame: Record<string, unknown>, type: string): Promise<any> {
    const requestId = `r${++rid}`
    return new Promise((resolve) => {
      this.waiting.set(requestId, { at: Date.now(), type, resolve })
      this.ws!.send(JSON.stringify({ ...frame, requestId }))
    })
  }

  async send(): Promise<void> {
    if (!this.online) return
    const messageHash = randomHash()
    const ciphertext = Buffer.from(randomHash() + randomHash()).toString("base64")
    const to = this.partner
    stats.sent++
    const at = Date.now()
    const f = await this.request({ type: "send", payload: { to: to.key, encrypted: { ciphertext, nonce: "bm9uY2Vub25jZW5v" }, messageHash }, timestamp: Date.now() }, "send")
    if (f.type === "message_sent" || f.type === "message_queued") {
      stats.acked++
      stats.latencies.push(Date.now() - at)
      expected.set(messageHash, to)
    } else if (f.type === "error") countError(f.payload.code)
  }

  async history(): Promise<void> {
    if (!this.online) return
    const ts = timestamp()
    const f = await this.request({
      type: "history",
      payload: { peerKey: this.partner.key, limit: 20, proof: this.id.signFn(`history:${this.partner.key}:${ts}`) },
      timestamp: ts,
    }, "history")
    if (f.type === "history_response") stats.history++
    else if (f.type === "error") countError(f.payload.code)
  }

  flushAcks(): void {
    if (!this.online || this.toAck.length === 0) return
    const messageHashes = this.toAck.splice(0, 500)
    this.ws!.send(JSON.stringify({ type: "ack", payload: { messageHashes }, timestamp: Date.now(), requestId: `a${++rid}` }))
  }

  private onFrame(f: any): void {
    if (f.requestId !== undefined && this.waiting.has(f.requestId)) {
      const w = this.waiting.get(f.requestId)!
      this.waiting.delete(f.requestId)
      w.resolve(f)
      return
    }
    if (f.type === "message") {
      const hash = f.payload.messageHash as string
      if (this.got.has(hash)) stats.duplicates++
      else {
        this.got.add(hash)
        stats.received++
      }
      this.toAck.push(hash)
    } else if (f.type === "error") countError(f.payload.code)
  }
}

// ─── Malformed traffic ──────────────────────────────────────────────────────

const malformed = (): string | Uint8Array =>
  pick<() => string | Uint8Array>([
    () => "{not json " + random(),
    () => JSON.stringify({ type: "fly", payload: {}, requestId: "junk" }),
    () => JSON.stringify({ type: "send", payload: { to: 5 } }),
    () => new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]),
    () => "[".repeat(5000) + "]".repeat(5000),
    () => JSON.stringify({ payload: [] }),
    () => "x".repeat(262_145),
  ])()

const junkSocket = async (url: string, seconds: number, stop: () => boolean): Promise<void> => {
  while (!stop()) {
    const ws = new WebSocket(url)
    ws.binaryType = "arraybuffer"
    await new Promise<void>((r) => (ws.onopen = () => r()))
    let outstanding = 0
    ws.onmessage = (e) => {
      const f = JSON.parse(typeof e.data === "string" ? e.data : new TextDecoder().decode(e.data as ArrayBuffer))
      // one error frame per malformed frame (the `send` one is REGISTRATION_REQUIRED: the socket never registers)
      if (f.type === "error") stats.malformedAnswered++
      outstanding--
    }
    const until = Date.now() + seconds * 1000
    while (Date.now() < until && !stop()) {
      for (let i = 0; i < 5; i++) {
        ws.send(malformed())
        stats.malformedSent++
        outstanding++
      }
      await sleep(1000)
    }
    // the answers to the last frames before closing
    const deadline = Date.now() + 5000
    while (outstanding > 0 && Date.now() < deadline) await sleep(20)
    ws.close()
  }
}

// ─── Run ────────────────────────────────────────────────────────────────────

const nodeMetrics = async (adminUrl: string): Promise<{ sessions: number; connections: number }> => {
  try {
    const text = await (await fetch(`${adminUrl}/metrics`)).text()
    const gauge = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text)?.[1] ?? NaN)
    return { sessions: gauge("im_sessions"), connections: gauge("im_connections") }
  } catch {
    return { sessions: NaN, connections: NaN }
  }
}

const rssMb = (pid: number): number => {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))
  return m ? Number(m[1]) / 1024 : NaN
}

const main = async (): Promise<number> => {
  const adminDb = process.env["DATABASE_URL"] || undefined
  // A throwaway database on that server, dropped at the end: never the database named in the URL.
  const db = adminDb === undefined ? undefined : await createDatabase(adminDb)
  const storage = db === undefined ? "embedded PGlite (temp dir)" : "Postgres (a throwaway database on DATABASE_URL's server)"
  console.log(`soak: ${MINUTES} min, ${PAIRS} pairs at ${RATE} msg/s per peer, report every ${REPORT_S} s, seed ${SEED}, ${storage}`)
  const node = await startNode({
    env: {
      DATABASE_URL: db?.url,
      REGISTRATION_BURST_PER_ADDRESS: "100000",
      REGISTRATION_RATE_PER_ADDRESS: "10000",
      L2PS_BATCH_INTERVAL_MS: "1000",
    },
    freePortEnv: ["SIGNALING_PORT", "ADMIN_PORT"],
  })
  const adminUrl = `http://127.0.0.1:${node.env["ADMIN_PORT"]}`
  let stopping = false
  try {
    const peers: Peer[] = []
    for (let i = 0; i < PAIRS; i++) {
      const a = new Peer(makeIdentity(), node.url)
      const b = new Peer(makeIdentity(), node.url)
      a.partner = b
      b.partner = a
      peers.push(a, b)
    }
    await Promise.all(peers.map((p) => p.connect()))

    const started = Date.now()
    const endAt = started + MINUTES * 60_000
    const samples: Array<{ t: number; rss: number }> = []
    const junk = junkSocket(node.url, 30, () => stopping)
    let lastReport = started
    let lastAcked = 0

    const reconnectLater = (p: Peer) => {
      const delay = 1000 + random() * 7000
      setTimeout(() => {
        if (stopping) return
        stats.reconnects++
        p.connect().catch(() => countError("reconnect_failed"))
      }, delay)
    }

    // one tick per 100 ms: sends at RATE per peer, acks; once a second: drops, history, short-lived clients
    let tick = 0
    while (Date.now() < endAt) {
      tick++
      for (const p of peers) if (random() < RATE / 10) void p.send()
      for (const p of peers) p.flushAcks()
      if (tick % 10 === 0) {
        for (const p of peers) {
          if (p.online && random() < 0.02) {
            p.drop()
            reconnectLater(p)
          }
        }
        for (let i = 0; i < 3; i++) void pick(peers).history()
        for (let i = 0; i < 2; i++) {
          const e = new Peer(makeIdentity(), node.url)
          e.partner = e
          stats.ephemeral++
          e.connect().then(() => sleep(200 + random() * 800)).then(() => e.drop(), (err) => { countError("ephemeral_failed"); if (process.env["SOAK_DEBUG"]) console.error(String(err)) })
        }
      }
      if (tick % 50 === 0) samples.push({ t: Date.now() - started, rss: rssMb(node.pid) })
      if (Date.now() - lastReport >= REPORT_S * 1000) {
        const seconds = (Date.now() - lastReport) / 1000
        const m = await nodeMetrics(adminUrl)
        const lat = stats.latencies.splice(0)
        console.log(
          `t=${String(Math.round((Date.now() - started) / 1000)).padStart(4)}s  rss=${rssMb(node.pid).toFixed(1).padStart(7)} MB  ` +
            `sessions=${String(m.sessions).padStart(4)}  conns=${String(m.connections).padStart(4)}  ` +
            `msgs/s=${((stats.acked - lastAcked) / seconds).toFixed(1).padStart(6)}  ` +
            `ack p50=${median(lat).toFixed(0)} ms p99=${percentile(lat, 99).toFixed(0)} ms  ` +
            `received=${stats.received} dup=${stats.duplicates} history=${stats.history} reconnects=${stats.reconnects} ` +
            `short-lived=${stats.ephemeral} malformed=${stats.malformedAnswered}/${stats.malformedSent} ` +
            `errors=${JSON.stringify(Object.fromEntries(stats.errors))}`,
        )
        lastReport = Date.now()
        lastAcked = stats.acked
      }
      await sleep(100)
    }

    // drain: everyone back online, every acknowledged message must arrive
    stopping = true
    await junk
    await sleep(1000)
    for (const p of peers) if (!p.online) await p.connect().catch(() => countError("final_reconnect_failed"))
    const lost = () => [...expected].filter(([hash, to]) => !to.got.has(hash)).length
    const drainUntil = Date.now() + 60_000
    while (lost() > 0 && Date.now() < drainUntil) {
      for (const p of peers) p.flushAcks()
      await sleep(200)
    }
    // still missing while every recipient is online: stuck in the queue, or lost? A new registration tells
    const stuckFor = new Set([...expected].filter(([hash, to]) => !to.got.has(hash)).map(([, to]) => to))
    const stuckCount = lost()
    for (const p of stuckFor) {
      p.drop()
      await p.connect().catch(() => countError("final_reconnect_failed"))
    }
    const retryUntil = Date.now() + 15_000
    while (stuckFor.size > 0 && lost() > 0 && Date.now() < retryUntil) {
      for (const p of peers) p.flushAcks()
      await sleep(200)
    }
    const missing = lost()
    const stuck = stuckCount - missing
    const unanswered = stats.malformedSent - stats.malformedAnswered

    // memory: after a warm-up, the last third against the first third (medians)
    const warmup = Math.max(30_000, 0.2 * MINUTES * 60_000)
    const afterWarmup = samples.filter((s) => s.t >= warmup)
    const steady = afterWarmup.length >= 3 ? afterWarmup : samples
    const third = Math.max(1, Math.floor(steady.length / 3))
    const first = median(steady.slice(0, third).map((s) => s.rss))
    const last = median(steady.slice(-third).map((s) => s.rss))
    const growth = last - first
    const flat = Number.isFinite(growth) && growth <= MAX_GROWTH_MB
    console.log(
      `done: ${stats.acked} messages acknowledged, ${stats.received} received (${stats.duplicates} redelivered), ` +
        `${stuck} delivered only after their online recipient registered again, ${missing} lost; ` +
        `malformed frames ${stats.malformedAnswered}/${stats.malformedSent} answered`,
    )
    console.log(
      `memory: RSS median ${first.toFixed(1)} MB in the first third after a ${Math.round(warmup / 1000)} s warm-up, ` +
        `${last.toFixed(1)} MB in the last third: ${growth >= 0 ? "+" : ""}${growth.toFixed(1)} MB ` +
        `(limit +${MAX_GROWTH_MB} MB) → ${flat ? "FLAT" : "GREW"}`,
    )
    for (const p of peers) p.drop()
    const ok = flat && missing === 0 && stuck === 0 && unanswered === 0
    console.log(ok ? "soak: OK" : "soak: FAILED")
    return ok ? 0 : 1
  } finally {
    stopping = true
    await node.dispose()
    await db?.drop()
  }
}

process.exit(await main())
