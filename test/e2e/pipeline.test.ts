import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import pg from "pg"
import { leafHash, verifyInclusion } from "../../src/domain/Merkle.ts"
import { encryptedFor, L2psClient, makeIdentity, randomHash } from "../support/L2psClient.ts"
import { type NodeProcess, startNode } from "../support/NodeProcess.ts"

/** Runs on Postgres when TEST_DATABASE_URL is set (so the test can read the chain the node keeps), else PGlite. */
const adminUrl = process.env["TEST_DATABASE_URL"]
const dbName = `im_e2e_pipeline_${randomHash().slice(0, 12)}`
const dbUrl = (() => {
  if (adminUrl === undefined) return undefined
  const u = new URL(adminUrl)
  u.pathname = `/${dbName}`
  return u.toString()
})()

let node: NodeProcess
const clients: Array<L2psClient> = []

const connect = async (url: string) => {
  const id = makeIdentity()
  const client = new L2psClient({ serverUrl: url, publicKey: id.publicKey, l2psUid: "default", signFn: id.signFn })
  clients.push(client)
  await client.connect()
  return { id, client }
}

beforeAll(async () => {
  if (adminUrl !== undefined) {
    const admin = new pg.Client({ connectionString: adminUrl })
    await admin.connect()
    await admin.query(`CREATE DATABASE ${dbName}`)
    await admin.end()
  }
  node = await startNode({
    env: {
      L2PS_BATCH_INTERVAL_MS: "200",
      L2PS_MAX_BATCH_SIZE: "4",
      L1_BLOCK_INTERVAL_MS: "200",
      L1_FINALITY_DEPTH: "2",
      ...(dbUrl === undefined ? {} : { DATABASE_URL: dbUrl })
    }
  })
})

afterAll(async () => {
  for (const c of clients) c.disconnect()
  await node?.dispose()
  if (adminUrl !== undefined) {
    const admin = new pg.Client({ connectionString: adminUrl })
    await admin.connect()
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`)
    await admin.end()
  }
})

describe("pipeline end to end, over WebSockets", () => {
  test("messages reach l2ps_confirmed; their proofs verify offline and against the chain", async () => {
    const a = await connect(node.url)
    const b = await connect(node.url)
    const c = await connect(node.url)
    const sent = new Map<string, ReturnType<typeof encryptedFor>>()
    for (let i = 0; i < 6; i++) {
      const h = randomHash()
      const enc = encryptedFor(`message ${i}`)
      sent.set(h, enc)
      await a.client.send(b.id.publicKey, enc, h)
    }
    let history = await b.client.history(a.id.publicKey, { limit: 10 })
    for (let i = 0; i < 100 && !history.messages.every((m) => m.l2psStatus === "l2ps_confirmed"); i++) {
      await Bun.sleep(100)
      history = await b.client.history(a.id.publicKey, { limit: 10 })
    }
    expect(history.messages).toHaveLength(6)
    for (const m of history.messages) {
      expect(m).toMatchObject({ l2psStatus: "l2ps_confirmed", status: "l2ps_confirmed" })
      expect(m.l2psTxHash).toMatch(/^[0-9a-f]{64}$/)
    }
    // At most 4 a batch (L2PS_MAX_BATCH_SIZE): batches of 4 and 2 when the six land within one interval,
    // more batches when a loaded machine spreads the sends over several.
    const perBatch = new Map<string, number>()
    for (const m of history.messages) perBatch.set(m.l2psTxHash!, (perBatch.get(m.l2psTxHash!) ?? 0) + 1)
    expect(perBatch.size).toBeGreaterThanOrEqual(2)
    expect(Math.max(...perBatch.values())).toBeLessThanOrEqual(4)

    const chain = dbUrl === undefined ? undefined : new pg.Client({ connectionString: dbUrl })
    await chain?.connect()
    try {
      for (const m of history.messages) {
        const proof = await a.client.proofRequest(m.messageHash)
        // What the client knows of its own message gives the leaf.
        const leaf = leafHash({ l2psUid: "default", messageHash: m.messageHash, encrypted: sent.get(m.messageHash)!, timestamp: m.timestamp })
        expect(proof.leaf).toBe(leaf)
        expect(proof.batch).toMatchObject({ status: "confirmed", l2psTxHash: m.l2psTxHash, l2psUid: "default" })
        expect(verifyInclusion(leaf, proof.path, proof.batch!.root)).toBe(true)
        const tampered = proof.path.map((s, i) => (i === 0 ? { ...s, side: s.side === "left" ? "right" as const : "left" as const } : s))
        expect(verifyInclusion(leaf, tampered, proof.batch!.root)).toBe(false)
        if (chain !== undefined) {
          const { rows } = await chain.query(
            `SELECT t.payload->>'root' AS root, b.number, b.hash FROM l1_transactions t JOIN l1_blocks b ON b.number = t.block_number WHERE t.tx_hash = $1`,
            [m.l2psTxHash]
          )
          expect(rows).toHaveLength(1)
          expect(rows[0].root).toBe(proof.batch!.root)
          expect(Number(rows[0].number)).toBe(proof.batch!.blockNumber!)
          expect(rows[0].hash).toBe(proof.batch!.blockHash!)
        }
      }
    } finally {
      await chain?.end()
    }
    await expect(c.client.proofRequest(history.messages[0]!.messageHash)).rejects.toThrow("Message not found")
  }, 30_000)
})
