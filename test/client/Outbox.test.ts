import { describe, expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as HomeStorage from "../../src/client/HomeStorage.ts"
import * as MessageStore from "../../src/client/MessageStore.ts"
import * as Outbox from "../../src/client/Outbox.ts"

const KEY = new Uint8Array(32).fill(7)

const record = (n: number, peer = "bob"): MessageStore.ChatRecord => ({
  messageHash: `h${n}`, peer, direction: "out", text: `typed ${n}`, at: n, l2psUid: "net", status: "sending"
})

/** A node that answers as `mode` says and records every frame it was given. */
const fakeNode = () => {
  const state = { mode: "offline" as "offline" | "online", got: [] as Array<string>, refuse: new Set<string>(), unknown: new Set<string>() }
  const send = (r: MessageStore.ChatRecord) =>
    Effect.suspend(() => {
      if (state.mode === "offline") return Effect.fail<Outbox.Failure>({ kind: "retry", message: "disconnected" })
      if (state.refuse.has(r.messageHash)) return Effect.fail<Outbox.Failure>({ kind: "permanent", message: "Message too large" })
      if (state.unknown.has(r.peer)) return Effect.fail<Outbox.Failure>({ kind: "unknown-recipient", message: "no such recipient" })
      state.got.push(r.messageHash)
      return Effect.succeed("sent" as const)
    })
  return { state, send }
}

const until = async (check: () => boolean, what: string, ms = 5_000) => {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

const open = async (files: Map<string, string>, options: Omit<Outbox.OutboxOptions, "store">) => {
  const scope = Effect.runSync(Scope.make())
  const store = await Effect.runPromise(MessageStore.open(HomeStorage.memory(files), "history.log", KEY))
  const changes: Array<string> = []
  const outbox = await Effect.runPromise(Outbox.make({
    store,
    retryMinMs: 5,
    retryMaxMs: 20,
    onChange: (r) => Effect.sync(() => void changes.push(`${r.messageHash}:${r.status}`)),
    ...options
  }).pipe(Scope.extend(scope)))
  return { store, outbox, changes, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

describe("client outbox", () => {
  test("typed while offline: kept as sending, then sent once each and in order when the node is there", async () => {
    const node = fakeNode()
    const c = await open(new Map(), { send: node.send })
    for (const n of [1, 2, 3]) await Effect.runPromise(c.outbox.enqueue(record(n)))
    await Effect.runPromise(c.outbox.enqueue(record(4, "carol")))
    await new Promise((r) => setTimeout(r, 50))
    expect(node.state.got).toEqual([])
    expect((await Effect.runPromise(c.store.recent())).map((r) => r.status)).toEqual(["sending", "sending", "sending", "sending"])
    node.state.mode = "online"
    await Effect.runPromise(c.outbox.kick)
    await until(() => node.state.got.length === 4, "four sends")
    expect(node.state.got).toEqual(["h1", "h2", "h3", "h4"])
    expect(c.changes).toEqual(["h1:sent", "h2:sent", "h3:sent", "h4:sent"])
    expect(await Effect.runPromise(c.outbox.pending)).toEqual([])
    await c.close()
  })

  test("survives a restart of the client: what was sending is sent after reopening, once, in order, and the files hold no plaintext", async () => {
    const files = new Map<string, string>()
    const offline = fakeNode()
    const first = await open(files, { send: offline.send })
    for (const n of [1, 2, 3]) await Effect.runPromise(first.outbox.enqueue(record(n)))
    await first.close()
    expect([...files.values()].join("\n")).not.toContain("typed")
    const node = fakeNode()
    node.state.mode = "online"
    const again = await open(files, { send: node.send })
    await until(() => node.state.got.length === 3, "three sends")
    await new Promise((r) => setTimeout(r, 30))
    expect(node.state.got).toEqual(["h1", "h2", "h3"])
    await again.close()
    // and nothing is sent a third time after another restart
    const third = await open(files, { send: node.send })
    await new Promise((r) => setTimeout(r, 30))
    expect(node.state.got).toEqual(["h1", "h2", "h3"])
    expect((await Effect.runPromise(third.store.recent())).map((r) => r.status)).toEqual(["sent", "sent", "sent"])
    await third.close()
  })

  test("a permanent refusal fails that message with its reason and the next ones go on", async () => {
    const node = fakeNode()
    node.state.mode = "online"
    node.state.refuse.add("h2")
    const c = await open(new Map(), { send: node.send })
    for (const n of [1, 2, 3]) await Effect.runPromise(c.outbox.enqueue(record(n)))
    await until(() => c.changes.length === 3, "three outcomes")
    expect(c.changes).toEqual(["h1:sent", "h2:failed", "h3:sent"])
    expect((await Effect.runPromise(c.store.get("h2")))?.error).toBe("Message too large")
    await c.close()
  })

  test("a recipient unknown holds its messages back for the bound, then fails them; other peers are not held", async () => {
    const node = fakeNode()
    node.state.mode = "online"
    node.state.unknown.add("bob")
    const c = await open(new Map(), { send: node.send, unknownRecipientMs: 150 })
    await Effect.runPromise(c.outbox.enqueue(record(1)))
    await Effect.runPromise(c.outbox.enqueue(record(2)))
    await Effect.runPromise(c.outbox.enqueue(record(3, "carol")))
    await until(() => node.state.got.includes("h3"), "carol's message")
    expect(c.changes).toEqual(["h3:sent"])
    await until(() => c.changes.length === 3, "bob's messages failed")
    expect(c.changes).toEqual(["h3:sent", "h1:failed", "h2:failed"])
    await c.close()
  })

  test("a recipient known again within the bound gets its messages", async () => {
    const node = fakeNode()
    node.state.mode = "online"
    node.state.unknown.add("bob")
    const c = await open(new Map(), { send: node.send, unknownRecipientMs: 60_000 })
    await Effect.runPromise(c.outbox.enqueue(record(1)))
    await new Promise((r) => setTimeout(r, 40))
    node.state.unknown.delete("bob")
    await until(() => node.state.got.length === 1, "the send")
    expect(c.changes).toEqual(["h1:sent"])
    await c.close()
  })

  test("a receipt that overtook the reply stays delivered", async () => {
    let store: MessageStore.MessageStoreShape | undefined
    const c = await open(new Map(), {
      send: (r) => Effect.gen(function*() {
        yield* store!.update(r.messageHash, { status: "delivered" }).pipe(Effect.orDie)
        return "sent" as const
      })
    })
    store = c.store
    await Effect.runPromise(c.outbox.enqueue(record(1)))
    await until(() => c.changes.length === 1, "the outcome")
    expect(c.changes).toEqual(["h1:delivered"])
    await c.close()
  })

  test("a full outbox refuses what is typed next and drops nothing", async () => {
    const node = fakeNode()
    const c = await open(new Map(), { send: node.send, capacity: 2 })
    await Effect.runPromise(c.outbox.enqueue(record(1)))
    await Effect.runPromise(c.outbox.enqueue(record(2)))
    const third = await Effect.runPromise(Effect.either(c.outbox.enqueue(record(3))))
    expect(third._tag === "Left" && third.left._tag).toBe("OutboxFull")
    expect((await Effect.runPromise(c.outbox.pending)).map((r) => r.messageHash)).toEqual(["h1", "h2"])
    await c.close()
  })
})
