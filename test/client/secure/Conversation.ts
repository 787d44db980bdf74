/** Two devices talking through the pure secure-session functions, and the tools the attacks need. */
import { generateIdentity, type Identity } from "../../../src/client/L2psCrypto.ts"
import { bundleOf, createDevice, type DeviceState } from "../../../src/client/secure/DeviceKeys.ts"
import { decodeEnvelope } from "../../../src/client/secure/Envelope.ts"
import { hooks } from "../../../src/client/secure/KeySource.ts"
import { type Cadence, initiate, respond } from "../../../src/client/secure/Pqxdh.ts"
import { decrypt, decryptEnvelope, encrypt, type SessionState } from "../../../src/client/secure/Ratchet.ts"

export const T0 = 1_800_000_000_000
export const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)
export const utf8 = (s: string) => new TextEncoder().encode(s)

/** One device of one account; `session` is its session with the other party. */
export class Party {
  session: SessionState | undefined
  constructor(
    readonly identity: Identity,
    public device: DeviceState,
    readonly peer: string,
    readonly cadence?: Cadence
  ) {}

  send(message: string, now = T0): Uint8Array {
    const out = encrypt(this.session!, utf8(message), now)
    this.session = out.state
    return out.bytes
  }

  receive(bytes: Uint8Array, now = T0): string {
    if (this.session === undefined) {
      const envelope = decodeEnvelope(bytes)
      const started = respond(this.identity, this.device, this.peer, envelope, now, this.cadence)
      const out = decryptEnvelope(started.session, envelope, now)
      this.session = out.state
      this.device = started.device
      return text(out.plaintext)
    }
    const out = decrypt(this.session, bytes, now)
    this.session = out.state
    return text(out.plaintext)
  }
}

/** A (initiator, from B's bundle alone) and B (responder, no session until A's first message). */
export const pair = (cadence?: Cadence) => {
  const a = generateIdentity()
  const b = generateIdentity()
  const deviceA = createDevice(a, { now: T0, deviceId: 1, oneTimePreKeys: 2, oneTimeKems: 2 })
  const deviceB = createDevice(b, { now: T0, deviceId: 7, oneTimePreKeys: 2, oneTimeKems: 2 })
  const alice = new Party(a, deviceA, b.publicKey, cadence)
  const bob = new Party(b, deviceB, a.publicKey, cadence)
  alice.session = initiate(a, deviceA, b.publicKey, bundleOf(deviceB), T0, cadence)
  return { alice, bob }
}

/** Runs `f` while every X25519 secret generated is recorded (in order) into `into`. */
export const recordingX25519 = <A>(into: Array<Uint8Array>, f: () => A): A => {
  hooks.x25519Secret = (fresh) => {
    into.push(fresh.slice())
    return fresh
  }
  try {
    return f()
  } finally {
    hooks.x25519Secret = undefined
  }
}

/** Runs `f` with the X25519 secrets `given` handed out in order (an attacker replaying the victim's). */
export const replayingX25519 = <A>(given: ReadonlyArray<Uint8Array>, f: () => A): A => {
  let i = 0
  hooks.x25519Secret = (fresh) => given[i++]?.slice() ?? fresh
  try {
    return f()
  } finally {
    hooks.x25519Secret = undefined
  }
}

/** `f()`'s value, or undefined when it throws. */
export const attempt = <A>(f: () => A): A | undefined => {
  try {
    return f()
  } catch {
    return undefined
  }
}
