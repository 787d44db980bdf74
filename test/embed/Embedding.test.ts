import { afterAll, describe, expect, test } from "bun:test"
import * as ManagedRuntime from "effect/ManagedRuntime"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { L2psServer, type L1 } from "demos-im-node"
import { leafHash, verifyInclusion } from "../../src/domain/Merkle.ts"
import { encryptedFor, L2psClient, makeIdentity, randomHash } from "../support/L2psClient.ts"
import { freePort, REPO_ROOT } from "../support/NodeProcess.ts"
import { databases } from "../support/TestDatabase.ts"
import { type HostChain, messagingLayer } from "./host.ts"

/** A host chain that mines a block every 50 ms with whatever was submitted since the last one. */
const makeChain = () => {
  const submitted = new Map<string, L1.L1Transaction>()
  const included = new Map<string, L1.Inclusion>()
  const blocks: Array<L1.Head> = []
  let waiting: Array<string> = []
  const timer = setInterval(() => {
    const head = { number: blocks.length + 1, hash: randomHash() }
    blocks.push(head)
    for (const h of waiting) included.set(h, { blockNumber: head.number, blockHash: head.hash })
    waiting = []
  }, 50)
  const chain: HostChain = {
    submit: async (tx) => {
      if (submitted.has(tx.hash)) return
      submitted.set(tx.hash, tx)
      waiting.push(tx.hash)
    },
    inclusion: async (hash) => included.get(hash),
    head: async () => blocks.at(-1)
  }
  return { chain, submitted, stop: () => clearInterval(timer) }
}

const dbs = await databases()
const cleanup: Array<() => Promise<void> | void> = []
afterAll(async () => {
  for (const f of cleanup.reverse()) await f()
})

describe("the README's embedding example", () => {
  test("is the file the tests run", () => {
    const readme = readFileSync(join(REPO_ROOT, "README.md"), "utf8")
    const example = readFileSync(join(import.meta.dir, "host.ts"), "utf8").trim()
    expect(readme.includes(example)).toBe(true)
  })

  for (const db of dbs) {
    test(`a host's layer serves clients and anchors batches on the host's chain (${db.name})`, async () => {
      const { chain, submitted, stop } = makeChain()
      cleanup.push(stop)
      const runtime = ManagedRuntime.make(messagingLayer({
        sql: db.layer,
        chain,
        nodeSeed: crypto.getRandomValues(new Uint8Array(32)),
        l2psPort: freePort(),
        legacyPort: freePort()
      }))
      cleanup.push(() => runtime.dispose())
      const server = await runtime.runPromise(L2psServer)

      const [alice, bob] = [makeIdentity(), makeIdentity()]
      const clients = [alice, bob].map((id) =>
        new L2psClient({ serverUrl: server.url, publicKey: id.publicKey, l2psUid: "chat", signFn: id.signFn })
      )
      cleanup.push(() => clients.forEach((c) => c.disconnect()))
      const [a, b] = clients as [L2psClient, L2psClient]
      await a.connect()
      await b.connect()
      const got: Array<string> = []
      b.onMessage((m) => got.push(m.messageHash))

      const hash = randomHash()
      const encrypted = encryptedFor("hello from inside the host")
      expect(await a.send(bob.publicKey, encrypted, hash)).toEqual({ messageHash: hash, l2psStatus: "submitted" })
      for (let i = 0; i < 100 && !got.includes(hash); i++) await Bun.sleep(20)
      expect(got).toEqual([hash])

      // The default batch interval is 2 s; then two blocks on top for finality.
      let proof = await a.proofRequest(hash)
      for (let i = 0; i < 100 && proof.batch?.status !== "confirmed"; i++) {
        await Bun.sleep(100)
        proof = await a.proofRequest(hash)
      }
      expect(proof.batch?.status).toBe("confirmed")
      const anchor = submitted.get(proof.batch!.l2psTxHash ?? "")
      expect(anchor?.payload).toMatchObject({ type: "l2psBatch", l2psUid: "chat", root: proof.batch!.root, size: 1 })
      const [stored] = (await b.history(alice.publicKey)).messages
      const leaf = leafHash({ l2psUid: "chat", messageHash: hash, encrypted, timestamp: stored!.timestamp })
      expect(verifyInclusion(leaf, proof.path, anchor!.payload.root)).toBe(true)
    }, 60_000)
  }
})
