/** The invite link's format and the record's seal, without a node (end to end: test/e2e/invites.test.ts). */
import { describe, expect, test } from "bun:test"
import { checkJoinable, formatLink, type InviteLink, openInvite, parseLink, sealInvite } from "../../src/client/Invite.ts"
import { generateIdentity } from "../../src/client/L2psCrypto.ts"
import { bundleOf, createDevice } from "../../src/client/secure/DeviceKeys.ts"

const alice = generateIdentity()
const link: InviteLink = {
  nodeUrl: "wss://im.example.org:3006/im",
  l2psUid: "team chat/éte",
  account: alice.publicKey,
  secret: new Uint8Array(16).map((_, i) => i * 13),
  expiresAt: 1_900_000_000_000,
  oneTime: true
}
const reason = (f: () => unknown) => {
  try {
    f()
    return "ok"
  } catch (e) {
    return (e as { reason?: string }).reason ?? String(e)
  }
}

describe("invite links", () => {
  test("round trip, with a path in the URL and a network that needs escaping; short", () => {
    const text = formatLink(link)
    expect(parseLink(text)).toEqual(link)
    expect(parseLink(`  <${text}>\n`)).toEqual(link)
    expect(parseLink(formatLink({ ...link, oneTime: false })).oneTime).toBe(false)
    const plain = formatLink({ ...link, nodeUrl: "wss://im.example.org", l2psUid: "default" })
    expect(plain.length).toBe("demos-im:wss://im.example.org#default/".length + 75)
    expect(plain.length).toBeLessThan(200)
  })

  test("any one character of the token changed, the link cut short or lengthened: Malformed", () => {
    const text = formatLink(link)
    const start = text.lastIndexOf("/") + 1
    for (let i = start; i < text.length; i++) {
      const c = text[i] === "A" ? "B" : "A"
      expect({ i, r: reason(() => parseLink(text.slice(0, i) + c + text.slice(i + 1))) }).toEqual({ i, r: "Malformed" })
    }
    // Each of the last character's spare bits too (the check covers bytes, the spelling is checked apart).
    const last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".indexOf(text.at(-1)!)
    for (const spare of [1, 2]) {
      const c = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last ^ spare]!
      expect(reason(() => parseLink(text.slice(0, -1) + c))).toBe("Malformed")
    }
    expect(reason(() => parseLink(text.slice(0, -1)))).toBe("Malformed")
    expect(reason(() => parseLink(`${text}A`))).toBe("Malformed")
    // The URL and the network are under the check too.
    expect(reason(() => parseLink(text.replace("im.example.org", "im.example.com")))).toBe("Malformed")
    expect(reason(() => parseLink(text.replace("team", "tean")))).toBe("Malformed")
    expect(reason(() => parseLink("demos-im:ws://x#default/"))).toBe("Malformed")
  })

  test("the sealed record opens only with its link: another secret, key, expiry or flag is Tampered", () => {
    const bundle = bundleOf(createDevice(alice, { now: 0, oneTimePreKeys: 0, oneTimeKems: 0 }))
    const sealed = sealInvite(alice, link, { name: "Alice", bundle })
    expect(openInvite(link, sealed)).toEqual({ name: "Alice", bundle })
    expect(sealed.record).not.toContain(bundle.signedPreKey.publicKey)
    const other = generateIdentity()
    expect(reason(() => openInvite({ ...link, account: other.publicKey }, sealed))).toBe("Tampered")
    expect(reason(() => openInvite({ ...link, secret: new Uint8Array(16) }, sealed))).toBe("Tampered")
    expect(reason(() => openInvite(link, { ...sealed, expiresAt: sealed.expiresAt + 1000 }))).toBe("Tampered")
    expect(reason(() => openInvite(link, { ...sealed, oneTime: false }))).toBe("Tampered")
    const flipped = sealed.record.slice(0, 20) + (sealed.record[20] === "A" ? "B" : "A") + sealed.record.slice(21)
    expect(reason(() => openInvite(link, { ...sealed, record: flipped }))).toBe("Tampered")
    // A record signed by the account but carrying someone else's device keys.
    const foreignBundle = bundleOf(createDevice(other, { now: 0, oneTimePreKeys: 0, oneTimeKems: 0 }))
    expect(reason(() => openInvite(link, sealInvite(alice, link, { name: "Alice", bundle: foreignBundle })))).toBe("Tampered")
  })

  test("joinable: node and network, own link, expiry", () => {
    const here = { nodeUrl: "wss://IM.example.org:3006/im/", l2psUid: link.l2psUid, account: "b".repeat(64) }
    expect(reason(() => checkJoinable(link, here, link.expiresAt - 1))).toBe("ok")
    expect(reason(() => checkJoinable(link, here, link.expiresAt))).toBe("Expired")
    expect(reason(() => checkJoinable(link, { ...here, l2psUid: "default" }, 0))).toBe("Foreign")
    expect(reason(() => checkJoinable(link, { ...here, nodeUrl: "wss://im.example.org:3007/im" }, 0))).toBe("Foreign")
    expect(reason(() => checkJoinable(link, { ...here, account: alice.publicKey.toUpperCase() }, 0))).toBe("Own")
  })
})
