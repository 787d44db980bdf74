/**
 * Prekey frames in scenarios over in-memory sockets on TestClock (the end-to-end file drives a real
 * node): uploads limited per key and refilled by the clock, a banned key's bundles not served (nor its
 * one-time keys consumed) until it is unbanned.
 */
import { describe, expect, test } from "bun:test"
import { x25519 } from "@noble/curves/ed25519.js"
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js"
import { Effect, TestClock } from "effect"
import { type PrekeyKind, prekeySigningString } from "../../src/domain/Prekeys.ts"
import { NodeStatus } from "../../src/ops/NodeStatus.ts"
import { type Identity, peer, scenario } from "../support/TestNode.ts"

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex")
const lrkHex = hex(ml_kem768.keygen().publicKey)

const key = (id: Identity, kind: PrekeyKind, keyId: number, publicKey: string) => ({
  keyId,
  publicKey,
  signature: id.sign(prekeySigningString(kind, 1, 9, keyId, publicKey))
})
const x = () => hex(x25519.getPublicKey(x25519.utils.randomSecretKey()))

/** Device 1 (registration 9) of `id`: the signed keys on the first upload, one one-time X25519 key each time. */
const upload = (id: Identity, n: number) => ({
  deviceId: 1,
  registrationId: 9,
  ...(n === 0 ? { signedPreKey: key(id, "spk", 1, x()), lastResortKem: key(id, "lrk", 1, lrkHex) } : {}),
  oneTimePreKeys: [key(id, "opk", n, x())]
})

describe("prekey scenarios", () => {
  test("uploads: PREKEY_PUBLISH_BURST, then PREKEY_PUBLISH_PER_MINUTE, on the node's clock", () =>
    scenario({ prekeyPublishBurst: 2, prekeyPublishPerMinute: 4 }, Effect.gen(function*() {
      const alice = yield* peer()
      yield* alice.register()
      expect((yield* alice.request("prekeys_publish", upload(alice.id, 0))).type).toBe("prekeys_published")
      expect((yield* alice.request("prekeys_publish", upload(alice.id, 1))).type).toBe("prekeys_published")
      const refused = yield* alice.request("prekeys_publish", upload(alice.id, 5))
      expect(refused.payload).toEqual({ code: "RATE_LIMITED", message: "Too many prekey uploads (4 per minute)" })
      // another session of the same key shares the bucket
      const again = yield* peer(alice.id)
      yield* again.register()
      expect((yield* again.request("prekeys_publish", upload(alice.id, 6))).payload.code).toBe("RATE_LIMITED")
      // 4 a minute: not after 14 s, one more after 15 s; the refused uploads stored nothing (keys 0, 1, 2 wait)
      yield* TestClock.adjust("14 seconds")
      expect((yield* alice.request("prekeys_publish", upload(alice.id, 2))).payload.code).toBe("RATE_LIMITED")
      yield* TestClock.adjust("1 second")
      expect((yield* alice.request("prekeys_publish", upload(alice.id, 2))).payload).toEqual({ deviceId: 1, oneTimePreKeys: 3, oneTimeKems: 0 })
    })))

  test("a banned key's bundles are not served, nor its one-time keys taken; after the unban they are", () =>
    scenario({}, Effect.gen(function*() {
      const status = yield* NodeStatus
      const alice = yield* peer()
      const bob = yield* peer()
      yield* alice.register()
      yield* bob.register()
      yield* alice.request("prekeys_publish", upload(alice.id, 0))
      yield* alice.request("prekeys_publish", upload(alice.id, 1))
      yield* status.admin.ban(alice.key, "spam")
      expect((yield* bob.request("bundle_fetch", { publicKey: alice.key })).payload).toEqual({ publicKey: alice.key, devices: [] })
      yield* status.admin.unban(alice.key)
      const served = yield* bob.request("bundle_fetch", { publicKey: alice.key })
      expect(served.payload.devices.map((d: { oneTimePreKey?: { keyId: number } }) => d.oneTimePreKey?.keyId)).toEqual([0])
    })))
})
