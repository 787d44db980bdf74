/**
 * Security review finding 10 on TestClock: sockets that never register (and answer every ping) used to
 * keep their slot forever. Each now has REGISTRATION_TIMEOUT to register, on both servers, and together
 * they may hold only part of MAX_CONNECTIONS (RESERVED_CONNECTIONS_PERCENT is kept for registered ones).
 */
import { describe, expect, test } from "bun:test"
import { Clock, Effect, Fiber, Option, TestClock, TestServices } from "effect"
import type { MemorySocket } from "../../src/transport/MemoryTransport.ts"
import { legacyClient, registered as legacyRegistered } from "../legacy/LegacyTestClient.ts"
import { peer, scenario } from "../support/TestNode.ts"

const TIMEOUT = 10_000
const timedOut = { code: 4008, reason: "Not registered in time" }
const busy = { code: 1013, reason: "Server busy: try again later" }

// `closed` is cached, an interrupted wait included: one fiber per socket waits for it.
const watchers = new Map<MemorySocket, Fiber.RuntimeFiber<{ readonly code: number; readonly reason: string }>>()
const watch = (socket: MemorySocket) =>
  Effect.suspend(() => {
    const known = watchers.get(socket)
    if (known !== undefined) return Effect.succeed(known)
    return Effect.tap(Effect.fork(socket.closed), (f) => watchers.set(socket, f))
  })
const closedWith = (socket: MemorySocket) =>
  Effect.flatMap(watch(socket), (f) => TestServices.provideLive(Effect.orDie(Effect.timeout(Fiber.join(f), 3000))))
/** Whether the socket is still open a moment (live time) after the clock last moved. */
const isOpen = (socket: MemorySocket) =>
  Effect.flatMap(watch(socket), (f) =>
    TestServices.provideLive(Effect.sleep(30)).pipe(Effect.zipRight(Fiber.poll(f)), Effect.map(Option.isNone)))

describe("registration deadline", () => {
  test("a socket that has not registered REGISTRATION_TIMEOUT after it opened is closed (4008), on both servers; registered ones stay", () =>
    // The presence sweep (a tick a second) is not what this is about: spaced out, the hour below is
    // not stepped through second by second.
    scenario({ registrationTimeoutMillis: TIMEOUT, presenceSweepMillis: 86_400_000 }, Effect.gen(function*() {
      const t0 = yield* Clock.currentTimeMillis
      const idle = yield* peer()
      const refused = yield* peer()
      const member = yield* peer()
      const legacyIdle = yield* legacyClient()
      // A refused registration does not count.
      expect((yield* refused.register({ at: t0 - 3_600_000 })).payload.code).toBe("INVALID_PROOF")
      expect((yield* member.register()).type).toBe("registered")
      const legacyMember = yield* legacyRegistered("bob")

      yield* TestClock.setTime(t0 + TIMEOUT - 1)
      for (const s of [idle, refused, member]) expect(yield* isOpen(s.socket)).toBe(true)
      expect(yield* isOpen(legacyIdle.socket)).toBe(true)
      yield* TestClock.setTime(t0 + TIMEOUT)
      expect(yield* closedWith(idle.socket)).toEqual(timedOut)
      expect(yield* closedWith(refused.socket)).toEqual(timedOut)
      expect(yield* closedWith(legacyIdle.socket)).toEqual(timedOut)

      // Registered sessions have no deadline.
      yield* TestClock.adjust("1 hour")
      expect(yield* isOpen(member.socket)).toBe(true)
      expect((yield* member.request("discover", {})).type).toBe("discover_response")
      expect(yield* legacyMember.request("discover", {})).toMatchObject({ type: "discover" })
      // A socket opened later gets its own full deadline.
      const late = yield* peer()
      yield* TestClock.adjust(TIMEOUT - 2)
      expect(yield* isOpen(late.socket)).toBe(true)
      // register() moves the clock 1 ms: registered 1 ms before its deadline.
      expect((yield* late.register()).type).toBe("registered")
      yield* TestClock.adjust(TIMEOUT)
      expect(yield* isOpen(late.socket)).toBe(true)
    })), 60_000)

  test("sockets not yet registered take at most MAX_CONNECTIONS less the reserved share; past it 1013, registered sessions use the rest", () =>
    scenario({ registrationTimeoutMillis: TIMEOUT, maxConnections: 4, reservedConnectionsPercent: 50 }, Effect.gen(function*() {
      // Distinct addresses: the per-address cap is not what refuses them.
      const a = yield* peer(undefined, "10.0.0.1")
      const b = yield* peer(undefined, "10.0.0.2")
      const c = yield* peer(undefined, "10.0.0.3")
      expect(yield* closedWith(c.socket)).toEqual(busy)
      // A registration frees its socket's place among the unregistered.
      expect((yield* a.register()).type).toBe("registered")
      const d = yield* peer(undefined, "10.0.0.4")
      expect(yield* isOpen(d.socket)).toBe(true)
      expect(yield* closedWith((yield* peer(undefined, "10.0.0.5")).socket)).toEqual(busy)
      expect((yield* b.register()).type).toBe("registered")
      expect((yield* d.register()).type).toBe("registered")
      // Three registered, and still room for two unregistered sockets, not three.
      const e = yield* peer(undefined, "10.0.0.6")
      const f = yield* peer(undefined, "10.0.0.7")
      expect(yield* closedWith((yield* peer(undefined, "10.0.0.8")).socket)).toEqual(busy)
      for (const s of [a, b, d, e, f]) expect(yield* isOpen(s.socket)).toBe(true)
      // Their deadline gives the place back.
      yield* TestClock.adjust(TIMEOUT)
      expect(yield* closedWith(e.socket)).toEqual(timedOut)
      expect(yield* closedWith(f.socket)).toEqual(timedOut)
      const g = yield* peer(undefined, "10.0.0.8")
      expect((yield* g.register()).type).toBe("registered")
      // The legacy server has its own share.
      const l1 = yield* legacyClient(undefined, "10.1.0.1")
      const l2 = yield* legacyClient(undefined, "10.1.0.2")
      const l3 = yield* legacyClient(undefined, "10.1.0.3")
      expect(yield* isOpen(l1.socket)).toBe(true)
      expect(yield* isOpen(l2.socket)).toBe(true)
      expect(yield* closedWith(l3.socket)).toEqual(busy)
    })), 60_000)
})

describe("refused sockets hold nothing", () => {
  test("sockets refused by the per-address cap take no place among the unregistered", () =>
    scenario({ registrationTimeoutMillis: TIMEOUT, maxConnections: 4, reservedConnectionsPercent: 50, maxConnectionsPerAddress: 1 }, Effect.gen(function*() {
      const a = yield* peer(undefined, "10.0.0.1")
      for (let i = 0; i < 3; i++) {
        expect(yield* closedWith((yield* peer(undefined, "10.0.0.1")).socket)).toEqual({ code: 1008, reason: "Too many connections from this address" })
      }
      const b = yield* peer(undefined, "10.0.0.2")
      expect(yield* isOpen(a.socket)).toBe(true)
      expect(yield* isOpen(b.socket)).toBe(true)
      expect(yield* closedWith((yield* peer(undefined, "10.0.0.3")).socket)).toEqual(busy)
    })), 60_000)
})

describe("per-address limits by network", () => {
  test("an IPv6 /64 is one address for MAX_CONNECTIONS_PER_ADDRESS and the registration bucket; an IPv4-mapped address is its IPv4", () =>
    scenario({ maxConnectionsPerAddress: 2, registrationBurstPerAddress: 1, registrationRatePerAddress: 1 }, Effect.gen(function*() {
      const a = yield* peer(undefined, "2001:db8:1:2::1")
      const b = yield* peer(undefined, "2001:db8:1:2:ffff::2")
      expect(yield* closedWith((yield* peer(undefined, "2001:db8:1:2::3")).socket)).toEqual({ code: 1008, reason: "Too many connections from this address" })
      // The next /64 is another address.
      const c = yield* peer(undefined, "2001:db8:1:3::1")
      expect((yield* a.register()).type).toBe("registered")
      expect((yield* b.register()).payload).toEqual({ code: "RATE_LIMITED", message: "Too many registrations from this address" })
      expect((yield* c.register()).type).toBe("registered")
      yield* peer(undefined, "198.51.100.7")
      yield* peer(undefined, "::ffff:198.51.100.7")
      expect(yield* closedWith((yield* peer(undefined, "::ffff:c633:6407")).socket)).toEqual({ code: 1008, reason: "Too many connections from this address" })
    })), 60_000)
})

