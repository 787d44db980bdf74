/**
 * Bans and kicks through `NodeStatus.admin`, as the admin API calls them: kept in storage (Postgres and
 * PGlite), refused with KEY_BANNED on both servers after the proof, the key's open sessions closed, and
 * lifted by `unban`. Scenarios over in-memory sockets and PGlite.
 */
import { describe, expect, test } from "bun:test"
import { Effect, Either, Layer } from "effect"
import { createHash } from "node:crypto"
import * as Bans from "../../src/limits/Bans.ts"
import { BANNED_CODE, KICKED_CODE, NodeStatus } from "../../src/ops/NodeStatus.ts"
import { BanStore } from "../../src/storage/BanStore.ts"
import * as SqlStores from "../../src/node/SqlStores.ts"
import { legacyClient, legacyIdentity, registered } from "../legacy/LegacyTestClient.ts"
import { databases } from "../support/TestDatabase.ts"
import { peer, scenario } from "../support/TestNode.ts"

const dbs = await databases()

describe("bans are kept in storage", () => {
  for (const db of dbs) {
    test(`a ban survives a new node over the same database, an unban too (${db.name})`, () =>
      Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        const client = yield* Layer.build(db.layer)
        const node = () =>
          Layer.build(Bans.layer.pipe(Layer.provideMerge(SqlStores.layer), Layer.provide(Layer.succeedContext(client))))
        const first = yield* Effect.scoped(Effect.gen(function*() {
          const ctx = yield* node()
          const bans = yield* Effect.provide(Bans.Bans, ctx)
          expect(bans.isBanned("alice")).toBe(false)
          yield* bans.ban("alice", "spam")
          yield* bans.ban("bob", "")
          yield* bans.ban("alice", "spam again")
          expect(bans.isBanned("alice")).toBe(true)
          return yield* Effect.flatMap(Effect.provide(BanStore, ctx), (s) => s.list)
        }))
        expect(first.map((b) => [b.key, b.reason]).sort()).toEqual([["alice", "spam again"], ["bob", ""]])
        yield* Effect.scoped(Effect.gen(function*() {
          const bans = yield* Effect.provide(Bans.Bans, yield* node())
          expect(bans.isBanned("alice")).toBe(true)
          expect(bans.isBanned("bob")).toBe(true)
          expect(yield* bans.unban("bob")).toBe(true)
          expect(yield* bans.unban("bob")).toBe(false)
          expect(bans.isBanned("bob")).toBe(false)
        }))
        const bans = yield* Effect.scoped(Effect.flatMap(node(), (ctx) => Effect.provide(Bans.Bans, ctx)))
        expect([bans.isBanned("alice"), bans.isBanned("bob")]).toEqual([true, false])
      })) as Effect.Effect<void>), 60_000)
  }
})

describe("banning and kicking a key", () => {
  test("L2PS: a banned key's sessions close (4003), its registration is refused KEY_BANNED after the proof; others go on; unban lifts it", () =>
    scenario({ networks: ["default", "other"] }, Effect.gen(function*() {
      const status = yield* NodeStatus
      const a = yield* peer()
      const a2 = yield* peer(a.id)
      const b = yield* peer()
      expect((yield* a.register()).type).toBe("registered")
      expect((yield* a2.register({ l2psUid: "other" })).type).toBe("registered")
      expect((yield* b.register()).type).toBe("registered")

      const { ban, closed } = yield* status.admin.ban(a.key.toUpperCase(), "spam")
      expect(ban).toMatchObject({ key: a.key, reason: "spam" })
      expect(closed).toBe(2)
      expect(yield* a.socket.closed).toEqual({ code: BANNED_CODE, reason: "Banned by the node's operator" })
      expect(yield* a2.socket.closed).toEqual({ code: BANNED_CODE, reason: "Banned by the node's operator" })

      const again = yield* peer(a.id)
      const refused = yield* again.register()
      expect(refused).toMatchObject({ type: "error", payload: { code: "KEY_BANNED", message: "This key is banned on this node" } })
      // Told only to who holds the key: a bad proof for the banned key is still a bad proof.
      const forger = yield* peer({ ...a.id, sign: () => "00".repeat(64) })
      expect((yield* forger.register()).payload.code).toBe("INVALID_PROOF")
      expect((yield* b.sendTo(a.key)).type).toBe("message_queued")
      expect((yield* status.sessionList(undefined, 100)).sessions.map((s) => s.key)).toEqual([b.key])

      expect(yield* status.admin.unban(a.key)).toEqual({ key: a.key, wasBanned: true })
      expect((yield* again.register()).type).toBe("registered")
    })))

  test("L2PS: kick closes every session of the key (4002) and the key may come back", () =>
    scenario({}, Effect.gen(function*() {
      const status = yield* NodeStatus
      const a = yield* peer()
      const b = yield* peer()
      yield* a.register()
      yield* b.register()
      expect(yield* status.admin.kick(a.key)).toEqual({ key: a.key, closed: 1 })
      expect(yield* a.socket.closed).toEqual({ code: KICKED_CODE, reason: "Disconnected by the node's operator" })
      expect(yield* status.admin.kick(a.key)).toEqual({ key: a.key, closed: 0 })
      const back = yield* peer(a.id)
      expect((yield* back.register()).type).toBe("registered")
      expect(Either.isLeft(yield* Effect.either(status.admin.kick("not a key!")))).toBe(true)
    })))

  test("legacy: a banned client ID or signing key is refused KEY_BANNED and its session closed", () =>
    scenario({}, Effect.gen(function*() {
      const status = yield* NodeStatus
      const alice = legacyIdentity()
      const a = yield* registered("alice", alice)
      const b = yield* registered("bob")
      expect((yield* status.sessionList("legacy", 10)).sessions.map((s) => s.key).sort()).toEqual(["alice", "bob"])

      expect((yield* status.admin.ban("alice", "")).closed).toBe(1)
      expect(yield* a.socket.closed).toEqual({ code: BANNED_CODE, reason: "Banned by the node's operator" })
      const again = yield* legacyClient(alice)
      expect(yield* again.register("alice")).toMatchObject({ type: "error", payload: { errorType: "KEY_BANNED" } })
      yield* status.admin.unban("alice")
      expect((yield* again.register("alice")).type).toBe("register")

      // By signing key: every clientId it holds.
      const signer = createHash("sha256").update(alice.signingPublicKey).digest("hex")
      expect((yield* status.admin.ban(signer, "")).closed).toBe(1)
      expect((yield* again.socket.closed).code).toBe(BANNED_CODE)
      const other = yield* legacyClient(alice)
      expect((yield* other.register("alice2")).payload.errorType).toBe("KEY_BANNED")
      // A clientId of 64 hex digits is named in lower case, as a key.
      const hexId = "AB".repeat(32)
      const hex = yield* registered(hexId)
      expect((yield* status.admin.ban(hexId, "")).ban.key).toBe(hexId.toLowerCase())
      expect((yield* hex.socket.closed).code).toBe(BANNED_CODE)
      expect((yield* (yield* legacyClient()).register(hexId)).payload.errorType).toBe("KEY_BANNED")

      // The other client goes on (told of the closed sessions first).
      let reply = yield* b.request("discover", {})
      while (reply.type === "peer_disconnected") reply = yield* b.next()
      expect(reply.type).toBe("discover")
    })))
})
