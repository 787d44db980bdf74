/**
 * One message for several devices (docs/PROTOCOL.md, "Several devices"): the node delivers a `send` to
 * every session of the recipient's key, so one message carries one secure envelope per device of the
 * recipient, each labelled with the device it is for. One send keeps one message hash, one receipt,
 * one history entry and one offline-queue slot per message, whatever the number of devices.
 */
import { concat, Reader, varint } from "./Bytes.ts"
import { fail } from "./SecureError.ts"

/** The first byte of a parcel; `0x01` is a single envelope (Envelope.ts). */
export const PARCEL_VERSION = 0x02

/** Parts one parcel may carry: the node's session cap per key is far below it. */
export const MAX_PARTS = 64

/** Whose device a part is for: the recipient's, or one of the sender's own other devices. */
export type Owner = "recipient" | "sender"

export interface Part {
  readonly owner: Owner
  readonly deviceId: number
  readonly envelope: Uint8Array
}

export const encodeParcel = (parts: ReadonlyArray<Part>): Uint8Array => {
  if (parts.length === 0 || parts.length > MAX_PARTS) throw new Error(`a parcel carries 1 to ${MAX_PARTS} parts`)
  return concat(
    Uint8Array.of(PARCEL_VERSION),
    varint(parts.length),
    ...parts.flatMap((p) => [Uint8Array.of(p.owner === "sender" ? 1 : 0), varint(p.deviceId), varint(p.envelope.length), p.envelope])
  )
}

export const decodeParcel = (bytes: Uint8Array): ReadonlyArray<Part> => {
  const r = new Reader(bytes)
  const version = r.u8()
  if (version !== PARCEL_VERSION) fail("Malformed", `not a parcel (version ${version})`)
  const n = r.varint()
  if (n === 0 || n > MAX_PARTS) fail("Malformed", `a parcel carries 1 to ${MAX_PARTS} parts`)
  const parts: Array<Part> = []
  const seen = new Set<string>()
  for (let i = 0; i < n; i++) {
    const o = r.u8()
    if (o > 1) fail("Malformed", `unknown owner ${o}`)
    const owner: Owner = o === 1 ? "sender" : "recipient"
    const deviceId = r.varint()
    if (seen.has(`${owner}/${deviceId}`)) fail("Malformed", `device ${deviceId} named twice`)
    seen.add(`${owner}/${deviceId}`)
    parts.push({ owner, deviceId, envelope: r.take(r.varint()) })
  }
  if (r.rest().length !== 0) fail("Malformed", "bytes after the last part")
  return parts
}
