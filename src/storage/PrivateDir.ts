import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { chmodSync, lstatSync, mkdirSync, readdirSync } from "node:fs"
import { join } from "node:path"

export class PrivateDirError extends Data.TaggedError("PrivateDirError")<{ readonly message: string; readonly cause?: unknown }> {}

export interface PrivateDirReport {
  /** Files and directories whose group or world bits were cleared. */
  readonly fixed: number
  /** Of those, how many others could write (someone else may have changed them). */
  readonly writable: number
}

/** Deeper than any directory PGlite makes: a bound on the walk, not a limit met in practice. */
const MAX_DEPTH = 32

const isGone = (e: unknown) => typeof e === "object" && e !== null && "code" in e && e.code === "ENOENT"

/**
 * Makes `dir` (created if absent) and everything under it private to the node's user: directories
 * 0700, files 0600. The data directory holds the node's signing key and the database, trigger code
 * included: anyone who can read it has the key, anyone who can write it can change what the node
 * runs. Entries are fixed rather than refused, because earlier versions of the node created them
 * 0666/0777 themselves; what cannot be fixed (owned by another user) stops the start. Symbolic links
 * are neither followed nor changed. `warn: false` for files the node has just made itself (PGlite
 * creates its files 0666 whatever the umask): nothing there for an operator to check.
 */
export const makePrivate = (dir: string, warn = true): Effect.Effect<PrivateDirReport, PrivateDirError> =>
  Effect.try({
    try: () => {
      mkdirSync(dir, { recursive: true, mode: 0o700 })
      let fixed = 0
      let writable = 0
      const visit = (path: string, depth: number) => {
        let st
        try {
          st = lstatSync(path)
        } catch (e) {
          // Removed meanwhile (a database's temporary file): nothing left to protect.
          if (isGone(e)) return
          throw e
        }
        if (st.isSymbolicLink()) return
        const isDir = st.isDirectory()
        if ((st.mode & 0o077) !== 0) {
          fixed++
          if ((st.mode & 0o022) !== 0) writable++
          try {
            chmodSync(path, isDir ? 0o700 : 0o600)
          } catch (e) {
            if (isGone(e)) return
            throw e
          }
        }
        if (!isDir || depth >= MAX_DEPTH) return
        let names: Array<string>
        try {
          names = readdirSync(path)
        } catch (e) {
          if (isGone(e)) return
          throw e
        }
        for (const name of names) visit(join(path, name), depth + 1)
      }
      visit(dir, 0)
      return { fixed, writable }
    },
    catch: (cause) => new PrivateDirError({ message: `cannot make ${dir} private to the node's user: ${String(cause)}`, cause })
  }).pipe(
    Effect.tap(({ fixed, writable }) =>
      fixed === 0 || !warn ? Effect.void : Effect.logWarning(
        `${dir}: made ${fixed} files and directories private to the node's user (0700/0600)` +
          (writable > 0 ? `; ${writable} of them could be written by other users: if others can log in to this host, check the data` : "")
      )
    )
  )
