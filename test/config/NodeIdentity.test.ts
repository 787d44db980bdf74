import { describe, expect, test } from "bun:test"
import { Effect, Either, Option } from "effect"
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as NodeConfig from "../../src/config/NodeConfig.ts"
import { NodeIdentity, layer } from "../../src/config/NodeIdentity.ts"

const load = (overrides: Parameters<typeof NodeConfig.make>[0]) =>
  Effect.runSync(Effect.either(NodeIdentity.pipe(Effect.provide(layer), Effect.provide(NodeConfig.layer(overrides)))))

describe("NodeIdentity", () => {
  test("generated once into DATA_DIR (private), kept across restarts, distinct per data directory", () => {
    const dir = join(mkdtempSync(join(tmpdir(), "im-id-")), "data")
    const first = Either.getOrThrow(load({ dataDir: dir })).id
    expect(first).toMatch(/^node-[0-9a-f]{12}$/)
    expect(statSync(join(dir, "node-id")).mode & 0o777).toBe(0o600)
    expect(Either.getOrThrow(load({ dataDir: dir })).id).toBe(first)
    const other = join(mkdtempSync(join(tmpdir(), "im-id-")), "data")
    expect(Either.getOrThrow(load({ dataDir: other })).id).not.toBe(first)
    expect(readFileSync(join(dir, "node-id"), "utf8").trim()).toBe(first)
  })

  test("NODE_ID wins over the file; a damaged file is a start-up error naming it", () => {
    const dir = mkdtempSync(join(tmpdir(), "im-id-"))
    expect(Either.getOrThrow(load({ dataDir: dir, nodeId: Option.some("east-1") })).id).toBe("east-1")
    writeFileSync(join(dir, "node-id"), "not valid!\n")
    const r = load({ dataDir: dir })
    expect(Either.isLeft(r) && r.left.message).toContain("node-id")
  })
})
