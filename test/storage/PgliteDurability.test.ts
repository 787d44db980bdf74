/**
 * The embedded database on disk: with PGlite's own start its COMMIT reaches the page cache only (no
 * flush at all); with the node's, each COMMIT flushes its WAL with a real fdatasync before it answers, and
 * a checkpoint flushes the data files.
 */
import { afterAll, describe, expect, test } from "bun:test"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { PGlite } from "@electric-sql/pglite"
import { DURABLE_START_PARAMS, flushToDisk } from "../../src/storage/PgliteDurability.ts"

const dirs: Array<string> = []
const tempDir = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "pglite-durable-"))
  dirs.push(d)
  return d
}
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true })
})

/** Flushes counted around 20 single-statement commits, then around a checkpoint. */
const flushesOf = async (startParams: ReadonlyArray<string> | undefined) => {
  const pglite = await PGlite.create({ dataDir: tempDir(), ...(startParams === undefined ? {} : { startParams: [...startParams] }) })
  let flushes = 0
  expect(flushToDisk(pglite, (fd) => {
    flushes++
    fs.fdatasyncSync(fd)
  })).toBe(true)
  try {
    const fsync = (await pglite.query<{ fsync: string }>("SHOW fsync")).rows[0]?.fsync
    await pglite.exec("CREATE TABLE t (id serial PRIMARY KEY, v text)")
    const before = flushes
    for (let i = 0; i < 20; i++) await pglite.query("INSERT INTO t (v) VALUES ($1)", [`row ${i}`])
    const commits = flushes - before
    const beforeCheckpoint = flushes
    await pglite.exec("INSERT INTO t (v) SELECT 'more' FROM generate_series(1, 1000)")
    await pglite.exec("CHECKPOINT")
    return { fsync, commits, checkpoint: flushes - beforeCheckpoint }
  } finally {
    await pglite.close()
  }
}

describe("PGlite on disk", () => {
  test("PGlite's own start flushes nothing, even through a file system that could", async () => {
    expect(await flushesOf(undefined)).toEqual({ fsync: "off", commits: 0, checkpoint: 0 })
  }, 60_000)

  test("the node's start flushes every commit's WAL before it answers, and the data files at a checkpoint", async () => {
    const { fsync, commits, checkpoint } = await flushesOf(DURABLE_START_PARAMS)
    expect(fsync).toBe("on")
    expect(commits).toBeGreaterThanOrEqual(20)
    // The table's file and the WAL, at least.
    expect(checkpoint).toBeGreaterThanOrEqual(2)
  }, 60_000)
})
