/**
 * A client's files in a browser's IndexedDB: one database per identity (the name the app gives), each
 * file kept as numbered chunks so that appending a line to the history writes that line only, and a
 * replace deletes the old chunks and writes the new text in one transaction (all or nothing). One
 * messenger at a time holds a database (`hold`, a Web Lock): a second tab is refused, not let fork
 * the history chain.
 */
import * as Effect from "effect/Effect"
import type { HomeStorage } from "./HomeStorage.ts"
import { StorageError } from "./HomeStorage.ts"

const STORE = "chunks"

const request = <A>(what: string, make: () => IDBRequest<A>): Promise<A> =>
  new Promise((resolve, reject) => {
    const r = make()
    r.onsuccess = () => resolve(r.result)
    r.onerror = () => reject(r.error ?? new Error(what))
  })

const done = (tx: IDBTransaction): Promise<void> =>
  new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve()
    tx.onerror = () => reject(tx.error ?? new Error("transaction failed"))
    tx.onabort = () => reject(tx.error ?? new Error("transaction aborted"))
  })

const openDb = (name: string): Promise<IDBDatabase> =>
  new Promise((resolve, reject) => {
    if (typeof indexedDB === "undefined") return reject(new Error("this runtime has no IndexedDB"))
    const r = indexedDB.open(name, 1)
    r.onupgradeneeded = () => void r.result.createObjectStore(STORE)
    r.onsuccess = () => resolve(r.result)
    r.onerror = () => reject(r.error ?? new Error("cannot open the database"))
    r.onblocked = () => reject(new Error("the database is held open by an older version of this app in another tab"))
  })

/** Chunk keys are [file, n]: the chunks of a file are one key range, in order. */
const rangeOf = (name: string) => IDBKeyRange.bound([name, 0], [name, Number.MAX_SAFE_INTEGER])

/** The files of database `database` (created on first use). */
export const make = (database: string): HomeStorage => {
  let db: Promise<IDBDatabase> | undefined
  /** The next chunk number of each file this storage has read or written. */
  const next = new Map<string, number>()
  const where = (name: string) => `indexedDB:${database}/${name}`
  const attempt = <A>(what: string, name: string, f: (db: IDBDatabase) => Promise<A>) =>
    Effect.tryPromise({
      try: async () => f(await (db ??= openDb(database))),
      catch: (e) => new StorageError({ message: `cannot ${what} ${where(name)}: ${e instanceof Error ? e.message : String(e)}` })
    })
  const lastOf = async (store: IDBObjectStore, name: string): Promise<number> => {
    const cursor = await request("cursor", () => store.openCursor(rangeOf(name), "prev"))
    return cursor === null ? -1 : ((cursor.key as [string, number])[1])
  }
  const hold = Effect.acquireRelease(
    Effect.tryPromise({
      try: () =>
        new Promise<() => void>((resolve, reject) => {
          if (typeof navigator === "undefined" || navigator.locks === undefined) return resolve(() => undefined)
          // The lock is held while the callback's promise is pending: released by calling `release`.
          navigator.locks.request(`demos-im-client:${database}`, { ifAvailable: true }, (lock) => {
            if (lock === null) {
              reject(new Error("this identity is open in another tab or window: close it there first"))
              return undefined
            }
            return new Promise<void>((release) => resolve(release))
          }).catch(reject)
        }),
      catch: (e) => new StorageError({ message: `cannot open indexedDB:${database}: ${e instanceof Error ? e.message : String(e)}` })
    }),
    (release) => Effect.sync(release)
  ).pipe(Effect.asVoid)
  return {
    hold,
    describe: where,
    read: (name) =>
      attempt("read", name, async (db) => {
        const tx = db.transaction(STORE, "readonly")
        const chunks = await request("read", () => tx.objectStore(STORE).getAll(rangeOf(name)) as IDBRequest<Array<string>>)
        const keys = await request("read", () => tx.objectStore(STORE).getAllKeys(rangeOf(name)))
        next.set(name, keys.length === 0 ? 0 : (keys[keys.length - 1] as [string, number])[1] + 1)
        return chunks.length === 0 ? undefined : chunks.join("")
      }),
    write: (name, text) =>
      attempt("write", name, async (db) => {
        const tx = db.transaction(STORE, "readwrite")
        const store = tx.objectStore(STORE)
        store.delete(rangeOf(name))
        store.put(text, [name, 0])
        await done(tx)
        next.set(name, 1)
      }),
    append: (name, text) =>
      attempt("write", name, async (db) => {
        const tx = db.transaction(STORE, "readwrite")
        const store = tx.objectStore(STORE)
        // Taken before any await: appends started together get their own numbers, in order.
        const known = next.get(name)
        if (known !== undefined) next.set(name, known + 1)
        const n = known ?? (await lastOf(store, name)) + 1
        if (known === undefined) next.set(name, n + 1)
        store.put(text, [name, n])
        await done(tx)
      })
  }
}
