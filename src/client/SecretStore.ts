/**
 * A client's keys on disk, encrypted at rest: `identity.json` holds the public key in clear and the
 * secrets (the ed25519 secret key for L2PS, the 128-byte master seed of the legacy ML-KEM / ML-DSA
 * keys) sealed with AES-256-GCM under a key derived from a passphrase with scrypt. The public key is
 * the AAD, so a file whose clear key was swapped does not open.
 */
import { gcm } from "@noble/ciphers/aes.js"
import { scryptAsync } from "@noble/hashes/scrypt.js"
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { generateIdentity, type Identity, identityFromSecret } from "./L2psCrypto.ts"
import { fromBase64, newMasterSeed, secureRandom, toBase64 } from "./MlKemAes.ts"

export class SecretStoreError extends Data.TaggedError("SecretStoreError")<{
  readonly reason: "WrongPassphrase" | "Corrupt" | "Io"
  readonly message: string
}> {}

/** scrypt cost; the default (N = 2^17, r = 8, p = 1) takes about 0.4 s and 128 MiB. */
export interface KdfParams {
  readonly N: number
  readonly r: number
  readonly p: number
}

export const defaultKdf: KdfParams = { N: 2 ** 17, r: 8, p: 1 }

/** Everything a client keeps secret. */
export interface Secrets {
  readonly identity: Identity
  /** The legacy client's master seed (see `legacyKeysFromSeed`). */
  readonly masterSeed: Uint8Array
}

interface IdentityFile {
  readonly version: 1
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

const io = (message: string) => (e: unknown) =>
  new SecretStoreError({ reason: "Io", message: `${message}: ${e instanceof Error ? e.message : String(e)}` })

/** New secrets from the platform CSPRNG. */
export const generateSecrets = (): Secrets => ({ identity: generateIdentity(), masterSeed: newMasterSeed() })

/** Seals `secrets` into the JSON of an identity file. */
export const seal = (secrets: Secrets, passphrase: string, kdf: KdfParams = defaultKdf) =>
  Effect.gen(function*() {
    const salt = secureRandom(16)
    const nonce = secureRandom(12)
    const key = yield* passphraseKey(passphrase, salt, kdf)
    const plain = encoder.encode(JSON.stringify({ secretKey: bytesToHex(secrets.identity.secretKey), masterSeed: bytesToHex(secrets.masterSeed) }))
    const file: IdentityFile = {
      version: 1,
      publicKey: secrets.identity.publicKey,
      kdf: { name: "scrypt", ...kdf, salt: toBase64(salt) },
      cipher: "aes-256-gcm",
      nonce: toBase64(nonce),
      ciphertext: toBase64(gcm(key, nonce, encoder.encode(secrets.identity.publicKey)).encrypt(plain))
    }
    return JSON.stringify(file, null, 2)
  })

/** Opens the JSON of an identity file; `WrongPassphrase` when it does not decrypt. */
export const unseal = (json: string, passphrase: string): Effect.Effect<Secrets, SecretStoreError> =>
  Effect.gen(function*() {
    const corrupt = (why: string) => new SecretStoreError({ reason: "Corrupt", message: `identity file: ${why}` })
    const file = yield* Effect.try({ try: () => JSON.parse(json) as IdentityFile, catch: () => corrupt("not JSON") })
    if (file?.version !== 1 || file.kdf?.name !== "scrypt" || file.cipher !== "aes-256-gcm") return yield* corrupt("unknown format")
    const key = yield* passphraseKey(passphrase, fromBase64(file.kdf.salt), { N: file.kdf.N, r: file.kdf.r, p: file.kdf.p })
    const plain = yield* Effect.try({
      try: () => gcm(key, fromBase64(file.nonce), encoder.encode(file.publicKey)).decrypt(fromBase64(file.ciphertext)),
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

/** Writes atomically (temp file + rename), readable by the owner only. */
export const writePrivate = (file: string, text: string) =>
  Effect.try({
    try: () => {
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
      const tmp = `${file}.${process.pid}.tmp`
      fs.writeFileSync(tmp, text, { mode: 0o600 })
      fs.renameSync(tmp, file)
    },
    catch: io(`cannot write ${file}`)
  })

/** The secrets in `home`, created (and saved) on first use. */
export const loadOrCreate = (home: string, passphrase: string, kdf: KdfParams = defaultKdf) =>
  Effect.gen(function*() {
    const file = path.join(home, IDENTITY_FILE)
    if (fs.existsSync(file)) {
      const json = yield* Effect.try({ try: () => fs.readFileSync(file, "utf8"), catch: io(`cannot read ${file}`) })
      return { secrets: yield* unseal(json, passphrase), created: false }
    }
    const secrets = generateSecrets()
    yield* writePrivate(file, yield* seal(secrets, passphrase, kdf))
    return { secrets, created: true }
  })

/** The public key of the identity in `home`, without the passphrase (undefined when there is none). */
export const publicKeyIn = (home: string): string | undefined => {
  try {
    const file = JSON.parse(fs.readFileSync(path.join(home, IDENTITY_FILE), "utf8")) as Partial<IdentityFile>
    return typeof file.publicKey === "string" ? file.publicKey : undefined
  } catch {
    return undefined
  }
}
