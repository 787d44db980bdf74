/**
 * Missed-message detection through a real node, with real messengers and secure sessions: each
 * message carries, inside its ciphertext, its position in its sender device's sequence and the digest
 * of the one before (docs/PROTOCOL.md, "Missed messages"). A message deleted from the node's storage,
 * withheld or tampered with by a relay on the way is reported missed exactly once; a reordered
 * delivery reports nothing; a late one is Recovered, also after a restart.
 */
import { PGlite } from "@electric-sql/pglite"
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test"
import * as path from "node:path"
import { fromBase64, toBase64 } from "../../src/client/MlKemAes.ts"
import type { NodeProcess } from "../support/NodeProcess.ts"
import { type RelayProxy, startRelayProxy } from "../support/RelayProxy.ts"
import { startE2eNode, sleep, waitUntil } from "./helpers.ts"
import { type Logged, messengers, ofTag, texts } from "./Messengers.ts"

const T = 60_000
const GRACE = 300
let node: NodeProcess
const clients = messengers()
const proxies: Array<RelayProxy> = []

beforeAll(async () => {
  node = await startE2eNode({ BUNDLE_FETCH_BURST: "1000", BUNDLE_FETCH_BURST_PER_ADDRESS: "1000" })
}, T)
afterEach(async () => {
  for (const p of proxies.splice(0)) p.stop()
  await clients.closeAll()
})
afterAll(() => node?.stop())

const gaps = (l: Logged) => l.events.filter((e) => e._tag === "Missed" || e._tag === "Recovered" || e._tag === "Forked")

/** A relay in front of the node whose `message` frames from `from` go through `edit` (by their order). */
const relay = (from: string, edit: (frame: string, index: number, hash: string) => ReadonlyArray<string>) => {
  const order = new Map<string, number>()
  const p = startRelayProxy(node.url, (frame) => {
    const f = JSON.parse(frame) as { type: string; payload?: { from?: string; messageHash?: string } }
    if (f.type !== "message" || f.payload?.from?.toLowerCase() !== from) return [frame]
    const hash = f.payload.messageHash!
    if (!order.has(hash)) order.set(hash, order.size)
    return edit(frame, order.get(hash)!, hash)
  })
  proxies.push(p)
  return p
}

/** Waits past several grace periods: whatever gap is open by then has been reported. */
const settled = () => sleep(GRACE * 4)

describe("missed messages through a real node", () => {
  test("a reordered delivery reports nothing missed once both arrive", async () => {
    const alice = await clients.open(node.url)
    let held: string | undefined
    const p = relay(alice.m.publicKey, (frame, i) => {
      if (i === 0) {
        held = frame
        return []
      }
      return i === 1 && held !== undefined ? [frame, held] : [frame]
    })
    const bob = await clients.open(p.url, { missedGraceMs: GRACE })
    await alice.m.send(bob.m.publicKey, "one")
    await alice.m.send(bob.m.publicKey, "two")
    await waitUntil(() => texts(bob).length === 2, "both messages", 10_000)
    expect(texts(bob)).toEqual(["two", "one"]) // the relay did reorder them
    await settled()
    expect(gaps(bob)).toEqual([])
  }, T)

  test("a relay that withholds a message cannot hide the gap: one Missed, nothing more; Recovered when it arrives, after a restart", async () => {
    const alice = await clients.open(node.url)
    const p = relay(alice.m.publicKey, (frame, i) => (i === 1 ? [] : [frame]))
    const bobDir = clients.home()
    const bob = await clients.open(p.url, { missedGraceMs: GRACE, dir: bobDir })
    for (const t of ["one", "two", "three"]) await alice.m.send(bob.m.publicKey, t)
    await waitUntil(() => texts(bob).length === 2, "the two messages let through", 10_000)
    await waitUntil(() => gaps(bob).length > 0, "the gap reported", 10_000)
    await settled()
    expect(texts(bob)).toEqual(["one", "three"])
    expect(gaps(bob)).toEqual([{ _tag: "Missed", peer: alice.m.publicKey, device: alice.m.deviceId!, count: 1 }])

    // Never acknowledged, the message waits on the node; straight to it, it arrives and fills the gap,
    // which the restarted client still knows it reported (missed.json).
    await bob.m.close()
    const back = await clients.open(node.url, { missedGraceMs: GRACE, dir: bobDir })
    await waitUntil(() => texts(back).includes("two"), "the withheld message", 10_000)
    await settled()
    expect(gaps(back)).toEqual([{ _tag: "Recovered", peer: alice.m.publicKey, device: alice.m.deviceId!, count: 1 }])
  }, T)

  test("a relay that changes a message's ciphertext (its position, its link) gets it refused, and the gap reported", async () => {
    const alice = await clients.open(node.url)
    const p = relay(alice.m.publicKey, (frame, i) => {
      if (i !== 1) return [frame]
      const f = JSON.parse(frame) as { payload: { encrypted: { ciphertext: string } } }
      const bytes = fromBase64(f.payload.encrypted.ciphertext)
      bytes[bytes.length - 20]! ^= 0x01
      f.payload.encrypted.ciphertext = toBase64(bytes)
      return [JSON.stringify(f)]
    })
    const bob = await clients.open(p.url, { missedGraceMs: GRACE })
    for (const t of ["one", "two", "three"]) await alice.m.send(bob.m.publicKey, t)
    await waitUntil(() => texts(bob).length === 2 && ofTag(bob, "Undecryptable").length === 1, "two messages and a refusal", 10_000)
    await waitUntil(() => gaps(bob).length > 0, "the gap reported", 10_000)
    await settled()
    expect(texts(bob)).toEqual(["one", "three"])
    expect(gaps(bob)).toEqual([{ _tag: "Missed", peer: alice.m.publicKey, device: alice.m.deviceId!, count: 1 }])
  }, T)

  // Last: it restarts the node.
  test("a message deleted from the node's storage while its recipient is offline is exactly one missed message", async () => {
    const alice = await clients.open(node.url)
    const bobDir = clients.home()
    const bob = await clients.open(node.url, { dir: bobDir })
    const bobKey = bob.m.publicKey
    await bob.m.close()
    const sent = []
    for (const t of ["one", "two", "three"]) sent.push(await alice.m.send(bobKey, t))
    expect(sent.map((r) => r.status)).toEqual(["queued", "queued", "queued"])
    await alice.m.close()

    await node.stop()
    const db = new PGlite(path.join(node.dataDir, "pglite"))
    const deleted = await db.query("DELETE FROM l2ps_messages WHERE message_hash = $1", [sent[1]!.messageHash])
    expect(deleted.affectedRows).toBe(1)
    await db.close()
    node = await node.restart()

    const back = await clients.open(node.url, { missedGraceMs: GRACE, dir: bobDir })
    await waitUntil(() => texts(back).length === 2, "the two messages left", 15_000)
    await waitUntil(() => gaps(back).length > 0, "the gap reported", 10_000)
    await settled()
    expect(texts(back)).toEqual(["one", "three"])
    expect(gaps(back)).toEqual([{ _tag: "Missed", peer: alice.m.publicKey, device: alice.m.deviceId!, count: 1 }])
  }, T)
})
