/**
 * A client's message history. `file` keeps it on disk as an append-only log (one record or status
 * change per line, each line AES-256-GCM-sealed when a key is given), read back into memory when
 * opened; a torn last line from a crash is skipped.
 */
import { gcm } from "@noble/ciphers/aes.js"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { fromBase64, secureRandom, toBase64 } from "./MlKemAes.ts"
import type { SerializedEncryptedMessage } from "./Wire.ts"

export type ChatStatus =
  /** outgoing */
  | "sending" | "sent" | "queued" | "delivered" | "failed"
  /** incoming */
  | "received" | "undecryptable"

export interface ChatRecord {
  readonly messageHash: string
  /** the other party's key */
  readonly peer: string
  readonly direction: "in" | "out"
  readonly text: string
  /** local time (ms) it was sent or received */
  readonly at: number
  readonly l2psUid: string
  readonly status: ChatStatus
  /** received from the offline queue */
  readonly offline?: boolean
  /** what was sent, kept to check inclusion proofs */
  readonly encrypted?: SerializedEncryptedMessage
  /** server ms of the `message_delivered` receipt */
  readonly deliveredAt?: number
  /** the server's timestamp (from history) */
  readonly serverTimestamp?: number
  /** `l2ps_pending` | `l2ps_batched` | `l2ps_confirmed` (from history or a proof) */
  readonly l2psStatus?: string
  readonly proof?: {
    readonly valid: boolean
    readonly confirmed: boolean
    readonly blockNumber?: number
    readonly root?: string
    /** the node key that signed the batch (SECURITY.md 15) */
    readonly signer?: string
    /** why it is not valid */
    readonly reason?: string
  }
  readonly error?: string
  /** incoming, from a client that does not bind its ciphertext to the message hash (SECURITY.md 18) */
  readonly unbound?: boolean
  /** incoming and bound: the sender's clock when it sealed the message */
  readonly sentAt?: number
}

export type ChatPatch = Partial<Omit<ChatRecord, "messageHash" | "peer" | "direction">>

export class MessageStoreError extends Data.TaggedError("MessageStoreError")<{ readonly message: string }> {}

export interface MessageStoreShape {
  /** Adds a record; false (and nothing written) when its `messageHash` is already there. */
  readonly put: (record: ChatRecord) => Effect.Effect<boolean, MessageStoreError>
  readonly update: (messageHash: string, patch: ChatPatch) => Effect.Effect<ChatRecord | undefined, MessageStoreError>
  readonly get: (messageHash: string) => Effect.Effect<ChatRecord | undefined>
  /** The last `limit` records with `peer`, oldest first. */
  readonly conversation: (peer: string, limit?: number) => Effect.Effect<ReadonlyArray<ChatRecord>>
  /** The last `limit` records with anyone, oldest first. */
  readonly recent: (limit?: number) => Effect.Effect<ReadonlyArray<ChatRecord>>
}

type Entry = { readonly op: "put"; readonly record: ChatRecord } | { readonly op: "patch"; readonly messageHash: string; readonly patch: ChatPatch }

const make = (persist: (entry: Entry) => Effect.Effect<void, MessageStoreError>, initial: ReadonlyArray<Entry>): MessageStoreShape => {
  const byHash = new Map<string, ChatRecord>()
  const apply = (e: Entry) => {
    if (e.op === "put") {
      if (!byHash.has(e.record.messageHash)) byHash.set(e.record.messageHash, e.record)
    } else {
      const r = byHash.get(e.messageHash)
      if (r !== undefined) byHash.set(e.messageHash, { ...r, ...e.patch })
    }
  }
  initial.forEach(apply)
  const last = (records: Iterable<ChatRecord>, limit: number) => {
    const all = [...records]
    return all.slice(Math.max(0, all.length - limit))
  }
  return {
    put: (record) =>
      Effect.suspend(() => {
        if (byHash.has(record.messageHash)) return Effect.succeed(false)
        const entry: Entry = { op: "put", record }
        apply(entry)
        return Effect.as(persist(entry), true)
      }),
    update: (messageHash, patch) =>
      Effect.suspend(() => {
        if (!byHash.has(messageHash)) return Effect.succeed(undefined)
        const entry: Entry = { op: "patch", messageHash, patch }
        apply(entry)
        return Effect.as(persist(entry), byHash.get(messageHash))
      }),
    get: (messageHash) => Effect.sync(() => byHash.get(messageHash)),
    conversation: (peer, limit = 100) =>
      Effect.sync(() => last([...byHash.values()].filter((r) => r.peer === peer), limit)),
    recent: (limit = 100) => Effect.sync(() => last(byHash.values(), limit))
  }
}

/** History in memory only. */
export const memory = (): MessageStoreShape => make(() => Effect.void, [])

const sealLine = (key: Uint8Array | undefined, text: string) => {
  if (key === undefined) return text
  const nonce = secureRandom(12)
  const sealed = gcm(key, nonce).encrypt(new TextEncoder().encode(text))
  const out = new Uint8Array(12 + sealed.length)
  out.set(nonce, 0)
  out.set(sealed, 12)
  return toBase64(out)
}

const openLine = (key: Uint8Array | undefined, line: string): Entry | undefined => {
  try {
    if (key === undefined) return JSON.parse(line) as Entry
    const bytes = fromBase64(line)
    return JSON.parse(new TextDecoder().decode(gcm(key, bytes.subarray(0, 12)).decrypt(bytes.subarray(12)))) as Entry
  } catch {
    return undefined
  }
}

/** History in the file `file` (created if missing), sealed line by line with `key` (32 bytes) when given. */
export const file = (file: string, key?: Uint8Array): Effect.Effect<MessageStoreShape, MessageStoreError> =>
  Effect.try({
    try: () => {
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
      const text = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : ""
      // A torn last line (a crash mid-write) is ended, so the next record starts on its own line.
      if (text.length > 0 && !text.endsWith("\n")) fs.appendFileSync(file, "\n")
      const entries = text.split("\n").filter((l) => l.length > 0).flatMap((l) => {
        const e = openLine(key, l)
        return e === undefined ? [] : [e]
      })
      const persist = (entry: Entry) =>
        Effect.try({
          try: () => fs.appendFileSync(file, sealLine(key, JSON.stringify(entry)) + "\n", { mode: 0o600 }),
          catch: (e) => new MessageStoreError({ message: `cannot write ${file}: ${e instanceof Error ? e.message : String(e)}` })
        })
      return make(persist, entries)
    },
    catch: (e) => new MessageStoreError({ message: `cannot open ${file}: ${e instanceof Error ? e.message : String(e)}` })
  })
