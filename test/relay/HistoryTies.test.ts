/**
 * Timestamps may repeat within a conversation (at most SAME_MILLI_MAX a ms, SECURITY.md 5); paging its
 * history by `before` (exclusive) must still never skip or repeat a message: a page never ends inside a
 * group of equal timestamps. Through the node (TestClock frozen while sending, so groups are full), and
 * the page cut itself with byte bounds.
 */
import { describe, expect, test } from "bun:test"
import { Effect } from "effect"
import { SAME_MILLI_MAX } from "../../src/domain/Timestamps.ts"
import { page } from "../../src/relay/handlers/History.ts"
import { historyCharsOf, type StoredMessage } from "../../src/storage/Storage.ts"
import { hash, identity, peer, scenario } from "../support/TestNode.ts"

const MESSAGES = 2 * SAME_MILLI_MAX + 8

/** Every message of the conversation, paged from the newest with `limit` (and `maxChars` for `page`). */
const pageAll = async (
  fetch: (before: number | undefined) => Promise<{ messages: ReadonlyArray<{ messageHash: string; timestamp: number }>; hasMore: boolean }>
) => {
  const seen: Array<string> = []
  let before: number | undefined
  for (let pages = 0; pages < 1000; pages++) {
    const r = await fetch(before)
    expect(r.messages.length).toBeGreaterThan(0)
    seen.push(...r.messages.map((m) => m.messageHash))
    if (!r.hasMore) return seen
    before = Math.min(...r.messages.map((m) => m.timestamp))
  }
  throw new Error("paging did not end")
}

describe("history paging over equal timestamps", () => {
  for (const limit of [1, 3, SAME_MILLI_MAX - 1, SAME_MILLI_MAX, SAME_MILLI_MAX + 1, 50]) {
    test(`limit ${limit}: every message exactly once, newest first, with full groups of equal timestamps`, () =>
      scenario({ limits: { rateLimitBurst: 1000, rateLimitPerSec: 1000 } }, Effect.gen(function*() {
        const bob = identity()
        const alice = yield* peer()
        expect((yield* alice.register()).type).toBe("registered")
        const sent: Array<string> = []
        for (let i = 0; i < MESSAGES; i++) {
          const h = hash()
          sent.push(h)
          expect((yield* alice.sendTo(bob.key, h)).type).toBe("message_queued")
        }
        const pages: Array<{ messages: ReadonlyArray<{ messageHash: string; timestamp: number }>; hasMore: boolean }> = []
        let before: number | undefined
        for (let n = 0; n < 200; n++) {
          const r = yield* alice.history(bob.key, before === undefined ? { limit } : { limit, before })
          expect(r.type).toBe("history_response")
          const p = r.payload as (typeof pages)[number]
          pages.push(p)
          if (!p.hasMore) break
          before = Math.min(...p.messages.map((m) => m.timestamp))
        }
        const got = pages.flatMap((p) => p.messages)
        const stamps = got.map((m) => m.timestamp)
        // The clock stood still: the groups are as full as the node allows.
        expect(new Set(stamps).size).toBe(Math.ceil(MESSAGES / SAME_MILLI_MAX))
        expect(got.map((m) => m.messageHash).sort()).toEqual([...sent].sort())
        expect(new Set(got.map((m) => m.messageHash)).size).toBe(MESSAGES)
        for (let i = 1; i < stamps.length; i++) expect(stamps[i]!).toBeLessThanOrEqual(stamps[i - 1]!)
        // A page holds `limit` or fewer, or one whole group when the group is all it holds.
        for (const p of pages) expect(p.messages.length).toBeLessThanOrEqual(Math.max(limit, SAME_MILLI_MAX))
      })))
  }

  test("the page cut by bytes and by count never splits a group, and a lone group is served whole", async () => {
    // Timestamps in groups of 1..SAME_MILLI_MAX, sizes 100..3,000 characters, newest first.
    const rows: Array<StoredMessage> = []
    let ts = 10_000
    let seed = 7
    const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n
    while (rows.length < 400) {
      const group = 1 + rand(SAME_MILLI_MAX)
      for (let i = 0; i < group; i++) {
        rows.push({
          id: String(rows.length), l2psUid: "default", from: "a", to: "b", messageHash: `m${rows.length}`,
          encryptedJson: JSON.stringify({ ciphertext: "x".repeat(100 + rand(2900)), nonce: "n" }),
          timestamp: ts, deliveryStatus: "queued", l2psStatus: "l2ps_pending", l2psTxHash: null
        })
      }
      ts--
    }
    for (const limit of [1, 2, 5, 16, 40]) {
      for (const maxChars of [500, 4_000, 20_000, 1e9]) {
        const seen = await pageAll(async (before) => {
          // What storage returns: newest first before `before`, `limit + SAME_MILLI_MAX` rows at most.
          const from = rows.filter((r) => before === undefined || r.timestamp < before).slice(0, limit + SAME_MILLI_MAX)
          const p = page(from, limit, maxChars)
          const messages = JSON.parse(`[${p.json}]`) as Array<{ messageHash: string; timestamp: number }>
          expect(p.count).toBe(messages.length)
          expect(p.chars).toBe(from.slice(0, p.count).reduce((a, r) => a + historyCharsOf(r), 0))
          return { messages, hasMore: p.hasMore }
        })
        expect(seen).toEqual(rows.map((r) => r.messageHash))
      }
    }
  })
})
