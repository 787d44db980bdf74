/**
 * The Double Ratchet (X25519, HKDF-SHA256 root chain, HMAC-SHA256 symmetric chains, AES-256-GCM with
 * the header as associated data) with an ML-KEM-768 ratchet beside it (docs/PROTOCOL.md, "Secure
 * sessions"). Every message key mixes in the key of an ML-KEM epoch, Triple Ratchet style:
 * `HKDF(salt = epoch key, ikm = message seed)`, and each epoch key is `HKDF(salt = the previous one,
 * ikm = a fresh ML-KEM shared secret)`. So an attacker who breaks X25519 but holds no state opens
 * nothing (epoch 0 comes from PQXDH, which needs the ML-KEM secret), and one who also stole a state
 * opens nothing once an epoch whose ML-KEM key was made after the theft completes.
 *
 * States are plain data (StateCodec turns them into JSON). `encrypt` and `decrypt` work on a copy and
 * return a new state; a refused message leaves the given state untouched. Secrets the new state no
 * longer needs are overwritten in the copy; `wipeSession` erases an old state once the new one is kept.
 */
import { gcm } from "@noble/ciphers/aes.js"
import { x25519 } from "@noble/curves/ed25519.js"
import { hkdf } from "@noble/hashes/hkdf.js"
import { hmac } from "@noble/hashes/hmac.js"
import { sha256 } from "@noble/hashes/sha2.js"
import { bytesToHex } from "@noble/hashes/utils.js"
import { concat, equal, utf8, wipe } from "./Bytes.ts"
import { decodeEnvelope, encodeHeader, type Envelope, type Header, type PrekeyPart } from "./Envelope.ts"
import { hooks, type KeyPair, mlKemDecapsulate, mlKemEncapsulate, mlKemKeyPair, x25519KeyPair } from "./KeySource.ts"
import { fail, SecureError } from "./SecureError.ts"

/** A counter may run ahead of the last one opened by at most this many messages (per receiving chain). */
export const MAX_SKIP = 1_000
/** Skipped message keys kept per session, all chains together; the oldest go first. */
export const MAX_SKIPPED_KEYS = 2_000
/** Skipped message keys expire after this long (ms). */
export const SKIPPED_KEY_TTL_MS = 30 * 24 * 3_600_000
/** Earlier ratchet keys of the peer remembered, so that a message of a finished chain is named a replay. */
export const MAX_PREVIOUS_CHAINS = 5
/** Epoch keys kept: the current, the next being set up and a few before for late messages. */
export const MAX_EPOCH_KEYS = 4
/** ML-KEM cadence: a new epoch once this many messages (both ways) went under the current one... */
export const PQ_EVERY_MESSAGES = 50
/** ...or this long (ms) after it began, whichever comes first. */
export const PQ_EVERY_MS = 24 * 3_600_000

const INFO_ROOT = utf8("demos-im/secure/v1/root")
const INFO_MESSAGE = utf8("demos-im/secure/v1/message")
const epochInfo = (epoch: number) => utf8(`demos-im/secure/v1/pq-epoch|${epoch}`)

export interface Chain {
  readonly key: Uint8Array
  readonly n: number
}

export interface SkippedKey {
  /** the peer's ratchet key (hex) of the chain */
  readonly dh: string
  readonly n: number
  readonly seed: Uint8Array
  /** ms, when it was skipped */
  readonly at: number
}

export interface PqState {
  /** the epoch this side encrypts under */
  sendEpoch: number
  keys: Array<{ readonly epoch: number; readonly key: Uint8Array }>
  /** messages sent and opened under `sendEpoch` */
  inEpoch: number
  epochStartedAt: number
  readonly everyMessages: number
  readonly everyMs: number
  /** our encapsulation key for the next epoch, sent until its ciphertext arrives */
  ownKey?: { readonly epoch: number; readonly publicKey: Uint8Array; readonly secretKey: Uint8Array; untilResend: number } | undefined
  /** our ciphertext for the peer's key, sent until the peer is seen using the epoch */
  ownCiphertext?: { readonly epoch: number; readonly cipherText: Uint8Array; untilResend: number } | undefined
}

export interface SessionState {
  readonly version: 1
  /** the peer's account key (hex) and device */
  readonly peer: string
  readonly peerDevice: number
  readonly peerRegistrationId: number
  readonly myDevice: number
  readonly myRegistrationId: number
  readonly initiator: boolean
  /** PQXDH's associated data: both account keys, device ids and registration ids */
  readonly ad: Uint8Array
  rootKey: Uint8Array
  dhSelf: KeyPair
  dhRemote?: Uint8Array | undefined
  send?: Chain | undefined
  recv?: Chain | undefined
  pn: number
  skipped: Array<SkippedKey>
  previousRemotes: Array<string>
  /** initiator: the PQXDH part, sent with every message until the first reply */
  prekey?: PrekeyPart | undefined
  /** responder: the initiator's base key, to recognise further first messages of this session */
  readonly baseKey?: Uint8Array | undefined
  pq: PqState
}

export const kdfRoot = (rootKey: Uint8Array, dhOut: Uint8Array): [Uint8Array, Uint8Array] => {
  hooks.spentKey?.(rootKey)
  const out = hkdf(sha256, dhOut, rootKey, INFO_ROOT, 64)
  return [out.slice(0, 32), out.slice(32, 64)]
}

const ONE = Uint8Array.of(1)
const TWO = Uint8Array.of(2)

export const kdfChain = (chainKey: Uint8Array): { readonly seed: Uint8Array; readonly next: Uint8Array } => {
  hooks.spentKey?.(chainKey)
  return { seed: hmac(sha256, chainKey, ONE), next: hmac(sha256, chainKey, TWO) }
}

/** AES-256 key ‖ 12-byte nonce: each key opens one message, so the nonce may be derived with it. */
export const messageKey = (epochKey: Uint8Array, seed: Uint8Array): Uint8Array => {
  const mk = hkdf(sha256, seed, epochKey, INFO_MESSAGE, 44)
  hooks.messageKey?.(mk, seed)
  return mk
}

export const nextEpochKey = (previous: Uint8Array, sharedSecret: Uint8Array, epoch: number): Uint8Array =>
  hkdf(sha256, sharedSecret, previous, epochInfo(epoch), 32)

/** Who sends the encapsulation key of `epoch`: the initiator for odd epochs, the responder for even ones. */
const opensEpoch = (s: SessionState, epoch: number) => (epoch % 2 === 1) === s.initiator

const epochKey = (s: SessionState, epoch: number): Uint8Array | undefined => s.pq.keys.find((k) => k.epoch === epoch)?.key

const addEpochKey = (s: SessionState, epoch: number, key: Uint8Array) => {
  s.pq.keys.push({ epoch, key })
  const newest = Math.max(...s.pq.keys.map((k) => k.epoch))
  for (const k of s.pq.keys) if (k.epoch <= newest - MAX_EPOCH_KEYS) wipe(k.key)
  s.pq.keys = s.pq.keys.filter((k) => k.epoch > newest - MAX_EPOCH_KEYS)
}

const startEpoch = (s: SessionState, epoch: number, now: number) => {
  s.pq.sendEpoch = epoch
  s.pq.inEpoch = 0
  s.pq.epochStartedAt = now
}

/** The session's secrets overwritten: for a state that was replaced by a newer one, or a failed attempt. */
export const wipeSession = (s: SessionState): void => {
  wipe(s.rootKey, s.dhSelf.secretKey, s.send?.key, s.recv?.key, s.pq.ownKey?.secretKey)
  for (const k of s.skipped) wipe(k.seed)
  for (const k of s.pq.keys) wipe(k.key)
}

export const cloneSession = (s: SessionState): SessionState => structuredClone(s)

const aead = (mk: Uint8Array, ad: Uint8Array, headerBytes: Uint8Array) => gcm(mk.subarray(0, 32), mk.subarray(32, 44), concat(ad, headerBytes))

const startEpochIfDue = (s: SessionState, now: number) => {
  const next = s.pq.sendEpoch + 1
  if (!opensEpoch(s, next) || s.pq.ownKey !== undefined || epochKey(s, next) !== undefined) return
  if (s.pq.inEpoch < s.pq.everyMessages && now - s.pq.epochStartedAt < s.pq.everyMs) return
  const pair = mlKemKeyPair()
  s.pq.ownKey = { epoch: next, publicKey: pair.publicKey, secretKey: pair.secretKey, untilResend: 0 }
}

/** Whether a pending part goes with this message: the first time, then again every `everyMessages` messages. */
const due = (s: SessionState, part: { untilResend: number }) => {
  if (part.untilResend > 0) {
    part.untilResend--
    return false
  }
  part.untilResend = s.pq.everyMessages - 1
  return true
}

/** Encrypts one message; returns the new state and the message's bytes. */
export const encrypt = (state: SessionState, plaintext: Uint8Array, now: number): { readonly state: SessionState; readonly bytes: Uint8Array } => {
  if (state.send === undefined) return fail("NoSession", "this session cannot send before it has received a first message")
  const s = cloneSession(state)
  startEpochIfDue(s, now)
  const send = s.send!
  const { seed, next } = kdfChain(send.key)
  wipe(send.key)
  s.send = { key: next, n: send.n + 1 }
  const pqKey = s.pq.ownKey !== undefined && due(s, s.pq.ownKey) ? { epoch: s.pq.ownKey.epoch, publicKey: s.pq.ownKey.publicKey } : undefined
  const pqCiphertext = pqKey === undefined && s.pq.ownCiphertext !== undefined && due(s, s.pq.ownCiphertext)
    ? { epoch: s.pq.ownCiphertext.epoch, cipherText: s.pq.ownCiphertext.cipherText }
    : undefined
  const header: Header = {
    senderDevice: s.myDevice,
    dh: s.dhSelf.publicKey,
    n: send.n,
    pn: s.pn,
    epoch: s.pq.sendEpoch,
    ...(s.prekey === undefined ? {} : { prekey: s.prekey }),
    ...(pqKey === undefined ? {} : { pqKey }),
    ...(pqCiphertext === undefined ? {} : { pqCiphertext })
  }
  const headerBytes = encodeHeader(header)
  const mk = messageKey(epochKey(s, s.pq.sendEpoch)!, seed)
  wipe(seed)
  const body = aead(mk, s.ad, headerBytes).encrypt(plaintext)
  wipe(mk)
  s.pq.inEpoch++
  return { state: s, bytes: concat(headerBytes, body) }
}

const dropSkipped = (s: SessionState, keep: (k: SkippedKey) => boolean) => {
  for (const k of s.skipped) if (!keep(k)) wipe(k.seed)
  s.skipped = s.skipped.filter(keep)
}

const skipTo = (s: SessionState, until: number, now: number) => {
  const recv = s.recv
  if (recv === undefined || until <= recv.n) return
  if (until - recv.n > MAX_SKIP) fail("CounterJump", `counter ${until} is more than ${MAX_SKIP} past ${recv.n}`)
  const dh = bytesToHex(s.dhRemote!)
  let key = recv.key
  for (let n = recv.n; n < until; n++) {
    const { seed, next } = kdfChain(key)
    wipe(key)
    s.skipped.push({ dh, n, seed, at: now })
    key = next
  }
  s.recv = { key, n: until }
  const inChain = s.skipped.filter((k) => k.dh === dh).length
  if (inChain > MAX_SKIP) {
    const cut = s.skipped.filter((k) => k.dh === dh)[inChain - MAX_SKIP - 1]!
    dropSkipped(s, (k) => k.dh !== dh || k.n > cut.n)
  }
  if (s.skipped.length > MAX_SKIPPED_KEYS) {
    const extra = s.skipped.length - MAX_SKIPPED_KEYS
    const oldest = new Set(s.skipped.slice(0, extra))
    dropSkipped(s, (k) => !oldest.has(k))
  }
}

const dhRatchet = (s: SessionState, remote: Uint8Array) => {
  if (s.dhRemote !== undefined) {
    s.previousRemotes.push(bytesToHex(s.dhRemote))
    if (s.previousRemotes.length > MAX_PREVIOUS_CHAINS) s.previousRemotes.shift()
  }
  s.dhRemote = remote.slice()
  const received = x25519.getSharedSecret(s.dhSelf.secretKey, s.dhRemote)
  const [rk1, ckr] = kdfRoot(s.rootKey, received)
  wipe(received, s.rootKey, s.recv?.key)
  s.recv = { key: ckr, n: 0 }
  s.pn = s.send?.n ?? 0
  wipe(s.dhSelf.secretKey)
  s.dhSelf = x25519KeyPair()
  const sent = x25519.getSharedSecret(s.dhSelf.secretKey, s.dhRemote)
  const [rk2, cks] = kdfRoot(rk1, sent)
  wipe(sent, rk1, s.send?.key)
  s.rootKey = rk2
  s.send = { key: cks, n: 0 }
}

const afterOpen = (s: SessionState, h: Header, now: number) => {
  // Any message from the responder shows it holds the session: first messages stop carrying PQXDH.
  if (s.initiator && s.prekey !== undefined) s.prekey = undefined
  const own = s.pq.ownCiphertext
  if (own !== undefined && h.epoch >= own.epoch) {
    // The peer encrypts under the epoch we answered: both sides hold its key.
    s.pq.ownCiphertext = undefined
    startEpoch(s, own.epoch, now)
  }
  if (h.pqKey !== undefined) {
    const e = h.pqKey.epoch
    if (!opensEpoch(s, e) && e === s.pq.sendEpoch + 1 && epochKey(s, e) === undefined && s.pq.ownCiphertext === undefined) {
      let encapsulated: { readonly cipherText: Uint8Array; readonly sharedSecret: Uint8Array } | undefined
      try {
        encapsulated = mlKemEncapsulate(h.pqKey.publicKey)
      } catch {
        // An encapsulation key that is not one: the epoch stays where it is; the message itself opened.
        encapsulated = undefined
      }
      if (encapsulated !== undefined) {
        addEpochKey(s, e, nextEpochKey(epochKey(s, e - 1)!, encapsulated.sharedSecret, e))
        wipe(encapsulated.sharedSecret)
        s.pq.ownCiphertext = { epoch: e, cipherText: encapsulated.cipherText, untilResend: 0 }
      }
    }
  }
  if (h.pqCiphertext !== undefined && s.pq.ownKey !== undefined && h.pqCiphertext.epoch === s.pq.ownKey.epoch) {
    const e = s.pq.ownKey.epoch
    const shared = mlKemDecapsulate(h.pqCiphertext.cipherText, s.pq.ownKey.secretKey)
    addEpochKey(s, e, nextEpochKey(epochKey(s, e - 1)!, shared, e))
    wipe(shared, s.pq.ownKey.secretKey)
    s.pq.ownKey = undefined
    startEpoch(s, e, now)
  }
  s.pq.inEpoch++
}

/** Opens a parsed message with a session; returns the new state and the plaintext. */
export const decryptEnvelope = (
  state: SessionState,
  envelope: Envelope,
  now: number
): { readonly state: SessionState; readonly plaintext: Uint8Array } => {
  const h = envelope.header
  if (h.senderDevice !== state.peerDevice) fail("WrongDevice", `message from device ${h.senderDevice}, session with device ${state.peerDevice}`)
  const s = cloneSession(state)
  try {
    dropSkipped(s, (k) => now - k.at < SKIPPED_KEY_TTL_MS)
    const dh = bytesToHex(h.dh)
    const at = s.skipped.findIndex((k) => k.dh === dh && k.n === h.n)
    let seed: Uint8Array
    if (at >= 0) {
      seed = s.skipped[at]!.seed
      s.skipped.splice(at, 1)
    } else {
      if (s.dhRemote === undefined || !equal(h.dh, s.dhRemote)) {
        if (s.previousRemotes.includes(dh)) fail("Replay", "a message of a finished chain that was opened already (or expired)")
        skipTo(s, h.pn, now)
        dhRatchet(s, h.dh)
      }
      const recv = s.recv!
      if (h.n < recv.n) fail("Replay", `message ${h.n} of this chain was opened already (or its key expired)`)
      skipTo(s, h.n, now)
      const r = s.recv!
      const step = kdfChain(r.key)
      wipe(r.key)
      s.recv = { key: step.next, n: r.n + 1 }
      seed = step.seed
    }
    const pqKey = epochKey(s, h.epoch)
    if (pqKey === undefined) {
      wipe(seed)
      return fail("DecryptFailed", `no key for ML-KEM epoch ${h.epoch}`)
    }
    const mk = messageKey(pqKey, seed)
    wipe(seed)
    let plaintext: Uint8Array
    try {
      plaintext = aead(mk, s.ad, envelope.headerBytes).decrypt(envelope.body)
    } catch {
      return fail("DecryptFailed", "the message does not authenticate (tampered, or not for this session)")
    } finally {
      wipe(mk)
    }
    afterOpen(s, h, now)
    return { state: s, plaintext }
  } catch (e) {
    wipeSession(s)
    if (e instanceof SecureError) throw e
    // noble refuses a low-order X25519 key from a peer by throwing
    return fail("DecryptFailed", `the message does not open: ${e instanceof Error ? e.message : String(e)}`)
  }
}

export const decrypt = (state: SessionState, bytes: Uint8Array, now: number) => decryptEnvelope(state, decodeEnvelope(bytes), now)
