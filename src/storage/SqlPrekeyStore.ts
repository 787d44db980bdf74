import * as SqlClient from "@effect/sql/SqlClient"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { SignedPreKey } from "../domain/Prekeys.ts"
import { spanned } from "../internal/spanned.ts"
import {
  type ClaimedBundle,
  type DeviceRef,
  type DeviceSummary,
  type OneTimeCounts,
  PrekeyStore,
  type PrekeyStoreShape,
  type PublishResult
} from "./PrekeyStore.ts"
import { StorageError } from "./Storage.ts"

/** A publish refused after some of its statements ran: the transaction is rolled back, then this answered. */
class Refused extends Data.TaggedError("Refused")<{ readonly result: PublishResult }> {}

interface DeviceRow {
  readonly device_id: number
  readonly registration_id: number
  readonly spk_id: number
  readonly spk_key: string
  readonly spk_signature: string
  readonly lrk_id: number
  readonly lrk_key: string
  readonly lrk_signature: string
}

interface OneTimeRow {
  readonly device_id: number
  readonly kind: "opk" | "okem"
  readonly key_id: number
  readonly public_key: string
  readonly signature: string
}

interface SummaryRow {
  readonly device_id: number
  readonly registration_id: number
  readonly updated_at: number | string
  readonly opk: number | string
  readonly okem: number | string
}

const keyOf = (keyId: number, publicKey: string, signature: string): SignedPreKey => ({ keyId: Number(keyId), publicKey, signature })

export const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const fail = (operation: string) => (cause: unknown) => new StorageError({ operation, cause })
  const ofDevice = (d: DeviceRef) => sql`l2ps_uid = ${d.l2psUid} AND account_key = ${d.account} AND device_id = ${d.deviceId}`
  const countsOf = (d: DeviceRef) =>
    Effect.map(
      sql<{ kind: string; n: number | string }>`
        SELECT kind, count(*) AS n FROM prekey_one_time WHERE ${ofDevice(d)} GROUP BY kind`,
      (rows): OneTimeCounts => ({
        oneTimePreKeys: Number(rows.find((r) => r.kind === "opk")?.n ?? 0),
        oneTimeKems: Number(rows.find((r) => r.kind === "okem")?.n ?? 0)
      })
    )
  const addOneTime = (d: DeviceRef, kind: "opk" | "okem", keys: ReadonlyArray<SignedPreKey>) =>
    keys.length === 0 ? Effect.void : sql`
      INSERT INTO prekey_one_time (l2ps_uid, account_key, device_id, kind, key_id, public_key, signature)
      SELECT ${d.l2psUid}, ${d.account}, ${d.deviceId}, ${kind}, k, decode(p, 'hex'), decode(s, 'hex')
      FROM unnest(${keys.map((k) => k.keyId)}::int[], ${keys.map((k) => k.publicKey)}::text[], ${keys.map((k) => k.signature)}::text[]) AS t(k, p, s)
      ON CONFLICT (l2ps_uid, account_key, device_id, kind, key_id)
      DO UPDATE SET public_key = EXCLUDED.public_key, signature = EXCLUDED.signature`.pipe(Effect.asVoid)

  const publish: PrekeyStoreShape["publish"] = (u) =>
    Effect.gen(function*() {
      // One writer per account at a time, so that two new devices cannot both pass the device bound.
      yield* sql`SELECT pg_advisory_xact_lock(hashtextextended(${`prekeys|${u.l2psUid}|${u.account}`}, 0))`
      const [current] = yield* sql<{ registration_id: number }>`
        SELECT registration_id FROM prekey_devices WHERE ${ofDevice(u)}`
      const fresh = current === undefined || current.registration_id !== u.registrationId
      if (fresh) {
        if (u.signedPreKey === undefined || u.lastResortKem === undefined) return yield* new Refused({ result: { _tag: "SignedKeysMissing" } })
        if (current === undefined) {
          const [row] = yield* sql<{ n: number | string }>`
            SELECT count(*) AS n FROM prekey_devices WHERE l2ps_uid = ${u.l2psUid} AND account_key = ${u.account}`
          if (Number(row?.n ?? 0) >= u.maxDevices) return yield* new Refused({ result: { _tag: "DeviceLimit", limit: u.maxDevices } })
        } else {
          // A reinstalled device: the old installation's one-time keys open nothing any more.
          yield* sql`DELETE FROM prekey_one_time WHERE ${ofDevice(u)}`
        }
        const spk = u.signedPreKey
        const lrk = u.lastResortKem
        yield* sql`
          INSERT INTO prekey_devices (l2ps_uid, account_key, device_id, registration_id, spk_id, spk_key, spk_signature,
            lrk_id, lrk_key, lrk_signature, updated_at)
          VALUES (${u.l2psUid}, ${u.account}, ${u.deviceId}, ${u.registrationId}, ${spk.keyId}, decode(${spk.publicKey}, 'hex'),
            decode(${spk.signature}, 'hex'), ${lrk.keyId}, decode(${lrk.publicKey}, 'hex'), decode(${lrk.signature}, 'hex'), ${u.at})
          ON CONFLICT (l2ps_uid, account_key, device_id) DO UPDATE SET
            registration_id = EXCLUDED.registration_id, spk_id = EXCLUDED.spk_id, spk_key = EXCLUDED.spk_key,
            spk_signature = EXCLUDED.spk_signature, lrk_id = EXCLUDED.lrk_id, lrk_key = EXCLUDED.lrk_key,
            lrk_signature = EXCLUDED.lrk_signature, updated_at = EXCLUDED.updated_at`
      } else {
        const spk = u.signedPreKey
        const lrk = u.lastResortKem
        if (spk !== undefined) {
          yield* sql`UPDATE prekey_devices SET spk_id = ${spk.keyId}, spk_key = decode(${spk.publicKey}, 'hex'),
            spk_signature = decode(${spk.signature}, 'hex') WHERE ${ofDevice(u)}`
        }
        if (lrk !== undefined) {
          yield* sql`UPDATE prekey_devices SET lrk_id = ${lrk.keyId}, lrk_key = decode(${lrk.publicKey}, 'hex'),
            lrk_signature = decode(${lrk.signature}, 'hex') WHERE ${ofDevice(u)}`
        }
        yield* sql`UPDATE prekey_devices SET updated_at = ${u.at} WHERE ${ofDevice(u)}`
      }
      yield* addOneTime(u, "opk", u.oneTimePreKeys)
      yield* addOneTime(u, "okem", u.oneTimeKems)
      // Counted after the insert, so that a key id sent again (replaced, not added) counts once.
      const counts = yield* countsOf(u)
      if (counts.oneTimePreKeys > u.maxPerKind) return yield* new Refused({ result: { _tag: "PoolFull", kind: "opk", limit: u.maxPerKind } })
      if (counts.oneTimeKems > u.maxPerKind) return yield* new Refused({ result: { _tag: "PoolFull", kind: "okem", limit: u.maxPerKind } })
      return { _tag: "Published", ...counts } satisfies PublishResult as PublishResult
    }).pipe(
      sql.withTransaction,
      Effect.catchTag("Refused", (r) => Effect.succeed(r.result)),
      Effect.mapError(fail("publish"))
    )

  const counts: PrekeyStoreShape["counts"] = (d) =>
    Effect.gen(function*() {
      const [device] = yield* sql`SELECT 1 FROM prekey_devices WHERE ${ofDevice(d)}`
      return device === undefined ? undefined : yield* countsOf(d)
    }).pipe(Effect.mapError(fail("counts")))

  // Each device's oldest one-time key of each kind, locked and deleted in one statement: a key locked by
  // a concurrent claim is skipped (the next one is taken), so no two claims get the same key.
  const claim: PrekeyStoreShape["claim"] = (l2psUid, account) =>
    Effect.gen(function*() {
      const devices = yield* sql<DeviceRow>`
        SELECT device_id, registration_id, spk_id, encode(spk_key, 'hex') AS spk_key, encode(spk_signature, 'hex') AS spk_signature,
          lrk_id, encode(lrk_key, 'hex') AS lrk_key, encode(lrk_signature, 'hex') AS lrk_signature
        FROM prekey_devices WHERE l2ps_uid = ${l2psUid} AND account_key = ${account} ORDER BY device_id`
      if (devices.length === 0) return []
      const taken = yield* sql<OneTimeRow>`
        WITH picked AS MATERIALIZED (
          SELECT c.device_id, c.kind, c.key_id
          FROM prekey_devices d
          CROSS JOIN (VALUES ('opk'), ('okem')) AS k(kind)
          CROSS JOIN LATERAL (
            SELECT o.device_id, o.kind, o.key_id FROM prekey_one_time o
            WHERE o.l2ps_uid = d.l2ps_uid AND o.account_key = d.account_key AND o.device_id = d.device_id AND o.kind = k.kind
            ORDER BY o.key_id LIMIT 1
            FOR UPDATE SKIP LOCKED
          ) c
          WHERE d.l2ps_uid = ${l2psUid} AND d.account_key = ${account}
        )
        DELETE FROM prekey_one_time o USING picked p
        WHERE o.l2ps_uid = ${l2psUid} AND o.account_key = ${account}
          AND o.device_id = p.device_id AND o.kind = p.kind AND o.key_id = p.key_id
        RETURNING o.device_id, o.kind, o.key_id, encode(o.public_key, 'hex') AS public_key, encode(o.signature, 'hex') AS signature`
      const one = (deviceId: number, kind: "opk" | "okem") => {
        const row = taken.find((t) => t.device_id === deviceId && t.kind === kind)
        return row === undefined ? undefined : keyOf(row.key_id, row.public_key, row.signature)
      }
      return devices.map((d): ClaimedBundle => ({
        deviceId: d.device_id,
        registrationId: d.registration_id,
        signedPreKey: keyOf(d.spk_id, d.spk_key, d.spk_signature),
        lastResortKem: keyOf(d.lrk_id, d.lrk_key, d.lrk_signature),
        oneTimePreKey: one(d.device_id, "opk"),
        oneTimeKem: one(d.device_id, "okem")
      }))
    }).pipe(sql.withTransaction, Effect.mapError(fail("claim")))

  const devices: PrekeyStoreShape["devices"] = (l2psUid, account) =>
    sql<SummaryRow>`
      SELECT d.device_id, d.registration_id, d.updated_at,
        (SELECT count(*) FROM prekey_one_time o WHERE o.l2ps_uid = d.l2ps_uid AND o.account_key = d.account_key
          AND o.device_id = d.device_id AND o.kind = 'opk') AS opk,
        (SELECT count(*) FROM prekey_one_time o WHERE o.l2ps_uid = d.l2ps_uid AND o.account_key = d.account_key
          AND o.device_id = d.device_id AND o.kind = 'okem') AS okem
      FROM prekey_devices d WHERE d.l2ps_uid = ${l2psUid} AND d.account_key = ${account} ORDER BY d.device_id`.pipe(
      Effect.map((rows) =>
        rows.map((r): DeviceSummary => ({
          deviceId: r.device_id,
          registrationId: r.registration_id,
          updatedAt: Number(r.updated_at),
          oneTimePreKeys: Number(r.opk),
          oneTimeKems: Number(r.okem)
        }))
      ),
      Effect.mapError(fail("devices"))
    )

  const remove: PrekeyStoreShape["remove"] = (d) =>
    sql`DELETE FROM prekey_devices WHERE ${ofDevice(d)} RETURNING device_id`.pipe(
      Effect.map((rows) => rows.length > 0),
      Effect.mapError(fail("remove"))
    )

  return PrekeyStore.of(spanned("PrekeyStore", { publish, counts, claim, devices, remove }, ["publish", "counts", "claim", "devices", "remove"]))
})

export const layer: Layer.Layer<PrekeyStore, never, SqlClient.SqlClient> = Layer.effect(PrekeyStore, make)
