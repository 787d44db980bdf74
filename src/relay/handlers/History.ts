import type { PayloadEncoded } from "../../domain/ServerFrames.ts"
import * as Effect from "effect/Effect"
import { invalid, refuse } from "../../domain/ErrorCode.ts"
import { type Envelope, HistoryPayload, JsonText, payloadOf } from "../../domain/Frames.ts"
import { isPublicKey, normalizeKey } from "../../domain/Keys.ts"
import { SAME_MILLI_MAX } from "../../domain/Timestamps.ts"
import { historyCharsOf, statusOf, type StoredMessage } from "../../storage/Storage.ts"
import { readCost } from "../ReadBudget.ts"
import type { RelayDeps } from "../RelayDeps.ts"
import type { ConnectionContext } from "../ConnectionContext.ts"
import { verifyProof } from "./Proofs.ts"

const decode = payloadOf(HistoryPayload, "Missing peerKey or proof")

/** A stored message as the wire's JSON, its payload's text spliced in unparsed. */
/** A message of `history_response` as its Schema writes it (src/domain/ServerFrames.ts). */
type Row = PayloadEncoded<"history_response">["messages"][number]

export const messageJson = (m: StoredMessage): string => {
  const head = JSON.stringify({ id: m.id, from: m.from, to: m.to, messageHash: m.messageHash } satisfies Pick<Row, "id" | "from" | "to" | "messageHash">)
  const tail = JSON.stringify({
    l2psUid: m.l2psUid,
    l2psTxHash: m.l2psTxHash,
    timestamp: m.timestamp,
    status: statusOf(m),
    deliveryStatus: m.deliveryStatus,
    l2psStatus: m.l2psStatus
  } satisfies Omit<Row, "id" | "from" | "to" | "messageHash" | "encrypted">)
  return `${head.slice(0, -1)},"encrypted":${m.encryptedJson},${tail.slice(1)}`
}

/**
 * At most `limit` messages and, past the first, at most `maxChars` of them as storage counts them
 * (`historyCharsOf`, an upper bound of their JSON): a page of large messages ends early with `hasMore`,
 * and the client asks again from its oldest message as for a full page. A page never ends inside a group
 * of equal timestamps (`SAME_MILLI_MAX` at most), since the next page starts strictly before its oldest
 * timestamp: it ends before the group or, when the group is all it holds, takes the whole group. `rows`
 * must reach at least one row past that: `limit + SAME_MILLI_MAX` of them, newest first.
 */
export const page = (rows: ReadonlyArray<StoredMessage>, limit: number, maxChars: number) => {
  let n = 0
  let chars = 0
  while (n < rows.length && n < limit) {
    const size = historyCharsOf(rows[n]!)
    if (n > 0 && chars + size > maxChars) break
    chars += size
    n++
  }
  const cut = rows[n - 1]?.timestamp
  if (n < rows.length && rows[n]!.timestamp === cut) {
    let start = n - 1
    while (start > 0 && rows[start - 1]!.timestamp === cut) start--
    if (start > 0) n = start
    else while (n < rows.length && rows[n]!.timestamp === cut) n++
    chars = 0
    for (let i = 0; i < n; i++) chars += historyCharsOf(rows[i]!)
  }
  const parts: Array<string> = []
  for (let i = 0; i < n; i++) parts.push(messageJson(rows[i]!))
  return { json: parts.join(","), hasMore: rows.length > n, count: n, chars }
}

export const history = (deps: RelayDeps) =>
  Effect.fn("Relay.history")(function*(session: ConnectionContext, frame: Envelope) {
    const reg = session.registration
    if (reg === undefined) return yield* refuse("REGISTRATION_REQUIRED", "Register first")
    const p = yield* decode(frame.payload)
    if (!isPublicKey(p.peerKey)) return yield* invalid("Invalid peerKey format (expected 64 hex characters)")
    const max = deps.cfg.historyMaxLimit
    const limit = p.limit === undefined ? deps.cfg.historyDefaultLimit : p.limit
    if (typeof limit !== "number" || !Number.isInteger(limit) || limit < 1 || limit > max) {
      return yield* invalid(`limit must be an integer from 1 to ${max}`)
    }
    const before = p.before === undefined || p.before === null || p.before === 0 ? undefined : p.before
    if (before !== undefined && (typeof before !== "number" || !Number.isSafeInteger(before) || before < 0)) {
      return yield* invalid("before must be a timestamp in ms (a non-negative integer)")
    }
    const reader = { l2psUid: reg.l2psUid, key: reg.key, address: session.remoteAddress }
    if (!(yield* deps.readBudget.allow(reader))) return yield* refuse("RATE_LIMITED", "Too many reads")
    yield* verifyProof(deps, "history", p.peerKey, frame.timestamp, reg.key, reg.keyBytes, p.proof, session.remoteAddress, reg.l2psUid, p.proofVersion)
    const rows = yield* deps.storage.history(reg.l2psUid, reg.key, normalizeKey(p.peerKey), before, limit + SAME_MILLI_MAX, deps.cfg.historyPageBytes)
    const { json, hasMore, chars } = page(rows, limit, deps.cfg.historyPageBytes)
    yield* deps.readBudget.charge(reader, readCost(rows.length, chars))
    yield* session.reply("history_response", new JsonText(`{"messages":[${json}],"hasMore":${hasMore}}`), frame.requestId)
  })
