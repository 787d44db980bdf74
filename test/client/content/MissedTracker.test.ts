import { describe, expect, test } from "bun:test"
import fc from "fast-check"
import * as Content from "../../../src/client/content/Content.ts"
import * as ContentType from "../../../src/client/content/ContentType.ts"
import * as MissedTracker from "../../../src/client/content/MissedTracker.ts"

const registry = Content.make()

/** What a sender device writes: envelopes 1..n, each linked to the one before. */
const stream = (n: number, tag = "m") => {
  const out: Array<Uint8Array> = []
  let previous = Content.NO_PREVIOUS
  for (let position = 1; position <= n; position++) {
    const bytes = registry.encode(ContentType.text, { text: `${tag}${position}` }, { position, previous })
    out.push(bytes)
    previous = Content.digest(bytes)
  }
  return out
}

const feed = (t: MissedTracker.MissedTracker, bytes: Uint8Array, now: number, peer = "bob", device = 1) => {
  const d = registry.decode(bytes)
  return t.observe(peer, device, d.link!, d.digest, now)
}

const net = (events: ReadonlyArray<MissedTracker.Event>) =>
  events.reduce((sum, e) => sum + (e._tag === "Missed" ? e.count : e._tag === "Recovered" ? -e.count : 0), 0)

describe("missed-message detection", () => {
  test("a gap is reported once it has stayed open for the grace period, and its filling is Recovered", () => {
    const t = MissedTracker.make({ graceMs: 1_000 })
    const m = stream(4)
    expect(feed(t, m[0]!, 0)).toEqual([])
    expect(feed(t, m[2]!, 10)).toEqual([])
    expect(feed(t, m[3]!, 20)).toEqual([])
    expect(t.settle(1_009)).toEqual([])
    expect(t.settle(1_010)).toEqual([{ _tag: "Missed", peer: "bob", device: 1, count: 1 }])
    expect(t.settle(5_000)).toEqual([])
    expect(t.missing("bob", 1)).toEqual({ reported: 1, pending: 0 })
    expect(feed(t, m[1]!, 6_000)).toEqual([{ _tag: "Recovered", peer: "bob", device: 1, count: 1 }])
    expect(t.missing("bob", 1)).toEqual({ reported: 0, pending: 0 })
  })

  test("a reordered delivery reports nothing once both arrive within the grace period", () => {
    const t = MissedTracker.make({ graceMs: 1_000 })
    const m = stream(3)
    const events = [...feed(t, m[0]!, 0), ...feed(t, m[2]!, 1), ...t.settle(500), ...feed(t, m[1]!, 900), ...t.settle(10_000)]
    expect(events).toEqual([])
  })

  test("devices of one peer, and peers, are tracked apart", () => {
    const t = MissedTracker.make({ graceMs: 0 })
    const a = stream(3, "a")
    feed(t, a[0]!, 0, "bob", 1)
    feed(t, a[2]!, 0, "bob", 2)
    feed(t, a[0]!, 0, "carol", 1)
    expect(t.settle(0)).toEqual([{ _tag: "Missed", peer: "bob", device: 2, count: 2 }])
  })

  test("a message that does not follow the one before it, or stands in for one received, is Forked", () => {
    const t = MissedTracker.make()
    const m = stream(3)
    const other = stream(3, "x")
    feed(t, m[0]!, 0)
    feed(t, m[1]!, 0)
    expect(feed(t, other[2]!, 0)).toEqual([{ _tag: "Forked", peer: "bob", device: 1, position: 3 }])
    expect(feed(t, other[1]!, 0)).toEqual([{ _tag: "Forked", peer: "bob", device: 1, position: 2 }])
    expect(feed(t, m[1]!, 0)).toEqual([])
  })

  test("property: after any drops and reorderings, the missed count less the recovered is what was dropped below the last one received", () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 60 }).chain((n) =>
        fc.tuple(
          fc.constant(n),
          fc.array(fc.boolean(), { minLength: n, maxLength: n }),
          fc.array(fc.integer({ min: 0, max: 2_000 }), { minLength: n, maxLength: n }),
          fc.array(fc.integer({ min: 0, max: 3_000 }), { maxLength: 10 })
        )
      ),
      ([n, dropped, delays, settles]) => {
        const t = MissedTracker.make({ graceMs: 1_000 })
        const m = stream(n)
        const arrivals = m.map((bytes, i) => ({ bytes, i, at: i * 10 + delays[i]! })).filter((a) => !dropped[a.i])
        const steps = [...arrivals.map((a) => ({ at: a.at, run: () => feed(t, a.bytes, a.at) })), ...settles.map((at) => ({ at, run: () => t.settle(at) }))]
          .sort((x, y) => x.at - y.at)
        const events = steps.flatMap((s) => s.run())
        events.push(...t.settle(1e9))
        expect(events.some((e) => e._tag === "Forked")).toBe(false)
        const last = Math.max(0, ...arrivals.map((a) => a.i + 1))
        const droppedBelow = dropped.slice(0, last).filter(Boolean).length
        expect(net(events)).toBe(droppedBelow)
        expect(t.missing("bob", 1)).toEqual({ reported: droppedBelow, pending: 0 })
        // with nothing dropped and every delay inside the grace period, nothing at all is said
        if (droppedBelow === 0 && delays.every((d) => d < 900)) expect(events).toEqual([])
      }
    ), { numRuns: 400 })
  })

  test("property: state stays within its bounds whatever positions arrive", () => {
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 30 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 0xffff_ffff })), { maxLength: 200 }),
      (arrivals) => {
        const t = MissedTracker.make({ maxDevices: 8, maxGap: 50, recent: 16 })
        for (const [peer, device, position] of arrivals) {
          t.observe(`p${peer}`, device, { position, previous: Content.NO_PREVIOUS }, Uint8Array.of(position & 0xff, 0, 0, 0, 0, 0, 0, 1), 0)
          const size = t.size()
          expect(size.devices).toBeLessThanOrEqual(8)
          expect(size.open).toBeLessThanOrEqual(8 * 50)
          expect(size.links).toBeLessThanOrEqual(8 * 16)
        }
      }
    ), { numRuns: 300 })
  })

  test("a jump past the bound is reported missed at once for the positions it cannot track", () => {
    const t = MissedTracker.make({ maxGap: 10, graceMs: 0 })
    const m = stream(1)
    feed(t, m[0]!, 0)
    expect(t.observe("bob", 1, { position: 1_000_002, previous: Content.NO_PREVIOUS }, new Uint8Array(8), 0))
      .toEqual([{ _tag: "Missed", peer: "bob", device: 1, count: 1_000_000 - 10 }])
    expect(t.settle(0)).toEqual([{ _tag: "Missed", peer: "bob", device: 1, count: 10 }])
  })

  test("a snapshot restores open gaps and links", () => {
    const t = MissedTracker.make({ graceMs: 0 })
    const m = stream(5)
    feed(t, m[0]!, 0)
    feed(t, m[3]!, 0)
    t.settle(0)
    const snapshot = JSON.parse(JSON.stringify(t.snapshot())) as unknown
    expect(MissedTracker.isSnapshot(snapshot)).toBe(true)
    const back = MissedTracker.make({ graceMs: 0 }, snapshot as MissedTracker.Snapshot)
    expect(back.missing("bob", 1)).toEqual({ reported: 2, pending: 0 })
    expect(feed(back, m[2]!, 0)).toEqual([{ _tag: "Recovered", peer: "bob", device: 1, count: 1 }])
    expect(feed(back, m[4]!, 0)).toEqual([])
    expect(feed(back, stream(2, "x")[1]!, 0)).toEqual([{ _tag: "Recovered", peer: "bob", device: 1, count: 1 }, { _tag: "Forked", peer: "bob", device: 1, position: 2 }])
  })
})
