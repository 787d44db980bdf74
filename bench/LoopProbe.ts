/**
 * Loaded into the node with `BENCH_PRELOAD=bench/LoopProbe.ts` (`throughput.ts --tail` does it): how long
 * the event loop was held. A timer asks to run every millisecond; a run more than 2 ms late is a stall (a
 * long task or a collector's pause), appended to `$LOOP_PROBE_FILE` as one JSON line: when it ended, how
 * long it was, and the JS heap before and after it (a smaller heap after: the collector ran in it). Not
 * part of the node.
 */
import { heapSize } from "bun:jsc"
import * as fs from "node:fs"

const file = process.env["LOOP_PROBE_FILE"] ?? `/tmp/loop-${process.pid}.jsonl`
let last = performance.now()
let heapBefore = heapSize()
let lines: Array<string> = []
setInterval(() => {
  const now = performance.now()
  const late = now - last - 1
  last = now
  const heap = heapSize()
  if (late > 2) lines.push(JSON.stringify({ at: Date.now(), ms: Math.round(late * 10) / 10, heapBefore, heapAfter: heap }))
  heapBefore = heap
}, 1)
// Written in the background, not in the timer: a write is not counted as a stall.
setInterval(() => {
  if (lines.length === 0) return
  const batch = lines
  lines = []
  fs.appendFile(file, batch.join("\n") + "\n", () => {})
}, 250)
