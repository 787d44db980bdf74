import * as Effect from "effect/Effect"
import { invalid, refuse } from "../../domain/ErrorCode.ts"
import { type Envelope, HistoryPayload, JsonText, payloadOf } from "../../domain/Frames.ts"
import { isPublicKey, normalizeKey } from "../../domain/Keys.ts"
import { historyCharsOf, statusOf, type StoredMessage } from "../../storage/Storage.ts"
import { readCost } from "../ReadBudget.ts"
import type { RelayDeps } from "../RelayDeps.ts"
import type { SessionState } from "../SessionState.ts"
import { verifyProof } from "./Proofs.ts"

const decode = payloadOf(HistoryPayload, "Missing peerKey or proof")

/** A stored message as the wire's JSON, its payload's text spliced in unparsed. */
export const messageJson = (m: StoredMessage): string => {
  const head = JSON.stringify({ id: m.id, from: m.from, to: m.to, messageHash: m.messageHash })
  const tail = JSON.stringify({
    l2psUid: m.l2psUid,
    l2psTxHash: m.l2psTxHash,
    timestamp: m.timestamp,
    status: statusOf(m),
    deliveryStatus: m.deliveryStatus,
    l2psStatus: m.l2psStatus
  })
  return `${head.slice(0, -1)},"encrypted":${m.encryptedJson},${tail.slice(1)}`
}

/**
 * At most `limit` messages and, past the first, at most `maxChars` of them as storage counts them
 * (`historyCharsOf`, an upper bound of their JSON): a page of large messages ends early with `hasMore`,
 * and the client asks again from its oldest message as for a full page.
 */
export const page = (rows: ReadonlyArray<StoredMessage>, limit: number, maxChars: number) => {
  const parts: Array<string> = []
  let chars = 0
  for (const row of rows) {
    if (parts.length === limit) break
    const size = historyCharsOf(row)
    if (parts.length > 0 && chars + size > maxChars) break
    parts.push(messageJson(row))
    chars += size
  }
  return { json: parts.join(","), hasMore: rows.length > parts.length, count: parts.length, chars }
}

export const history = (deps: RelayDeps) =>
  Effect.fn("Relay.history")(function*(session: SessionState, frame: Envelope) {
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
    const rows = yield* deps.storage.history(reg.l2psUid, reg.key, normalizeKey(p.peerKey), before, limit + 1, deps.cfg.historyPageBytes)
    const { json, hasMore, chars } = page(rows, limit, deps.cfg.historyPageBytes)
    yield* deps.readBudget.charge(reader, readCost(rows.length, chars))
    yield* session.reply("history_response", new JsonText(`{"messages":[${json}],"hasMore":${hasMore}}`), frame.requestId)
  })
