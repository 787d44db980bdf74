/**
 * Property-based abuse of a real node over real WebSockets (fast-check, fixed seed: FUZZ_SEED=<n> to
 * change it; a failure prints it). Random JSON values, objects with a valid `type` and fields of the
 * wrong types, random and mutated text, invalid UTF-8, binary frames, JSON nested up to 100,000 levels
 * and frames over the 262144 limit: each one is answered by exactly the error frame the protocol
 * documents (oracles in ./support.ts), in order, the session keeps working, the node stays up and its
 * memory stays bounded. Frames over the socket's 1 MiB maximum close that socket (1009) and nothing else.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test"
import fc from "fast-check"
import { randomHash } from "../support/L2psClient.ts"
import type { NodeProcess } from "../support/NodeProcess.ts"
import * as RawSocket from "../support/RawSocket.ts"
import { legacyIdentity, registerPayload } from "../legacy/LegacyTestClient.ts"
import { ask, encrypted, expectAlive, makeIdentity, nextReply, registerRaw, requestFrame, sleep, startE2eNode } from "../e2e/helpers.ts"
import {
  isAlive,
  isFrameLimit,
  L2PS_TYPES,
  l2psExpected,
  l2psMismatch,
  LEGACY_TYPES,
  legacyExpected,
  legacyMismatch,
  legacyUrl,
  malformedFrame,
  expectNoFailures,
  newStats,
  pump,
  report,
  rssKb,
  sample,
  SEED,
} from "./support.ts"

const UID = "default"
const MB = 1024

describe(`malformed frames against a real node (fast-check, FUZZ_SEED=${SEED})`, () => {
  let node: NodeProcess
  const open: RawSocket.RawSocket[] = []
  const socket = async (url: string = node.url): Promise<RawSocket.RawSocket> => {
    const s = await RawSocket.open(url)
    open.push(s)
    return s
  }

  beforeAll(async () => {
    // a loaded machine can take long to start a node (PGlite initdb)
    // Unregistered sockets here send garbage for as long as the machine's load makes it take: the
    // registration deadline (30 s by default) is not what these tests are about.
    // Malformed sends of a registered session are refusals charged to its frame budget, and a storm of
    // them closes the socket (SECURITY.md 5, test/relay/SendLimits.test.ts): these sessions must go on
    // through thousands in a row, so the budget is opened wide.
    node = await startE2eNode({ L2PS_BATCH_INTERVAL_MS: "600000", CONNECTION_FRAME_BURST: "1000000", REGISTRATION_TIMEOUT_SECONDS: "600" }, { readyTimeoutMs: 90_000 })
  }, 100_000)
  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => (s.isClosed ? s.closed : s.close())))
  })
  afterAll(async () => {
    await node?.dispose()
  })

  test("fc.assert, 400 runs: each frame gets exactly its error frame (requestId echoed when readable), registered or not", async () => {
    const reg = await socket()
    await registerRaw(reg, makeIdentity(), UID)
    const anon = await socket()
    await fc.assert(
      fc.asyncProperty(malformedFrame(L2PS_TYPES), fc.boolean(), async (c, registered) => {
        const data = c.make()
        const e = l2psExpected(data, registered)
        fc.pre(e !== undefined)
        const s = registered ? reg : anon
        // Not paced: the node's frame bucket (CONNECTION_FRAME_BURST above) holds every frame sent here.
        for (;;) {
          if (typeof data === "string") s.sendText(data)
          else s.sendBinary(data)
          const f = await nextReply(s, 10_000)
          if (isFrameLimit(f)) continue
          const bad = l2psMismatch(f, e!)
          if (bad !== undefined) throw new Error(`${c.kind}: ${bad}`)
          return
        }
      }),
      { seed: SEED, numRuns: 400 },
    )
    await expectAlive(reg, true)
    await expectAlive(anon, false)
  }, 60_000)

  test("10,000 malformed frames, 2,000 in a row on one socket and 1,000 on each of 8 others: all answered, sessions usable, RSS bounded", async () => {
    const pid = node.pid
    const ids = Array.from({ length: 9 }, () => makeIdentity())
    const socks = await Promise.all(ids.map(() => socket()))
    // sockets 0-4 registered, 5-8 not
    for (let i = 0; i < 5; i++) await registerRaw(socks[i]!, ids[i]!, UID)
    const registered = (i: number) => i < 5
    const arb = malformedFrame(L2PS_TYPES)
    // Not paced: the node's frame bucket (CONNECTION_FRAME_BURST above) holds more than all of them, so
    // each socket keeps its window of frames in flight and the node answers as fast as it can.
    const run = async (perSocket: (i: number) => number, seed: number) => {
      const stats = newStats()
      await Promise.all(socks.map((s, i) =>
        pump(s, sample(arb, perSocket(i), seed + i), {
          registered: registered(i),
          oracle: l2psExpected,
          mismatch: l2psMismatch,
          label: `socket ${i}${registered(i) ? " (registered)" : ""}`,
          burst: Number.POSITIVE_INFINITY,
        }, stats)))
      return stats
    }

    // warm-up: every code path once, then the baseline
    const warm = await run(() => 150, SEED + 100)
    expectNoFailures(warm, "warm-up")
    const before = rssKb(pid)
    let peak = before
    const sampler = setInterval(() => {
      if (isAlive(pid)) peak = Math.max(peak, rssKb(pid))
    }, 250)
    const t0 = Date.now()
    let stats
    try {
      stats = await run((i) => (i === 0 ? 2000 : 1000), SEED)
    } finally {
      clearInterval(sampler)
    }
    const after = rssKb(pid)
    console.log(`10k malformed frames in ${Date.now() - t0} ms: ${report(stats)}; node RSS ${before / MB | 0} MB before, peak ${peak / MB | 0} MB, ${after / MB | 0} MB after`)
    expectNoFailures(stats, "10k malformed frames")
    expect(stats.sent).toBeGreaterThanOrEqual(9_000)
    expect(isAlive(pid)).toBe(true)
    // bounded: nothing of what was refused is kept (10 kB per frame kept would be ~100 MB)
    expect(after - before).toBeLessThan(64 * MB)
    expect(peak - before).toBeLessThan(192 * MB)

    // every session still works (after 0.5 s, which refills each socket's frame bucket by 50):
    // the unregistered ones register, the registered ones message each other
    await sleep(500)
    for (let i = 5; i < 9; i++) {
      await registerRaw(socks[i]!, ids[i]!, UID)
      await expectAlive(socks[i]!, true)
    }
    for (let i = 0; i < 5; i++) await expectAlive(socks[i]!, true)
    const hash = randomHash()
    const sent = await ask(socks[0]!, requestFrame("send", { to: ids[1]!.publicKey, encrypted: encrypted(), messageHash: hash }, "after-fuzz"))
    expect(sent).toMatchObject({ type: "message_sent", requestId: "after-fuzz", payload: { messageHash: hash } })
    expect(await socks[1]!.nextOfType("message")).toMatchObject({ payload: { from: ids[0]!.publicKey, messageHash: hash, offline: false } })
    // and a fresh client is served
    const fresh = await socket()
    await registerRaw(fresh, makeIdentity(), UID)
  }, 90_000)

  test("a frame over the socket's 1 MiB maximum closes that socket with 1009, text or binary; other sessions are unaffected", async () => {
    const bystander = await socket()
    const me = makeIdentity()
    await registerRaw(bystander, me, UID)
    for (const [label, data] of [
      ["text", "x".repeat(1024 * 1024 + 1)],
      ["binary", new Uint8Array(1024 * 1024 + 1).fill(0x7b)],
      ["binary 3 MiB", new Uint8Array(3 * 1024 * 1024)],
    ] as const) {
      const s = await socket()
      if (typeof data === "string") s.sendText(data)
      else s.sendBinary(data)
      const closed = await Promise.race([s.closed, sleep(5000).then(() => null)])
      expect({ label, code: closed?.code }).toEqual({ label, code: 1009 })
      await expectAlive(bystander, true)
    }
    expect(isAlive(node.pid)).toBe(true)
  })

  test("legacy server: 1,200 malformed frames over 3 sockets get one error frame each, in order; the sessions go on", async () => {
    const url = legacyUrl(node.output())
    const ids = [legacyIdentity(), legacyIdentity(), legacyIdentity()]
    const socks = await Promise.all(ids.map(() => socket(url)))
    // socket 0 registered, 1-2 not
    const reg = await ask(socks[0]!, { type: "register", payload: registerPayload("fuzz-0", ids[0]!) })
    expect(reg).toEqual({ type: "register", payload: { success: true, clientId: "fuzz-0" } })
    const stats = newStats()
    const arb = malformedFrame(LEGACY_TYPES)
    await Promise.all(socks.map((s, i) =>
      pump(s, sample(arb, 400, SEED + 1000 + i), {
        registered: i === 0,
        oracle: legacyExpected,
        mismatch: legacyMismatch,
        label: `legacy socket ${i}`,
        burst: Number.POSITIVE_INFINITY,
        unsolicited: new Set(["peer_disconnected"]),
      }, stats)))
    console.log(`legacy: ${report(stats)}`)
    expectNoFailures(stats, "legacy malformed frames")
    expect(stats.sent).toBeGreaterThanOrEqual(1_100)
    // exactly one reply per request: nothing is left over
    for (const s of socks) await s.expectNothing(100)
    // the sessions go on: the others register, everyone discovers everyone
    for (let i = 1; i < 3; i++) {
      expect(await ask(socks[i]!, { type: "register", payload: registerPayload(`fuzz-${i}`, ids[i]!) })).toEqual({
        type: "register",
        payload: { success: true, clientId: `fuzz-${i}` },
      })
    }
    for (const s of socks) {
      const d = await nextDiscover(s)
      expect([...d].sort()).toEqual(["fuzz-0", "fuzz-1", "fuzz-2"])
    }
  }, 60_000)
})

/** A legacy discover, retried while the per-connection frame limit answers instead. */
const nextDiscover = async (s: RawSocket.RawSocket): Promise<string[]> => {
  for (let i = 0; i < 50; i++) {
    const f = await ask(s, { type: "discover", payload: {} })
    if (isFrameLimit(f)) {
      await sleep(20)
      continue
    }
    expect(f.type).toBe("discover")
    return f.payload.peers
  }
  throw new Error("the frame limit never let a discover through")
}
