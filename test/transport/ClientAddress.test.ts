/**
 * Security review finding 10, as units: what the per-address limits count a remote address as (IPv6
 * by /64, IPv4-mapped IPv6 as IPv4), and which address X-Forwarded-For gives (only from trusted
 * proxies, the right-most untrusted hop).
 */
import { describe, expect, test } from "bun:test"
import { clientAddress, MAX_HOPS, parseTrustedProxies } from "../../src/domain/ClientAddress.ts"
import { addressGroup, cidrContains, parseCidr, parseIp } from "../../src/domain/IpAddress.ts"

const proxies = (text: string) => {
  const { proxies, bad } = parseTrustedProxies(text)
  expect(bad).toBeUndefined()
  return proxies
}

describe("addressGroup", () => {
  test("every address of one IPv6 /64 is one group; the next /64 is another", () => {
    const group = addressGroup("2001:db8:1:2::1")
    expect(group).toBe("2001:db8:1:2::/64")
    for (const a of ["2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:0db8:0001:0002:0:0:0:2", "2001:DB8:1:2::abcd", "2001:db8:1:2::1%eth0"]) {
      expect(addressGroup(a)).toBe(group)
    }
    expect(addressGroup("2001:db8:1:3::1")).toBe("2001:db8:1:3::/64")
    expect(addressGroup("::1")).toBe("0:0:0:0::/64")
  })

  test("an IPv4-mapped IPv6 address counts as its IPv4, in either spelling", () => {
    expect(addressGroup("::ffff:198.51.100.7")).toBe("198.51.100.7")
    expect(addressGroup("::ffff:c633:6407")).toBe("198.51.100.7")
    expect(addressGroup("0:0:0:0:0:ffff:198.51.100.7")).toBe("198.51.100.7")
    expect(addressGroup("198.51.100.7")).toBe("198.51.100.7")
  })

  test("what is no address is counted as itself", () => {
    for (const a of ["unknown", "memory", "1.2.3", "1.2.3.256", "01.2.3.4", "1::2::3", "2001:db8::1::", "12345::", ""]) {
      expect(parseIp(a)).toBeUndefined()
      expect(addressGroup(a)).toBe(a)
    }
    expect(parseIp("1:2:3:4:5:6:7:8:9")).toBeUndefined()
    expect(parseIp("1:2:3:4:5:6:7::8")).toBeUndefined()
    expect(parseIp("x".repeat(100))).toBeUndefined()
  })
})

describe("CIDR", () => {
  test("prefixes of both families, single addresses, mapped networks", () => {
    const ten = parseCidr("10.0.0.0/8")!
    expect(cidrContains(ten, parseIp("10.255.1.2")!)).toBe(true)
    expect(cidrContains(ten, parseIp("11.0.0.1")!)).toBe(false)
    const odd = parseCidr("192.168.4.0/22")!
    expect(cidrContains(odd, parseIp("192.168.7.255")!)).toBe(true)
    expect(cidrContains(odd, parseIp("192.168.8.0")!)).toBe(false)
    const v6 = parseCidr("2001:db8::/32")!
    expect(cidrContains(v6, parseIp("2001:db8:ffff::1")!)).toBe(true)
    expect(cidrContains(v6, parseIp("2001:db9::1")!)).toBe(false)
    // Families never match each other.
    expect(cidrContains(parseCidr("::/0")!, parseIp("1.2.3.4")!)).toBe(false)
    expect(cidrContains(parseCidr("127.0.0.1")!, parseIp("127.0.0.1")!)).toBe(true)
    expect(cidrContains(parseCidr("127.0.0.1")!, parseIp("127.0.0.2")!)).toBe(false)
    expect(cidrContains(parseCidr("::ffff:10.0.0.0/104")!, parseIp("::ffff:10.1.2.3")!)).toBe(true)
    for (const bad of ["10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/-1", "foo", "10.0.0.0/8/8"]) {
      expect(parseCidr(bad)).toBeUndefined()
    }
  })

  test("TRUSTED_PROXIES: a comma-separated list; the first bad entry is named", () => {
    expect(parseTrustedProxies("").proxies).toEqual([])
    expect(parseTrustedProxies(" 10.0.0.0/8 , ::1 ").proxies.length).toBe(2)
    expect(parseTrustedProxies("10.0.0.0/8,nope,::1").bad).toBe("nope")
  })
})

describe("clientAddress", () => {
  const trusted = proxies("10.0.0.0/8, 2001:db8:ffff::/48")

  test("without trusted proxies, or from a peer that is not one, X-Forwarded-For is ignored", () => {
    expect(clientAddress("203.0.113.9", "198.51.100.1", [])).toBe("203.0.113.9")
    expect(clientAddress("203.0.113.9", "198.51.100.1", trusted)).toBe("203.0.113.9")
    expect(clientAddress("203.0.113.9", "10.0.0.1", trusted)).toBe("203.0.113.9")
  })

  test("from a trusted proxy: the right-most hop that is not a trusted proxy", () => {
    expect(clientAddress("10.0.0.1", "198.51.100.1", trusted)).toBe("198.51.100.1")
    // The client wrote "1.1.1.1" itself; the proxy appended the address it saw.
    expect(clientAddress("10.0.0.1", "1.1.1.1, 198.51.100.1", trusted)).toBe("198.51.100.1")
    // Two trusted proxies in a row.
    expect(clientAddress("10.0.0.1", "1.1.1.1, 198.51.100.1, 10.2.3.4", trusted)).toBe("198.51.100.1")
    expect(clientAddress("2001:db8:ffff::5", "2001:db8:1::9", trusted)).toBe("2001:db8:1:0:0:0:0:9")
    // A mapped hop is its IPv4; hops with ports, as some proxies write them.
    expect(clientAddress("::ffff:10.0.0.1", "::ffff:198.51.100.1", trusted)).toBe("198.51.100.1")
    expect(clientAddress("10.0.0.1", "198.51.100.1:4431", trusted)).toBe("198.51.100.1")
    expect(clientAddress("10.0.0.1", "[2001:db8:1::9]:4431", trusted)).toBe("2001:db8:1:0:0:0:0:9")
  })

  test("a hop that is no address stops at the trusted hop that forwarded it; only the last MAX_HOPS are read", () => {
    expect(clientAddress("10.0.0.1", "198.51.100.1, garbage", trusted)).toBe("10.0.0.1")
    expect(clientAddress("10.0.0.1", "198.51.100.1, unknown, 10.0.0.2", trusted)).toBe("10.0.0.2")
    expect(clientAddress("10.0.0.1", "", trusted)).toBe("10.0.0.1")
    expect(clientAddress("10.0.0.1", null, trusted)).toBe("10.0.0.1")
    // All trusted: the left-most read.
    expect(clientAddress("10.0.0.1", "10.0.0.2, 10.0.0.3", trusted)).toBe("10.0.0.2")
    const long = ["198.51.100.1", ...Array.from({ length: MAX_HOPS + 5 }, (_, i) => `10.0.1.${i}`)].join(",")
    expect(clientAddress("10.0.0.1", long, trusted)).toBe(`10.0.1.5`)
  })
})
