/**
 * The plaintext inside a secure message (SecureLink, docs/PROTOCOL.md "The plaintext inside a
 * session"): the envelope form (0x01) and the form written before it (0x00: sentAt ‖ UTF-8 text),
 * which still opens from storage or the network; any other form, or a changed byte, is refused and
 * changes no state.
 */
import { describe, expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as Content from "../../src/client/content/Content.ts"
import * as ContentType from "../../src/client/content/ContentType.ts"
import { generateIdentity, messageHashOf } from "../../src/client/L2psCrypto.ts"
import type { L2psPeerShape } from "../../src/client/L2psPeer.ts"
import { toBase64 } from "../../src/client/MlKemAes.ts"
import { utf8 } from "../../src/client/secure/Bytes.ts"
import { bundleOf, createDevice } from "../../src/client/secure/DeviceKeys.ts"
import { encodeParcel } from "../../src/client/secure/Parcel.ts"
import * as SecureSessions from "../../src/client/secure/SecureSessions.ts"
import * as SecureLink from "../../src/client/SecureLink.ts"

const alice = generateIdentity()
const bob = generateIdentity()
const SENT_AT = 1_780_000_000_000

const u64 = (n: number) => {
  const b = new Uint8Array(8)
  new DataView(b.buffer).setBigUint64(0, BigInt(n))
  return b
}

/** Alice seals `plaintexts` in turn for Bob's device; Bob opens each with his SecureLink. */
const exchange = (plaintexts: ReadonlyArray<Uint8Array>, tamper?: (bytes: Uint8Array) => void) =>
  Effect.gen(function*() {
    const bobDevice = createDevice(bob, { now: 0, oneTimePreKeys: 1, oneTimeKems: 1 })
    const bobStore = SecureSessions.memoryStore(bobDevice)
    const link = yield* SecureLink.make(bob, {} as L2psPeerShape, bobStore)
    const sender = SecureSessions.make(alice, SecureSessions.memoryStore(createDevice(alice, { now: 0 })))
    const out: Array<SecureLink.OpenedSecure | string> = []
    for (const plaintext of plaintexts) {
      const [sealed] = yield* sender.encryptFor([{ peer: bob.publicKey, deviceId: bobDevice.deviceId, bundle: bundleOf(bobDevice) }], plaintext)
      const parcel = encodeParcel([{ owner: "recipient", deviceId: bobDevice.deviceId, envelope: sealed!.bytes }])
      tamper?.(parcel)
      const encrypted = { ciphertext: toBase64(parcel), nonce: SecureLink.SECURE_NONCE }
      const hash = messageHashOf(alice.publicKey, bob.publicKey, encrypted, SENT_AT)
      const opened = yield* Effect.either(link.open(alice.publicKey, bob.publicKey, encrypted, hash, (o) => Effect.sync(() => void out.push(o))))
      if (opened._tag === "Left") out.push(opened.left.message)
    }
    return out
  }).pipe(Effect.runPromise)

describe("the plaintext inside a secure message", () => {
  test("the envelope form opens with its sender device, time and envelope", async () => {
    const envelope = Content.make().encode(ContentType.text, { text: "hi" }, { position: 1, previous: Content.NO_PREVIOUS })
    const [opened] = await exchange([new Uint8Array([SecureLink.PLAINTEXT_ENVELOPE, ...u64(SENT_AT), ...envelope])])
    expect(opened).toMatchObject({ sentAt: SENT_AT, body: { _tag: "Envelope" } })
    const decoded = Content.make().decode(typeof opened === "string" ? new Uint8Array() : (opened!.body as { envelope: Uint8Array }).envelope)
    expect(Content.is(decoded, ContentType.text) && decoded.body.text).toBe("hi")
    expect(decoded.link?.position).toBe(1)
  })

  test("the form written before the envelope (sentAt ‖ text, first byte 0) still opens as a text", async () => {
    const [opened] = await exchange([new Uint8Array([...u64(SENT_AT), ...utf8("from before")])])
    expect(opened).toMatchObject({ sentAt: SENT_AT, body: { _tag: "Text", text: "from before" } })
  })

  test("an unknown form is refused, and the next message still opens", async () => {
    const [refused, next] = await exchange([
      new Uint8Array([0x02, ...u64(SENT_AT), 1, 2, 3]),
      new Uint8Array([...u64(SENT_AT), ...utf8("next")])
    ])
    expect(refused).toMatch(/malformed \(plaintext form 2\)/)
    expect(next).toMatchObject({ body: { _tag: "Text", text: "next" } })
  })

  test("a changed byte anywhere in the sealed part (its position, its link) does not open", async () => {
    const envelope = Content.make().encode(ContentType.text, { text: "hi" }, { position: 5, previous: Content.NO_PREVIOUS })
    const plaintext = new Uint8Array([SecureLink.PLAINTEXT_ENVELOPE, ...u64(SENT_AT), ...envelope])
    // A byte of the authentication tag, and two inside the encrypted plaintext.
    for (const fromEnd of [1, 16 + plaintext.length - 10, 16 + plaintext.length - 11]) {
      const [opened] = await exchange([plaintext], (parcel) => void (parcel[parcel.length - fromEnd]! ^= 0x01))
      expect(typeof opened).toBe("string")
    }
  })
})
