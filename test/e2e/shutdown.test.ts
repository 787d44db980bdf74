/**
 * What an operator reads in the logs: connection opens and closes counted at `debug`, and on SIGTERM
 * what the node closed (sessions, each server's connections), flushed (group commits) and left in storage.
 */
import { afterAll, expect, test } from "bun:test"
import { encryptedFor, randomHash } from "../support/L2psClient.ts"
import { type NodeProcess, startNode } from "../support/NodeProcess.ts"
import { open } from "../support/RawSocket.ts"
import { PeerPool, waitUntil } from "./helpers.ts"

let node: NodeProcess | undefined
const pool = new PeerPool()

afterAll(async () => {
  pool.disconnectAll()
  await node?.dispose()
})

const messages = (n: NodeProcess, level?: string) =>
  n.output().filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { message: string; logLevel: string })
    .filter((r) => level === undefined || r.logLevel === level).map((r) => String(r.message))

test("opens and closes are counted at debug; SIGTERM logs what was flushed and closed", async () => {
  node = await startNode({ env: { LOG_LEVEL: "debug" }, freePortEnv: ["ADMIN_PORT", "SIGNALING_PORT"] })
  const n = node
  const raw = await open(n.url)
  await waitUntil(() => messages(n, "DEBUG").includes("l2ps: connection opened (1 open)"), "the open at debug")
  raw.close()
  await waitUntil(() => messages(n, "DEBUG").some((m) => /^l2ps: connection closed \d+ \(0 open\)$/.test(m)), "the close at debug")

  const a = await pool.connect(n.url, "default")
  const b = await pool.connect(n.url, "default")
  await a.client.send(b.key, encryptedFor("before the stop"), randomHash())
  await b.waitInbox(1)
  // To a key that is not online: it waits in storage across the stop.
  await a.client.send("ab".repeat(32), encryptedFor("to someone away"), randomHash())
  expect(await n.stop()).toBe(0)
  const logged = messages(n, "INFO")
  expect(logged.some((m) => /^shutdown: closing 2 sessions; 1 messages wait in storage for their recipients, \d+ for a batch \(kept for the next start\)$/.test(m))).toBe(true)
  expect(logged).toContain("shutdown: l2ps stopped listening and closed 2 connections (1001)")
  expect(logged).toContain("shutdown: legacy stopped listening and closed 0 connections (1001)")
  expect(logged.some((m) => /^shutdown: flushed \d+ group commits \(\d+ sends were still waiting for one\)$/.test(m))).toBe(true)
}, 30_000)
