/**
 * IP addresses as the per-address limits and the trusted-proxy setting need them: parsed to bytes, an
 * IPv4-mapped IPv6 address counted as its IPv4 (a dual-stack listener reports IPv4 peers that way), and
 * IPv6 grouped by /64 (one host is routinely given a whole /64, so a per-address limit on single IPv6
 * addresses limits nothing).
 */

/** An address or a network: `bytes` (4 for IPv4, 16 for IPv6) whose first `prefix` bits count. */
export interface Cidr {
  readonly bytes: Uint8Array
  readonly prefix: number
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/

const parseIpv4 = (text: string): Uint8Array | undefined => {
  const m = IPV4.exec(text)
  if (m === null) return undefined
  const out = new Uint8Array(4)
  for (let i = 0; i < 4; i++) {
    const part = m[i + 1]!
    // "010" reads as octal to some parsers and decimal to others: refused rather than guessed.
    if (part.length > 1 && part[0] === "0") return undefined
    const n = Number(part)
    if (n > 255) return undefined
    out[i] = n
  }
  return out
}

const groupsOf = (text: string): Array<number> | undefined => {
  if (text === "") return []
  const groups: Array<number> = []
  const parts = text.split(":")
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!
    if (i === parts.length - 1 && part.includes(".")) {
      const v4 = parseIpv4(part)
      if (v4 === undefined) return undefined
      groups.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!)
    } else if (HEX_GROUP.test(part)) {
      groups.push(parseInt(part, 16))
    } else {
      return undefined
    }
  }
  return groups
}

const parseIpv6 = (text: string): Uint8Array | undefined => {
  const zone = text.indexOf("%")
  const bare = zone === -1 ? text : text.slice(0, zone)
  const halves = bare.split("::")
  if (halves.length > 2) return undefined
  const head = groupsOf(halves[0]!)
  const tail = halves.length === 2 ? groupsOf(halves[1]!) : []
  if (head === undefined || tail === undefined) return undefined
  const missing = 8 - head.length - tail.length
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined
  const groups = [...head, ...new Array<number>(missing).fill(0), ...tail]
  const out = new Uint8Array(16)
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8
    out[2 * i + 1] = g & 0xff
  })
  return out
}

const isMapped = (b: Uint8Array) => b.length === 16 && b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff

/** The address's bytes (4 or 16), an IPv4-mapped IPv6 address as its IPv4; undefined when it is not one. */
export const parseIp = (text: string): Uint8Array | undefined => {
  if (text.length > 64) return undefined
  const bytes = text.includes(":") ? parseIpv6(text) : parseIpv4(text)
  return bytes !== undefined && isMapped(bytes) ? bytes.slice(12) : bytes
}

const hex = (b: Uint8Array, i: number) => ((b[i]! << 8) | b[i + 1]!).toString(16)

/** Dotted IPv4, or the eight IPv6 groups in lower-case hex without compression. */
export const formatIp = (bytes: Uint8Array): string =>
  bytes.length === 4
    ? bytes.join(".")
    : Array.from({ length: 8 }, (_, i) => hex(bytes, 2 * i)).join(":")

/**
 * What the per-address limits count against: the IPv4 address, the /64 of an IPv6 one
 * (`2001:db8:0:1::/64`), or the text itself when it is no address (a test's name for a peer).
 */
export const addressGroup = (address: string): string => {
  const b = parseIp(address)
  if (b === undefined) return address
  if (b.length === 4) return formatIp(b)
  return `${hex(b, 0)}:${hex(b, 2)}:${hex(b, 4)}:${hex(b, 6)}::/64`
}

/** `10.0.0.0/8`, `2001:db8::/32`, or one address (`127.0.0.1`, `::1`); undefined when malformed. */
export const parseCidr = (text: string): Cidr | undefined => {
  const slash = text.indexOf("/")
  const addressText = slash === -1 ? text : text.slice(0, slash)
  const raw = addressText.includes(":") ? parseIpv6(addressText) : parseIpv4(addressText)
  if (raw === undefined) return undefined
  let prefix = raw.length * 8
  if (slash !== -1) {
    const p = text.slice(slash + 1)
    if (!/^\d{1,3}$/.test(p) || Number(p) > prefix) return undefined
    prefix = Number(p)
  }
  // A mapped network names IPv4 addresses, which is how parseIp gives them.
  if (isMapped(raw) && prefix >= 96) return { bytes: raw.slice(12), prefix: prefix - 96 }
  return { bytes: raw, prefix }
}

export const cidrContains = (cidr: Cidr, address: Uint8Array): boolean => {
  if (cidr.bytes.length !== address.length) return false
  const full = cidr.prefix >> 3
  for (let i = 0; i < full; i++) if (cidr.bytes[i] !== address[i]) return false
  const rest = cidr.prefix & 7
  if (rest === 0) return true
  const mask = (0xff << (8 - rest)) & 0xff
  return (cidr.bytes[full]! & mask) === (address[full]! & mask)
}
