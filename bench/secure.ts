/**
 * Secure sessions (issue 15): what a message costs in time and bytes, against today's L2PS scheme
 * (`x25519-aes-256-gcm/v1`, one ephemeral X25519 per message) measured in the same run.
 *
 *   bun run bench/secure.ts [--rounds 5] [--messages 400]
 *
 * - steady state: encrypt + decrypt of one message with no ML-KEM part, in a conversation where the
 *   direction alternates (a DH ratchet step on every message) and where one side sends in a row
 *   (chain steps only);
 * - the ML-KEM steps: the message carrying an encapsulation key (keygen; the peer encapsulates) and
 *   the one carrying the ciphertext (the peer decapsulates), encrypt + decrypt;
 * - the first message: bundle check + PQXDH + encrypt on one side, PQXDH + decrypt on the other;
 * - bytes over the plaintext: steady state, first message, and averaged over long conversations with
 *   the ML-KEM cadence at 25, 50 and 100 messages.
 * Times are medians over rounds of each round's median per message (ML-KEM messages from conversations
 * stepping every 4 messages, for many samples; first messages 10 a round).
 */
import { generateIdentity, openFrom, sealFor } from "../src/client/L2psCrypto.ts"
import { fromBase64 } from "../src/client/MlKemAes.ts"
import { bundleOf, createDevice } from "../src/client/secure/DeviceKeys.ts"
import { decodeEnvelope } from "../src/client/secure/Envelope.ts"
import { type Cadence, initiate, respond } from "../src/client/secure/Pqxdh.ts"
import { decrypt, decryptEnvelope, encrypt } from "../src/client/secure/Ratchet.ts"
import { x25519 } from "@noble/curves/ed25519.js"
import { mlKemDecapsulate, mlKemEncapsulate, mlKemKeyPair, x25519KeyPair } from "../src/client/secure/KeySource.ts"
import { fmt, median } from "./Stats.ts"

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`)
  return i === -1 ? fallback : Number(process.argv[i + 1])
}
const ROUNDS = arg("rounds", 5)
const MESSAGES = arg("messages", 400)
const PLAINTEXT = new Uint8Array(100).fill(0x61)
const NOW = 1_800_000_000_000
const NO_PQ: Cadence = { everyMessages: 1e9, everyMs: 1e15 }

/** A fresh pair with A's first message opened by B and B's answer opened by A. */
const startedPair = (cadence?: Cadence) => {
  const a = generateIdentity()
  const b = generateIdentity()
  const da = createDevice(a, { now: NOW, oneTimePreKeys: 1, oneTimeKems: 1 })
  const db = createDevice(b, { now: NOW, oneTimePreKeys: 1, oneTimeKems: 1 })
  let sa = initiate(a, da, b.publicKey, bundleOf(db), NOW, cadence)
  const first = encrypt(sa, PLAINTEXT, NOW)
  sa = first.state
  const env = decodeEnvelope(first.bytes)
  const r = respond(b, db, a.publicKey, env, NOW, cadence)
  let sb = decryptEnvelope(r.session, env, NOW).state
  const reply = encrypt(sb, PLAINTEXT, NOW)
  sb = reply.state
  sa = decrypt(sa, reply.bytes, NOW).state
  return { sa, sb }
}

type Kind = "plain" | "pqKey" | "pqCiphertext"
const kindOf = (bytes: Uint8Array): Kind => {
  const h = decodeEnvelope(bytes).header
  return h.pqKey !== undefined ? "pqKey" : h.pqCiphertext !== undefined ? "pqCiphertext" : "plain"
}

/** µs per message (encrypt + decrypt), by kind, over one conversation. */
const conversation = (alternate: boolean, cadence?: Cadence) => {
  let { sa, sb } = startedPair(cadence)
  const times: Record<Kind, Array<number>> = { plain: [], pqKey: [], pqCiphertext: [] }
  for (let i = 0; i < MESSAGES; i++) {
    const fromA = !alternate || i % 2 === 0
    const t0 = performance.now()
    const out = encrypt(fromA ? sa : sb, PLAINTEXT, NOW)
    const opened = decrypt(fromA ? sb : sa, out.bytes, NOW)
    const us = (performance.now() - t0) * 1000
    if (fromA) (sa = out.state), (sb = opened.state)
    else (sb = out.state), (sa = opened.state)
    times[kindOf(out.bytes)].push(us)
  }
  return times
}

const baseline = () => {
  const a = generateIdentity()
  const b = generateIdentity()
  const times: Array<number> = []
  for (let i = 0; i < MESSAGES; i++) {
    const t0 = performance.now()
    openFrom(b, a.publicKey, sealFor(a, b.publicKey, PLAINTEXT))
    times.push((performance.now() - t0) * 1000)
  }
  return median(times)
}

const firstMessage = () => {
  const a = generateIdentity()
  const b = generateIdentity()
  const da = createDevice(a, { now: NOW, oneTimePreKeys: 1, oneTimeKems: 1 })
  const db = createDevice(b, { now: NOW, oneTimePreKeys: 1, oneTimeKems: 1 })
  const bundle = bundleOf(db)
  const t0 = performance.now()
  const sent = encrypt(initiate(a, da, b.publicKey, bundle, NOW), PLAINTEXT, NOW)
  const t1 = performance.now()
  const env = decodeEnvelope(sent.bytes)
  decryptEnvelope(respond(b, db, a.publicKey, env, NOW).session, env, NOW)
  const t2 = performance.now()
  return { send: (t1 - t0) * 1000, receive: (t2 - t1) * 1000, bytes: sent.bytes.length - PLAINTEXT.length }
}

/** Bytes over the plaintext per message, averaged over a conversation (both directions), and the largest. */
const overhead = (cadence: Cadence, pattern: "alternate" | "bursts", n: number) => {
  let { sa, sb } = startedPair(cadence)
  let total = 0
  let largest = 0
  for (let i = 0; i < n; i++) {
    const fromA = pattern === "alternate" ? i % 2 === 0 : Math.floor(i / 5) % 2 === 0
    const out = encrypt(fromA ? sa : sb, PLAINTEXT, NOW)
    const opened = decrypt(fromA ? sb : sa, out.bytes, NOW)
    if (fromA) (sa = out.state), (sb = opened.state)
    else (sb = out.state), (sa = opened.state)
    const extra = out.bytes.length - PLAINTEXT.length
    total += extra
    largest = Math.max(largest, extra)
  }
  return { mean: total / n, largest }
}

const rounds = <A>(f: () => A) => Array.from({ length: ROUNDS }, f)

/** µs of one call, median of 50: the primitives the figures are made of. */
const primitive = (f: () => unknown) => {
  const times: Array<number> = []
  for (let i = 0; i < 50; i++) {
    const t0 = performance.now()
    f()
    times.push((performance.now() - t0) * 1000)
  }
  return median(times)
}

// warm-up: JIT and noble's precomputed tables
conversation(true)
baseline()
firstMessage()

// Rounds interleave every measure with the baseline, so that a busy machine weighs on both alike;
// each figure is the median over rounds, and its ratio the median of the rounds' ratios.
const perRound = rounds(() => {
  const base = baseline()
  // a short cadence gives many ML-KEM messages a round; each costs what it costs at any cadence
  const pq = conversation(true, { everyMessages: 4, everyMs: 1e15 })
  const firsts = Array.from({ length: 10 }, firstMessage)
  const first = { send: median(firsts.map((f) => f.send)), receive: median(firsts.map((f) => f.receive)), bytes: firsts[0]!.bytes }
  return {
    base,
    alternating: median(conversation(true, NO_PQ).plain),
    inARow: median(conversation(false, NO_PQ).plain),
    pqKey: median(pq.pqKey),
    pqCt: median(pq.pqCiphertext),
    firstSend: first.send,
    firstReceive: first.receive,
    firstBytes: first.bytes
  }
})
type Figure = Exclude<keyof (typeof perRound)[number], "base" | "firstBytes">
const base = median(perRound.map((r) => r.base))
const figure = (k: Figure) => median(perRound.map((r) => r[k]))
const ratioOf = (k: Figure) => median(perRound.map((r) => r[k] / r.base))
const l2psExtra = (() => {
  const e = sealFor(generateIdentity(), generateIdentity().publicKey, PLAINTEXT)
  return fromBase64(e.ciphertext).length + fromBase64(e.nonce).length + e.ephemeralKey!.length / 2 - PLAINTEXT.length
})()
const steady = (() => {
  const { sa } = startedPair(NO_PQ)
  return encrypt(sa, PLAINTEXT, NOW).bytes.length - PLAINTEXT.length
})()

const row = (name: string, k: Figure) => console.log(`| ${name} | ${fmt(figure(k), 1)} µs | ${fmt(base, 1)} µs | ${ratioOf(k).toFixed(2)}x |`)
console.log(`rounds ${ROUNDS}, ${MESSAGES} messages of ${PLAINTEXT.length} bytes per conversation, load ${(await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ")}`)
console.log("\n| per message, encrypt + decrypt | secure session | L2PS today | ratio |\n|---|---|---|---|")
row("steady state, direction alternating (a DH step each message)", "alternating")
row("steady state, one side in a row (chain steps only)", "inARow")
row("ML-KEM step: message with the encapsulation key", "pqKey")
row("ML-KEM step: message with the ciphertext", "pqCt")
row("first message: sender (bundle check, PQXDH, encrypt)", "firstSend")
row("first message: receiver (PQXDH, decrypt)", "firstReceive")
const kem = mlKemKeyPair()
const enc = mlKemEncapsulate(kem.publicKey)
const pair = x25519KeyPair()
const other = x25519KeyPair()
console.log(
  `\nprimitives (µs, median of 50): X25519 ${fmt(primitive(() => x25519.getSharedSecret(pair.secretKey, other.publicKey)), 0)}, ` +
    `ML-KEM-768 keygen ${fmt(primitive(mlKemKeyPair), 0)}, encapsulate ${fmt(primitive(() => mlKemEncapsulate(kem.publicKey)), 0)}, ` +
    `decapsulate ${fmt(primitive(() => mlKemDecapsulate(enc.cipherText, kem.secretKey)), 0)}`
)
console.log(`\n| bytes over the plaintext | secure session | L2PS today |\n|---|---|---|`)
console.log(`| steady state (raw bytes) | ${steady} | ${l2psExtra} |`)
console.log(`| first message | ${perRound[0]!.firstBytes} | ${l2psExtra} |`)
for (const every of [25, 50, 100]) {
  for (const pattern of ["alternate", "bursts"] as const) {
    const o = overhead({ everyMessages: every, everyMs: 1e15 }, pattern, 2_000)
    console.log(`| ML-KEM every ${every} messages, ${pattern === "alternate" ? "alternating" : "bursts of 5"}: mean (largest) | ${fmt(o.mean, 1)} (${o.largest}) | ${l2psExtra} |`)
  }
}
console.log(`load ${(await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ")} at the end`)
console.log(JSON.stringify({ base, ...Object.fromEntries((["alternating", "inARow", "pqKey", "pqCt", "firstSend", "firstReceive"] as const).map((k) => [k, figure(k)])), steady, l2psExtra }))
