/**
 * What the load generators drive: the raw Bun.serve baseline (`baseline-relay.ts`) and the node itself,
 * started as a user starts it (`bun run src/main.ts`) with limits raised so the bench measures the
 * relay and not the per-key rate limits. Also throwaway Postgres databases, dropped afterwards.
 */
import { SQL } from "bun"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { freePort, REPO_ROOT, startNode } from "../test/support/NodeProcess.ts"

export interface Target {
  readonly name: string
  readonly url: string
  readonly pid: number
  readonly stop: () => Promise<void>
}

export type StorageChoice = { readonly kind: "postgres"; readonly url: string } | { readonly kind: "pglite"; readonly dataDir: string }

/** Networks for the sessions scenario: presence is per network, so the storm spreads over these. */
export const SESSION_NETWORKS = Array.from({ length: 100 }, (_, i) => `s${i}`)

/** `loopbacks`: listen on 127.0.0.1 … 127.0.0.N too (`FileLimits.ts`), for the sessions scenario. */
export const startBaseline = async (loopbacks = 1): Promise<Target> => {
  const proc = Bun.spawn([process.execPath, "run", "bench/baseline-relay.ts"], {
    cwd: REPO_ROOT,
    stdout: "pipe",
    stderr: "inherit",
    env: { ...process.env, BASELINE_LOOPBACKS: String(loopbacks) }
  })
  const reader = proc.stdout.getReader()
  let text = ""
  while (!/listening: (\d+)/.test(text)) {
    const { value, done } = await reader.read()
    if (done) throw new Error(`baseline relay exited: ${text}`)
    text += new TextDecoder().decode(value)
  }
  reader.releaseLock()
  const port = Number(/listening: (\d+)/.exec(text)![1])
  return {
    name: "baseline",
    url: `ws://127.0.0.1:${port}`,
    pid: proc.pid,
    stop: async () => {
      proc.kill()
      await proc.exited
    }
  }
}

const BIG = "1000000000"

/** BENCH_PROFILE=<dir>: the node writes a CPU profile (markdown) there when it stops. */
const profileDir = process.env["BENCH_PROFILE"]

export const startBenchNode = async (storage: StorageChoice, extraEnv: Record<string, string> = {}): Promise<Target> => {
  // BENCH_PRELOAD=<file>: loaded into the node before it starts (`HeapProbe.ts`).
  const preload = process.env["BENCH_PRELOAD"]
  // BENCH_BUN_FLAGS="--smol …": flags of `bun run` for the node, to measure the runtime's settings.
  const bunFlags = (process.env["BENCH_BUN_FLAGS"] ?? "").split(" ").filter((f) => f !== "")
  const node = await startNode({
    ...(profileDir === undefined && preload === undefined && bunFlags.length === 0 ? {} : {
      cmd: [
        process.execPath,
        ...(profileDir === undefined ? [] : ["--cpu-prof-md", `--cpu-prof-dir=${profileDir}`]),
        "run",
        ...bunFlags,
        ...(preload === undefined ? [] : ["--preload", preload]),
        "src/main.ts"
      ]
    }),
    env: {
      L2PS_MESSAGING_PORT: String(freePort()),
      SIGNALING_PORT: String(freePort()),
      ADMIN_PORT: process.env["BENCH_ADMIN_PORT"] ?? "0",
      DATABASE_URL: storage.kind === "postgres" ? storage.url : undefined,
      ...(storage.kind === "pglite" ? { DATA_DIR: storage.dataDir } : {}),
      L2PS_NETWORKS: ["default", ...SESSION_NETWORKS].join(","),
      RATE_LIMIT_PER_SEC: BIG,
      RATE_LIMIT_BURST: BIG,
      EPOCH_QUOTA: BIG,
      OFFLINE_QUEUE_PER_PAIR: BIG,
      OFFLINE_BYTES_PER_SENDER: BIG,
      OFFLINE_BYTES_PER_RECIPIENT: BIG,
      REGISTRATION_BURST_PER_ADDRESS: BIG,
      REGISTRATION_RATE_PER_ADDRESS: BIG,
      MAX_CONNECTIONS_PER_ADDRESS: BIG,
      // Every generator connects from 127.0.0.1: past 10,000 sessions the proofs remembered per address
      // would refuse the storm's registrations.
      REPLAY_CACHE_PER_ADDRESS: BIG,
      // Above the largest sessions scenario (100,000 sockets).
      MAX_CONNECTIONS: "150000",
      // Opening 100,000 sockets is not timed and takes longer than the default 30 s on a loaded machine:
      // sockets opened first would be closed before the storm.
      REGISTRATION_TIMEOUT_SECONDS: "3600",
      // The bench measures the node's capacity, not its per-key and per-address read budgets.
      READ_BURST_PER_KEY: BIG,
      READ_RATE_PER_KEY: BIG,
      READ_BURST_PER_ADDRESS: BIG,
      READ_RATE_PER_ADDRESS: BIG,
      BUNDLE_FETCH_BURST: BIG,
      BUNDLE_FETCH_PER_MINUTE: BIG,
      BUNDLE_FETCH_BURST_PER_ADDRESS: BIG,
      BUNDLE_FETCH_PER_MINUTE_PER_ADDRESS: BIG,
      PREKEY_PUBLISH_BURST: BIG,
      PREKEY_PUBLISH_PER_MINUTE: BIG,
      ...extraEnv,
      // BENCH_NODE_ENV="K=V,K=V": more settings for the node, to measure one part against another.
      ...Object.fromEntries((process.env["BENCH_NODE_ENV"] ?? "").split(",").filter((kv) => kv.includes("=")).map((kv) => kv.split("=", 2)))
    },
    readyTimeoutMs: 120_000
  })
  return {
    name: `node (${storage.kind})`,
    url: node.url,
    pid: node.pid,
    stop: async () => {
      // Shutdown is not what is measured: the node is killed, unless it must stop to write its profile.
      if (profileDir !== undefined) {
        const code = await node.stop(10_000)
        if (code !== 0) console.error(`[bench] node exited with ${code}:\n${node.output().slice(-20).join("\n")}`)
      }
      await node.dispose()
    }
  }
}

/** A fresh database `bench_<random>` on the server of `adminUrl`; `drop` removes it (and only it). */
export const createDatabase = async (adminUrl: string): Promise<{ url: string; drop: () => Promise<void> }> => {
  const name = `bench_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`
  const admin = new SQL(adminUrl)
  await admin.unsafe(`CREATE DATABASE ${name}`)
  await admin.close()
  const u = new URL(adminUrl)
  u.pathname = `/${name}`
  return {
    url: u.toString(),
    drop: async () => {
      const a = new SQL(adminUrl)
      await a.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await a.close()
    }
  }
}

export const tempDir = (): string => fs.mkdtempSync(path.join(os.tmpdir(), "imnode-bench-"))
