/**
 * Device and session states to JSON and back, for the encrypted secrets store: byte arrays become
 * `{"$bytes": "<hex>"}`, everything else is already plain data. JSON strings cannot be erased, so the
 * text belongs only inside the store's encryption.
 */
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js"
import type { DeviceState } from "./DeviceKeys.ts"
import type { SessionState } from "./Ratchet.ts"
import { fail } from "./SecureError.ts"

const HEX = /^(?:[0-9a-f]{2})*$/

const encodeValue = (value: unknown): unknown => {
  if (value instanceof Uint8Array) return { $bytes: bytesToHex(value) }
  if (Array.isArray(value)) return value.map(encodeValue)
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = encodeValue(v)
    return out
  }
  return value
}

const decodeValue = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(decodeValue)
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value)
    if (entries.length === 1 && entries[0]![0] === "$bytes") {
      const hex = entries[0]![1]
      if (typeof hex !== "string" || !HEX.test(hex)) return fail("Malformed", "stored state: bad bytes")
      return hexToBytes(hex)
    }
    const out: Record<string, unknown> = {}
    for (const [k, v] of entries) out[k] = decodeValue(v)
    return out
  }
  return value
}

const parse = (text: string): unknown => {
  try {
    return decodeValue(JSON.parse(text))
  } catch (e) {
    return fail("Malformed", `stored state does not parse: ${e instanceof Error ? e.message : String(e)}`)
  }
}

const versioned = (value: unknown, what: string) => {
  if (value === null || typeof value !== "object" || (value as { version?: unknown }).version !== 1) fail("Malformed", `stored ${what} state: unknown version`)
  return value
}

export const encodeSession = (state: SessionState): string => JSON.stringify(encodeValue(state))
export const decodeSession = (text: string): SessionState => versioned(parse(text), "session") as SessionState
export const encodeDevice = (state: DeviceState): string => JSON.stringify(encodeValue(state))
export const decodeDevice = (text: string): DeviceState => versioned(parse(text), "device") as DeviceState
