/**
 * `npm run bench -- --bandwidth [--users N] [--seconds S] [--warmup S] [--procs P] [--compression off,shared,4KB] [--encoding json,binary]`:
 * N active chat users on one node (10,000 by default), one device and one socket each, each sending a
 * 100-character text to one of five contacts 4 times a minute, with what our client does by default
 * (registration with the `ack` capability, an `ack` per received message, the node's
 * `message_sent` and `message_delivered`, presence within each user's network, the server's pings).
 * Ciphertexts have the sizes of the messenger's secure messages for one device, not made by the
 * ratchet: 188 B (below), and every 50th message of a sender 1,200 B more (the ML-KEM ratchet's key
 * or ciphertext), with the messenger's nonce member `"secure"`.
 * Users are in groups of 100, one network each, as presence is announced to a whole network.
 * `--encoding`: `json` registers with `["ack"]` and writes JSON frames (as the SDK's clients and our
 * client before issue 16); `binary` registers as the messenger does now, with `"binary"` and
 * `"quiet_acks"` too, and writes `send` and `ack` in binary (docs/PROTOCOL.md, "Binary frames").
 *
 * Bytes on the wire come from the kernel: `ss -ti` gives each of the node's TCP sockets its payload
 * bytes (frames with their WebSocket headers, after compression) and its segments, pure ACKs
 * included; each segment adds 52 B of IPv4 and TCP headers (20 + 20 + 12 of timestamps). Frames are
 * also counted by type at the users, in characters before compression, for the split per side.
 * The node's CPU is its process's user + system time over the window (/proc/<pid>/stat).
 */
import * as fs from "node:fs"
import { spawnGenerators } from "./Generators.ts"
import { fmt } from "./Stats.ts"
import { createDatabase, SESSION_NETWORKS, startBenchNode, type StorageChoice, tempDir } from "./Targets.ts"

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`)
  return i < 0 ? fallback : Number(process.argv[i + 1])
}
const users = arg("users", 10_000)
const seconds = arg("seconds", 60)
const warmup = arg("warmup", 15)
const procs = arg("procs", 4)
const ci = process.argv.indexOf("--compression")
const compressions = (ci < 0 ? "off,shared,4KB" : process.argv[ci + 1]!).split(",")
const ei = process.argv.indexOf("--encoding")
const encodings = (ei < 0 ? "json" : process.argv[ei + 1]!).split(",") as Array<"json" | "binary">
const combinations = compressions.flatMap((compression) => encodings.map((encoding) => ({ compression, encoding })))
const GROUP = 100
const PER_MINUTE = 4
const TCPIP = 52
// The messenger's secure message for one device (src/client/SecureLink.ts): a parcel (10 B with one
// part and a 31-bit device id) of an envelope (42 B header, 16 B tag) around the plaintext form (1 B),
// the send time (8 B) and the content envelope of a 100-character text (112 B).
const PLAINTEXT = 1 + 8 + 112
const OVERHEAD = 10 + 42 + 16
// Its sealed receipt for one message (position 0, so no link), sealed for the one device that sent the
// message: a parcel of one part, the envelope, form, time, and a 38 B content envelope (format,
// position, code, version, count, length, 32-byte hash); base64 in the ack and `message_delivered`.
const RECEIPT = OVERHEAD + 1 + 8 + 38
const ri = process.argv.indexOf("--receipts")
/**
 * "sealed" (the messenger's default with secure sessions: the receipt rides on the ack and comes back in
 * `message_delivered`), "message" (the receipt as a message of its own, as before the capability
 * "receipts"), or "node" (only the node's message_delivered)
 */
const receipts = ri < 0 ? "sealed" : process.argv[ri + 1]!
const adminUrl = process.env["DATABASE_URL"] || undefined
const log = (line: string) => console.log(line)
const loadavg = () => fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")

interface Tcp { sent: number; received: number; segsOut: number; segsIn: number; sockets: number }
const tcp = async (port: number): Promise<Tcp> => {
  const p = Bun.spawn(["ss", "-tinH", "state", "established", `( sport = :${port} )`], { stdout: "pipe" })
  const text = await new Response(p.stdout).text()
  await p.exited
  const sum = (name: string) => {
    let n = 0
    for (const m of text.matchAll(new RegExp(`\\b${name}:(\\d+)`, "g"))) n += Number(m[1])
    return n
  }
  return { sent: sum("bytes_sent"), received: sum("bytes_received"), segsOut: sum("segs_out"), segsIn: sum("segs_in"), sockets: (text.match(/bytes_received:/g) ?? []).length }
}
const cpuTicks = (pid: number) => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
  return Number(f[11]) + Number(f[12])
}
const loBytes = () => {
  const line = fs.readFileSync("/proc/net/dev", "utf8").split("\n").find((l) => l.trim().startsWith("lo:"))!
  return Number(line.split(":")[1]!.trim().split(/\s+/)[0])
}
const TICKS = 100
const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024

type Counts = Record<string, { frames: number; chars: number }>
const merge = (all: ReadonlyArray<Counts>): Counts => {
  const out: Counts = {}
  for (const c of all) for (const [k, v] of Object.entries(c)) {
    const o = (out[k] ??= { frames: 0, chars: 0 })
    o.frames += v.frames
    o.chars += v.chars
  }
  return out
}

log(`machine load average at start: ${loadavg()} (a shared, loaded machine: CPU figures move with it, byte counts do not)`)
log(`bandwidth: ${fmt(users)} users in networks of ${GROUP}, ${PER_MINUTE} messages a minute each (${fmt(users * PER_MINUTE / 60, 1)} msg/s offered), ${warmup} s warm-up, ${seconds} s measured, ${procs} user processes, compression ${compressions.join(" / ")}, encoding ${encodings.join(" / ")}`)
const results: Array<Record<string, unknown>> = []
for (const { compression, encoding } of combinations) {
  const tag = `${compression} ${encoding}`
  const db = adminUrl === undefined ? undefined : await createDatabase(adminUrl)
  const dataDir = tempDir()
  const storage: StorageChoice = db === undefined ? { kind: "pglite", dataDir } : { kind: "postgres", url: db.url }
  const node = await startBenchNode(storage, { WS_COMPRESSION: compression, MAX_CONNECTIONS: String(users + 1000) })
  const gens = await spawnGenerators(procs, "bench/bandwidthgen.ts")
  try {
    const run = `bw-${crypto.randomUUID().slice(0, 8)}`
    const port = Number(new URL(node.url).port)
    const t0 = performance.now()
    await gens.all((i) => ({ cmd: "setup", url: node.url, run, users: Array.from({ length: users }, (_, u) => u).filter((u) => u % procs === i), total: users, group: GROUP, networks: SESSION_NETWORKS, encoding }))
    log(`  [${tag}] ${fmt(users)} users registered in ${fmt((performance.now() - t0) / 1000, 1)} s`)
    await gens.all(() => ({ cmd: "go", perMinute: PER_MINUTE, pqEvery: 50, plaintext: PLAINTEXT, overhead: OVERHEAD, pqExtra: 1200, receipt: receipts === "node" ? 0 : RECEIPT, receiptMessages: receipts === "message" }))
    await Bun.sleep(warmup * 1000)
    await gens.all(() => ({ cmd: "mark" }))
    const [a, ca, la, ta] = [await tcp(port), cpuTicks(node.pid), loBytes(), performance.now()]
    await Bun.sleep(seconds * 1000)
    const marks = await gens.all<{ counts: Counts; errors: number; firstError: string; closed: number }>(() => ({ cmd: "mark" }))
    const [b, cb, lb, tb] = [await tcp(port), cpuTicks(node.pid), loBytes(), performance.now()]
    const secs = (tb - ta) / 1000
    const c = merge(marks.map((m) => m.counts))
    const f = (k: string) => c[k] ?? { frames: 0, chars: 0 }
    const msgs = f("out:send").frames
    const up = b.received - a.received
    const down = b.sent - a.sent
    const segs = b.segsOut - a.segsOut + (b.segsIn - a.segsIn)
    const wire = up + down + segs * TCPIP
    const mbps = wire * 8 / secs / 1e6
    const cpu = (cb - ca) / TICKS
    // Per side, in frame characters before compression: what each side's frames are.
    const senderChars = f("out:send").chars + f("in:message_sent").chars + f("in:message_delivered").chars
    const recipientChars = f("in:message").chars + f("out:ack").chars + f("in:ack_response").chars + f("out:receipt").chars
    const senderFrames = f("out:send").frames + f("in:message_sent").frames + f("in:message_delivered").frames
    const recipientFrames = f("in:message").frames + f("out:ack").frames + f("in:ack_response").frames + f("out:receipt").frames
    const allChars = Object.values(c).reduce((s, v) => s + v.chars, 0)
    const payloadRatio = (up + down) / allChars
    const perMsg = wire / msgs
    // Headers per frame: the kernel's segments per frame, shared evenly.
    const allFrames = Object.values(c).reduce((s, v) => s + v.frames, 0)
    const headerPerFrame = segs * TCPIP / allFrames
    const side = (chars: number, frames: number) => (chars * payloadRatio + frames * headerPerFrame) / msgs
    log(`  [${tag}] receipts ${receipts}: ${fmt(f("out:receipt").frames)} receipt messages sent`)
    log(`  [${tag}] ${fmt(msgs)} messages in ${fmt(secs, 1)} s (${fmt(msgs / secs, 1)} msg/s), ${fmt(f("in:message").frames)} delivered, ${fmt(f("in:message_delivered").frames)} receipts, ${b.sockets} sockets${marks.some((m) => m.errors > 0) ? `, ${marks.reduce((s, m) => s + m.errors, 0)} errors: ${marks.find((m) => m.firstError)?.firstError}` : ""}${marks.some((m) => m.closed > 0) ? `, ${marks.reduce((s, m) => s + m.closed, 0)} closed` : ""}`)
    log(`  [${tag}] wire ${fmt(mbps, 2)} Mbps (up ${fmt(up * 8 / secs / 1e6, 2)} + down ${fmt(down * 8 / secs / 1e6, 2)} payload, ${fmt(segs * TCPIP * 8 / secs / 1e6, 2)} TCP/IP headers of ${fmt(segs / secs)} segments/s); ${fmt(perMsg)} B a message: sender side ~${fmt(side(senderChars, senderFrames))} B, recipient side ~${fmt(side(recipientChars, recipientFrames))} B; frames before compression ${fmt(allChars / msgs)} chars a message, on the wire ${fmt(payloadRatio * 100, 1)}% of that`)
    log(`  [${tag}] node RSS ${fmt(rssMb(node.pid))} MB; node CPU ${fmt(cpu / secs * 100, 1)}% of a core, ${fmt(cpu / msgs * 1e6)} µs a message; loopback interface (all of the machine's loopback traffic) ${fmt((lb - la) * 8 / secs / 1e6, 2)} Mbps`)
    const other = Object.entries(c).filter(([k]) => !["out:send", "in:message_sent", "in:message_delivered", "in:message", "out:ack", "in:ack_response", "out:receipt"].includes(k))
    if (other.length > 0) log(`  [${tag}] other frames in the window: ${other.map(([k, v]) => `${k} ${v.frames}`).join(", ")}`)
    results.push({ compression, encoding, receipts, users, seconds: secs, msgs, mbps, bytesPerMessage: perMsg, up, down, segs, senderSide: side(senderChars, senderFrames), recipientSide: side(recipientChars, recipientFrames), charsPerMessage: allChars / msgs, cpuMicrosPerMessage: cpu / msgs * 1e6, rssMb: rssMb(node.pid) })
    await gens.all(() => ({ cmd: "close" }))
  } finally {
    await gens.stop()
    await node.stop()
    await db?.drop()
    fs.rmSync(dataDir, { recursive: true, force: true })
  }
}
log(`machine load average at end: ${loadavg()}`)
console.log(JSON.stringify({ bandwidth: results }))
