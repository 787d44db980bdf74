/**
 * A client's message history. `open` keeps it in a `HomeStorage` (a folder, IndexedDB) as an
 * append-only log (one record or status change per line, each line AES-256-GCM-sealed when a key is
 * given), read back into memory when opened; a torn last line from a crash is skipped.
 *
 * With a key the log is a chain (SECURITY.md 14): each sealed line carries its sequence number and
 * the SHA-256 of the previous line, and a sealed head file (`<file>.head`) holds the count and the
 * last line's hash. Opening reports (`report`, or fails with `strict`) a line that does not open, one
 * missing, out of order or replayed, and lines cut from the end; what opens in order is still read.
 * Logs written before the chain (unchained sealed lines, no head) are read and rewritten as a chain.
 */
import { gcm } from "@noble/ciphers/aes.js"
import { sha256 } from "@noble/hashes/sha2.js"
import { bytesToHex } from "@noble/hashes/utils.js"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type { HomeStorage, StorageError } from "./HomeStorage.ts"
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
  /**
   * A payload of another type than text (docs/PROTOCOL.md, "Payload types"): its name, version and
   * body as it was sent (base64); read it typed with `Messenger.contentOf`.
   */
  readonly content?: { readonly type: string; readonly version: number; readonly body: string }
  /** incoming: a type or version this client does not read, and why (what arrived is in `content`) */
  readonly unsupported?: "unknown-type" | "newer-version" | "older-version" | "bad-body" | "malformed"
  /** in a secure session: the sender's device and where the message stands in its sequence (hex digests) */
  readonly link?: { readonly device: number; readonly position: number; readonly digest: string; readonly previous: string }
  /** outgoing: the recipient's devices that said, sealed, that they have it */
  readonly deliveredTo?: ReadonlyArray<number>
  /** a receipt received in a secure session: kept so a redelivery is known, never shown */
  readonly control?: true
}

export type ChatPatch = Partial<Omit<ChatRecord, "messageHash" | "peer" | "direction">>

export class MessageStoreError extends Data.TaggedError("MessageStoreError")<{
  readonly message: string
  /** with `strict`: what did not open */
  readonly problems?: ReadonlyArray<LogProblem>
}> {}

export interface LogProblem {
  /** 1-based line of the file (0: the log as a whole) */
  readonly line: number
  readonly problem: string
}

/** What opening the log found. */
export interface LogReport {
  readonly lines: number
  readonly problems: ReadonlyArray<LogProblem>
  /** an unchained log was rewritten as a chain on this open */
  readonly migrated: boolean
}

const CLEAN: LogReport = { lines: 0, problems: [], migrated: false }

export interface MessageStoreShape {
  /**
   * Adds a record; false (and nothing written) when it is already there: an outgoing one by its
   * `messageHash`, an incoming one by its sender and `messageHash` (a hash is unique per sender only).
   */
  readonly put: (record: ChatRecord) => Effect.Effect<boolean, MessageStoreError>
  /**
   * The record of `messageHash`: with `from`, the one received from that sender; without, ours, or else
   * the first one received under that hash.
   */
  readonly update: (messageHash: string, patch: ChatPatch, from?: string) => Effect.Effect<ChatRecord | undefined, MessageStoreError>
  readonly get: (messageHash: string, from?: string) => Effect.Effect<ChatRecord | undefined>
  /** The last `limit` records with `peer`, oldest first. */
  readonly conversation: (peer: string, limit?: number) => Effect.Effect<ReadonlyArray<ChatRecord>>
  /** The last `limit` records with anyone, oldest first. */
  readonly recent: (limit?: number) => Effect.Effect<ReadonlyArray<ChatRecord>>
  /** What opening the log found (SECURITY.md 14). */
  readonly report: LogReport
}

type Entry =
  | { readonly op: "put"; readonly record: ChatRecord }
  | { readonly op: "patch"; readonly messageHash: string; readonly from?: string; readonly patch: ChatPatch }

/** Outgoing records by their hash (ours, unique); incoming ones by sender and hash. */
const keyOf = (messageHash: string, from: string | undefined): string =>
  from === undefined ? messageHash : `${from}\u0000${messageHash}`
const recordKey = (r: ChatRecord): string => keyOf(r.messageHash, r.direction === "in" ? r.peer : undefined)

const make = (
  persist: (entry: Entry) => Effect.Effect<void, MessageStoreError>,
  initial: ReadonlyArray<Entry>,
  report: LogReport = CLEAN
): MessageStoreShape => {
  const byKey = new Map<string, ChatRecord>()
  /**
   * The key of what `messageHash` and `from` name. Without a sender, a hash that names no record of ours
   * is taken for the first record received under it (as logs written before records were keyed by
   * sender, and callers that know only the hash, mean it).
   */
  const find = (messageHash: string, from: string | undefined): string | undefined => {
    const key = keyOf(messageHash, from)
    if (byKey.has(key) || from !== undefined) return byKey.has(key) ? key : undefined
    for (const r of byKey.values()) if (r.messageHash === messageHash) return recordKey(r)
    return undefined
  }
  const apply = (e: Entry) => {
    if (e.op === "put") {
      const key = recordKey(e.record)
      if (!byKey.has(key)) byKey.set(key, e.record)
    } else {
      const key = find(e.messageHash, e.from)
      if (key !== undefined) byKey.set(key, { ...byKey.get(key)!, ...e.patch })
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
        if (byKey.has(recordKey(record))) return Effect.succeed(false)
        const entry: Entry = { op: "put", record }
        apply(entry)
        return Effect.as(persist(entry), true)
      }),
    update: (messageHash, patch, from) =>
      Effect.suspend(() => {
        const key = find(messageHash, from)
        if (key === undefined) return Effect.succeed(undefined)
        const r = byKey.get(key)!
        const entry: Entry = r.direction === "in"
          ? { op: "patch", messageHash, from: r.peer, patch }
          : { op: "patch", messageHash, patch }
        apply(entry)
        return Effect.as(persist(entry), byKey.get(key))
      }),
    get: (messageHash, from) =>
      Effect.sync(() => {
        const key = find(messageHash, from)
        return key === undefined ? undefined : byKey.get(key)
      }),
    conversation: (peer, limit = 100) =>
      Effect.sync(() => last([...byKey.values()].filter((r) => r.peer === peer && r.control !== true), limit)),
    recent: (limit = 100) => Effect.sync(() => last([...byKey.values()].filter((r) => r.control !== true), limit)),
    report
  }
}

/** History in memory only. */
export const memory = (): MessageStoreShape => make(() => Effect.void, [])

interface Chained {
  readonly v: 2
  readonly seq: number
  /** SHA-256 (hex) of the previous line as written ("" before the first) */
  readonly prev: string
  readonly e: Entry
}

interface Head {
  readonly count: number
  readonly last: string
  /** unchained lines ahead of the chain (an older log that could not be migrated) */
  readonly legacy?: number
}

const HEAD_AAD = new TextEncoder().encode("demos-im/history-head/v2")
const hashOf = (line: string) => bytesToHex(sha256(new TextEncoder().encode(line)))

const openSealed = (key: Uint8Array, line: string, aad?: Uint8Array): unknown => {
  try {
    const bytes = fromBase64(line)
    return JSON.parse(new TextDecoder().decode(gcm(key, bytes.subarray(0, 12), aad).decrypt(bytes.subarray(12))))
  } catch {
    return undefined
  }
}

const sealWith = (key: Uint8Array, text: string, aad?: Uint8Array) => {
  const nonce = secureRandom(12)
  const sealed = gcm(key, nonce, aad).encrypt(new TextEncoder().encode(text))
  const out = new Uint8Array(12 + sealed.length)
  out.set(nonce, 0)
  out.set(sealed, 12)
  return toBase64(out)
}

const isChained = (x: unknown): x is Chained =>
  typeof x === "object" && x !== null && (x as Chained).v === 2 && Number.isSafeInteger((x as Chained).seq) &&
  typeof (x as Chained).prev === "string" && typeof (x as Chained).e === "object"

const isEntry = (x: unknown): x is Entry => typeof x === "object" && x !== null && ((x as Entry).op === "put" || (x as Entry).op === "patch")

/** Reads a chained log; the entries that open in order, what did not, and where the chain ends. */
const readChain = (key: Uint8Array, lines: ReadonlyArray<string>, head: Head | "none" | "damaged", tornTail: boolean) => {
  const problems: Array<LogProblem> = []
  const entries: Array<Entry> = []
  const legacy = typeof head === "object" ? head.legacy ?? 0 : 0
  let seq = 0
  let prev = ""
  lines.forEach((line, i) => {
    const n = i + 1
    const opened = openSealed(key, line)
    // Unchained lines ahead of the chain, as many as the head says: an older log that could not be
    // migrated (see `file`). Anywhere else an unchained line could be an old one put back.
    if (seq === 0 && n <= legacy) {
      if (isEntry(opened)) entries.push(opened)
      else problems.push({ line: n, problem: "does not open (damaged, or not written with your key)" })
      return
    }
    if (!isChained(opened)) {
      problems.push({ line: n, problem: opened === undefined ? "does not open (damaged, or not written with your key)" : "an unchained line inside the chain" })
      return
    }
    if (opened.seq <= seq) {
      problems.push({ line: n, problem: `out of order or replayed (entry ${opened.seq} after ${seq})` })
      return
    }
    if (opened.seq > seq + 1) problems.push({ line: n, problem: `${opened.seq - seq - 1} line(s) missing before it` })
    else if (opened.prev !== prev) problems.push({ line: n, problem: "does not follow the line before it" })
    entries.push(opened.e)
    seq = opened.seq
    prev = hashOf(line)
  })
  if (head === "damaged") problems.push({ line: 0, problem: "the log's head file does not open (damaged, or not written with your key)" })
  else if (head === "none") {
    if (lines.length > 0) problems.push({ line: 0, problem: "the log's head file is missing" })
  } else if (head.count > seq) {
    problems.push({ line: 0, problem: `cut short: ${head.count - seq} line(s) missing at the end${tornTail ? " (the last one torn)" : ""}` })
  } else if (head.count === seq && head.last !== prev) {
    problems.push({ line: 0, problem: "the last line is not the one written" })
  }
  return { entries, problems, seq, prev }
}

/**
 * History in `name` of `storage` (created if missing), sealed line by line with `key` (32 bytes) when
 * given, and then chained (see the module's comment). `strict`: fail with the problems instead of
 * opening what can be read.
 */
export const open = (
  storage: HomeStorage,
  name: string,
  key?: Uint8Array,
  options: { readonly strict?: boolean } = {}
): Effect.Effect<MessageStoreShape, MessageStoreError> => {
  const where = storage.describe(name)
  // Storage errors already name the place and the operation.
  const failed = (e: StorageError) => new MessageStoreError({ message: e.message })
  return Effect.gen(function*() {
    const text = (yield* storage.read(name).pipe(Effect.mapError(failed))) ?? ""
    const tornTail = text.length > 0 && !text.endsWith("\n")
    const all = text.split("\n")
    // A torn last line (a crash mid-write) is ended, so the next record starts on its own line;
    // in a chained log it is cut off instead: it was never counted in the head.
    if (tornTail && key === undefined) yield* storage.append(name, "\n").pipe(Effect.mapError(failed))
    if (tornTail && key !== undefined) yield* storage.write(name, text.slice(0, text.length - all[all.length - 1]!.length)).pipe(Effect.mapError(failed))
    const lines = all.slice(0, -1).filter((l) => l.length > 0)
    if (key === undefined) {
      const entries = [...lines, ...(tornTail ? [all[all.length - 1]!] : [])].flatMap((l) => {
        try {
          return [JSON.parse(l) as Entry]
        } catch {
          return []
        }
      })
      return make((entry) => storage.append(name, JSON.stringify(entry) + "\n").pipe(Effect.mapError(failed)), entries)
    }
    const headName = `${name}.head`
    const headText = (yield* storage.read(headName).pipe(Effect.mapError(failed)))?.trim()
    const headOpened = headText === undefined ? undefined : openSealed(key, headText, HEAD_AAD)
    const head: Head | "none" | "damaged" = headText === undefined
      ? "none"
      : typeof headOpened === "object" && headOpened !== null && Number.isSafeInteger((headOpened as Head).count) && typeof (headOpened as Head).last === "string"
      ? headOpened as Head
      : "damaged"
    const writeHead = (h: Head) => storage.write(headName, sealWith(key, JSON.stringify(h), HEAD_AAD) + "\n")

    let read: { entries: Array<Entry>; problems: Array<LogProblem>; seq: number; prev: string }
    let migrated = false
    let legacy = typeof head === "object" ? head.legacy ?? 0 : 0
    const opened = lines.map((l) => openSealed(key, l))
    if (head === "none" && !opened.some(isChained)) {
      // Written before the chain: rewritten as a chain when every line opens. A line that does not
      // (damaged, or another key's log) is reported and the file left as it is, never dropped.
      const problems = opened.flatMap((o, i) => (isEntry(o) ? [] : [{ line: i + 1, problem: "does not open (damaged, or not written with your key)" }]))
      const entries = opened.filter(isEntry)
      if (problems.length > 0) {
        read = { entries, problems, seq: 0, prev: "" }
        legacy = lines.length
      } else {
        let prev = ""
        const out = entries.map((e, i) => {
          const line = sealWith(key, JSON.stringify({ v: 2, seq: i + 1, prev, e } satisfies Chained))
          prev = hashOf(line)
          return line
        })
        if (lines.length > 0) {
          yield* storage.write(name, out.map((l) => l + "\n").join("")).pipe(Effect.mapError(failed))
          migrated = true
        }
        yield* writeHead({ count: out.length, last: prev }).pipe(Effect.mapError(failed))
        read = { entries, problems, seq: out.length, prev }
      }
    } else {
      read = readChain(key, lines, head, tornTail)
    }
    const report: LogReport = { lines: lines.length, problems: read.problems, migrated }
    if (options.strict === true && report.problems.length > 0) {
      return yield* new MessageStoreError({
        message: `${where} does not open as written: ${report.problems.map((p) => (p.line === 0 ? p.problem : `line ${p.line}: ${p.problem}`)).join("; ")}`,
        problems: report.problems
      })
    }
    let { seq, prev } = read
    // One line at a time: each line carries the hash of the one before it.
    const lock = yield* Effect.makeSemaphore(1)
    const persist = (entry: Entry) =>
      lock.withPermits(1)(Effect.suspend(() => {
        const line = sealWith(key, JSON.stringify({ v: 2, seq: seq + 1, prev, e: entry } satisfies Chained))
        return storage.append(name, line + "\n").pipe(
          Effect.tap(() => {
            seq += 1
            prev = hashOf(line)
            return writeHead({ count: seq, last: prev, ...(legacy === 0 ? {} : { legacy }) })
          }),
          Effect.mapError(failed)
        )
      }))
    return make(persist, read.entries, report)
  })
}
