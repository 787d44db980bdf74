/**
 * Prekey requests against the node started as a user starts it: the round trip of a full
 * `prekeys_publish` (100 one-time X25519 + 50 ML-KEM keys: 150 signatures checked, ~150,000 characters)
 * and of a `bundle_fetch` of a key with 5 devices (10 one-time keys claimed in one statement), each
 * against a `discover` round trip on the same socket in the same run (the cheapest registered request).
 *
 *   DATABASE_URL=postgres://… bun run bench/prekeys.ts [--rounds 40]   (PGlite without DATABASE_URL)
 */
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js"
import * as crypto from "node:crypto"
import { prekeySigningString, type PrekeyKind } from "../src/domain/Prekeys.ts"
import { identity, type Identity, registerFrame } from "./Keys.ts"
import { fmt, median, percentile } from "./Stats.ts"
import { createDatabase, startBenchNode, type StorageChoice, tempDir } from "./Targets.ts"
import { connect, timed } from "./RequestSocket.ts"

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`)
  return i === -1 ? fallback : Number(process.argv[i + 1])
}
const ROUNDS = arg("rounds", 40)
const DEVICES = 5

const x25519Key = () => crypto.randomBytes(32).toString("hex")
// Real ML-KEM keys cost ~3 ms each to make: a pool of them is reused under fresh key ids.
const kemKeys = Array.from({ length: 50 }, () => Buffer.from(ml_kem768.keygen().publicKey).toString("hex"))

const signed = (id: Identity, kind: PrekeyKind, deviceId: number, keyId: number, publicKey: string) => ({
  keyId,
  publicKey,
  signature: id.sign(prekeySigningString(kind, deviceId, 1, keyId, publicKey))
})

const main = async () => {
  const url = process.env["DATABASE_URL"]
  const db = url === undefined ? undefined : await createDatabase(url)
  const storage: StorageChoice = db === undefined ? { kind: "pglite", dataDir: tempDir() } : { kind: "postgres", url: db.url }
  const node = await startBenchNode(storage)
  const run = crypto.randomUUID().slice(0, 8)
  try {
    const publisher = identity(run, 0)
    const fetcher = identity(run, 1)
    const pub = await connect(node.url)
    const fet = await connect(node.url)
    await pub.ask(registerFrame(publisher, "default", Date.now(), "r0"))
    await fet.ask(registerFrame(fetcher, "default", Date.now() + 1, "r0"))
    for (let d = 1; d <= DEVICES; d++) {
      await pub.request("prekeys_publish", {
        deviceId: d,
        registrationId: 1,
        signedPreKey: signed(publisher, "spk", d, 1, x25519Key()),
        lastResortKem: signed(publisher, "lrk", d, 1, kemKeys[0]!)
      })
    }
    const discover = { pub: [] as Array<number>, fet: [] as Array<number> }
    const publish: Array<number> = []
    const fetch: Array<number> = []
    let keyId = 0
    for (let r = 0; r < ROUNDS; r++) {
      // Pools hold at most 200 a kind: each device gets a full frame every 5 rounds, and 100 fetches in them.
      const frame = {
        deviceId: 1 + (r % DEVICES),
        registrationId: 1,
        oneTimePreKeys: Array.from({ length: 100 }, () => signed(publisher, "opk", 1 + (r % DEVICES), ++keyId, x25519Key())),
        oneTimeKems: kemKeys.map((k) => signed(publisher, "okem", 1 + (r % DEVICES), ++keyId, k))
      }
      discover.pub.push(await timed(() => pub.request("discover", {})))
      publish.push(await timed(() => pub.request("prekeys_publish", frame)))
      for (let f = 0; f < 20; f++) {
        discover.fet.push(await timed(() => fet.request("discover", {})))
        fetch.push(await timed(() => fet.request("bundle_fetch", { publicKey: publisher.publicKey })))
      }
    }
    const base = median([...discover.pub, ...discover.fet])
    const line = (name: string, xs: Array<number>) =>
      `${name}: median ${fmt(median(xs), 2)} ms, p99 ${fmt(percentile(xs, 99), 2)} ms (${(median(xs) / base).toFixed(1)}x discover)`
    console.log(`[prekeys] ${node.name}, ${ROUNDS} rounds, load ${(await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ")}`)
    console.log(`discover (baseline): median ${fmt(base, 2)} ms`)
    console.log(line("prekeys_publish, 100 X25519 + 50 ML-KEM", publish))
    console.log(line(`bundle_fetch, ${DEVICES} devices`, fetch))
    console.log(JSON.stringify({ storage: storage.kind, rounds: ROUNDS, discoverMs: base, publishMs: median(publish), fetchMs: median(fetch) }))
    pub.ws.close()
    fet.ws.close()
  } finally {
    await node.stop()
    await db?.drop()
  }
}

await main()
