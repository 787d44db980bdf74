/** The client's crypto, stores and proof checks, offline; the reconnect schedule on the TestClock. */
import { describe, expect, test } from "bun:test"
import { Duration, Effect, Fiber, Option, Schedule, TestClock, TestContext } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { generateIdentity, messageHashOf, openFrom, openMessage, openTextFrom, sealBound, sealFor, signFnOf } from "../../src/client/L2psCrypto.ts"
import * as FolderStorage from "../../src/client/FolderStorage.ts"
import * as MessageStore from "../../src/client/MessageStore.ts"
import * as MlKemAes from "../../src/client/MlKemAes.ts"
import { verifyProof } from "../../src/client/Proofs.ts"
import { defaultReconnect, schedule } from "../../src/client/Reconnect.ts"
import * as SecretStore from "../../src/client/SecretStore.ts"
import type { ProofResponsePayload } from "../../src/client/Wire.ts"
import { canonicalJson, leafHash, path as merklePath, root } from "../../src/domain/Merkle.ts"
import { ed25519 } from "@noble/curves/ed25519.js"
import { sha256 } from "@noble/hashes/sha2.js"
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js"
import * as NodeKey from "../../src/crypto/NodeKey.ts"

const run = <A, E>(e: Effect.Effect<A, E>) => Effect.runPromise(e)
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "im-client-"))
const FAST_KDF = { N: 2 ** 14, r: 8, p: 1 }

describe("ml-kem-aes (the SDK's format)", () => {
  test("round trip; sizes as §3.3.5: ct 1088 bytes (1452 base64 chars), data = 12 + n + 16", () => {
    const keys = MlKemAes.legacyKeysFromSeed(MlKemAes.newMasterSeed())
    expect(keys.kem.publicKey.length).toBe(1184)
    expect(keys.kem.secretKey.length).toBe(2400)
    expect(keys.dsa.publicKey.length).toBe(1952)
    const o = MlKemAes.encryptSerialized(keys.kem.publicKey, "hello, post-quantum world")
    expect(o.algorithm).toBe("ml-kem-aes")
    expect(o.serializedCipherText).toHaveLength(1452)
    expect(MlKemAes.fromBase64(o.serializedEncryptedData).length).toBe(12 + 25 + 16)
    expect(new TextDecoder().decode(MlKemAes.decryptSerialized(keys.kem.secretKey, o))).toBe("hello, post-quantum world")
    // decapsulation leaves the caller's secret key usable
    expect(new TextDecoder().decode(MlKemAes.decryptSerialized(keys.kem.secretKey, o))).toBe("hello, post-quantum world")
  })

  test("another key or a flipped byte does not open", () => {
    const a = MlKemAes.legacyKeysFromSeed(MlKemAes.newMasterSeed())
    const b = MlKemAes.legacyKeysFromSeed(MlKemAes.newMasterSeed())
    const o = MlKemAes.encryptSerialized(a.kem.publicKey, "x")
    expect(() => MlKemAes.decryptSerialized(b.kem.secretKey, o)).toThrow()
    const data = MlKemAes.fromBase64(o.serializedEncryptedData)
    data[14]! ^= 1
    expect(() => MlKemAes.decryptSerialized(a.kem.secretKey, { ...o, serializedEncryptedData: MlKemAes.toBase64(data) })).toThrow()
  })

  test("the same master seed is the same identity; the proof signs the ML-KEM key", () => {
    const seed = MlKemAes.newMasterSeed()
    const a = MlKemAes.legacyKeysFromSeed(seed)
    const b = MlKemAes.legacyKeysFromSeed(seed.slice())
    expect(Buffer.from(a.kem.publicKey).equals(Buffer.from(b.kem.publicKey))).toBe(true)
    expect(Buffer.from(a.dsa.publicKey).equals(Buffer.from(b.dsa.publicKey))).toBe(true)
    const proof = MlKemAes.registrationProof(a)
    expect(proof.algorithm).toBe("ml-dsa")
    expect(Buffer.from(proof.serializedMessage, "base64").equals(Buffer.from(a.kem.publicKey))).toBe(true)
    expect(Buffer.from(proof.serializedSignedData, "base64").length).toBe(3309)
  })
})

describe("L2PS end-to-end encryption (x25519-aes-256-gcm/v1)", () => {
  test("the recipient opens what the sender sealed; the server-visible parts carry no plaintext", () => {
    const alice = generateIdentity()
    const bob = generateIdentity()
    const sealed = sealFor(alice, bob.publicKey, "meet at noon")
    expect(Object.keys(sealed).sort()).toEqual(["ciphertext", "ephemeralKey", "nonce"])
    expect(sealed.ephemeralKey).toMatch(/^[0-9a-f]{64}$/)
    expect(Buffer.from(sealed.nonce, "base64")).toHaveLength(12)
    expect(Buffer.from(sealed.ciphertext, "base64").toString("latin1")).not.toContain("noon")
    expect(openTextFrom(bob, alice.publicKey, sealed)).toBe("meet at noon")
    // upper-case keys are the same keys
    expect(openTextFrom(bob, alice.publicKey.toUpperCase(), sealFor(alice, bob.publicKey.toUpperCase(), "x"))).toBe("x")
  })

  test("a rewritten `from`, another recipient, or a tampered field does not open", () => {
    const alice = generateIdentity()
    const bob = generateIdentity()
    const mallory = generateIdentity()
    const sealed = sealFor(alice, bob.publicKey, "pay 10")
    expect(() => openFrom(bob, mallory.publicKey, sealed)).toThrow()
    expect(() => openFrom(mallory, alice.publicKey, sealed)).toThrow()
    const ct = Buffer.from(sealed.ciphertext, "base64")
    ct[0]! ^= 1
    expect(() => openFrom(bob, alice.publicKey, { ...sealed, ciphertext: ct.toString("base64") })).toThrow()
    expect(() => openFrom(bob, alice.publicKey, { ...sealed, ephemeralKey: generateIdentity().publicKey })).toThrow()
    expect(() => openFrom(bob, alice.publicKey, { ciphertext: sealed.ciphertext, nonce: sealed.nonce })).toThrow(/ephemeral/)
  })

  test("signFn signs the UTF-8 of the proof string; message hashes are unique per message", () => {
    const id = generateIdentity()
    const sig = signFnOf(id)("register:abc:1")
    expect(ed25519.verify(Buffer.from(sig, "hex"), new TextEncoder().encode("register:abc:1"), Buffer.from(id.publicKey, "hex"))).toBe(true)
    const bob = generateIdentity()
    const a = messageHashOf(id.publicKey, bob.publicKey, sealFor(id, bob.publicKey, "same"), 1)
    const b = messageHashOf(id.publicKey, bob.publicKey, sealFor(id, bob.publicKey, "same"), 1)
    expect(a).toMatch(/^[0-9a-f]{64}$/)
    expect(a).not.toBe(b)
  })
  test("a bound message opens only under its own hash: replayed under another it is reported, an unbound one is marked", () => {
    const alice = generateIdentity()
    const bob = generateIdentity()
    const { encrypted, messageHash } = sealBound(alice, bob.publicKey, "pay carol 10", 1_700_000_000_123)
    expect(messageHash).toBe(messageHashOf(alice.publicKey, bob.publicKey, encrypted, 1_700_000_000_123))
    expect(openMessage(bob, alice.publicKey, encrypted, messageHash)).toEqual({ _tag: "Bound", text: "pay carol 10", sentAt: 1_700_000_000_123 })
    // the fields in another order (as a server may store them) give the same hash
    const reordered = { ephemeralKey: encrypted.ephemeralKey!, nonce: encrypted.nonce, ciphertext: encrypted.ciphertext }
    expect(openMessage(bob, alice.publicKey, reordered, messageHash)._tag).toBe("Bound")
    const replay = messageHashOf(alice.publicKey, bob.publicKey, encrypted, 1_700_000_060_000)
    expect(openMessage(bob, alice.publicKey, encrypted, replay)).toMatchObject({ _tag: "Replayed", sentAt: 1_700_000_000_123, boundHash: messageHash })
    // not to another recipient, not from another sender
    expect(() => openMessage(generateIdentity(), alice.publicKey, encrypted, messageHash)).toThrow()
    expect(() => openMessage(bob, generateIdentity().publicKey, encrypted, messageHash)).toThrow()
    // the bound form never opens as an unbound one, so it cannot be stripped of its binding
    const unbound = sealFor(alice, bob.publicKey, "old client")
    expect(openMessage(bob, alice.publicKey, unbound, messageHashOf(alice.publicKey, bob.publicKey, unbound, 5))).toEqual({ _tag: "Unbound", text: "old client" })
    expect(openTextFrom(bob, alice.publicKey, encrypted)).toBe("pay carol 10")
  })
})

describe("secrets at rest", () => {
  test("created once, loaded with the passphrase, refused with another; the file holds no secret in clear", async () => {
    const home = tmp()
    const first = await run(SecretStore.loadOrCreate(FolderStorage.make(home), "correct horse", FAST_KDF))
    expect(first.created).toBe(true)
    const again = await run(SecretStore.loadOrCreate(FolderStorage.make(home), "correct horse", FAST_KDF))
    expect(again.created).toBe(false)
    expect(again.secrets.identity.publicKey).toBe(first.secrets.identity.publicKey)
    expect(Buffer.from(again.secrets.masterSeed).equals(Buffer.from(first.secrets.masterSeed))).toBe(true)
    const file = path.join(home, SecretStore.IDENTITY_FILE)
    expect(fs.statSync(file).mode & 0o777).toBe(0o600)
    const text = fs.readFileSync(file, "utf8")
    expect(text).not.toContain(Buffer.from(first.secrets.identity.secretKey).toString("hex"))
    expect(await run(SecretStore.publicKeyIn(FolderStorage.make(home)))).toBe(first.secrets.identity.publicKey)
    const wrong = await run(Effect.either(SecretStore.loadOrCreate(FolderStorage.make(home), "battery staple", FAST_KDF)))
    expect(wrong._tag === "Left" && wrong.left.reason).toBe("WrongPassphrase")
    // swapping the clear public key breaks the seal (it is the AAD)
    fs.writeFileSync(file, text.replace(first.secrets.identity.publicKey, generateIdentity().publicKey))
    const swapped = await run(Effect.either(SecretStore.loadOrCreate(FolderStorage.make(home), "correct horse", FAST_KDF)))
    expect(swapped._tag).toBe("Left")
    fs.rmSync(home, { recursive: true, force: true })
  })
})

describe("message store", () => {
  const record = (hash: string, peer = "p".repeat(64)): MessageStore.ChatRecord => ({
    messageHash: hash, peer, direction: "out", text: `text ${hash}`, at: 1, l2psUid: "default", status: "sending"
  })

  test("on disk: records and status changes survive a reopen; sealed lines; a torn last line is skipped", async () => {
    const dir = tmp()
    const file = path.join(dir, "messages.log")
    const key = MlKemAes.secureRandom(32)
    const s1 = await run(FolderStorage.messageStore(file, key))
    expect(await run(s1.put(record("h1")))).toBe(true)
    expect(await run(s1.put(record("h1")))).toBe(false)
    await run(s1.put(record("h2", "q".repeat(64))))
    await run(s1.update("h1", { status: "delivered", deliveredAt: 5 }))
    expect(fs.readFileSync(file, "utf8")).not.toContain("text h1")
    fs.appendFileSync(file, "garbage-without-newline")
    const s2 = await run(FolderStorage.messageStore(file, key))
    expect(await run(s2.get("h1"))).toMatchObject({ status: "delivered", deliveredAt: 5 })
    expect((await run(s2.conversation("p".repeat(64)))).map((r) => r.messageHash)).toEqual(["h1"])
    await run(s2.put(record("h3")))
    const s3 = await run(FolderStorage.messageStore(file, key))
    expect((await run(s3.recent())).map((r) => r.messageHash)).toEqual(["h1", "h2", "h3"])
    // another key reads nothing
    expect(await run((await run(FolderStorage.messageStore(file, MlKemAes.secureRandom(32)))).recent())).toEqual([])
    fs.rmSync(dir, { recursive: true, force: true })
  })
})

describe("inclusion proofs, offline", () => {
  const messages = [0, 1, 2, 3, 4].map((i) => ({ l2psUid: "default", messageHash: `h${i}`, encrypted: { ciphertext: `c${i}`, nonce: "n" }, timestamp: 100 + i }))
  const leaves = messages.map(leafHash)
  const proofOf = (i: number, status = "confirmed"): ProofResponsePayload => ({
    messageHash: `h${i}`,
    leaf: leaves[i]!,
    l2psStatus: status === "confirmed" ? "l2ps_confirmed" : "l2ps_batched",
    batch: { id: "1", l2psUid: "default", root: root(leaves), size: 5, prevBatchHash: null, l2psTxHash: "tx", status, blockNumber: 7 },
    path: merklePath(leaves, i)
  })

  test("a good path verifies, for the message it names; tampering anywhere fails", () => {
    for (let i = 0; i < messages.length; i++) {
      expect(verifyProof(proofOf(i), messages[i])).toMatchObject({ valid: true, confirmed: true, blockNumber: 7 })
    }
    expect(verifyProof(proofOf(2, "submitted"))).toMatchObject({ valid: true, confirmed: false, status: "l2ps_batched" })
    const p = proofOf(1)
    expect(verifyProof({ ...p, path: p.path.map((s, i) => (i === 0 ? { ...s, side: s.side === "left" ? "right" as const : "left" as const } : s)) }).valid).toBe(false)
    expect(verifyProof(p, messages[2]).valid).toBe(false)
    expect(verifyProof(p, { ...messages[1]!, timestamp: 999 })).toMatchObject({ valid: false, reason: "the leaf is not this message's hash" })
    expect(verifyProof({ ...p, batch: null, path: [], l2psStatus: "l2ps_pending" })).toMatchObject({ valid: false, status: "l2ps_pending" })
  })

  test("with a pinned node key, only a header the node signed proves anything (ML-DSA-65, as the prover signs)", () => {
    const node = NodeKey.fromSeed(new Uint8Array(32).fill(1))
    const other = NodeKey.fromSeed(new Uint8Array(32).fill(2))
    const signed = (p: ProofResponsePayload, key = node): ProofResponsePayload => {
      const b = { ...p.batch!, seq: 3, prevBatchHash: "0".repeat(64), createdAt: 1234 }
      const batchHash = bytesToHex(sha256(new TextEncoder().encode(canonicalJson({ l2psUid: b.l2psUid, seq: b.seq, root: b.root, size: b.size, prevBatchHash: b.prevBatchHash, createdAt: b.createdAt }))))
      return { ...p, batch: { ...b, batchHash, signature: bytesToHex(key.sign(hexToBytes(batchHash))), signer: key.publicKeyHex } }
    }
    const trust = { nodeKey: node.publicKeyHex }
    const good = signed(proofOf(1))
    expect(verifyProof(good, messages[1], trust)).toMatchObject({ valid: true, confirmed: true, signer: node.publicKeyHex })
    expect(verifyProof(proofOf(1), messages[1], trust)).toMatchObject({ valid: false, reason: "the node sent no batch signature" })
    expect(verifyProof(signed(proofOf(1), other), messages[1], trust)).toMatchObject({ valid: false, reason: "the batch is signed by another node key than the pinned one" })
    // a root (and a path to it) the node did not sign
    const fake = [good.leaf, "ab".repeat(32)]
    expect(verifyProof({ ...good, batch: { ...good.batch!, root: root(fake) }, path: merklePath(fake, 0) }, messages[1], trust))
      .toMatchObject({ valid: false, reason: "the batch header does not hash to its batchHash" })
    const sig = good.batch!.signature!
    expect(verifyProof({ ...good, batch: { ...good.batch!, signature: (sig[0] === "0" ? "1" : "0") + sig.slice(1) } }, messages[1], trust))
      .toMatchObject({ valid: false, reason: "the batch signature does not verify" })
  })
})

describe("reconnect schedule", () => {
  test("1 s doubling to 30 s, then it gives up after 10 attempts (TestClock)", () =>
    Effect.gen(function*() {
      const driver = yield* Schedule.driver(schedule(defaultReconnect))
      const delays: Array<number | "done"> = []
      for (let i = 0; i < 11; i++) {
        const before = yield* TestClock.currentTimeMillis
        const f = yield* Effect.fork(Effect.option(driver.next(undefined)))
        yield* TestClock.adjust("30 seconds")
        const out = yield* Fiber.join(f)
        delays.push(Option.isSome(out) ? Duration.toMillis(out.value) : "done")
        expect((yield* TestClock.currentTimeMillis) - before).toBe(30_000)
      }
      expect(delays).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000, 30000, "done"])
    }).pipe(Effect.provide(TestContext.TestContext), Effect.runPromise))
})
