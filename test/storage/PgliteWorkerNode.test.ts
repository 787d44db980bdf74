import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import { expect, test } from "bun:test"
import { Effect, Layer, TestContext } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as PgliteWorkerClient from "../../src/storage/PgliteWorkerClient.ts"
import { pgliteTemplate } from "../support/TestDatabase.ts"
import { peer, testNode } from "../support/TestNode.ts"

test("a node whose PGlite worker dies goes on: the session's next send is stored in a reopened worker, with what was stored before", async () => {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), "pglite-worker-node-"))
  try {
    let worker: PgliteWorkerClient.PgliteWorker | undefined
    const sql = Layer.scoped(
      SqlClient.SqlClient,
      Effect.flatMap(Effect.promise(pgliteTemplate), (loadDataDir) =>
        PgliteWorkerClient.make({ dataDir, loadDataDir }).pipe(
          Effect.tap((w) => Effect.sync(() => { worker = w })),
          Effect.map((w) => w.sql)
        ))
    ).pipe(Layer.provide(Reactivity.layer))

    await Effect.runPromise(Effect.gen(function*() {
      const a = yield* peer()
      const b = yield* peer()
      expect((yield* a.register()).type).toBe("registered")
      expect((yield* b.register()).type).toBe("registered")
      yield* a.next()

      expect((yield* a.sendTo(b.key, undefined, "before")).type).toBe("message_sent")
      expect((yield* b.next()).type).toBe("message")

      // Killed with nothing in flight: no statement is lost with it, and the next one reopens the data
      // directory in a new thread (statements in flight fail as SqlErrors: PgliteWorkerClient.test.ts).
      worker!.kill()
      expect((yield* a.sendTo(b.key, undefined, "after")).type).toBe("message_sent")
      expect((yield* b.next()).type).toBe("message")
      const page = yield* a.history(b.key)
      expect(page.type).toBe("history_response")
      const texts = (page.payload.messages as Array<{ encrypted: { ciphertext: string } }>)
        .map((m) => Buffer.from(m.encrypted.ciphertext, "base64").toString())
      expect(texts.sort()).toEqual(["after", "before"])
    }).pipe(Effect.provide(testNode({}, undefined, sql)), Effect.scoped, Effect.provide(TestContext.TestContext)))
  } finally {
    await fs.rm(dataDir, { recursive: true, force: true })
  }
}, 60_000)
