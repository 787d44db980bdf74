/**
 * The client's history log on disk: how long a sealed, chained record and its status change take
 * to write (`put` + `update`, as `Messenger.send` does), median of rounds. `--src DIR` measures
 * another checkout's src/ (for a before/after; older checkouts have `MessageStore.file`).
 *   bun run bench/historyLog.ts [--records 2000] [--rounds 5] [--src DIR]
 */
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1]! : fallback
}
const records = Number(arg("records", "2000"))
const rounds = Number(arg("rounds", "5"))
const src = path.resolve(arg("src", path.join(import.meta.dir, "../src")))

const folder = fs.existsSync(path.join(src, "client/FolderStorage.ts")) ? await import(path.join(src, "client/FolderStorage.ts")) : undefined
const store = await import(path.join(src, "client/MessageStore.ts"))
const open = (file: string, key: Uint8Array) => (folder !== undefined ? folder.messageStore(file, key) : store.file(file, key))

const key = crypto.getRandomValues(new Uint8Array(32))
const times: Array<number> = []
for (let round = 0; round < rounds; round++) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "history-bench-"))
  const s = await Effect.runPromise(open(path.join(dir, "messages.log"), key)) as {
    put: (r: unknown) => Effect.Effect<boolean>
    update: (h: string, p: unknown) => Effect.Effect<unknown>
  }
  const started = performance.now()
  await Effect.runPromise(Effect.gen(function*() {
    for (let i = 0; i < records; i++) {
      const messageHash = i.toString(16).padStart(64, "0")
      yield* s.put({ messageHash, peer: "ab".repeat(32), direction: "out", text: `message ${i}`, at: i, l2psUid: "default", status: "sending" })
      yield* s.update(messageHash, { status: "delivered" })
    }
  }))
  times.push(performance.now() - started)
  fs.rmSync(dir, { recursive: true, force: true })
}
times.sort((a, b) => a - b)
const median = times[Math.floor(times.length / 2)]!
console.log(JSON.stringify({ src, records, rounds, medianMs: Math.round(median), perRecordMicros: Math.round((median / records) * 1000) }))
