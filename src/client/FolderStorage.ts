/**
 * A client's files in a folder (Node and Bun): created on first write (mode 0700), files readable by
 * the owner only (0600), replaced through a temporary file and a rename so a crash leaves the old
 * text or the new.
 */
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { HomeStorage } from "./HomeStorage.ts"
import { StorageError } from "./HomeStorage.ts"
import * as MessageStore from "./MessageStore.ts"

const failure = (what: string) => (e: unknown) => new StorageError({ message: `${what}: ${e instanceof Error ? e.message : String(e)}` })

/** Writes `text` to `file` atomically (temp file + rename), readable by the owner only. */
export const writePrivateSync = (file: string, text: string): void => {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
  const tmp = `${file}.${process.pid}.tmp`
  fs.writeFileSync(tmp, text, { mode: 0o600 })
  fs.renameSync(tmp, file)
}

export const writePrivate = (file: string, text: string): Effect.Effect<void, StorageError> =>
  Effect.try({ try: () => writePrivateSync(file, text), catch: failure(`cannot write ${file}`) })

export const make = (dir: string): HomeStorage => {
  const at = (name: string) => path.join(dir, name)
  return {
    describe: at,
    read: (name) =>
      Effect.try({
        try: () => (fs.existsSync(at(name)) ? fs.readFileSync(at(name), "utf8") : undefined),
        catch: failure(`cannot read ${at(name)}`)
      }),
    write: (name, text) => writePrivate(at(name), text),
    append: (name, text) =>
      Effect.try({
        try: () => {
          fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
          fs.appendFileSync(at(name), text, { mode: 0o600 })
        },
        catch: failure(`cannot write ${at(name)}`)
      })
  }
}

/** The history log in `file` (see `MessageStore.open`). */
export const messageStore = (file: string, key?: Uint8Array, options?: { readonly strict?: boolean }) =>
  MessageStore.open(make(path.dirname(file)), path.basename(file), key, options)
