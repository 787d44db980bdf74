/** The test's side of one worker-hosted real MessagingPeer (see sdkWorker.ts). */
import { createHash } from "node:crypto"
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { join } from "node:path"

export type SdkEvent =
  | { readonly event: "message"; readonly fromId: string; readonly bytes: Array<number> }
  | { readonly event: "frame"; readonly frame: { type: string; payload: any } }
  | { readonly event: "peer_disconnected"; readonly peerId: string }
  | { readonly event: "server_question"; readonly question: unknown; readonly questionId: string }

/** Runs test/interop/setup-sdk.sh (a no-op once the SDK is there). */
export const ensureSdk = (): void => {
  const script = join(import.meta.dir, "setup-sdk.sh")
  const r = spawnSync("bash", [script], { encoding: "utf8" })
  if (r.status !== 0 || !existsSync(join(import.meta.dir, ".sdk", "demosdk", "build", "instant_messaging", "index.js"))) {
    throw new Error(`setup-sdk.sh failed (${r.status}):\n${r.stdout}\n${r.stderr}`)
  }
}

/** A 128-byte master seed per name, so a client keeps its keys across reconnections. */
export const seedOf = (name: string): Array<number> =>
  Array.from(Buffer.concat([0, 1].map((i) => createHash("sha512").update(`${name}:${i}`).digest())))

export class SdkClient {
  readonly events: Array<SdkEvent> = []
  private readonly worker: Worker
  private readonly pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>()
  private nextId = 0
  publicKey: Array<number> = []

  private constructor(readonly clientId: string) {
    this.worker = new Worker(new URL("./sdkWorker.ts", import.meta.url).href)
    this.worker.onmessage = ({ data }: MessageEvent<any>) => {
      if ("event" in data) return void this.events.push(data)
      const p = this.pending.get(data.id)
      this.pending.delete(data.id)
      if (data.ok) p?.resolve(data.value)
      else p?.reject(new Error(data.error))
    }
  }

  /** A MessagingPeer for `clientId` with the identity of `seedName` (default: the id). */
  static async create(serverUrl: string, clientId: string, seedName = clientId): Promise<SdkClient> {
    const c = new SdkClient(clientId)
    c.publicKey = (await c.call("init", serverUrl, clientId, seedOf(seedName))).publicKey
    return c
  }

  call(cmd: string, ...args: Array<unknown>): Promise<any> {
    const id = ++this.nextId
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.worker.postMessage({ id, cmd, args })
    })
  }

  /** The first event (from `from` on) matching, waiting for it. */
  async waitFor<E extends SdkEvent>(match: (e: SdkEvent) => e is E, ms = 10_000, from = 0): Promise<E> {
    const until = performance.now() + ms
    while (true) {
      const found = this.events.slice(from).find(match)
      if (found !== undefined) return found
      if (performance.now() > until) {
        throw new Error(`${this.clientId}: no matching event within ${ms} ms; events: ${JSON.stringify(this.events).slice(0, 2000)}`)
      }
      await Bun.sleep(10)
    }
  }

  frames(type: string): Array<{ type: string; payload: any }> {
    return this.events.flatMap((e) => (e.event === "frame" && e.frame.type === type ? [e.frame] : []))
  }

  async close(): Promise<void> {
    await this.call("disconnect").catch(() => undefined)
    this.worker.terminate()
  }
}
