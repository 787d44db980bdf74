/**
 * Loaded into the node with `BENCH_PRELOAD=bench/HeapProbe.ts` (`bun run --preload`): on SIGUSR2 it runs
 * a full collection and writes the JS heap's figures and object counts per type to
 * `$HEAP_PROBE_DIR/heap-<pid>-<n>.json`, for `sessionsHeap.ts`. Not part of the node.
 */
import { heapStats } from "bun:jsc"
import * as fs from "node:fs"
import * as path from "node:path"

const dir = process.env["HEAP_PROBE_DIR"] ?? "/tmp"
let n = 0
process.on("SIGUSR2", () => {
  Bun.gc(true)
  const h = heapStats()
  const file = path.join(dir, `heap-${process.pid}-${n++}.json`)
  fs.writeFileSync(`${file}.tmp`, JSON.stringify({ heapSize: h.heapSize, heapCapacity: h.heapCapacity, extraMemorySize: h.extraMemorySize, objectCount: h.objectCount, counts: h.objectTypeCounts, rss: process.memoryUsage().rss }))
  fs.renameSync(`${file}.tmp`, file)
})
