/**
 * Where a client keeps its files (the sealed identity, the history log, pinned node keys): a folder
 * on disk (`FolderStorage`), IndexedDB in a browser (`IndexedDbStorage`), or memory (`memory`, for
 * tests and throwaway clients). The stores seal what they write themselves, so every backend holds
 * the same sealed text and none needs to be trusted with plaintext.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

export class StorageError extends Data.TaggedError("StorageError")<{ readonly message: string }> {}

export interface HomeStorage {
  /** How `name` is shown in messages: a file path, or the database and key. */
  readonly describe: (name: string) => string
  /** The whole text of `name`; undefined when there is none. */
  readonly read: (name: string) => Effect.Effect<string | undefined, StorageError>
  /** Replaces `name` at once: a reader sees the old text or the new, never a mix. */
  readonly write: (name: string, text: string) => Effect.Effect<void, StorageError>
  /** Adds `text` at the end of `name` (created if missing). */
  readonly append: (name: string, text: string) => Effect.Effect<void, StorageError>
  /**
   * Holds the files for one messenger until the scope closes; fails when another holds them (a second
   * tab on the same identity would fork the history chain). Backends that cannot tell have none.
   */
  readonly hold?: Effect.Effect<void, StorageError, Scope.Scope>
}

/** Files in memory, lost with the process; `files` lets a test look at (or change) what was written. */
export const memory = (files: Map<string, string> = new Map()): HomeStorage => ({
  describe: (name) => `memory:${name}`,
  read: (name) => Effect.sync(() => files.get(name)),
  write: (name, text) => Effect.sync(() => void files.set(name, text)),
  append: (name, text) => Effect.sync(() => void files.set(name, (files.get(name) ?? "") + text))
})
