/**
 * A client's keys in its `HomeStorage` (a folder, IndexedDB), encrypted at rest: `identity.json` holds the public key in clear and the
 * secrets (the ed25519 secret key for L2PS, the 128-byte master seed of the legacy ML-KEM / ML-DSA
 * keys) sealed with AES-256-GCM under a key derived from a passphrase with scrypt. The public key is
 * the AAD with the KDF parameters and salt (version 2), so a file whose clear key or KDF settings were
 * changed does not open. KDF parameters are bounded (`checkKdf`) before scrypt runs, whoever gives them.
 * Version 1 files (AAD = the public key alone) still open and are rewritten as version 2.
 */
import { gcm } from "@noble/ciphers/aes.js"
import { scryptAsync } from "@noble/hashes/scrypt.js"
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type { HomeStorage, StorageError } from "./HomeStorage.ts"
import { generateIdentity, type Identity, identityFromSecret } from "./L2psCrypto.ts"
import { fromBase64, newMasterSeed, secureRandom, toBase64 } from "./MlKemAes.ts"

export class SecretStoreError extends Data.TaggedError("SecretStoreError")<{
  readonly reason: "WrongPassphrase" | "Corrupt" | "Io" | "BadKdf"
  readonly message: string
}> {}

/** scrypt cost; the default (N = 2^17, r = 8, p = 1) takes about 0.4 s and 128 MiB. */
export interface KdfParams {
  readonly N: number
  readonly r: number
  readonly p: number
}

export const defaultKdf: KdfParams = { N: 2 ** 17, r: 8, p: 1 }

/**
 * What scrypt may be asked: below the floor a stolen file is cheap to brute-force, above the ceiling a
 * tampered file (or setting) makes opening take gigabytes or minutes. Memory is 128·N·r bytes.
 */
export const KDF_BOUNDS = { minN: 2 ** 14, maxN: 2 ** 18, minR: 8, maxR: 16, maxP: 4, maxMemory: 256 * 2 ** 20, maxWork: 2 ** 18 * 8 } as const

const isInt = (n: unknown): n is number => typeof n === "number" && Number.isSafeInteger(n)

/** Why `kdf` is refused, or undefined when it is within `KDF_BOUNDS`. */
export const checkKdf = (kdf: Partial<KdfParams>): string | undefined => {
  const { N, r, p } = kdf
  const b = KDF_BOUNDS
  if (!isInt(N) || N < b.minN || N > b.maxN || (N & (N - 1)) !== 0) return `scrypt N must be a power of two from ${b.minN} to ${b.maxN}`
  if (!isInt(r) || r < b.minR || r > b.maxR) return `scrypt r must be from ${b.minR} to ${b.maxR}`
  if (!isInt(p) || p < 1 || p > b.maxP) return `scrypt p must be from 1 to ${b.maxP}`
  if (128 * N * r > b.maxMemory) return `scrypt N·r asks more than ${b.maxMemory / 2 ** 20} MiB`
  if (N * r * p > b.maxWork) return `scrypt N·r·p must be at most ${b.maxWork}`
  return undefined
}

const badKdf = (why: string) => new SecretStoreError({ reason: "BadKdf", message: `identity file: ${why}` })

/** Everything a client keeps secret. */
export interface Secrets {
  readonly identity: Identity
  /** The legacy client's master seed (see `legacyKeysFromSeed`). */
  readonly masterSeed: Uint8Array
}

interface IdentityFile {
  readonly version: 1 | 2
  readonly publicKey: string
  readonly kdf: { readonly name: "scrypt"; readonly N: number; readonly r: number; readonly p: number; readonly salt: string }
  readonly cipher: "aes-256-gcm"
  readonly nonce: string
  readonly ciphertext: string
}

export const IDENTITY_FILE = "identity.json"

const encoder = new TextEncoder()

const passphraseKey = (passphrase: string, salt: Uint8Array, kdf: KdfParams) =>
  Effect.promise(() => scryptAsync(encoder.encode(passphrase.normalize("NFKC")), salt, { ...kdf, dkLen: 32 }))

const io = (e: StorageError) => new SecretStoreError({ reason: "Io", message: e.message })

/** New secrets from the platform CSPRNG. */
export const generateSecrets = (): Secrets => ({ identity: generateIdentity(), masterSeed: newMasterSeed() })

/** Version 2's AAD: everything in the file but the nonce and the ciphertext, in a fixed order. */
const headerOf = (f: Pick<IdentityFile, "publicKey" | "kdf" | "cipher">) =>
  encoder.encode(JSON.stringify(["demos-im/identity/v2", f.publicKey, f.kdf.name, f.kdf.N, f.kdf.r, f.kdf.p, f.kdf.salt, f.cipher]))

/** Seals `secrets` into the JSON of an identity file; `BadKdf` when `kdf` is out of `KDF_BOUNDS`. */
export const seal = (secrets: Secrets, passphrase: string, kdf: KdfParams = defaultKdf) =>
  Effect.gen(function*() {
    const bad = checkKdf(kdf)
    if (bad !== undefined) return yield* badKdf(bad)
    const salt = secureRandom(16)
    const nonce = secureRandom(12)
    const key = yield* passphraseKey(passphrase, salt, kdf)
    const plain = encoder.encode(JSON.stringify({ secretKey: bytesToHex(secrets.identity.secretKey), masterSeed: bytesToHex(secrets.masterSeed) }))
    const header = {
      publicKey: secrets.identity.publicKey,
      kdf: { name: "scrypt" as const, N: kdf.N, r: kdf.r, p: kdf.p, salt: toBase64(salt) },
      cipher: "aes-256-gcm" as const
    }
    const file: IdentityFile = {
      version: 2,
      ...header,
      nonce: toBase64(nonce),
      ciphertext: toBase64(gcm(key, nonce, headerOf(header)).encrypt(plain))
    }
    return JSON.stringify(file, null, 2)
  })

/** The KDF parameters an identity file asks for (undefined when it has none readable). */
export const kdfOf = (json: string): KdfParams | undefined => {
  try {
    const f = JSON.parse(json) as IdentityFile
    return { N: f.kdf.N, r: f.kdf.r, p: f.kdf.p }
  } catch {
    return undefined
  }
}

/** Opens the JSON of an identity file; `WrongPassphrase` when it does not decrypt. */
export const unseal = (json: string, passphrase: string): Effect.Effect<Secrets, SecretStoreError> =>
  Effect.gen(function*() {
    const corrupt = (why: string) => new SecretStoreError({ reason: "Corrupt", message: `identity file: ${why}` })
    const file = yield* Effect.try({ try: () => JSON.parse(json) as IdentityFile, catch: () => corrupt("not JSON") })
    if ((file?.version !== 1 && file?.version !== 2) || file.kdf?.name !== "scrypt" || file.cipher !== "aes-256-gcm") {
      return yield* corrupt("unknown format")
    }
    if (typeof file.publicKey !== "string" || typeof file.kdf.salt !== "string") return yield* corrupt("unknown format")
    const bad = checkKdf(file.kdf)
    if (bad !== undefined) return yield* badKdf(`${bad} (the file asks N=${file.kdf.N}, r=${file.kdf.r}, p=${file.kdf.p}): not run`)
    const key = yield* passphraseKey(passphrase, fromBase64(file.kdf.salt), { N: file.kdf.N, r: file.kdf.r, p: file.kdf.p })
    const aad = file.version === 2 ? headerOf(file) : encoder.encode(file.publicKey)
    const plain = yield* Effect.try({
      try: () => gcm(key, fromBase64(file.nonce), aad).decrypt(fromBase64(file.ciphertext)),
      catch: () => new SecretStoreError({ reason: "WrongPassphrase", message: "wrong passphrase (or a damaged identity file)" })
    })
    const inner = yield* Effect.try({
      try: () => JSON.parse(new TextDecoder().decode(plain)) as { secretKey: string; masterSeed: string },
      catch: () => corrupt("bad secrets")
    })
    const identity = identityFromSecret(hexToBytes(inner.secretKey))
    if (identity.publicKey !== file.publicKey) return yield* corrupt("the secret key does not match the public key")
    return { identity, masterSeed: hexToBytes(inner.masterSeed) }
  })

/**
 * The secrets in `storage`, created (and saved) on first use. A version 1 file is rewritten as version 2
 * with its own KDF parameters (`migrated`: this open was the first by a version 2 client).
 */
export const loadOrCreate = (storage: HomeStorage, passphrase: string, kdf: KdfParams = defaultKdf) =>
  Effect.gen(function*() {
    const json = yield* storage.read(IDENTITY_FILE).pipe(Effect.mapError(io))
    if (json !== undefined) {
      const secrets = yield* unseal(json, passphrase)
      const version = (JSON.parse(json) as IdentityFile).version
      if (version === 1) yield* storage.write(IDENTITY_FILE, yield* seal(secrets, passphrase, kdfOf(json) ?? kdf)).pipe(Effect.mapError(io))
      return { secrets, created: false, migrated: version === 1 }
    }
    const secrets = generateSecrets()
    yield* storage.write(IDENTITY_FILE, yield* seal(secrets, passphrase, kdf)).pipe(Effect.mapError(io))
    return { secrets, created: true, migrated: false }
  })

/** The public key of the identity in `storage`, without the passphrase (undefined when there is none). */
export const publicKeyIn = (storage: HomeStorage): Effect.Effect<string | undefined> =>
  storage.read(IDENTITY_FILE).pipe(
    Effect.map((json) => {
      try {
        const file = JSON.parse(json ?? "") as Partial<IdentityFile>
        return typeof file.publicKey === "string" ? file.publicKey : undefined
      } catch {
        return undefined
      }
    }),
    Effect.orElseSucceed(() => undefined)
  )
