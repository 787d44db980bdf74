/**
 * What the page says, in words a person reads: a message's way (queued in the outbox, ✓ on the node,
 * ✓✓ delivered, or not sent and why), where it stands on the chain, and why an invite link cannot be
 * joined. Pure, so the wording is tested without a browser.
 */
import type { InviteErrorReason } from "../../client/Invite.ts"
import type { ProofCheck } from "../../client/Proofs.ts"
import type { ChatRecord } from "./ChatClient.ts"

/** `abcdef…1234`: enough of a key to tell people apart at a glance; the full key is one click away. */
export const shortKey = (key: string): string => (key.length <= 12 ? key : `${key.slice(0, 6)}…${key.slice(-4)}`)

export interface Receipt {
  readonly mark: string
  /** the longer form, for the mark's tooltip and for screen readers */
  readonly meaning: string
  /** shown beside the mark when the mark alone would not say it: queued, or not sent and why */
  readonly label?: string
}

/** The receipt of a message we sent; undefined for a received one. */
export const receiptOf = (r: ChatRecord): Receipt | undefined => {
  if (r.direction === "in") return undefined
  switch (r.status) {
    case "sending":
      // In the outbox: it goes out once the node takes it (after a reconnection, or a reload, too).
      return { mark: "…", meaning: "queued: sent as soon as the node takes it", label: "queued" }
    case "sent":
      return { mark: "✓", meaning: "sent: the node has it" }
    case "queued":
      return { mark: "✓", meaning: "sent: the node keeps it until they are online" }
    case "delivered":
      return { mark: "✓✓", meaning: "delivered" }
    default:
      return { mark: "✗", meaning: `not sent: ${r.error ?? "refused"}`, label: `not sent: ${r.error ?? "refused"}` }
  }
}

/** The delivery statuses in the order a message goes through them: a late event never moves one back. */
const RANK: Readonly<Record<string, number>> = { sending: 0, failed: 1, queued: 2, sent: 2, delivered: 3 }

/** The record to show when `next` arrives while `shown` is on screen. */
export const newer = (shown: ChatRecord | undefined, next: ChatRecord): ChatRecord =>
  shown !== undefined && (RANK[shown.status] ?? 0) > (RANK[next.status] ?? 0) ? { ...next, status: shown.status } : next

export type ChainState =
  /** keep asking: not in a batch yet, or in one that L1 has not made final */
  | { readonly _tag: "Waiting"; readonly text: string }
  | { readonly _tag: "Confirmed"; readonly text: string }
  /** the proof does not hold: stop and say why */
  | { readonly _tag: "Failed"; readonly text: string }

/** Where a message stands on the chain, from the inclusion proof the client checked. */
export const chainStateOf = (check: ProofCheck): ChainState => {
  const node = check.signer === undefined ? "" : ` · batch signed by node ${shortKey(check.signer)}`
  const block = check.blockNumber === undefined ? "" : ` (block ${check.blockNumber})`
  if (check.valid && check.confirmed) return { _tag: "Confirmed", text: `confirmed on chain${block} · inclusion proof checked ✓${node}` }
  if (check.valid) return { _tag: "Waiting", text: `in a batch, proof checked ✓; waiting for the chain to confirm it${block}` }
  if (check.status === "l2ps_pending") return { _tag: "Waiting", text: "waiting to be put in a batch" }
  return { _tag: "Failed", text: `proof does not hold: ${check.reason ?? "unknown reason"}` }
}

/** `14:03`, local time (the date is in the tooltip). */
export const timeOf = (ms: number): string => {
  const d = new Date(ms)
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`
}

/** Each reason an invite link is refused for, as a heading before the client's own explanation. */
const JOIN_REFUSED: Readonly<Record<InviteErrorReason, string>> = {
  Malformed: "not an invite link, or mistyped",
  Tampered: "altered, or not from the account it names",
  Expired: "expired",
  UsedUp: "used already, or withdrawn",
  NotFound: "no longer on the node",
  Foreign: "for another node or network",
  Own: "your own invite"
}

export interface JoinRefusal {
  /** the client's `InviteError` reason; `Error` for anything else (the node not reachable, a refusal) */
  readonly reason: InviteErrorReason | "Error"
  readonly text: string
}

/** Why `join(link)` failed, from what it rejected with. */
export const joinRefusal = (e: unknown): JoinRefusal => {
  const message = e instanceof Error ? e.message : String(e)
  const reason = typeof e === "object" && e !== null && "reason" in e && typeof e.reason === "string" && e.reason in JOIN_REFUSED
    ? (e.reason as InviteErrorReason)
    : undefined
  if (reason === undefined) return { reason: "Error", text: `cannot join: ${message}` }
  return { reason, text: `cannot join (${JOIN_REFUSED[reason]}): ${message}` }
}
