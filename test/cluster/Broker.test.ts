import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { Effect, Exit, Layer, Scope, Stream } from "effect"
import { Broker, type BrokerShape, type BrokerState, layerMemory, matches } from "../../src/transport/Broker.ts"
import * as NatsBroker from "../../src/transport/NatsBroker.ts"
import * as Proxy from "./FreezableProxy.ts"
import * as Nats from "./NatsServer.ts"

const text = (d: Uint8Array) => new TextDecoder().decode(d)
const bytes = (s: string) => new TextEncoder().encode(s)

/** A broker built in its own scope, driven from plain async test code. */
const open = async (layer: Layer.Layer<Broker>) => {
  const scope = Effect.runSync(Scope.make())
  const broker: BrokerShape = await Effect.runPromise(Layer.buildWithScope(layer, scope).pipe(Effect.map((ctx) => ctx.unsafeMap.get(Broker.key) as BrokerShape)))
  const got: Array<string> = []
  const subscribe = async (subject: string, into: Array<string> = got) => {
    const sub = Effect.runSync(Scope.make())
    await Effect.runPromise(broker.subscribe(subject, (s, d) => into.push(`${s}=${text(d)}`)).pipe(Scope.extend(sub)))
    return () => Effect.runPromise(Scope.close(sub, Exit.void))
  }
  const publish = (subject: string, body: string) => Effect.runPromise(broker.publish(subject, bytes(body)))
  const state = () => Effect.runPromise(broker.state)
  const close = () => Effect.runPromise(Scope.close(scope, Exit.void))
  return { broker, got, subscribe, publish, state, close }
}

const until = async (what: string, ok: () => boolean | Promise<boolean>, ms = 10_000) => {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await ok()) return
    await Bun.sleep(20)
  }
  throw new Error(`timed out waiting for ${what}`)
}

describe("subject matching", () => {
  test("NATS rules: exact, * for one token, > for the rest", () => {
    expect(matches("im.net.abc", "im.net.abc")).toBe(true)
    expect(matches("im.*.abc", "im.net.abc")).toBe(true)
    expect(matches("im.*", "im.net.abc")).toBe(false)
    expect(matches("im.>", "im.net.abc")).toBe(true)
    expect(matches("im.>", "im")).toBe(false)
    expect(matches("im.net.abc", "im.net.abd")).toBe(false)
    expect(matches("im.net", "im.net.abc")).toBe(false)
  })
})

describe("one-node broker", () => {
  test("a publish reaches this node's matching subscriptions, until their scope closes", async () => {
    const b = await open(layerMemory)
    const wild: Array<string> = []
    const stop = await b.subscribe("im.n1.k1")
    await b.subscribe("im.n1.*", wild)
    await b.publish("im.n1.k1", "a")
    await b.publish("im.n1.k2", "b")
    await b.publish("im.n2.k1", "c")
    expect(b.got).toEqual(["im.n1.k1=a"])
    expect(wild).toEqual(["im.n1.k1=a", "im.n1.k2=b"])
    await stop()
    await b.publish("im.n1.k1", "d")
    expect(b.got).toEqual(["im.n1.k1=a"])
    expect(await b.state()).toBe("connected")
    await b.close()
  })
})

const skip = Nats.unavailableReason()

describe.skipIf(skip !== undefined)("NATS broker", () => {
  let server: Nats.NatsServer
  beforeAll(async () => {
    server = await Nats.create()
  })
  afterAll(async () => {
    await server?.stop()
  })
  const natsLayer = (name: string, url = server.url) =>
    NatsBroker.layer({ servers: [url], name, pingIntervalMillis: 500, maxPingOut: 2 })

  test("crosses between two clients; two local handlers on one subject are both served and each unsubscribes alone", async () => {
    const a = await open(natsLayer("a"))
    const b = await open(natsLayer("b"))
    await until("both connected", async () => (await a.state()) === "connected" && (await b.state()) === "connected")
    const second: Array<string> = []
    const stop1 = await b.subscribe("im.net.key")
    const stop2 = await b.subscribe("im.net.key", second)
    await until("subscription live", async () => {
      await a.publish("im.net.key", "probe")
      return b.got.length > 0
    })
    // Probes may still be in flight: only the bodies sent from here on are counted.
    const real = (xs: Array<string>) => xs.filter((x) => !x.endsWith("=probe"))
    await a.publish("im.net.key", "hello")
    await until("delivery", () => real(b.got).length === 1 && real(second).length === 1)
    expect(real(b.got)).toEqual(["im.net.key=hello"])
    await stop1()
    await a.publish("im.net.key", "still")
    await until("second handler still served", () => real(second).length === 2)
    expect(real(b.got)).toEqual(["im.net.key=hello"])
    await stop2()
    await a.publish("im.net.key", "gone")
    await Bun.sleep(200)
    expect(real(second)).toEqual(["im.net.key=hello", "im.net.key=still"])
    await a.close()
    await b.close()
  })

  test("a killed server is noticed within seconds; the client reconnects and its subscriptions resume", async () => {
    const a = await open(natsLayer("a"))
    const b = await open(natsLayer("b"))
    const states: Array<BrokerState> = []
    Effect.runFork(Stream.runForEach(b.broker.states, (s) => Effect.sync(() => states.push(s))))
    await until("both connected", async () => (await a.state()) === "connected" && (await b.state()) === "connected")
    await b.subscribe("im.net.k")
    await until("subscription live", async () => {
      await a.publish("im.net.k", "probe")
      return b.got.length > 0
    })
    await server.stop()
    const lostAt = Date.now()
    await until("disconnected", async () => (await b.state()) === "disconnected", 8000)
    expect(Date.now() - lostAt).toBeLessThan(8000)
    await Bun.sleep(1500)
    await server.start()
    await until("reconnected", async () => (await a.state()) === "connected" && (await b.state()) === "connected", 15_000)
    expect(await Effect.runPromise(b.broker.reconnects)).toBeGreaterThanOrEqual(1)
    expect(states).toContain("disconnected")
    expect(states[states.length - 1]).toBe("connected")
    b.got.length = 0
    await until("subscription resumed", async () => {
      await a.publish("im.net.k", "after")
      return b.got.includes("im.net.k=after")
    })
    await a.close()
    await b.close()
  }, 40_000)

  test("a link that goes silent (no close, no reset) is found dead by pings within seconds, and comes back", async () => {
    const proxy = await Proxy.create(server.port)
    const cut = await open(natsLayer("cut", proxy.url))
    const peer = await open(natsLayer("peer"))
    await until("both connected", async () => (await cut.state()) === "connected" && (await peer.state()) === "connected")
    await cut.subscribe("im.net.cut")
    await until("subscription live", async () => {
      await peer.publish("im.net.cut", "probe")
      return cut.got.length > 0
    })
    proxy.freeze()
    const frozenAt = Date.now()
    // Pings every 500 ms, two unanswered: dead after about 1.5 s, not the client's default minutes.
    await until("the silent link found dead", async () => (await cut.state()) !== "connected", 6000)
    const found = Date.now() - frozenAt
    expect(found).toBeLessThan(6000)
    proxy.thaw()
    await until("reconnected through the proxy", async () => (await cut.state()) === "connected", 15_000)
    cut.got.length = 0
    await until("subscription resumed", async () => {
      await peer.publish("im.net.cut", "after")
      return cut.got.includes("im.net.cut=after")
    })
    await cut.close()
    await peer.close()
    await proxy.close()
  }, 40_000)

  test("flush returns once the server has the subscription: the first publish after it reaches it", async () => {
    const a = await open(natsLayer("a"))
    const b = await open(natsLayer("b"))
    await until("both connected", async () => (await a.state()) === "connected" && (await b.state()) === "connected")
    // Concurrent asks share round trips (one in flight, the next for those that came meanwhile); each
    // must still cover its own subscription.
    await Promise.all(Array.from({ length: 40 }, async (_, i) => {
      await Bun.sleep(i % 7)
      await b.subscribe(`im.net.f${i}`)
      await Effect.runPromise(b.broker.flush)
      await a.publish(`im.net.f${i}`, "first")
    }))
    await until("every first publish", () => b.got.length === 40)
    expect([...b.got].sort()).toEqual(Array.from({ length: 40 }, (_, i) => `im.net.f${i}=first`).sort())
    await a.close()
    await b.close()
  })

  test("a node's own publication does not come back to it; the other node gets it", async () => {
    const a = await open(natsLayer("a"))
    const b = await open(natsLayer("b"))
    await until("both connected", async () => (await a.state()) === "connected" && (await b.state()) === "connected")
    await a.subscribe("im.net.echo")
    await b.subscribe("im.net.echo")
    await Effect.runPromise(Effect.zipRight(a.broker.flush, b.broker.flush))
    await a.publish("im.net.echo", "from-a")
    await until("b got it", () => b.got.includes("im.net.echo=from-a"))
    // A round trip on a's link after its publish: an echo would have arrived by now.
    await Effect.runPromise(a.broker.flush)
    await Bun.sleep(100)
    expect(a.got).toEqual([])
    await a.close()
    await b.close()
  })

  test("a silent link not yet found dead holds a flush for the bounded wait only; a down bus not at all", async () => {
    const proxy = await Proxy.create(server.port)
    // Pings far apart: the link stays "connected" for the whole test, only the flush's bound ends the wait.
    const cut = await open(NatsBroker.layer({ servers: [proxy.url], name: "cut", pingIntervalMillis: 60_000, maxPingOut: 2 }))
    await until("connected", async () => (await cut.state()) === "connected")
    proxy.freeze()
    await cut.subscribe("im.net.silent")
    const started = Date.now()
    await Effect.runPromise(cut.broker.flush)
    const waited = Date.now() - started
    expect(waited).toBeGreaterThanOrEqual(NatsBroker.FLUSH_TIMEOUT_MILLIS - 50)
    expect(waited).toBeLessThan(NatsBroker.FLUSH_TIMEOUT_MILLIS + 2000)
    expect(await cut.state()).toBe("connected")
    await cut.close()
    await proxy.close()
    const down = await Nats.create()
    await down.stop()
    const early = await open(natsLayer("early", down.url))
    const at = Date.now()
    await Effect.runPromise(early.broker.flush)
    expect(Date.now() - at).toBeLessThan(200)
    await early.close()
  }, 20_000)

  test("a node started before its bus connects when the bus comes up, with the subjects asked for meanwhile", async () => {
    const late = await Nats.create()
    await late.stop()
    const a = await open(natsLayer("a", late.url))
    await a.subscribe("im.net.early")
    await Bun.sleep(300)
    expect(await a.state()).toBe("connecting")
    await a.publish("im.net.early", "lost") // no bus: dropped without failing
    await late.start()
    await until("connected", async () => (await a.state()) === "connected", 15_000)
    const b = await open(natsLayer("b", late.url))
    await until("b connected", async () => (await b.state()) === "connected")
    await until("early subscription live", async () => {
      await b.publish("im.net.early", "x")
      return a.got.includes("im.net.early=x")
    })
    expect(a.got).not.toContain("im.net.early=lost")
    await a.close()
    await b.close()
    await late.stop()
  }, 40_000)
})
