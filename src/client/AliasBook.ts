/**
 * The names a user gives to keys (the chat's `/alias`), in `aliases.json` sealed with the user's
 * secrets (`SealedJson`): a file changed by someone without the passphrase (a name moved to the
 * attacker's key) is reported and not used. The plain list older chats wrote is taken once, when
 * the identity itself is migrated (`SecretStore.loadOrCreate` says `migrated`), and sealed then.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as fs from "node:fs"
import type { Identity } from "./L2psCrypto.ts"
import { keyFor, openJson, sealJson } from "./SealedJson.ts"
import { writePrivate } from "./FolderStorage.ts"

export const ALIAS_FILE = "aliases.json"
const PURPOSE = "aliases"
const KEY = /^[0-9a-f]{64}$/
export const NAME_MAX = 64

export interface AliasBook {
  /** name → 64-hex key */
  readonly names: Record<string, string>
  /** why the file was not used (then `names` is empty and the file is left as it is until a save) */
  readonly problem?: string
}

const valid = (value: unknown): Record<string, string> | undefined => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined
  const out: Record<string, string> = {}
  for (const [name, key] of Object.entries(value)) {
    if (name.length === 0 || name.length > NAME_MAX || typeof key !== "string" || !KEY.test(key)) return undefined
    out[name] = key
  }
  return out
}

export const save = (file: string, identity: Identity, names: Record<string, string>) =>
  writePrivate(file, sealJson(keyFor(identity, PURPOSE), PURPOSE, names))

/** The alias list in `file` (none when missing); `acceptPlain` takes (and seals) a plain older list. */
export const load = (file: string, identity: Identity, options: { readonly acceptPlain: boolean }): Effect.Effect<AliasBook> =>
  Effect.gen(function*() {
    let text: string
    try {
      if (!fs.existsSync(file)) return { names: {} }
      text = fs.readFileSync(file, "utf8")
    } catch (e) {
      return { names: {}, problem: `cannot read ${file}: ${e instanceof Error ? e.message : String(e)}` }
    }
    const opened = openJson(keyFor(identity, PURPOSE), PURPOSE, text)
    if (Either.isRight(opened)) {
      const names = valid(opened.right)
      return names === undefined ? { names: {}, problem: `${file} holds an invalid alias list: not used` } : { names }
    }
    if (opened.left === "unsealed" && options.acceptPlain) {
      const names = valid(JSON.parse(text))
      if (names === undefined) return { names: {}, problem: `${file} holds an invalid alias list: not used` }
      yield* save(file, identity, names).pipe(Effect.ignore)
      return { names }
    }
    return {
      names: {},
      problem: opened.left === "unsealed"
        ? `${file} is not sealed with your identity (written by someone else?): not used`
        : `${file} does not open with your identity (changed or damaged): not used`
    }
  })
