/**
 * Moving modules between folders must not change what an embedding host imports: the package root
 * keeps every name it exported before the folders got their order (README, "Layout").
 */
import { expect, test } from "bun:test"
import * as Package from "../../src/index.ts"

const NAMES = [
  "AdminServer", "BunTransport", "Crypto", "Database", "ErrorCode", "Frames", "L1", "L2psServer",
  "LegacyServer", "LegacyStorage", "LocalL1", "MemoryTransport", "Merkle", "Metrics", "Migrations",
  "NodeConfig", "NodeCore", "NodeKey", "NodeLive", "NodeStatus", "PgliteClient", "PipelineStore",
  "ServerQuestions", "SqlLegacyStorage", "SqlPipelineStore", "SqlStorage", "SqlStores", "Storage",
  "Transport", "ValidatorPool"
]

test("the package root exports the names it always did, and LEGACY_UID from its one home", () => {
  expect(NAMES.filter((name) => !(name in Package))).toEqual([])
  expect(Package.LEGACY_UID).toBe("legacy")
  expect(Package.LegacyStorage.LEGACY_UID).toBe(Package.LEGACY_UID)
  expect(typeof Package.Merkle.verifyInclusion).toBe("function")
  expect(typeof Package.Metrics.render).toBe("function")
  expect(typeof Package.NodeConfig.layer).toBe("function")
})
