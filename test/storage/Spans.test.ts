import { expect, test } from "bun:test"
import * as SqlClient from "@effect/sql/SqlClient"
import { Cause, Effect, Exit, Layer } from "effect"
import * as SqlPipelineStore from "../../src/l2ps/SqlPipelineStore.ts"
import { PipelineStore } from "../../src/l2ps/PipelineStore.ts"
import * as SqlStorage from "../../src/storage/SqlStorage.ts"
import { Storage } from "../../src/storage/Storage.ts"
import { migratedPglite } from "../support/TestNode.ts"

test("a failed storage call's trace names the call (Storage.history, PipelineStore.inclusionOf)", () =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const storage = yield* Storage
    const pipeline = yield* PipelineStore
    // Every read of messages now fails, as a broken database would.
    yield* sql`DROP TABLE l2ps_messages CASCADE`
    const history = yield* Effect.exit(storage.history("net", "a".repeat(64), "b".repeat(64), undefined, 10))
    expect(Exit.isFailure(history)).toBe(true)
    if (Exit.isFailure(history)) expect(Cause.pretty(history.cause)).toContain("at Storage.history")
    const inclusion = yield* Effect.exit(pipeline.inclusionOf({ l2psUid: "net", participant: "a".repeat(64), messageHash: "h" }))
    expect(Exit.isFailure(inclusion)).toBe(true)
    if (Exit.isFailure(inclusion)) expect(Cause.pretty(inclusion.cause)).toContain("at PipelineStore.inclusionOf")
  }).pipe(
    Effect.provide(Layer.mergeAll(SqlStorage.layer, SqlPipelineStore.layer).pipe(Layer.provideMerge(migratedPglite()))),
    Effect.runPromise
  ))
