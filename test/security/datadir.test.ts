/**
 * Security review finding 16: PGlite created ~970 files 0666 (the trigger code among them) and the
 * node key's directory was the umask's. The node started as a user starts it, from a shell whose umask
 * lets everyone read, leaves nothing under DATA_DIR that its group or the world can read or write, and
 * makes private what an earlier version left open.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { makePrivate } from "../../src/storage/PrivateDir.ts"
import { startE2eNode } from "../e2e/helpers.ts"

const roots: string[] = []
afterAll(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true })
})
const tempRoot = () => {
  const r = mkdtempSync(join(tmpdir(), "im-datadir-"))
  roots.push(r)
  return r
}

/** Every entry under `dir` (itself included) whose mode lets group or world in, as `path mode`. */
const exposed = (dir: string): { count: number; open: string[] } => {
  const open: string[] = []
  let count = 0
  const visit = (path: string) => {
    const st = lstatSync(path)
    count++
    if (!st.isSymbolicLink() && (st.mode & 0o077) !== 0) open.push(`${path.slice(dir.length)} ${(st.mode & 0o777).toString(8)}`)
    if (st.isDirectory()) for (const name of readdirSync(path)) visit(join(path, name))
  }
  visit(dir)
  return { count, open }
}

/** The node started from a shell with umask 0000 (the test process's umask is inherited by the child). */
const withUmask = async <A>(mask: number, body: () => Promise<A>): Promise<A> => {
  const old = process.umask(mask)
  try {
    return await body()
  } finally {
    process.umask(old)
  }
}

describe("DATA_DIR is private to the node's user", () => {
  test("a node started on a fresh DATA_DIR (PGlite) under umask 0000: no file or directory under it is group or world readable or writable", async () => {
    const dataDir = join(tempRoot(), "data")
    const node = await withUmask(0, () => startE2eNode({ DATA_DIR: dataDir }, { readyTimeoutMs: 90_000 }))
    try {
      const { count, open } = exposed(dataDir)
      expect(count).toBeGreaterThan(100)
      expect(open).toEqual([])
      expect(lstatSync(join(dataDir, "node-key.json")).mode & 0o777).toBe(0o600)
      // What the node made itself is no news to the operator: a fresh start warns of nothing.
      expect(node.output().filter((l) => l.includes("private to the node's user"))).toEqual([])
    } finally {
      await node.stop()
    }
    // Files written while it ran (WAL, relations) and at shutdown too.
    expect(exposed(dataDir).open).toEqual([])
  }, 120_000)

  test("what an earlier version left open (0777 directories, 0666 files) is made private at start, with a warning", async () => {
    const dataDir = join(tempRoot(), "data")
    mkdirSync(join(dataDir, "pglite", "base"), { recursive: true })
    writeFileSync(join(dataDir, "pglite", "base", "old"), "x")
    writeFileSync(join(dataDir, "notes"), "x")
    for (const d of [dataDir, join(dataDir, "pglite"), join(dataDir, "pglite", "base")]) chmodSync(d, 0o777)
    for (const f of [join(dataDir, "pglite", "base", "old"), join(dataDir, "notes")]) chmodSync(f, 0o666)
    const node = await startE2eNode({ DATA_DIR: dataDir }, { readyTimeoutMs: 90_000 })
    try {
      expect(exposed(dataDir).open).toEqual([])
      const warning = node.output().map((l) => {
        try {
          return JSON.parse(l) as { logLevel?: string; message?: unknown }
        } catch {
          return undefined
        }
      }).find((l) => l?.logLevel === "WARN" && String(l.message).includes("private to the node's user"))
      expect(String(warning?.message)).toContain("made 5 files and directories private to the node's user (0700/0600); 5 of them could be written by other users")
    } finally {
      await node.stop()
    }
  }, 120_000)

  test("makePrivate: directories 0700, files 0600, symbolic links left alone, nothing to do the second time", async () => {
    const dir = join(tempRoot(), "d")
    mkdirSync(join(dir, "a", "b"), { recursive: true })
    writeFileSync(join(dir, "a", "b", "f"), "x")
    chmodSync(dir, 0o755)
    chmodSync(join(dir, "a"), 0o750)
    chmodSync(join(dir, "a", "b"), 0o711)
    chmodSync(join(dir, "a", "b", "f"), 0o644)
    const outside = join(tempRoot(), "outside")
    writeFileSync(outside, "x")
    chmodSync(outside, 0o644)
    Bun.spawnSync(["ln", "-s", outside, join(dir, "link")])
    const first = await Effect.runPromise(makePrivate(dir))
    expect(first).toEqual({ fixed: 4, writable: 0 })
    expect(lstatSync(join(dir, "a")).mode & 0o777).toBe(0o700)
    expect(lstatSync(join(dir, "a", "b", "f")).mode & 0o777).toBe(0o600)
    expect(lstatSync(outside).mode & 0o777).toBe(0o644)
    expect(await Effect.runPromise(makePrivate(dir))).toEqual({ fixed: 0, writable: 0 })
  })
})
