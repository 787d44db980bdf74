/**
 * Finding 3 of the security review: a client that asks and never reads. Over a real TCP socket that
 * stops reading, the node's memory stays bounded (its outbox counts its own replies in bytes, history
 * pages are bounded in bytes) and the socket is let go once it stays backed up.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import {
  ask,
  encrypted,
  historyFrame,
  makeIdentity,
  newRequestId,
  registerFrame,
  registerRaw,
  requestFrame,
  sleep,
  startE2eNode,
} from "../e2e/helpers.ts"
import { randomHash } from "../support/L2psClient.ts"
import type { NodeProcess } from "../support/NodeProcess.ts"
import * as RawSocket from "../support/RawSocket.ts"
import * as StalledSocket from "../support/StalledSocket.ts"
import { isAlive, rssKb } from "./support.ts"

const MB = 1024
const MESSAGES = 200
/** ~100 KB of ciphertext each: a full page of history is ~20 MB. */
const CIPHERTEXT = "QUFB".repeat(25_000)
const REQUESTS = 30
const STALL_SECONDS = 4

describe("a client that stops reading (real sockets)", () => {
  let node: NodeProcess
  beforeAll(async () => {
    node = await startE2eNode({
      L2PS_BATCH_INTERVAL_MS: "600000",
      RATE_LIMIT_BURST: "1000",
      RATE_LIMIT_PER_SEC: "1000",
      EPOCH_QUOTA: "100000",
      OFFLINE_QUEUE_PER_PAIR: "1000",
      // 200 messages of ~100 KB wait for the reader: past the default byte quotas (SECURITY.md 7).
      OFFLINE_BYTES_PER_SENDER: String(64 * 1024 * 1024),
      OFFLINE_BYTES_PER_RECIPIENT: String(64 * 1024 * 1024),
      STALLED_SOCKET_SECONDS: String(STALL_SECONDS),
    }, { readyTimeoutMs: 90_000 })
  }, 100_000)
  afterAll(async () => {
    await node?.dispose()
  })

  const alice = makeIdentity()
  const bob = makeIdentity()
  let writer: RawSocket.RawSocket
  const seeded = async () => {
    if (writer !== undefined) return
    writer = await RawSocket.open(node.url)
    await registerRaw(writer, alice, "default")
    for (let i = 0; i < MESSAGES; i++) {
      writer.sendJson(requestFrame("send", { to: bob.publicKey, encrypted: encrypted(CIPHERTEXT), messageHash: randomHash() }, `s${i}`))
    }
    let stored = 0
    while (stored < MESSAGES) {
      const f = await writer.next(30_000)
      if (f.type === "message_queued" || f.type === "message_sent") stored++
      else if (f.type === "error") throw new Error(JSON.stringify(f.payload))
    }
  }

  test("a history page holds at most HISTORY_PAGE_BYTES of messages and says hasMore; the next pages give the rest", async () => {
    await seeded()
    const seen = new Set<string>()
    let before: number | undefined
    let pages = 0
    for (;;) {
      const page = await ask(writer, historyFrame(alice, bob.publicKey, { requestId: newRequestId(), limit: 200, ...(before === undefined ? {} : { before }) }), 30_000)
      expect(page.type).toBe("history_response")
      pages++
      const messages = page.payload.messages as Array<{ messageHash: string; timestamp: number }>
      expect(messages.length).toBeGreaterThan(0)
      expect(JSON.stringify(messages).length).toBeLessThanOrEqual(1024 * 1024)
      for (const m of messages) seen.add(m.messageHash)
      if (!page.payload.hasMore) break
      before = messages.at(-1)!.timestamp
      expect(pages).toBeLessThan(MESSAGES)
    }
    // ~100 KB each: about ten per page, and every message once paged through (distinct timestamps here).
    expect(pages).toBeGreaterThan(10)
    expect(seen.size).toBe(MESSAGES)
  }, 120_000)

  test("history pages asked on a socket that never reads: the node's memory stays bounded and the socket is let go", async () => {
    await seeded()
    const stalled = await StalledSocket.open(node.url)
    stalled.sendJson(registerFrame(alice, "default", { requestId: "reg" }))
    expect((await stalled.nextOfType("registered")).requestId).toBe("reg")
    stalled.pause()
    await sleep(200)

    const pid = node.pid
    const before = rssKb(pid)
    let peak = before
    const sampler = setInterval(() => {
      if (isAlive(pid)) peak = Math.max(peak, rssKb(pid))
    }, 50)
    try {
      for (let i = 0; i < REQUESTS; i++) stalled.sendJson(historyFrame(alice, bob.publicKey, { requestId: `h${i}`, limit: 200 }))
      // Long enough for every page to be read and queued when nothing bounds them, and for the stall.
      await sleep((STALL_SECONDS + 4) * 1000)
    } finally {
      clearInterval(sampler)
    }
    console.log(`${REQUESTS} history requests on a socket that never reads: node RSS ${before / MB | 0} MB before, peak ${peak / MB | 0} MB`)
    // Unbounded, the node held every page: ~20 MB each, 600 MB in all.
    expect(peak - before).toBeLessThan(200 * MB)

    // The node let the socket go (terminated after STALLED_SOCKET_SECONDS without a drain)…
    stalled.resume()
    await Promise.race([stalled.closed, sleep(10_000)])
    expect(stalled.isClosed()).toBe(true)
    // …and the node serves everyone else as before.
    const other = await RawSocket.open(node.url)
    await registerRaw(other, makeIdentity(), "default")
    const reply = await ask(other, requestFrame("discover", {}, "d1"))
    expect(reply.type).toBe("discover_response")
    await other.close()
    await writer.close()
    stalled.destroy()
  }, 120_000)
})
