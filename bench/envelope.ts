/**
 * What the envelope inside a secure message costs a client, per message, against the plaintext it
 * replaced, in one run: building the plaintext (before: time ‖ text; after: form ‖ time ‖ envelope
 * with position and link, and its digest), and reading it (before: the text; after: decoding, the
 * missed-message tracker's step and its snapshot as `missed.json` holds it, before sealing). The
 * ratchet's own cost (about 0.1 to 1 ms a message, bench/RESULTS.md) is the same for both.
 *
 *   bun run bench/envelope.ts [--rounds 7] [--messages 20000]
 */
import * as Content from "../src/client/content/Content.ts"
import * as ContentType from "../src/client/content/ContentType.ts"
import * as MissedTracker from "../src/client/content/MissedTracker.ts"
import { fmt, median } from "./Stats.ts"

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`)
  return i === -1 ? fallback : Number(process.argv[i + 1])
}
const ROUNDS = arg("rounds", 7)
const MESSAGES = arg("messages", 20_000)
const TEXT = "a".repeat(100)
const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { fatal: true })
const registry = Content.make()
const u64 = (n: number) => {
  const b = new Uint8Array(8)
  new DataView(b.buffer).setBigUint64(0, BigInt(n))
  return b
}

let sink = 0
const before = () => {
  const t0 = performance.now()
  for (let i = 0; i < MESSAGES; i++) {
    const plain = new Uint8Array([...u64(1_780_000_000_000 + i), ...encoder.encode(TEXT)])
    sink += decoder.decode(plain.subarray(8)).length + Number(new DataView(plain.buffer).getBigUint64(0) & 1n)
  }
  return (performance.now() - t0) * 1000 / MESSAGES
}

const after = (snapshotEvery: number) => {
  const tracker = MissedTracker.make({ recent: 16 })
  let previous = Content.NO_PREVIOUS
  const t0 = performance.now()
  for (let i = 0; i < MESSAGES; i++) {
    const envelope = registry.encode(ContentType.text, { text: TEXT }, { position: i + 1, previous })
    previous = Content.digest(envelope)
    const plain = new Uint8Array(9 + envelope.length)
    plain[0] = 1
    plain.set(u64(1_780_000_000_000 + i), 1)
    plain.set(envelope, 9)
    const d = registry.decode(plain.subarray(9))
    if (d._tag !== "Content") throw new Error("does not read")
    tracker.observe("a".repeat(64), 1, d.link, d.digest, i)
    if (i % snapshotEvery === 0) sink += JSON.stringify(tracker.snapshot()).length
  }
  return (performance.now() - t0) * 1000 / MESSAGES
}

const rows = { before: [] as Array<number>, after: [] as Array<number>, afterSnapshot: [] as Array<number> }
for (let r = 0; r < ROUNDS; r++) {
  rows.before.push(before())
  rows.after.push(after(Number.MAX_SAFE_INTEGER))
  rows.afterSnapshot.push(after(1))
}
const b = median(rows.before)
console.log(`${ROUNDS} rounds of ${MESSAGES} messages of 100 characters, median µs a message (sink ${sink % 10})`)
console.log(`before (time ‖ text): ${fmt(b, 2)} µs`)
console.log(`after (envelope, digest, decode, tracker): ${fmt(median(rows.after), 2)} µs (${(median(rows.after) / b).toFixed(1)}x)`)
console.log(`after, with the tracker's snapshot serialised each message (missed.json, one peer device): ${fmt(median(rows.afterSnapshot), 2)} µs`)
console.log(`plaintext bytes: before ${8 + TEXT.length}, after ${9 + registry.encode(ContentType.text, { text: TEXT }, { position: 1, previous: Content.NO_PREVIOUS }).length} (position < 128; +2 past 16,383)`)
