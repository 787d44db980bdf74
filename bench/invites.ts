/**
 * Invite requests against the node started as a user starts it: the round trip of an `invite_store`
 * (a real sealed record with a device bundle, ~3,900 characters, its signature checked), of a one-time
 * `invite_fetch` (the record deleted in the statement that reads it) and of a reusable one, each against
 * a `discover` round trip on the same socket in the same run (the cheapest registered request). None of
 * them is on the send path.
 *
 *   DATABASE_URL=postgres://… bun run bench/invites.ts [--rounds 100]   (PGlite without DATABASE_URL)
 */
import * as crypto from "node:crypto"
import { type InviteLink, newSecret, sealInvite } from "../src/client/Invite.ts"
import { generateIdentity, signFnOf } from "../src/client/L2psCrypto.ts"
import { bundleOf, createDevice } from "../src/client/secure/DeviceKeys.ts"
import { identity, registerFrame } from "./Keys.ts"
import { fmt, median, percentile } from "./Stats.ts"
import { createDatabase, startBenchNode, type StorageChoice, tempDir } from "./Targets.ts"
import { connect, timed } from "./RequestSocket.ts"

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`)
  return i === -1 ? fallback : Number(process.argv[i + 1])
}
const ROUNDS = arg("rounds", 100)

const main = async () => {
  const url = process.env["DATABASE_URL"]
  const db = url === undefined ? undefined : await createDatabase(url)
  const storage: StorageChoice = db === undefined ? { kind: "pglite", dataDir: tempDir() } : { kind: "postgres", url: db.url }
  const node = await startBenchNode(storage)
  try {
    const account = generateIdentity()
    const inviter = { publicKey: account.publicKey, sign: signFnOf(account) }
    const fetcher = identity(crypto.randomUUID().slice(0, 8), 1)
    const inv = await connect(node.url)
    const fet = await connect(node.url)
    await inv.ask(registerFrame(inviter, "default", Date.now(), "r0"))
    await fet.ask(registerFrame(fetcher, "default", Date.now() + 1, "r0"))
    const bundle = bundleOf(createDevice(account, { now: Date.now(), oneTimePreKeys: 0, oneTimeKems: 0 }))
    const sealed = (oneTime: boolean) => {
      const link: InviteLink = {
        nodeUrl: node.url,
        l2psUid: "default",
        account: account.publicKey,
        secret: newSecret(),
        expiresAt: Math.ceil((Date.now() + 86_400_000) / 1000) * 1000,
        oneTime
      }
      return sealInvite(account, link, { name: "Alice", bundle })
    }
    const reusable = sealed(false)
    await inv.request("invite_store", reusable)
    const discover: Array<number> = []
    const store: Array<number> = []
    const fetchOnce: Array<number> = []
    const fetchReusable: Array<number> = []
    for (let r = 0; r < ROUNDS; r++) {
      const one = sealed(true)
      discover.push(await timed(() => inv.request("discover", {})))
      store.push(await timed(() => inv.request("invite_store", one)))
      discover.push(await timed(() => fet.request("discover", {})))
      fetchOnce.push(await timed(() => fet.request("invite_fetch", { inviteId: one.inviteId })))
      fetchReusable.push(await timed(() => fet.request("invite_fetch", { inviteId: reusable.inviteId })))
    }
    const base = median(discover)
    const line = (name: string, xs: Array<number>) =>
      `${name}: median ${fmt(median(xs), 2)} ms, p99 ${fmt(percentile(xs, 99), 2)} ms (${(median(xs) / base).toFixed(1)}x discover)`
    console.log(`[invites] ${node.name}, ${ROUNDS} rounds, record ${reusable.record.length} characters, load ${(await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ")}`)
    console.log(`discover (baseline): median ${fmt(base, 2)} ms`)
    console.log(line("invite_store", store))
    console.log(line("invite_fetch, one-time (deleted as read)", fetchOnce))
    console.log(line("invite_fetch, reusable", fetchReusable))
    console.log(JSON.stringify({ storage: storage.kind, rounds: ROUNDS, discoverMs: base, storeMs: median(store), fetchOnceMs: median(fetchOnce), fetchReusableMs: median(fetchReusable) }))
    inv.ws.close()
    fet.ws.close()
  } finally {
    await node.stop()
    await db?.drop()
  }
}

await main()
