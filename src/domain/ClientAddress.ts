import { type Cidr, cidrContains, formatIp, parseCidr, parseIp } from "./IpAddress.ts"

/**
 * Hops of `X-Forwarded-For` examined, from the right: a real chain of proxies is a few hops long, and
 * the header is the client's to fill.
 */
export const MAX_HOPS = 16

/** A hop as proxies write it: an address, `[v6]:port` or `v4:port`. */
const hopAddress = (hop: string): Uint8Array | undefined => {
  let text = hop.trim()
  if (text.startsWith("[")) {
    const end = text.indexOf("]")
    if (end === -1) return undefined
    text = text.slice(1, end)
  } else if (text.indexOf(":") !== -1 && text.indexOf(":") === text.lastIndexOf(":") && text.includes(".")) {
    text = text.slice(0, text.indexOf(":"))
  }
  return parseIp(text)
}

const trusted = (proxies: ReadonlyArray<Cidr>, address: Uint8Array) => proxies.some((c) => cidrContains(c, address))

/**
 * The address a connection counts as. Without trusted proxies, or from a peer that is not one, it is
 * the peer's and `X-Forwarded-For` is ignored (anyone can write it). From a trusted proxy it is the
 * right-most hop of the header that is not itself a trusted proxy: the hops left of it were written
 * by whoever the first untrusted hop was, so they prove nothing. A hop that is no address stops the
 * walk at the trusted hop that forwarded it.
 */
export const clientAddress = (peer: string, forwardedFor: string | null, proxies: ReadonlyArray<Cidr>): string => {
  if (proxies.length === 0 || forwardedFor === null) return peer
  const peerBytes = parseIp(peer)
  if (peerBytes === undefined || !trusted(proxies, peerBytes)) return peer
  const hops = forwardedFor.split(",")
  let current = peerBytes
  for (let i = hops.length - 1; i >= 0 && i >= hops.length - MAX_HOPS; i--) {
    const hop = hopAddress(hops[i]!)
    if (hop === undefined) break
    current = hop
    if (!trusted(proxies, hop)) break
  }
  return formatIp(current)
}

/** `TRUSTED_PROXIES`: comma-separated addresses or CIDRs; the first malformed entry, when there is one. */
export const parseTrustedProxies = (text: string): { readonly proxies: ReadonlyArray<Cidr>; readonly bad?: string } => {
  const proxies: Array<Cidr> = []
  for (const entry of text.split(",").map((s) => s.trim()).filter((s) => s.length > 0)) {
    const cidr = parseCidr(entry)
    if (cidr === undefined) return { proxies, bad: entry }
    proxies.push(cidr)
  }
  return { proxies }
}
