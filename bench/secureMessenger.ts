/**
 * Secure sessions through the messenger and a node started as a user starts it: the time from
 * `send` to the `Received` event on the other side, per message, with secure sessions (the default)
 * against today's L2PS scheme (`secure: false`) in the same run; and the bytes a message puts on the
 * wire for a recipient with 1, 2 and 3 devices, one parcel against one `send` per device.
 *
 *   bun run bench/secureMessenger.ts [--rounds 5] [--messages 40]   (PGlite)
 */
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import { generateIdentity, type Identity } from "../src/client/L2psCrypto.ts"
import * as Messenger from "../src/client/Messenger.ts"
import { decodeParcel } from "../src/client/secure/Parcel.ts"
import { SECURE_NONCE } from "../src/client/SecureLink.ts"
import { fmt, median } from "./Stats.ts"
import { startBenchNode, tempDir } from "./Targets.ts"

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`)
  return i === -1 ? fallback : Number(process.argv[i + 1])
}
const ROUNDS = arg("rounds", 5)
const MESSAGES = arg("messages", 40)
const TEXT = "a".repeat(100)

const node = await startBenchNode({ kind: "pglite", dataDir: tempDir() })

const open = (scope: Scope.CloseableScope, identity: Identity, secure: boolean) =>
  Effect.gen(function*() {
    const m = yield* Messenger.make({ serverUrl: node.url, identity, ...(secure ? {} : { secure: false }) })
    const events = yield* m.subscribe
    yield* m.connect
    if (secure) yield* m.maintainPrekeys
    return { m, events }
  }).pipe(Scope.extend(scope))

type Opened = Effect.Effect.Success<ReturnType<typeof open>>

const nextReceived = (q: Opened["events"]) =>
  Effect.gen(function*() {
    while (true) {
      const e = yield* Queue.take(q)
      if (e._tag === "Received") return e.record
      if (e._tag === "Undecryptable") throw new Error(e.reason)
    }
  })

/** Median µs from send to the other side's Received, over `MESSAGES` messages after a first one. */
const conversation = (secure: boolean, alternate: boolean) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const a = yield* open(scope, generateIdentity(), secure)
    const b = yield* open(scope, generateIdentity(), secure)
    const times: Array<number> = []
    // The first message (bundle fetch, PQXDH) and its answer are left out: steady state only.
    for (let i = -2; i < MESSAGES; i++) {
      const [from, to] = alternate && i % 2 !== 0 ? [b, a] : [a, b]
      const t0 = performance.now()
      yield* from.m.send(to.m.publicKey, TEXT)
      yield* nextReceived(to.events)
      if (i >= 0) times.push((performance.now() - t0) * 1000)
    }
    yield* Scope.close(scope, { _tag: "Success", value: undefined } as never)
    return median(times)
  })

/** Bytes of one steady-state message to a recipient with `devices` devices: the parcel, and one send per device. */
const bytesFor = (devices: number) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const bob = generateIdentity()
    const a = yield* open(scope, generateIdentity(), true)
    const bs: Array<Opened> = []
    for (let i = 0; i < devices; i++) bs.push(yield* open(scope, bob, true))
    yield* a.m.send(bob.publicKey, TEXT)
    for (const b of bs) yield* nextReceived(b.events)
    yield* bs[0]!.m.send(a.m.publicKey, TEXT)
    yield* nextReceived(a.events)
    const r = yield* a.m.send(bob.publicKey, TEXT)
    const send = (encrypted: unknown) => JSON.stringify({ type: "send", payload: { to: bob.publicKey, encrypted, messageHash: "f".repeat(64) }, timestamp: Date.now(), requestId: "req_1764880000000_0123456789" }).length
    const parcel = send(r.encrypted)
    const parts = decodeParcel(Buffer.from(r.encrypted!.ciphertext, "base64"))
    const apart = parts.reduce((n, p) => n + send({ ciphertext: Buffer.from(p.envelope).toString("base64"), nonce: SECURE_NONCE }), 0)
    yield* Scope.close(scope, { _tag: "Success", value: undefined } as never)
    return { parcel, apart }
  })

const today = { inARow: [] as Array<number>, alternating: [] as Array<number> }
const secure = { inARow: [] as Array<number>, alternating: [] as Array<number> }
const ratios = { inARow: [] as Array<number>, alternating: [] as Array<number> }
const started = new Date().toISOString()
for (let round = 0; round < ROUNDS; round++) {
  for (const alternate of [false, true]) {
    const key = alternate ? "alternating" : "inARow"
    const t = await Effect.runPromise(conversation(false, alternate))
    const s = await Effect.runPromise(conversation(true, alternate))
    today[key].push(t)
    secure[key].push(s)
    ratios[key].push(s / t)
  }
}
console.log(`started ${started}, ${ROUNDS} rounds of ${MESSAGES} messages of 100 bytes; median of round medians, µs send → Received`)
for (const key of ["inARow", "alternating"] as const) {
  console.log(`${key}: secure ${fmt(median(secure[key]))} µs, today ${fmt(median(today[key]))} µs, ratio ${median(ratios[key]).toFixed(2)}x`)
}
for (const devices of [1, 2, 3]) {
  const b = await Effect.runPromise(bytesFor(devices))
  console.log(`${devices} device(s): one parcel ${b.parcel} bytes in its send frame; one send per device ${b.apart} bytes`)
}
await node.stop()
process.exit(0)
