/**
 * The scenarios of test/e2e/invites*.test.ts (one file per database, each well under 30 s). Invite links end to end: `npm run node` started as a user does (PGlite, and Postgres when
 * TEST_DATABASE_URL is set), real `Messenger` clients over real WebSockets. A invites and goes away; B
 * joins from the link alone. Every way a link can be bad gets its own error and never someone else's keys.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { Effect, Either, Queue } from "effect"
import { ed25519 } from "@noble/curves/ed25519.js"
import { bytesToHex } from "@noble/hashes/utils.js"
import { formatLink, inviteIdOf, openInvite, parseLink, sealInvite } from "../../src/client/Invite.ts"
import { inviteSigningString } from "../../src/domain/Invites.ts"
import { generateIdentity, type Identity } from "../../src/client/L2psCrypto.ts"
import * as Messenger from "../../src/client/Messenger.ts"
import { bundleOf, createDevice, verifyBundle } from "../../src/client/secure/DeviceKeys.ts"
import { startE2eNode } from "./helpers.ts"
import type { NodeProcess } from "../support/NodeProcess.ts"

const T = 30_000

const ENV = { INVITES_PER_KEY: "3", INVITE_MAX_TTL: "8 days" }

type M = Messenger.MessengerShape
/** A connected Messenger for `f`, disconnected when `f` is done. */
const using = <A, E>(node: NodeProcess, id: Identity, f: (m: M) => Effect.Effect<A, E>, l2psUid = "default") =>
  Effect.gen(function*() {
    const m = yield* Messenger.make({ serverUrl: node.url, identity: id, l2psUid, reconnect: { maxAttempts: 0 } })
    yield* m.connect
    return yield* f(m)
  }).pipe(Effect.scoped, Effect.runPromise)

/** The reason of a failed join, or "joined". */
const joinOutcome = (node: NodeProcess, link: string, id = generateIdentity()) =>
  using(node, id, (m) => m.join(link).pipe(Effect.either)).then((r) =>
    Either.isRight(r) ? "joined" : r.left._tag === "InviteError" ? r.left.reason : `${r.left._tag}: ${r.left.message}`)

/** Starts a node with `env` (PGlite, or Postgres through DATABASE_URL) and runs every scenario on it. */
export const inviteScenarios = (name: string, env: () => Promise<Record<string, string>>, cleanup: () => Promise<void> = async () => {}) => {
  let started: NodeProcess | undefined
  const current = () => started!
  beforeAll(async () => {
    started = await startE2eNode({ ...ENV, ...(await env()) }, { readyTimeoutMs: 90_000 })
  }, 100_000)
  afterAll(async () => {
    await started?.dispose()
    await cleanup()
  })

  describe(`invite links over a real node (${name})`, () => {
    test("A invites and leaves; B joins from the link alone and gets A's key, name and signed bundle; the one-time link is then used up", async () => {
      const node = current()
      const alice = generateIdentity()
      const bundle = bundleOf(createDevice(alice, { now: Date.now(), oneTimePreKeys: 0, oneTimeKems: 0 }))
      const link = await Effect.gen(function*() {
        const m = yield* Messenger.make({ serverUrl: node.url, identity: alice, reconnect: { maxAttempts: 0 }, inviteBundle: Effect.succeed(bundle) })
        yield* m.connect
        return yield* m.invite({ name: "Alice" })
      }).pipe(Effect.scoped, Effect.runPromise)
      console.log(`invite link (${link.length} characters): ${link}`)
      expect(link.length).toBeLessThan(200)
      expect(link.startsWith(`demos-im:${node.url}#default/`)).toBe(true)

      const started: Array<string> = []
      const bob = generateIdentity()
      const joined = await Effect.gen(function*() {
        const m = yield* Messenger.make({
          serverUrl: node.url,
          identity: bob,
          reconnect: { maxAttempts: 0 },
          startSession: (j) => Effect.sync(() => void started.push(j.publicKey))
        })
        yield* m.connect
        const j = yield* m.join(`  ${link}\n`)
        // Alice is not online: the message waits for her on the node.
        const sent = yield* m.send(j.publicKey, "hello from your link")
        expect(sent.status).toBe("queued")
        return j
      }).pipe(Effect.scoped, Effect.runPromise)
      expect(joined.publicKey).toBe(alice.publicKey)
      expect(joined.name).toBe("Alice")
      expect(joined.bundle).toEqual(bundle)
      expect(joined.oneTime).toBe(true)
      expect(verifyBundle(joined.publicKey, joined.bundle).deviceId).toBe(bundle.deviceId)
      expect(started).toEqual([alice.publicKey])

      expect(await joinOutcome(node, link)).toBe("UsedUp")

      // Alice comes back and finds who joined from the first message.
      const first = await Effect.gen(function*() {
        const m = yield* Messenger.make({ serverUrl: node.url, identity: alice, reconnect: { maxAttempts: 0 } })
        const events = yield* m.subscribe
        yield* m.connect
        for (;;) {
          const e = yield* Queue.take(events)
          if (e._tag === "Received") return e.record
        }
      }).pipe(Effect.scoped, Effect.timeout("10 seconds"), Effect.runPromise)
      expect({ from: first.peer, text: first.text }).toEqual({ from: bob.publicKey, text: "hello from your link" })
    }, T)

    test("20 people join one one-time link at once: exactly one gets it, the others are told it is used up", async () => {
      const node = current()
      const link = await using(node, generateIdentity(), (m) => m.invite({ oneTime: true }))
      const outcomes = await Promise.all(Array.from({ length: 20 }, () => joinOutcome(node, link)))
      expect(outcomes.filter((o) => o === "joined")).toHaveLength(1)
      expect(outcomes.filter((o) => o === "UsedUp")).toHaveLength(19)
    }, T)

    test("a reusable link serves everyone until withdrawn; then it is NotFound", async () => {
      const node = current()
      const alice = generateIdentity()
      const link = await using(node, alice, (m) => m.invite({ oneTime: false, expiresIn: "1 hour" }))
      expect(parseLink(link).oneTime).toBe(false)
      expect(await joinOutcome(node, link)).toBe("joined")
      expect(await joinOutcome(node, link)).toBe("joined")
      // Only its owner withdraws it.
      expect(await using(node, generateIdentity(), (m) => m.withdrawInvite(link))).toBe(false)
      expect(await joinOutcome(node, link)).toBe("joined")
      expect(await using(node, alice, (m) => m.withdrawInvite(link))).toBe(true)
      expect(await joinOutcome(node, link)).toBe("NotFound")
    }, T)

    test("an expired link is Expired, and the node no longer serves its record either", async () => {
      const node = current()
      const alice = generateIdentity()
      const link = await using(node, alice, (m) => m.invite({ oneTime: false, expiresIn: "1 second" }))
      await Bun.sleep(Math.max(0, parseLink(link).expiresAt - Date.now()) + 50)
      expect(await joinOutcome(node, link)).toBe("Expired")
      // Past the client's own check: the node answers nothing for it.
      const inviteId = inviteIdOf(parseLink(link).secret)
      const fetched = await using(node, generateIdentity(), (m) => m.peer.inviteFetch(inviteId).pipe(Effect.either))
      expect(Either.isLeft(fetched) && fetched.left.code).toBe("INVITE_NOT_FOUND")
    }, T)

    test("tampered links: a typo is Malformed; another key or another record is Tampered, never a session with someone else", async () => {
      const node = current()
      const alice = generateIdentity()
      const mallory = generateIdentity()
      const link = await using(node, alice, (m) => m.invite({ oneTime: false }))
      // One character changed in the token: the check catches it before the node is asked.
      const i = link.length - 10
      const typo = link.slice(0, i) + (link[i] === "A" ? "B" : "A") + link.slice(i + 1)
      expect(await joinOutcome(node, typo)).toBe("Malformed")
      expect(await joinOutcome(node, link.slice(0, -5))).toBe("Malformed")
      expect(await joinOutcome(node, "https://example.org/not-an-invite")).toBe("Malformed")

      // The link rewritten to name Mallory's key (check recomputed): Alice's record is not signed by it.
      const parsed = parseLink(link)
      expect(await joinOutcome(node, formatLink({ ...parsed, account: mallory.publicKey }))).toBe("Tampered")

      // Mallory's own record served under a link naming Alice: not signed by Alice.
      const mLink = await using(node, mallory, (m) => m.invite({ oneTime: false }))
      expect(await joinOutcome(node, formatLink({ ...parseLink(mLink), account: alice.publicKey }))).toBe("Tampered")

      // A node answering one of Alice's records for another of her links (both signed by her): caught.
      const mine = [parseLink(await using(node, alice, (m) => m.invite({ oneTime: false }))), parseLink(await using(node, alice, (m) => m.invite({ oneTime: false })))]
      const answer = await using(node, generateIdentity(), (m) => m.peer.inviteFetch(inviteIdOf(mine[1]!.secret)))
      expect(() => openInvite(mine[0]!, answer)).toThrow(expect.objectContaining({ reason: "Tampered" }))
      expect(() => openInvite(mine[0]!, { ...answer, inviteId: inviteIdOf(mine[0]!.secret) })).toThrow(expect.objectContaining({ reason: "Tampered" }))
      expect(openInvite(mine[1]!, answer).name).toBe("")
    }, T)

    test("foreign and own links are refused before anything is fetched", async () => {
      const node = current()
      const alice = generateIdentity()
      const link = await using(node, alice, (m) => m.invite())
      const parsed = parseLink(link)
      expect(await joinOutcome(node, formatLink({ ...parsed, l2psUid: "elsewhere" }))).toBe("Foreign")
      expect(await joinOutcome(node, formatLink({ ...parsed, nodeUrl: "wss://other.example.org:3006" }))).toBe("Foreign")
      expect(await using(node, alice, (m) => m.join(link).pipe(Effect.either)).then((r) => Either.isLeft(r) && r.left._tag === "InviteError" && r.left.reason)).toBe("Own")
      // None of that used the one-time link up.
      expect(await joinOutcome(node, link)).toBe("joined")
    }, T)

    test("the node's bounds: the account's signature, the record's size, the expiry, the number per key", async () => {
      const node = current()
      const alice = generateIdentity()
      const codes = await using(node, alice, (m) => Effect.gen(function*() {
        const now = Date.now()
        const link = { ...parseLink(yield* m.invite({ expiresIn: "1 minute" })), secret: new Uint8Array(16).fill(1) }
        const sealed = sealInvite(alice, link, { name: "A", bundle: bundleOf(createDevice(alice, { now, oneTimePreKeys: 0, oneTimeKems: 0 })) })
        const code = (e: Effect.Effect<unknown, { readonly code: string }>) => Effect.map(Effect.either(e), (r) => Either.isLeft(r) ? r.left.code : "ok")
        return {
          // The same record signed by another key than the session's.
          forged: yield* code(m.peer.inviteStore({
            ...sealed,
            signature: bytesToHex(ed25519.sign(new TextEncoder().encode(inviteSigningString("default", sealed.inviteId, sealed.expiresAt, sealed.oneTime, sealed.record)), generateIdentity().secretKey))
          })),
          wrongExpiry: yield* code(m.peer.inviteStore({ ...sealed, expiresAt: sealed.expiresAt + 1000 })),
          tooLarge: yield* code(m.peer.inviteStore({ ...sealed, record: "A".repeat(8193) })),
          tooFar: yield* code(m.peer.inviteStore({ ...sealed, expiresAt: Math.ceil((now + 9 * 86_400_000) / 1000) * 1000 })),
          past: yield* code(m.peer.inviteStore({ ...sealed, expiresAt: Math.floor((now - 1000) / 1000) * 1000 })),
          second: yield* code(m.peer.inviteStore(sealed)),
          third: yield* code(m.invite()),
          fourth: yield* code(m.invite()),
          taken: yield* code(m.peer.inviteStore(sealed))
        }
      }))
      expect(codes).toEqual({
        forged: "INVALID_SIGNATURE",
        wrongExpiry: "INVALID_SIGNATURE",
        tooLarge: "INVALID_MESSAGE",
        tooFar: "INVALID_MESSAGE",
        past: "INVALID_MESSAGE",
        second: "ok",
        third: "ok",
        fourth: "INVITE_LIMIT",
        taken: "INVITE_LIMIT"
      })
    }, T)
  })
}
