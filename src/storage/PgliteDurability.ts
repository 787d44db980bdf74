import * as fs from "node:fs"
import { PGlite } from "@electric-sql/pglite"

/**
 * PGlite's own start: `-F` (fsync off) and no flush at all. Even with fsync on, its file system (Emscripten's
 * NODEFS) answers `fdatasync` without a system call and has no `fsync` of its own: a committed transaction
 * reached the kernel's page cache, not the disk (strace: no fsync or fdatasync in 200 commits). It survived
 * the node's crash (kill -9), not the machine's (power, kernel, a VM stopped).
 *
 * Durable: PGlite's parameters without `-F`, WAL flushed with `fsync`, and NODEFS's `fsync` made the real
 * `fdatasync` of the file: every COMMIT flushes its WAL before it answers, and a checkpoint flushes the data
 * files before it lets the WAL go, as PostgreSQL does on a disk (bench/RESULTS.md, "The embedded database on
 * disk").
 */
export const DURABLE_START_PARAMS: ReadonlyArray<string> = [
  ...PGlite.defaultStartParams.filter((p) => p !== "-F"),
  "-c",
  "fsync=on",
  "-c",
  "wal_sync_method=fsync"
]

interface EmscriptenStream {
  readonly nfd?: number
}

/** Makes the instance's NODEFS `fsync` a real `fdatasync` (`sync`); false when its file system is not NODEFS. */
export const flushToDisk = (pglite: PGlite, sync: (fd: number) => void = fs.fdatasyncSync): boolean => {
  const nodefs = (pglite as unknown as { mod?: { FS?: { filesystems?: Record<string, { stream_ops?: Record<string, unknown> }> } } })
    .mod?.FS?.filesystems?.["NODEFS"]
  if (nodefs?.stream_ops === undefined) return false
  nodefs.stream_ops["fsync"] = (stream: EmscriptenStream) => {
    if (stream.nfd !== undefined) sync(stream.nfd)
  }
  return true
}
