import * as Migrator from "@effect/sql/Migrator"
import m0001 from "../../migrations/0001_messages.ts"
import m0002 from "../../migrations/0002_legacy.ts"
import m0003 from "../../migrations/0003_pipeline.ts"
import m0004 from "../../migrations/0004_offline_expiry.ts"
import m0005 from "../../migrations/0005_batch_status.ts"
import m0006 from "../../migrations/0006_conversation_key.ts"
import m0007 from "../../migrations/0007_mempool.ts"
import m0008 from "../../migrations/0008_legacy_identity.ts"
import m0009 from "../../migrations/0009_message_hash_scope.ts"
import m0010 from "../../migrations/0010_offline_quota.ts"
import m0011 from "../../migrations/0011_bans.ts"
import m0012 from "../../migrations/0012_retention.ts"
import m0013 from "../../migrations/0013_prekeys.ts"
import m0014 from "../../migrations/0014_invites.ts"
import m0015 from "../../migrations/0015_cluster.ts"
import m0016 from "../../migrations/0016_cluster_reports.ts"
import m0017 from "../../migrations/0017_cluster_sessions.ts"
import m0018 from "../../migrations/0018_conversation_clocks.ts"

/** The schema migrations of `migrations/`, bundled so an embedding host needs no file access. */
export const loader = Migrator.fromRecord({
  "0001_messages": m0001,
  "0002_legacy": m0002,
  "0003_pipeline": m0003,
  "0004_offline_expiry": m0004,
  "0005_batch_status": m0005,
  "0006_conversation_key": m0006,
  "0007_mempool": m0007,
  "0008_legacy_identity": m0008,
  "0009_message_hash_scope": m0009,
  "0010_offline_quota": m0010,
  "0011_bans": m0011,
  "0012_retention": m0012,
  "0013_prekeys": m0013,
  "0014_invites": m0014,
  "0015_cluster": m0015,
  "0016_cluster_reports": m0016,
  "0017_cluster_sessions": m0017,
  "0018_conversation_clocks": m0018
})

/** Applies pending migrations; the migrations table lock makes concurrent starts safe on Postgres. */
export const run = Migrator.make({})({ loader })
