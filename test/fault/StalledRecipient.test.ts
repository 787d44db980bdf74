/**
 * Fault: a recipient stops reading its socket while others keep talking, end to end over real
 * WebSockets. The stalled recipient is a separate process (python3) that completes the WebSocket
 * handshake, registers with the ack capability, then never calls recv again, so the node sees real
 * TCP backpressure.
 *
 * What the node's design (RelayConnection.ts, DESIGN.md "Backpressure") promises and this test asserts:
 * - other pairs keep their latency: every probe message arrives, promptly, during the flood;
 * - the stalled session is back-pressured, not closed: it stays registered; once its outbox is full,
 *   live delivery to it stops and senders get `message_queued` (the message waits in storage);
 * - the node's memory stays bounded: sending many more megabytes to the stalled recipient after
 *   that point does not grow the node's resident memory by anything like their size;
 * - nothing acknowledged to the stalled recipient is lost: when it comes back it gets every one,
 *   each once.
 *
 * Storage: a fresh Postgres database when TEST_DATABASE_URL is set (so the node's RSS is the relay's
 * own memory); embedded PGlite otherwise, where the memory bound is not asserted (PGlite's buffers
 * live in the same process and grow with the data written).
 */
import { afterAll, describe, expect, test } from "bun:test"
import * as fs from "node:fs"
import { randomBytes } from "node:crypto"
import { freshTimestamp, startE2eNode, waitUntil } from "../e2e/helpers.ts"
import { makeIdentity, randomHash } from "../support/L2psClient.ts"
import type { NodeProcess } from "../support/NodeProcess.ts"
import { adminQuery } from "../support/AdminQuery.ts"
import { clientPool, isAck, type SendOutcome } from "./LoadClient.ts"

/** Connects, upgrades, sends the register frame given on argv, waits for `registered`, then never reads again. */
const STALLED_CLIENT = String.raw`
import base64, os, socket, struct, sys, time
port, frame = int(sys.argv[1]), sys.argv[2].encode()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
s.connect(("127.0.0.1", port))
key = base64.b64encode(os.urandom(16)).decode()
s.sendall(("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
buf = b""
while b"\r\n\r\n" not in buf:
    buf += s.recv(1)
mask = os.urandom(4)
n = len(frame)
head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n))
s.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(frame)))
buf = b""
while b'"registered"' not in buf:
    buf += s.recv(1)
print("registered", flush=True)
time.sleep(3600)
`

const CIPHERTEXT_CHARS = 128_000
const bigEncrypted = () => ({ ciphertext: randomBytes((CIPHERTEXT_CHARS / 4) * 3).toString("base64"), nonce: "bm9uY2Vub25jZQ==" })

const rssBytes = (pid: number): number => {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))
  return m ? Number(m[1]) * 1024 : NaN
}

const percentile = (xs: ReadonlyArray<number>, p: number): number => {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN
}

const hasPython = Bun.spawnSync(["python3", "-c", "pass"]).exitCode === 0
const testDatabaseUrl = process.env["TEST_DATABASE_URL"]

if (!hasPython && !process.env["CI"]) {
  describe.skip("stalled recipient (skipped: python3 is needed for the non-reading client)", () => {
    test("other sessions keep their latency", () => {})
  })
} else {
  describe("a recipient that stops reading", () => {
    let node: NodeProcess | undefined
    let stalledProc: ReturnType<typeof Bun.spawn> | undefined
    const db = `im_fault_${crypto.randomUUID().replaceAll("-", "")}`
    const { open, closeAll } = clientPool()
    afterAll(async () => {
      stalledProc?.kill("SIGKILL")
      closeAll()
      await node?.dispose()
      if (testDatabaseUrl) await adminQuery(testDatabaseUrl, `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`)
    })

    test("never slows other sessions, is back-pressured with bounded memory, and loses nothing", async () => {
      let env: Record<string, string> = {}
      if (testDatabaseUrl) {
        await adminQuery(testDatabaseUrl, `CREATE DATABASE ${db}`)
        const u = new URL(testDatabaseUrl)
        u.pathname = `/${db}`
        env = { DATABASE_URL: u.toString() }
      }
      node = await startE2eNode({
        ...env,
        L2PS_BATCH_INTERVAL_MS: "600000",
        RATE_LIMIT_PER_SEC: "100000",
        RATE_LIMIT_BURST: "100000",
        EPOCH_QUOTA: "10000000",
        OFFLINE_QUEUE_PER_PAIR: "100000",
        OFFLINE_BYTES_PER_SENDER: "1000000000",
        OFFLINE_BYTES_PER_RECIPIENT: "1000000000"
      })
      const url = node.url

      // The stalled recipient registers (ack capability: what it never acknowledges stays pending).
      const stalledId = makeIdentity()
      const timestamp = freshTimestamp()
      const register = JSON.stringify({
        type: "register",
        payload: { publicKey: stalledId.publicKey, l2psUid: "default", proof: stalledId.signFn(`register:${stalledId.publicKey}:${timestamp}`), capabilities: ["ack"] },
        timestamp,
        requestId: "stalled-register"
      })
      stalledProc = Bun.spawn(["python3", "-c", STALLED_CLIENT, String(node.port), register], { stdout: "ignore", stderr: "inherit" })
      const probeSenders = await Promise.all([open(url), open(url), open(url)])
      const probeRecipients = await Promise.all([open(url), open(url), open(url)])
      const discovered = async (): Promise<string[]> => (await probeSenders[0]!.request("discover", {})).payload.peers
      await (async () => {
        const deadline = Date.now() + 10_000
        while (!(await discovered()).includes(stalledId.publicKey)) {
          if (Date.now() > deadline) throw new Error(`the stalled client never registered (exit ${stalledProc!.exitCode})`)
          await new Promise((r) => setTimeout(r, 50))
        }
      })()

      // Probes: each pair sends a small message every 20 ms; latency = arrival at the recipient - send.
      const sentAt = new Map<string, number>()
      let probing = true
      let phase: "baseline" | "flood" = "baseline"
      const probeHashes: Record<"baseline" | "flood", string[]> = { baseline: [], flood: [] }
      const probeLoops = probeSenders.map(async (s, i) => {
        while (probing) {
          const h = randomHash()
          sentAt.set(h, Date.now())
          probeHashes[phase].push(h)
          const o = await s.send(probeRecipients[i]!.key, h)
          expect(o.reply?.type).toBe("message_sent")
          await new Promise((r) => setTimeout(r, 20))
        }
      })
      const latencies = (hashes: ReadonlyArray<string>): number[] => {
        const arrived = new Map<string, number>()
        for (const r of probeRecipients) for (const m of r.received) arrived.set(m.messageHash, m.at)
        return hashes.map((h) => (arrived.get(h) ?? Infinity) - sentAt.get(h)!)
      }
      await new Promise((r) => setTimeout(r, 1500))
      phase = "flood"
      const rssBefore = rssBytes(node.pid)

      // Flood: 4 senders, 2 sends in flight each, 128 KB ciphertexts, all to the stalled recipient.
      const flooders = await Promise.all([open(url), open(url), open(url), open(url)])
      const floodOutcomes: SendOutcome[] = []
      let flooding = true
      const flood = () =>
        flooders.flatMap((f) =>
          [0, 1].map(async () => {
            while (flooding) {
              const messageHash = randomHash()
              const startedAt = Date.now()
              const reply = await f.request("send", { to: stalledId.publicKey, encrypted: bigEncrypted(), messageHash }, { timeoutMs: 15_000 }).catch(() => undefined)
              floodOutcomes.push({ messageHash, to: stalledId.publicKey, startedAt, at: Date.now(), reply })
            }
          })
        )
      /**
       * Resident memory of the idle node: the lowest of samples over 3 s (garbage is collected and pages
       * returned lazily, so a single sample right after a burst mostly measures garbage).
       */
      const settledRss = async (): Promise<number> => {
        let min = Infinity
        for (let i = 0; i < 12; i++) {
          await new Promise((r) => setTimeout(r, 250))
          min = Math.min(min, rssBytes(node!.pid))
        }
        return min
      }
      const queued = () => floodOutcomes.filter((o) => o.reply?.type === "message_queued").length
      // Live delivery to the stalled session stops once its outbox is full: sends are queued instead.
      let loops = flood()
      await waitUntil(() => queued() >= 20, "the node to stop live delivery to the stalled recipient (message_queued)", 40_000)
      flooding = false
      await Promise.all(loops)
      const sentWhenLagging = floodOutcomes.filter((o) => o.reply?.type === "message_sent").length
      // Only reported (the bound is on the later rounds): one sample, not the 3 s settle.
      const rssAtLag = rssBytes(node.pid)
      // …and stays stopped: many more megabytes go to storage, not to memory. Two rounds: the first
      // lets the heap grow to its working size for 128 KB frames, the next two must not grow it further.
      const MORE = 150
      const round = async (settle = true) => {
        const from = floodOutcomes.length
        flooding = true
        loops = flood()
        await waitUntil(() => floodOutcomes.length >= from + MORE, `${MORE} more flood messages`, 40_000)
        flooding = false
        await Promise.all(loops)
        return { bytes: (floodOutcomes.length - from) * CIPHERTEXT_CHARS, rss: settle ? await settledRss() : rssBytes(node!.pid) }
      }
      // The warm-up round's RSS is only reported: one sample.
      const first = await round(false)
      const later = [await round(), await round(), await round(), await round()]
      const rssAfter = later[later.length - 1]!.rss
      expect((await discovered()).includes(stalledId.publicKey)).toBe(true) // still registered: not closed
      probing = false
      await Promise.all(probeLoops)

      // Other sessions: every probe arrives, and promptly, during the flood as before it.
      const probeCount = probeHashes.baseline.length + probeHashes.flood.length
      await waitUntil(
        () => probeRecipients.reduce((n, r) => n + r.received.length, 0) >= probeCount,
        "every probe message",
        5000
      )
      const base = latencies(probeHashes.baseline)
      const during = latencies(probeHashes.flood)
      const stats = {
        baseline: { n: base.length, p50: percentile(base, 50), p95: percentile(base, 95), max: Math.max(...base) },
        flood: { n: during.length, p50: percentile(during, 50), p95: percentile(during, 95), max: Math.max(...during) },
        sentWhenLagging,
        floodMessages: floodOutcomes.length,
        rssMb: { before: rssBefore / 2 ** 20, atLag: rssAtLag / 2 ** 20, firstRound: first.rss / 2 ** 20, rounds: later.map((r) => r.rss / 2 ** 20), after: rssAfter / 2 ** 20 }
      }
      console.log("stalled recipient:", JSON.stringify(stats))
      expect(during.length).toBeGreaterThan(30)
      // (a blocked relay would hold them until the stalled socket times out: minutes)
      expect(stats.flood.max).toBeLessThan(5000)
      expect(stats.flood.p95).toBeLessThan(Math.max(500, 5 * stats.baseline.p95))

      // Flood acknowledgements: every one is an ack; sent (live) first, then queued, never sent again after
      // the first queued one.
      expect(floodOutcomes.filter((o) => !isAck(o)).map((o) => o.reply ?? "no reply")).toEqual([])
      const firstQueued = floodOutcomes.findIndex((o) => o.reply?.type === "message_queued")
      // (sends in flight concurrently may finish slightly out of order around the switch)
      expect(floodOutcomes.slice(firstQueued + 16).filter((o) => o.reply?.type === "message_sent").length).toBe(0)
      // Bounded memory: the flood's payloads do not stay in the node. Keeping them would raise every
      // round's RSS over the one before by at least that round's ~19 MB; the garbage of the last round,
      // not yet collected when RSS is read, only raises some of them (by up to ~60 MB). So the lowest of
      // the last three rounds stays within one round's bytes of the first one after the warm-up.
      const [reference, ...rest] = later
      if (testDatabaseUrl) expect(Math.min(...rest.map((r) => r.rss)) - reference!.rss).toBeLessThan(reference!.bytes)

      // The stalled recipient comes back (a new session; the old socket is dropped): it gets every
      // acknowledged message, each once.
      stalledProc.kill("SIGKILL")
      await stalledProc.exited
      const back = await open(url, { identity: stalledId, capabilities: ["ack"], autoAck: true })
      await back.barrier()
      const got = back.received.map((m) => m.messageHash)
      expect(new Set(got).size).toBe(got.length)
      const gotSet = new Set(got)
      const missing = floodOutcomes.filter((o) => isAck(o) && !gotSet.has(o.messageHash)).map((o) => o.messageHash)
      expect(missing).toEqual([])
      expect(got.length).toBe(floodOutcomes.length)
    }, 90_000)
  })
}
