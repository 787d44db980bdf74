/**
 * Registration storm on the legacy signaling server: how many legacy registrations per second the
 * worker pool (`ValidatorPool.layerWorkers`) verifies, against the inline verifier, in the same run.
 *
 *   npx bun run bench/legacy-registrations.ts [--rounds 5] [--n 600] [--concurrency 64]
 *
 * Two measures, each for the native ML-DSA-65 (node:crypto, what the node uses) and the portable noble
 * code, rounds alternating inline / workers, medians reported with the ratio workers / inline:
 *  1. verify: registration proofs (ML-DSA-65 over a 1184-byte ML-KEM key) through the ValidatorPool
 *     port, `concurrency` in flight: the verifier alone.
 *  2. storm: whole registrations over real WebSockets on loopback against NodeCore in a child process
 *     (in-memory PGlite), `concurrency` clients registering at once: verifier plus storage and frames.
 */
import { Effect, Layer } from "effect"
import * as nodeCrypto from "node:crypto"
import { availableParallelism } from "node:os"
import * as Crypto from "../src/crypto/Crypto.ts"
import * as MlDsa from "../src/crypto/MlDsa.ts"
import * as NodeKey from "../src/crypto/NodeKey.ts"
import * as LocalL1 from "../src/l1/LocalL1.ts"
import { LegacyServer } from "../src/legacy/LegacyServer.ts"
import * as NodeConfig from "../src/config/NodeConfig.ts"
import { NodeCore } from "../src/node/NodeCore.ts"
import * as SqlStores from "../src/node/SqlStores.ts"
import * as PgliteClient from "../src/storage/PgliteClient.ts"
import * as BunTransport from "../src/transport/BunTransport.ts"
import { verifier, type VerifyRequest } from "../src/validators/Verify.ts"
import { ValidatorPool } from "../src/validators/ValidatorPool.ts"
import * as ValidatorPoolLayers from "../src/validators/ValidatorPool.ts"

type Impl = "native" | "noble"
type Pool = "inline" | "workers"

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}

const poolLayer = (pool: Pool, impl: Impl): Layer.Layer<ValidatorPool> =>
  pool === "workers"
    ? ValidatorPoolLayers.layerWorkers({ mlDsa: impl === "noble" ? "noble" : "preferred" })
    : Layer.sync(ValidatorPool, () => {
      const verify = verifier(Crypto.makeNative(), impl === "noble" ? MlDsa.noble : MlDsa.preferred().verify)
      return { verify: (r: VerifyRequest) => Effect.sync(() => verify(r)) }
    })

// ── Server mode (child process): NodeCore with the chosen pool, prints its legacy port ─────────────

const serve = async (pool: Pool, impl: Impl) => {
  const sql = PgliteClient.layer({})
  const ports = Layer.mergeAll(
    LocalL1.layer,
    poolLayer(pool, impl),
    BunTransport.layer,
    NodeKey.layerFromSeed(new Uint8Array(32).fill(3))
  ).pipe(
    Layer.provideMerge(SqlStores.layer),
    Layer.provideMerge(Crypto.layerNative),
    Layer.provideMerge(NodeConfig.layer({
      host: "127.0.0.1",
      l2psPort: 0,
      legacyPort: 0,
      connectionFrameBurst: 1_000,
      maxConnections: 100_000
    })),
    Layer.provideMerge(sql)
  )
  await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const legacy = yield* LegacyServer
    console.log(`READY ${legacy.port}`)
    yield* Effect.never
  }).pipe(Effect.provide(NodeCore.pipe(Layer.provideMerge(ports))))))
}

// ── Driver ─────────────────────────────────────────────────────────────────────────────────────────

interface Identity {
  readonly clientId: string
  readonly frame: string
  readonly request: VerifyRequest
}

/** Registration frames as `MessagingPeer.registerAndWait` sends them (signed natively, to save time). */
const identities = (n: number): Array<Identity> =>
  Array.from({ length: n }, (_, i) => {
    const pair = nodeCrypto.generateKeyPairSync("ml-dsa-65" as "ed25519")
    const jwk = pair.publicKey.export({ format: "jwk" }) as { pub: string }
    const signingKey = new Uint8Array(Buffer.from(jwk.pub, "base64url"))
    const kem = new Uint8Array(nodeCrypto.randomBytes(1184))
    const signature = new Uint8Array(nodeCrypto.sign(null, kem, pair.privateKey))
    const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64")
    const clientId = `storm-${i}`
    const frame = JSON.stringify({
      type: "register",
      payload: {
        clientId,
        publicKey: Array.from(kem),
        verification: {
          algorithm: "ml-dsa",
          serializedSignedData: b64(signature),
          serializedPublicKey: b64(signingKey),
          serializedMessage: b64(kem)
        }
      }
    })
    return { clientId, frame, request: { algorithm: "ml-dsa-65", publicKey: signingKey, message: kem, signature } }
  })

/** Proofs verified per second through the pool, `concurrency` in flight. */
const verifyRate = (
  pool: Pool,
  impl: Impl,
  ids: ReadonlyArray<Identity>,
  warmup: ReadonlyArray<Identity>,
  concurrency: number
) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const validators = yield* ValidatorPool
    // Warm up (workers started, JIT) on other keys, so the measured keys are all new to the pool.
    yield* Effect.forEach(warmup, (id) => validators.verify(id.request), { concurrency })
    const t0 = performance.now()
    const ok = yield* Effect.forEach(ids, (id) => validators.verify(id.request), { concurrency })
    const seconds = (performance.now() - t0) / 1000
    if (!ok.every(Boolean)) throw new Error("a valid proof was refused")
    return ids.length / seconds
  }).pipe(Effect.provide(poolLayer(pool, impl)))))

const startServer = async (pool: Pool, impl: Impl) => {
  const proc = Bun.spawn([process.execPath, "run", import.meta.path, "--serve", pool, impl], {
    stdout: "pipe",
    stderr: "inherit"
  })
  const reader = proc.stdout.getReader()
  let text = ""
  while (!/READY (\d+)/.test(text)) {
    const { value, done } = await reader.read()
    if (done) throw new Error(`server exited: ${text}`)
    text += new TextDecoder().decode(value)
  }
  return { port: Number(/READY (\d+)/.exec(text)![1]), stop: () => proc.kill() }
}

const register = (url: string, id: Identity) =>
  new Promise<void>((resolve, reject) => {
    const ws = new WebSocket(url)
    ws.onopen = () => ws.send(id.frame)
    ws.onmessage = (e) => {
      const frame = JSON.parse(String(e.data))
      ws.close()
      if (frame.type === "register") resolve()
      else reject(new Error(`${id.clientId}: ${String(e.data)}`))
    }
    ws.onerror = () => reject(new Error(`${id.clientId}: socket error`))
  })

/** Registrations per second over WebSockets, `concurrency` clients at a time. */
const stormRate = async (
  pool: Pool,
  impl: Impl,
  ids: ReadonlyArray<Identity>,
  warmup: ReadonlyArray<Identity>,
  concurrency: number
) => {
  const server = await startServer(pool, impl)
  try {
    const url = `ws://127.0.0.1:${server.port}`
    const storm = async (batch: ReadonlyArray<Identity>) => {
      let next = 0
      const lane = async () => {
        while (next < batch.length) await register(url, batch[next++]!)
      }
      await Promise.all(Array.from({ length: concurrency }, lane))
    }
    await storm(warmup)
    const t0 = performance.now()
    await storm(ids)
    return ids.length / ((performance.now() - t0) / 1000)
  } finally {
    server.stop()
  }
}

const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

const drive = async () => {
  const rounds = arg("rounds", 5)
  const n = arg("n", 600)
  const concurrency = arg("concurrency", 64)
  console.log(`legacy registration storm: ${rounds} rounds, ${n} registrations, ${concurrency} in flight, ` +
    `${availableParallelism()} cores, Bun ${Bun.version}, ML-DSA-65 native=${MlDsa.preferred().name === "native"}`)
  const t = performance.now()
  const WARMUP = 128
  const all = identities(n + WARMUP)
  const warmup = all.slice(0, WARMUP)
  const ids = all.slice(WARMUP)
  console.log(`(${n} identities and proofs made in ${((performance.now() - t) / 1000).toFixed(1)} s)`)

  const rows: Array<[string, number, number]> = []
  for (const impl of ["native", "noble"] as const) {
    // noble verification costs ~2.5 ms: fewer proofs keep the run short.
    const subset = impl === "noble" ? ids.slice(0, Math.min(n, 300)) : ids
    for (const [measure, run] of [["verify", verifyRate], ["storm", stormRate]] as const) {
      const rates: Record<Pool, Array<number>> = { inline: [], workers: [] }
      for (let r = 0; r < rounds; r++) {
        for (const pool of (r % 2 === 0 ? ["inline", "workers"] : ["workers", "inline"]) as Array<Pool>) {
          rates[pool].push(await run(pool, impl, subset, warmup, concurrency))
        }
      }
      const inline = median(rates.inline)
      const workers = median(rates.workers)
      rows.push([`${measure} ${impl} (${subset.length})`, inline, workers])
      console.log(`  ${measure.padEnd(6)} ${impl.padEnd(6)} inline ${rates.inline.map((x) => x.toFixed(0)).join(" ")} | ` +
        `workers ${rates.workers.map((x) => x.toFixed(0)).join(" ")}`)
    }
  }
  console.log("\nmedians (registrations per second)")
  console.log("| measure | inline | workers | workers / inline |")
  console.log("|---|---:|---:|---:|")
  for (const [name, inline, workers] of rows) {
    console.log(`| ${name} | ${inline.toFixed(0)} | ${workers.toFixed(0)} | ${(workers / inline).toFixed(2)} |`)
  }
}

const serveAt = process.argv.indexOf("--serve")
if (serveAt >= 0) await serve(process.argv[serveAt + 1] as Pool, process.argv[serveAt + 2] as Impl)
else await drive()
