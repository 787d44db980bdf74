/**
 * Finding 6 of the security review: `register:{key}:{ts}` names neither the node nor the network, so a
 * proof seen on one node registers on another within the window. Bound proofs (proofVersion 2) name
 * both; an operator can require them (REQUIRE_BOUND_PROOFS); without it both forms are accepted, so the
 * SDK's clients keep working.
 */
import { sha256 } from "@noble/hashes/sha2.js"
import { describe, expect, test } from "bun:test"
import { Clock, Effect, TestClock } from "effect"
import { type Identity, identity, peer, scenario } from "../support/TestNode.ts"

const OTHER_NODE = "ab".repeat(32)

type Peer = Effect.Effect.Success<ReturnType<typeof peer>>

const nodeInfoOf = (p: Peer) =>
  Effect.map(p.request("node_info", {}), (r) => {
    expect(r.type).toBe("node_info_response")
    return r.payload as { nodeId: string; nodeKey: string; proofVersions: Array<number> }
  })

/** A register frame whose proof signs `message(ts)`; the clock moves 1 ms so each proof is new. */
const registerWith = (p: Peer, id: Identity, l2psUid: string, message: (ts: number) => string, extra: Record<string, unknown> = {}) =>
  Effect.gen(function*() {
    yield* TestClock.adjust(1)
    const ts = yield* Clock.currentTimeMillis
    return yield* p.request("register", { publicKey: id.key, l2psUid, proof: id.sign(message(ts)), ...extra }, { timestamp: ts })
  })

const bound = (kind: string, uid: string, nodeId: string, subject: string) => (ts: number) => `${kind}:v2:${uid}:${nodeId}:${subject}:${ts}`

describe("bound proofs (security finding 6)", () => {
  test("required by the operator: a proof for another node, another network or the reference's string does not register", () =>
    scenario({ requireBoundProofs: true, networks: ["default", "beta"] }, Effect.gen(function*() {
      const id = identity()
      const p = yield* peer(id)
      // The reference's string, as seen on any node: refused.
      const legacy = yield* registerWith(p, id, "default", (ts) => `register:${id.key}:${ts}`)
      expect(legacy.payload.code).toBe("INVALID_PROOF")
      expect(legacy.payload.message).toContain("requires bound proofs")
      const info = yield* nodeInfoOf(p)
      expect(info.nodeId).toBe(Buffer.from(sha256(Buffer.from(info.nodeKey, "hex"))).toString("hex"))
      expect(info.proofVersions).toEqual([2])
      // Signed for another node, or for another network of this one: refused.
      const elsewhere = yield* registerWith(p, id, "default", bound("register", "default", OTHER_NODE, id.key), { proofVersion: 2 })
      expect(elsewhere.payload).toEqual({ code: "INVALID_PROOF", message: "Signature verification failed" })
      const otherNetwork = yield* registerWith(p, id, "default", bound("register", "beta", info.nodeId, id.key), { proofVersion: 2 })
      expect(otherNetwork.payload.code).toBe("INVALID_PROOF")
      // For this node and network: registered, and history needs the bound form as well.
      const ok = yield* registerWith(p, id, "default", bound("register", "default", info.nodeId, id.key), { proofVersion: 2 })
      expect(ok.type).toBe("registered")
      const peerKey = identity().key
      yield* TestClock.adjust(1)
      const ts = yield* Clock.currentTimeMillis
      const oldHistory = yield* p.request("history", { peerKey, proof: id.sign(`history:${peerKey}:${ts}`) }, { timestamp: ts })
      expect(oldHistory.payload.code).toBe("INVALID_PROOF")
      yield* TestClock.adjust(1)
      const ts2 = yield* Clock.currentTimeMillis
      const page = yield* p.request(
        "history",
        { peerKey, proof: id.sign(bound("history", "default", info.nodeId, peerKey)(ts2)), proofVersion: 2 },
        { timestamp: ts2 }
      )
      expect(page.type).toBe("history_response")
    })))

  test("by default both forms register (the SDK's clients are unchanged), and a bound proof still names its node", () =>
    scenario({}, Effect.gen(function*() {
      const id = identity()
      const p = yield* peer(id)
      const info = yield* nodeInfoOf(p)
      expect(info.proofVersions).toEqual([1, 2])
      expect((yield* registerWith(p, id, "default", (ts) => `register:${id.key}:${ts}`)).type).toBe("registered")
      const q = yield* peer(id)
      const elsewhere = yield* registerWith(q, id, "default", bound("register", "default", OTHER_NODE, id.key), { proofVersion: 2 })
      expect(elsewhere.payload.code).toBe("INVALID_PROOF")
      const unknown = yield* registerWith(q, id, "default", bound("register", "default", info.nodeId, id.key), { proofVersion: 3 })
      expect(unknown.payload.code).toBe("INVALID_PROOF")
      expect((yield* registerWith(q, id, "default", bound("register", "default", info.nodeId, id.key), { proofVersion: 2 })).type)
        .toBe("registered")
    })))
})
