/**
 * Tells a person when messages from a peer's device are missing (dropped, deleted or withheld by a
 * relay) and when a late one fills the gap (docs/PROTOCOL.md, "Missed messages"). Each envelope
 * carries its position in its sender device's sequence and the digest of the message before it
 * (`Content.Link`). A gap is reported only once it has stayed open for `graceMs`, so a reordered
 * delivery that completes in time reports nothing; a gap reported and then filled is `Recovered`.
 *
 * Pure and bounded: the caller passes the time (from `Clock`), devices are kept least recently used
 * first up to `maxDevices`, and at most `maxGap` open positions per device (a jump past it counts the
 * older positions as missed at once, for good). `snapshot`/`restore` keep it across restarts.
 */
import { bytesToHex } from "@noble/hashes/utils.js"
import type { Link } from "./Content.ts"

export type Event =
  | { readonly _tag: "Missed"; readonly peer: string; readonly device: number; readonly count: number }
  | { readonly _tag: "Recovered"; readonly peer: string; readonly device: number; readonly count: number }
  /** the message does not follow the one received before it at its position: not the sequence the sender wrote */
  | { readonly _tag: "Forked"; readonly peer: string; readonly device: number; readonly position: number }

export interface Options {
  readonly graceMs?: number
  readonly maxDevices?: number
  readonly maxGap?: number
  /** digests kept per device to check the links of neighbours */
  readonly recent?: number
}

interface DeviceState {
  peer: string
  device: number
  highest: number
  /** open positions not yet reported, with when they were first seen open */
  pending: Map<number, number>
  reported: Set<number>
  /** position → [digest, previous] of recent messages */
  links: Map<number, readonly [string, string]>
}

export interface Snapshot {
  readonly v: 1
  readonly devices: ReadonlyArray<{
    readonly peer: string
    readonly device: number
    readonly highest: number
    readonly pending: ReadonlyArray<readonly [number, number]>
    readonly reported: ReadonlyArray<number>
    readonly links: ReadonlyArray<readonly [number, string, string]>
  }>
}

export interface MissedTracker {
  /** Takes in one message that opened; what it reveals at once (a Recovered or Forked). */
  readonly observe: (peer: string, device: number, link: Link, digest: Uint8Array, now: number) => ReadonlyArray<Event>
  /** Reports the gaps that have stayed open for the grace period (one Missed per device). */
  readonly settle: (now: number) => ReadonlyArray<Event>
  /** Positions missing from `peer`'s `device`: reported, and not yet reported. */
  readonly missing: (peer: string, device: number) => { readonly reported: number; readonly pending: number }
  readonly size: () => { readonly devices: number; readonly open: number; readonly links: number }
  readonly snapshot: () => Snapshot
}

const ZERO = "0000000000000000"

export const make = (options: Options = {}, from?: Snapshot): MissedTracker => {
  const graceMs = options.graceMs ?? 10_000
  const maxDevices = options.maxDevices ?? 10_000
  const maxGap = options.maxGap ?? 1_000
  const recent = options.recent ?? 64
  const devices = new Map<string, DeviceState>()
  const keyOf = (peer: string, device: number) => `${device}:${peer}`

  for (const d of from?.devices ?? []) {
    devices.set(keyOf(d.peer, d.device), {
      peer: d.peer,
      device: d.device,
      highest: d.highest,
      pending: new Map(d.pending),
      reported: new Set(d.reported),
      links: new Map(d.links.map(([p, digest, previous]) => [p, [digest, previous] as const]))
    })
  }

  const stateOf = (peer: string, device: number): DeviceState => {
    const key = keyOf(peer, device)
    let s = devices.get(key)
    if (s !== undefined) devices.delete(key)
    else s = { peer, device, highest: 0, pending: new Map(), reported: new Set(), links: new Map() }
    devices.set(key, s)
    while (devices.size > maxDevices) devices.delete(devices.keys().next().value!)
    return s
  }

  /** Drops the oldest open positions past `maxGap`; the unreported ones among them are missed now. */
  const trim = (s: DeviceState): number => {
    let missedNow = 0
    while (s.pending.size + s.reported.size > maxGap) {
      const oldestPending = s.pending.size === 0 ? Infinity : s.pending.keys().next().value!
      const oldestReported = s.reported.size === 0 ? Infinity : s.reported.values().next().value!
      if (oldestPending < oldestReported) {
        s.pending.delete(oldestPending)
        missedNow++
      } else s.reported.delete(oldestReported)
    }
    return missedNow
  }

  const observe = (peer: string, device: number, link: Link, digest: Uint8Array, now: number): ReadonlyArray<Event> => {
    const s = stateOf(peer, device)
    const events: Array<Event> = []
    const n = link.position
    const mine = bytesToHex(digest)
    const previous = bytesToHex(link.previous)
    const seen = s.links.get(n)
    if (seen !== undefined) {
      if (seen[0] !== mine) events.push({ _tag: "Forked", peer, device, position: n })
      return events
    }
    if (n > s.highest) {
      // A jump past maxGap: the positions below the window are missed now, not tracked.
      const firstTracked = Math.max(s.highest + 1, n - maxGap)
      let missedNow = firstTracked - (s.highest + 1)
      for (let p = firstTracked; p < n; p++) s.pending.set(p, now)
      s.highest = n
      missedNow += trim(s)
      if (missedNow > 0) events.push({ _tag: "Missed", peer, device, count: missedNow })
    } else if (s.pending.delete(n)) {
      // filled before it was reported: nothing to say
    } else if (s.reported.delete(n)) {
      events.push({ _tag: "Recovered", peer, device, count: 1 })
    } else {
      // below the window, or already received and forgotten: nothing to learn from it
      return events
    }
    const before = s.links.get(n - 1)
    const after = s.links.get(n + 1)
    if ((before !== undefined && before[0] !== previous) || (n === 1 && previous !== ZERO) || (after !== undefined && after[1] !== mine)) {
      events.push({ _tag: "Forked", peer, device, position: n })
    }
    s.links.set(n, [mine, previous])
    if (s.links.size > recent) {
      // forget the lowest position, not the first inserted: late arrivals are inserted last
      let lowest = Infinity
      for (const p of s.links.keys()) if (p < lowest) lowest = p
      s.links.delete(lowest)
    }
    return events
  }

  const settle = (now: number): ReadonlyArray<Event> => {
    const events: Array<Event> = []
    for (const s of devices.values()) {
      let count = 0
      for (const [p, at] of s.pending) {
        if (at + graceMs > now) continue
        s.pending.delete(p)
        s.reported.add(p)
        count++
      }
      if (count > 0) events.push({ _tag: "Missed", peer: s.peer, device: s.device, count })
    }
    return events
  }

  return {
    observe,
    settle,
    missing: (peer, device) => {
      const s = devices.get(keyOf(peer, device))
      return { reported: s?.reported.size ?? 0, pending: s?.pending.size ?? 0 }
    },
    size: () => {
      let open = 0
      let links = 0
      for (const s of devices.values()) {
        open += s.pending.size + s.reported.size
        links += s.links.size
      }
      return { devices: devices.size, open, links }
    },
    snapshot: () => ({
      v: 1,
      devices: [...devices.values()].map((s) => ({
        peer: s.peer,
        device: s.device,
        highest: s.highest,
        pending: [...s.pending],
        reported: [...s.reported],
        links: [...s.links].map(([p, [digest, previous]]) => [p, digest, previous] as const)
      }))
    })
  }
}

/** For a stored snapshot: whether it has the shape `make` expects (anything else starts afresh). */
export const isSnapshot = (x: unknown): x is Snapshot =>
  typeof x === "object" && x !== null && (x as Snapshot).v === 1 && Array.isArray((x as Snapshot).devices)
