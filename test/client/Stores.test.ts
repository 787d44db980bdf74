/** Attacks on what a client keeps on disk (SECURITY.md 14 and 20): identity file, alias list, history. */
import { describe, expect, test } from "bun:test"
import { gcm } from "@noble/ciphers/aes.js"
import { scrypt } from "@noble/hashes/scrypt.js"
import { bytesToHex } from "@noble/hashes/utils.js"
import { Duration, Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as AliasBook from "../../src/client/AliasBook.ts"
import * as Home from "../../src/client/Home.ts"
import { generateIdentity } from "../../src/client/L2psCrypto.ts"
import { secureRandom, toBase64 } from "../../src/client/MlKemAes.ts"
import * as FolderStorage from "../../src/client/FolderStorage.ts"
import * as MessageStore from "../../src/client/MessageStore.ts"
import * as SecretStore from "../../src/client/SecretStore.ts"

const run = <A, E>(e: Effect.Effect<A, E>) => Effect.runPromise(e)
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "im-stores-"))
const FAST_KDF = { N: 2 ** 14, r: 8, p: 1 }

/** An identity file as version 1 clients wrote it (AAD: the public key alone). */
const v1File = (secrets: SecretStore.Secrets, passphrase: string, kdf: SecretStore.KdfParams) => {
  const salt = secureRandom(16)
  const nonce = secureRandom(12)
  const key = scrypt(new TextEncoder().encode(passphrase.normalize("NFKC")), salt, { ...kdf, dkLen: 32 })
  const plain = new TextEncoder().encode(JSON.stringify({ secretKey: bytesToHex(secrets.identity.secretKey), masterSeed: bytesToHex(secrets.masterSeed) }))
  return JSON.stringify({
    version: 1,
    publicKey: secrets.identity.publicKey,
    kdf: { name: "scrypt", ...kdf, salt: toBase64(salt) },
    cipher: "aes-256-gcm",
    nonce: toBase64(nonce),
    ciphertext: toBase64(gcm(key, nonce, new TextEncoder().encode(secrets.identity.publicKey)).encrypt(plain))
  })
}

describe("20. the identity file's KDF parameters and the alias list", () => {
  test("a file tampered to ask a huge scrypt cost is refused before scrypt runs", async () => {
    const home = tmp()
    await run(SecretStore.loadOrCreate(FolderStorage.make(home), "pw", FAST_KDF))
    const file = path.join(home, SecretStore.IDENTITY_FILE)
    const json = JSON.parse(fs.readFileSync(file, "utf8")) as { kdf: Record<string, unknown> }
    for (const kdf of [{ N: 2 ** 17, p: 1000 }, { N: 2 ** 20 }, { N: 2 ** 14, r: 64 }, { N: 1024 }, { N: 3 * 2 ** 14 }, { N: "16384" }]) {
      fs.writeFileSync(file, JSON.stringify({ ...json, kdf: { ...json.kdf, ...kdf } }))
      const started = performance.now()
      const r = await run(SecretStore.loadOrCreate(FolderStorage.make(home), "pw", FAST_KDF).pipe(
        Effect.either,
        Effect.timeoutFail({ duration: Duration.seconds(3), onTimeout: () => new Error(`${JSON.stringify(kdf)}: scrypt ran for 3 s`) })
      ))
      expect(r._tag === "Left" && r.left.reason).toBe("BadKdf")
      expect(performance.now() - started).toBeLessThan(500)
    }
    fs.rmSync(home, { recursive: true, force: true })
  }, 20_000)

  test("KDF parameters are bounded when sealing (the chat's CHAT_SCRYPT_N) and authenticated in the file", async () => {
    const secrets = SecretStore.generateSecrets()
    for (const N of [1024, 2 ** 13, 2 ** 19]) {
      const r = await run(Effect.either(SecretStore.seal(secrets, "pw", { N, r: 8, p: 1 })))
      expect(r._tag === "Left" && r.left.reason).toBe("BadKdf")
    }
    expect(SecretStore.checkKdf(SecretStore.defaultKdf)).toBeUndefined()
    const text = await run(SecretStore.seal(secrets, "pw", FAST_KDF))
    const json = JSON.parse(text) as { version: number; kdf: Record<string, unknown> }
    expect(json.version).toBe(2)
    // another salt or cost in the clear header does not open, whatever the passphrase
    for (const kdf of [{ ...json.kdf, N: 2 ** 15 }, { ...json.kdf, salt: toBase64(secureRandom(16)) }]) {
      const r = await run(Effect.either(SecretStore.unseal(JSON.stringify({ ...json, kdf }), "pw")))
      expect(r._tag).toBe("Left")
    }
    expect((await run(SecretStore.unseal(text, "pw"))).identity.publicKey).toBe(secrets.identity.publicKey)
  })

  test("a version 1 identity file still opens and is rewritten as version 2", async () => {
    const home = tmp()
    const secrets = SecretStore.generateSecrets()
    const file = path.join(home, SecretStore.IDENTITY_FILE)
    fs.writeFileSync(file, v1File(secrets, "pw", FAST_KDF))
    const opened = await run(SecretStore.loadOrCreate(FolderStorage.make(home), "pw"))
    expect(opened).toMatchObject({ created: false, migrated: true })
    expect(opened.secrets.identity.publicKey).toBe(secrets.identity.publicKey)
    expect(JSON.parse(fs.readFileSync(file, "utf8"))).toMatchObject({ version: 2, kdf: { N: FAST_KDF.N } })
    expect(await run(SecretStore.loadOrCreate(FolderStorage.make(home), "pw"))).toMatchObject({ migrated: false })
    fs.rmSync(home, { recursive: true, force: true })
  })

  test("the alias list is sealed: a name moved to another key is reported and not used", async () => {
    const home = tmp()
    const me = generateIdentity()
    const file = path.join(home, AliasBook.ALIAS_FILE)
    const bob = generateIdentity().publicKey
    const mallory = generateIdentity().publicKey
    await run(AliasBook.save(file, me, { bob }))
    expect(fs.readFileSync(file, "utf8")).not.toContain(bob)
    expect(await run(AliasBook.load(file, me, { acceptPlain: false }))).toEqual({ names: { bob } })
    // written by someone without the passphrase: in clear, or a sealed file of another identity's
    fs.writeFileSync(file, JSON.stringify({ bob: mallory }))
    const plain = await run(AliasBook.load(file, me, { acceptPlain: false }))
    expect(plain.names).toEqual({})
    expect(plain.problem).toMatch(/not sealed with your identity/)
    await run(AliasBook.save(file, generateIdentity(), { bob: mallory }))
    const other = await run(AliasBook.load(file, me, { acceptPlain: false }))
    expect(other.names).toEqual({})
    expect(other.problem).toMatch(/does not open with your identity/)
    // an older chat's plain list is taken once, with the identity's own migration, and sealed
    fs.writeFileSync(file, JSON.stringify({ bob }))
    expect(await run(AliasBook.load(file, me, { acceptPlain: true }))).toEqual({ names: { bob } })
    expect(await run(AliasBook.load(file, me, { acceptPlain: false }))).toEqual({ names: { bob } })
    fs.rmSync(home, { recursive: true, force: true })
  })
})

describe("14. the message log is a chain: what was changed is reported", () => {
  const record = (hash: string): MessageStore.ChatRecord => ({
    messageHash: hash, peer: "p".repeat(64), direction: "in", text: `text ${hash}`, at: 1, l2psUid: "default", status: "received"
  })
  const key = secureRandom(32)

  /** A log of five records and one status change; its lines and head. */
  const written = async () => {
    const dir = tmp()
    const file = path.join(dir, "messages.log")
    const s = await run(FolderStorage.messageStore(file, key))
    for (const h of ["h1", "h2", "h3", "h4", "h5"]) await run(s.put(record(h)))
    await run(s.update("h2", { status: "undecryptable" }))
    const lines = fs.readFileSync(file, "utf8").split("\n").slice(0, -1)
    expect(lines).toHaveLength(6)
    return { dir, file, lines }
  }
  const reopened = async (file: string, lines: ReadonlyArray<string>) => {
    fs.writeFileSync(file, lines.map((l) => l + "\n").join(""))
    const store = await run(FolderStorage.messageStore(file, key))
    const strict = await run(Effect.either(FolderStorage.messageStore(file, key, { strict: true })))
    return { store, problems: store.report.problems, strict }
  }

  test("a clean log opens with no problem, and reopens after more writes", async () => {
    const { dir, file, lines } = await written()
    const { store, problems, strict } = await reopened(file, lines)
    expect(problems).toEqual([])
    expect(strict._tag).toBe("Right")
    expect((await run(store.recent())).map((r) => r.messageHash)).toEqual(["h1", "h2", "h3", "h4", "h5"])
    expect(await run(store.get("h2"))).toMatchObject({ status: "undecryptable" })
    await run(store.put(record("h6")))
    expect((await run(FolderStorage.messageStore(file, key))).report.problems).toEqual([])
    fs.rmSync(dir, { recursive: true, force: true })
  })

  test("a deleted, reordered, replayed or damaged line, and lines cut from the end, are reported; strict refuses", async () => {
    const { dir, file, lines } = await written()
    const cases: Array<[string, Array<string>, RegExp, number]> = [
      ["deleted", [lines[0]!, lines[1]!, lines[3]!, lines[4]!, lines[5]!], /1 line\(s\) missing before it/, 3],
      ["reordered", [lines[0]!, lines[2]!, lines[1]!, ...lines.slice(3)], /missing before it|out of order/, 2],
      ["replayed", [...lines, lines[1]!], /out of order or replayed \(entry 2 after 6\)/, 7],
      ["damaged", [lines[0]!, lines[1]!.slice(0, 20) + (lines[1]![20] === "A" ? "B" : "A") + lines[1]!.slice(21), ...lines.slice(2)], /does not open/, 2],
      ["cut short", lines.slice(0, 4), /cut short: 2 line\(s\) missing at the end/, 0]
    ]
    for (const [what, changed, problem, line] of cases) {
      const { problems, strict } = await reopened(file, changed)
      expect({ what, found: problems.some((p) => problem.test(p.problem) && p.line === line) }).toEqual({ what, found: true })
      expect({ what, strict: strict._tag === "Left" && strict.left.problems !== undefined && strict.left.problems.length > 0 }).toEqual({ what, strict: true })
    }
    // what still opens in order is read: with line 3 deleted, h3 is gone and the rest is there
    const { store } = await reopened(file, [lines[0]!, lines[1]!, lines[3]!, lines[4]!, lines[5]!])
    expect((await run(store.recent())).map((r) => r.messageHash)).toEqual(["h1", "h2", "h4", "h5"])
    // the head file removed or replaced is reported too
    fs.writeFileSync(file, lines.map((l) => l + "\n").join(""))
    fs.rmSync(`${file}.head`)
    expect((await run(FolderStorage.messageStore(file, key))).report.problems).toEqual([{ line: 0, problem: "the log's head file is missing" }])
    fs.rmSync(dir, { recursive: true, force: true })
  })

  test("a torn last line from a crash is cut off silently; a log written before the chain is read and chained", async () => {
    const { dir, file, lines } = await written()
    fs.writeFileSync(file, lines.map((l) => l + "\n").join("") + lines[5]!.slice(0, 30))
    const torn = await run(FolderStorage.messageStore(file, key))
    expect(torn.report.problems).toEqual([])
    await run(torn.put(record("h6")))
    expect((await run(FolderStorage.messageStore(file, key))).report.problems).toEqual([])

    // unchained sealed lines, no head: as clients wrote them before
    const old = path.join(dir, "old.log")
    const v1 = (entry: unknown) => {
      const nonce = secureRandom(12)
      return toBase64(Buffer.concat([nonce, gcm(key, nonce).encrypt(new TextEncoder().encode(JSON.stringify(entry)))]))
    }
    fs.writeFileSync(old, [v1({ op: "put", record: record("o1") }), v1({ op: "put", record: record("o2") }), v1({ op: "patch", messageHash: "o1", patch: { status: "failed" } })].join("\n") + "\n")
    const migrated = await run(FolderStorage.messageStore(old, key))
    expect(migrated.report).toMatchObject({ migrated: true, problems: [] })
    expect(await run(migrated.get("o1"))).toMatchObject({ status: "failed" })
    const again = await run(FolderStorage.messageStore(old, key, { strict: true }))
    expect(again.report).toMatchObject({ migrated: false, problems: [] })
    expect((await run(again.recent())).map((r) => r.messageHash)).toEqual(["o1", "o2"])

    // an unchained log with a line that does not open is reported and left as it is, never rewritten
    const damaged = path.join(dir, "damaged.log")
    const before = [v1({ op: "put", record: record("d1") }), "AAAA" + v1({ op: "put", record: record("d2") }).slice(4)].join("\n") + "\n"
    fs.writeFileSync(damaged, before)
    const kept = await run(FolderStorage.messageStore(damaged, key))
    expect(kept.report).toMatchObject({ migrated: false, problems: [{ line: 2, problem: expect.stringMatching(/does not open/) }] })
    expect(fs.readFileSync(damaged, "utf8")).toBe(before)
    await run(kept.put(record("d3")))
    const reread = await run(FolderStorage.messageStore(damaged, key))
    expect((await run(reread.recent())).map((r) => r.messageHash)).toEqual(["d1", "d3"])
    expect(reread.report.problems.map((p) => p.line)).toEqual([2])
    // an old unchained line put back in front of a chained log is not taken
    const chained = fs.readFileSync(old, "utf8")
    fs.writeFileSync(old, v1({ op: "patch", messageHash: "o1", patch: { status: "delivered" } }) + "\n" + chained)
    const injected = await run(FolderStorage.messageStore(old, key))
    expect(injected.report.problems).toEqual([{ line: 1, problem: "an unchained line inside the chain" }])
    expect(await run(injected.get("o1"))).toMatchObject({ status: "failed" })
    fs.rmSync(dir, { recursive: true, force: true })
  })

  test("a home whose history was changed opens with a notice the app shows", async () => {
    const home = tmp()
    const { secrets } = await run(SecretStore.loadOrCreate(FolderStorage.make(home), "pw", FAST_KDF))
    const file = path.join(home, Home.HISTORY_FILE)
    const s = await run(FolderStorage.messageStore(file, Home.storeKeyOf(secrets.identity)))
    for (const h of ["h1", "h2", "h3"]) await run(s.put(record(h)))
    const lines = fs.readFileSync(file, "utf8").split("\n")
    fs.writeFileSync(file, [lines[0], lines[2], ""].join("\n"))
    const opened = await run(Effect.scoped(Home.fromHome({ serverUrl: "ws://127.0.0.1:9", home, passphrase: "pw" })))
    expect(opened.notices).toHaveLength(1)
    expect(opened.notices[0]).toMatch(/^your history \(messages\.log\) was changed or damaged, \d problem\(s\): line 2: 1 line\(s\) missing before it/)
    fs.rmSync(home, { recursive: true, force: true })
  })
})

describe("13. a messageHash is unique per sender only: the history keeps records by sender", () => {
  const incoming = (hash: string, peer: string, text: string): MessageStore.ChatRecord => ({
    messageHash: hash, peer, direction: "in", text, at: 1, l2psUid: "default", status: "received"
  })
  const A = "a".repeat(64)
  const B = "b".repeat(64)

  test("two senders' messages under one hash are both kept, each patched apart; a sender's redelivery is not kept twice", async () => {
    const file = path.join(tmp(), "messages.log")
    const key = secureRandom(32)
    const s = await run(FolderStorage.messageStore(file, key))
    expect(await run(s.put(incoming("same", A, "from a")))).toBe(true)
    expect(await run(s.put(incoming("same", B, "from b")))).toBe(true)
    expect(await run(s.put(incoming("same", A, "from a again")))).toBe(false)
    // Ours under the same hash too.
    expect(await run(s.put({ ...incoming("same", B, "to b"), direction: "out", status: "sent" }))).toBe(true)
    await run(s.update("same", { serverTimestamp: 7 }, B))
    await run(s.update("same", { status: "delivered" }))
    const reopened = await run(FolderStorage.messageStore(file, key))
    const all = await run(reopened.recent())
    expect(all.map((r) => [r.direction, r.peer.slice(0, 1), r.text, r.serverTimestamp ?? null, r.status])).toEqual([
      ["in", "a", "from a", null, "received"],
      ["in", "b", "from b", 7, "received"],
      ["out", "b", "to b", null, "delivered"]
    ])
    expect((await run(reopened.get("same", A)))?.text).toBe("from a")
    expect((await run(reopened.get("same")))?.text).toBe("to b")
  })
})
