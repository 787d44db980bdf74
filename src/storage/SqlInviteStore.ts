import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { type Invite, InviteStore } from "./InviteStore.ts"
import { StorageError } from "./Storage.ts"

interface Row {
  readonly l2ps_uid: string
  readonly invite_id: string
  readonly account_key: string
  readonly record: string
  readonly signature: string
  readonly expires_at: number | string
  readonly one_time: boolean
}

const toInvite = (r: Row): Invite => ({
  l2psUid: r.l2ps_uid,
  inviteId: r.invite_id,
  account: r.account_key,
  record: r.record,
  signature: r.signature,
  expiresAt: Number(r.expires_at),
  oneTime: r.one_time
})

export const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const fail = (operation: string) => (cause: unknown) => new StorageError({ operation, cause })
  return InviteStore.of({
    store: (invite, now, limit) =>
      sql.withTransaction(Effect.gen(function*() {
        // One account's stores are serialised, so that two at once cannot both pass the bound.
        yield* sql`SELECT pg_advisory_xact_lock(hashtextextended(${`invites:${invite.l2psUid}:${invite.account}`}, 0))`
        const [counted] = yield* sql<{ n: number | string }>`
          SELECT count(*) AS n FROM invites
          WHERE l2ps_uid = ${invite.l2psUid} AND account_key = ${invite.account} AND expires_at > ${now}`
        const n = Number(counted?.n ?? 0)
        if (n >= limit) return { _tag: "Limit", limit } as const
        const inserted = yield* sql<{ invite_id: string }>`
          INSERT INTO invites (l2ps_uid, invite_id, account_key, record, signature, expires_at, one_time, created_at)
          VALUES (${invite.l2psUid}, ${invite.inviteId}, ${invite.account}, ${invite.record}, ${invite.signature},
            ${invite.expiresAt}, ${invite.oneTime}, ${now})
          ON CONFLICT (l2ps_uid, invite_id) DO NOTHING
          RETURNING invite_id`
        return inserted.length === 0 ? { _tag: "Taken" } as const : { _tag: "Stored", invites: n + 1 } as const
      })).pipe(Effect.mapError(fail("invite_store"))),
    fetch: (l2psUid, inviteId, now) =>
      Effect.gen(function*() {
        // A one-time record leaves in the statement that reads it: a concurrent DELETE waits for the row
        // lock, then finds the row gone.
        const taken = yield* sql<Row>`
          DELETE FROM invites
          WHERE l2ps_uid = ${l2psUid} AND invite_id = ${inviteId} AND one_time AND expires_at > ${now}
          RETURNING l2ps_uid, invite_id, account_key, record, signature, expires_at, one_time`
        if (taken[0] !== undefined) return toInvite(taken[0])
        const kept = yield* sql<Row>`
          SELECT l2ps_uid, invite_id, account_key, record, signature, expires_at, one_time FROM invites
          WHERE l2ps_uid = ${l2psUid} AND invite_id = ${inviteId} AND NOT one_time AND expires_at > ${now}`
        return kept[0] === undefined ? undefined : toInvite(kept[0])
      }).pipe(Effect.mapError(fail("invite_fetch"))),
    remove: (l2psUid, account, inviteId) =>
      sql<{ invite_id: string }>`
        DELETE FROM invites WHERE l2ps_uid = ${l2psUid} AND invite_id = ${inviteId} AND account_key = ${account}
        RETURNING invite_id`.pipe(Effect.map((rows) => rows.length > 0), Effect.mapError(fail("invite_delete"))),
    prune: (now) =>
      sql<{ invite_id: string }>`DELETE FROM invites WHERE expires_at <= ${now} RETURNING invite_id`.pipe(
        Effect.map((rows) => rows.length),
        Effect.mapError(fail("invite_prune"))
      )
  })
})

export const layer: Layer.Layer<InviteStore, never, SqlClient.SqlClient> = Layer.effect(InviteStore, make)
