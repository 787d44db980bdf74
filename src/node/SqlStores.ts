import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { MigrationError } from "@effect/sql/Migrator"
import * as Layer from "effect/Layer"
import * as SqlPipelineStore from "../l2ps/SqlPipelineStore.ts"
import type { PipelineStore } from "../l2ps/PipelineStore.ts"
import type { LegacyStorage } from "../legacy/LegacyStorage.ts"
import * as SqlLegacyStorage from "../legacy/SqlLegacyStorage.ts"
import type { BanStore } from "../storage/BanStore.ts"
import type { InviteStore } from "../storage/InviteStore.ts"
import * as Migrations from "../storage/Migrations.ts"
import type { PrekeyStore } from "../storage/PrekeyStore.ts"
import * as SqlBanStore from "../storage/SqlBanStore.ts"
import * as SqlInviteStore from "../storage/SqlInviteStore.ts"
import * as SqlPrekeyStore from "../storage/SqlPrekeyStore.ts"
import * as SqlStorage from "../storage/SqlStorage.ts"
import type { Storage } from "../storage/Storage.ts"

export type Stores = Storage | LegacyStorage | PipelineStore | BanStore | PrekeyStore | InviteStore

/** A store that replaces one of the SQL stores (a test's fault injection, a host's own adapter). */
export interface Overrides {
  readonly storage?: Layer.Layer<Storage, never, SqlClient.SqlClient> | undefined
  readonly legacy?: Layer.Layer<LegacyStorage, never, SqlClient.SqlClient> | undefined
  readonly pipeline?: Layer.Layer<PipelineStore, never, SqlClient.SqlClient> | undefined
  readonly prekeys?: Layer.Layer<PrekeyStore, never, SqlClient.SqlClient> | undefined
}

// `Layer.provide` builds the migrations before the stores, so no store sees an old schema; anything
// else on the same client (LocalL1) is built after this layer to get the same guarantee.
const Migrated = Layer.effectDiscard(Migrations.run)

/** The node's stores over the host's or the node's `SqlClient`, after the migrations. */
export const make = (overrides: Overrides = {}): Layer.Layer<Stores, SqlError | MigrationError, SqlClient.SqlClient> =>
  Layer.mergeAll(
    overrides.storage ?? SqlStorage.layer,
    overrides.legacy ?? SqlLegacyStorage.layer,
    overrides.pipeline ?? SqlPipelineStore.layer,
    SqlBanStore.layer,
    overrides.prekeys ?? SqlPrekeyStore.layer,
    SqlInviteStore.layer
  ).pipe(Layer.provide(Migrated))

export const layer = make()
