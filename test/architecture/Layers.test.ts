/**
 * `src/`'s folders have an order (README, "Layout"): imports point down it, never up, and folders form
 * no cycle. This reads the imports of every module and fails naming each one that breaks the order.
 */
import { describe, expect, test } from "bun:test"
import { join } from "node:path"
import { APART, checkLayers, edgesOf, filesUnder, folderOf, importsUnder, LAYERS, specifiersOf } from "./Layers.ts"

const SRC = join(import.meta.dir, "../../src")

describe("src/ layers", () => {
  test("every import points down the order and no folders form a cycle", () => {
    const edges = importsUnder(SRC)
    // A parser that found nothing would pass vacuously.
    expect(edges.length).toBeGreaterThan(300)
    expect(checkLayers(edges)).toEqual([])
  })

  test("every folder of src/ has a place in the order", () => {
    const placed = new Set([...LAYERS.flat(), ...Object.keys(APART)])
    const folders = [...new Set(filesUnder(SRC).map(folderOf))]
    expect(folders.filter((f) => !placed.has(f))).toEqual([])
  })
})

describe("the checker", () => {
  const down: ReadonlyArray<{ from: string; to: string }> = [
    { from: "relay/handlers/Send.ts", to: "domain/Frames.ts" },
    { from: "relay/Committer.ts", to: "l2ps/BatchWakeups.ts" },
    { from: "node/NodeCore.ts", to: "relay/Relay.ts" },
    { from: "index.ts", to: "node/NodeCore.ts" },
    { from: "cli/chat.ts", to: "client/Messenger.ts" },
    { from: "web/page/main.ts", to: "client/Proofs.ts" },
    { from: "client/Proofs.ts", to: "domain/Merkle.ts" }
  ]

  test("passes imports that point down or stay in their folder", () => {
    expect(checkLayers([...down, { from: "relay/RelayConnection.ts", to: "relay/handlers/Send.ts" }])).toEqual([])
  })

  test("names an import that points up", () => {
    expect(checkLayers([...down, { from: "relay/Committer.ts", to: "ops/Metrics.ts" }])).toEqual([
      "relay/Committer.ts imports ops/Metrics.ts: relay (layer 7 of 10) may not import ops (layer 8 of 10)"
    ])
  })

  test("names a cycle between folders of one layer", () => {
    expect(checkLayers([...down, { from: "l2ps/Batcher.ts", to: "relay/Committer.ts" }])).toEqual([
      "folder cycle l2ps, relay: l2ps/Batcher.ts imports relay/Committer.ts; relay/Committer.ts imports l2ps/BatchWakeups.ts"
    ])
  })

  test("keeps the client library to domain, and the server out of it", () => {
    expect(checkLayers([
      { from: "client/Proofs.ts", to: "l2ps/Merkle.ts" },
      { from: "relay/RelayConnection.ts", to: "client/Wire.ts" },
      { from: "cli/chat.ts", to: "node/NodeLive.ts" },
      { from: "web/page/main.ts", to: "relay/Relay.ts" }
    ])).toEqual([
      "client/Proofs.ts imports l2ps/Merkle.ts: client may import only domain",
      "relay/RelayConnection.ts imports client/Wire.ts: client is outside the server's layers",
      "cli/chat.ts imports node/NodeLive.ts: cli may import only domain, client",
      "web/page/main.ts imports relay/Relay.ts: web may import only domain, client"
    ])
  })

  test("refuses a folder that has no layer", () => {
    expect(checkLayers([{ from: "gossip/Peer.ts", to: "domain/Frames.ts" }])).toEqual([
      "gossip/Peer.ts: folder gossip has no layer (add it to LAYERS)"
    ])
  })

  test("reads multi-line, type-only, re-export, side-effect and dynamic imports, not prose", () => {
    const text = [
      "import * as Effect from \"effect/Effect\"",
      "import {",
      "  a,",
      "  type B",
      "} from \"../ops/Metrics.ts\"",
      "import type { C } from \"./C.ts\"",
      "export * as D from \"../node/D.ts\"",
      "export { e } from \"../l2ps/E.ts\"",
      "import \"./side.ts\"",
      "const f = () => import(\"../legacy/F.ts\")",
      "/** Reads from \"a store\", imports from the caller. */",
      "export const g = \"../x/G.ts\""
    ].join("\n")
    expect(specifiersOf(text)).toEqual([
      "effect/Effect",
      "../ops/Metrics.ts",
      "./C.ts",
      "../node/D.ts",
      "../l2ps/E.ts",
      "./side.ts",
      "../legacy/F.ts"
    ])
    expect(edgesOf("relay/RelayConnection.ts", text).map((e) => e.to)).toEqual([
      "ops/Metrics.ts",
      "relay/C.ts",
      "node/D.ts",
      "l2ps/E.ts",
      "relay/side.ts",
      "legacy/F.ts"
    ])
  })
})
