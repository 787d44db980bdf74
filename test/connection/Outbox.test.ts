/**
 * Corked writes: frames queued while `coalesceWrites` runs leave when it returns, each outbox's in one
 * corked write, in order; outside it a lone frame is written at once, as before.
 */
import { describe, expect, test } from "bun:test"
import { coalesceWrites, Outbox } from "../../src/connection/Outbox.ts"
import type { WriteResult } from "../../src/transport/Transport.ts"

/** An outbox over a fake socket: `log` has "cork(" and ")" around corked writes, and each frame written. */
const outboxOn = (log: Array<string>, name: string, result: () => WriteResult = () => "ok") =>
  new Outbox(
    {
      send: (text) => {
        log.push(`${name}:${text}`)
        return result()
      },
      cork: (writes) => {
        log.push(`${name}:cork(`)
        writes()
        log.push(`${name}:)`)
      }
    },
    16,
    2,
    1 << 20,
    1 << 20,
    {},
    { blocked: () => {}, drained: () => {} }
  )

describe("Outbox", () => {
  test("a frame outside coalesceWrites is written at once, uncorked", () => {
    const log: Array<string> = []
    const a = outboxOn(log, "a")
    a.pushOwn("1")
    expect(log).toEqual(["a:1"])
    a.pushLive("2", undefined)
    expect(log).toEqual(["a:1", "a:2"])
  })

  test("frames queued inside coalesceWrites wait for its end, then each outbox writes them in one corked write, in order", () => {
    const log: Array<string> = []
    const a = outboxOn(log, "a")
    const b = outboxOn(log, "b")
    coalesceWrites(() => {
      a.pushOwn("1")
      b.pushLive("x", "m1")
      a.pushLive("2", "m2")
      coalesceWrites(() => a.pushOwn("3"))
      expect(log).toEqual([])
      expect(a.size).toBe(3)
    })
    expect(log).toEqual(["a:cork(", "a:1", "a:2", "a:3", "a:)", "b:x"])
    expect(a.size + b.size).toBe(0)
  })

  test("a socket that pushes back keeps the rest for its drain; one that closed hands back the tracked messages", () => {
    const log: Array<string> = []
    let result: WriteResult = "ok"
    const a = outboxOn(log, "a", () => result)
    coalesceWrites(() => {
      a.pushOwn("1")
      a.pushOwn("2")
      result = "backpressure"
    })
    expect(log).toEqual(["a:cork(", "a:1", "a:)"])
    result = "ok"
    a.drain()
    expect(log.slice(3)).toEqual(["a:2"])

    const b = outboxOn(log, "b", () => "closed")
    coalesceWrites(() => {
      b.pushLive("x", "m1")
      b.pushLive("y", "m2")
    })
    expect(b.close()).toEqual(["m1", "m2"])
  })
})
